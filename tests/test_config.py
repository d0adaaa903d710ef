"""params.yaml validation: every wrong value is one line naming its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from landslide_ssgan.config import load_params, parse_params
from landslide_ssgan.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _raw() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_committed_params_are_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.sample.window == 13
    assert [layer.name for layer in params.prepare.layers][0] == "sentinel2"
    assert params.prepare.grid.crs == "EPSG:32646"


@pytest.mark.parametrize(("path", "value", "message"), [
    (("sample", "window"), "13", "sample.window: expected int, got str '13'"),
    (("sample", "window"), 12, "sample.window: 12 must be 13, 19, 25"),
    (("sample", "window"), 15, "sample.window: 15 must be 13, 19, 25"),
    (("sample", "split", "train"), 1.5, "sample.split.train: 1.5 is out of range"),
    (("sample", "split", "method"), "blocks", "sample.split.method: 'blocks' is not one of"),
    (("prepare", "grid", "resolution"), -10, "prepare.grid.resolution: -10.0 must be in"),
    (("prepare", "grid", "resolution"), True, "prepare.grid.resolution: expected float"),
    (("prepare", "layers", "slope", "source"), "dem", "slope.source: 'dem' is not a layer"),
    (("prepare", "layers", "landuse", "kind"), "raster", "landuse.kind: 'raster' is not one"),
    (("features", "set"), "all", "features.set: 'all' is not one of"),
    (("seed",), 1.5, "params.seed: expected int"),
    (("sample", "split", "block_size"), 10, "block_size: 10 must be at least twice"),
])
def test_bad_values_name_their_key(path: tuple[str, ...], value: Any, message: str) -> None:
    raw = copy.deepcopy(_raw())
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_key_and_missing_file(tmp_path: Path) -> None:
    raw = _raw()
    del raw["prepare"]["inventory"]["path"]
    with pytest.raises(ConfigError, match=r"prepare.inventory.path: missing"):
        parse_params(raw)
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_config_is_frozen() -> None:
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(AttributeError):
        params.seed = 3  # type: ignore[misc]
