"""params.yaml validation: every wrong value is one line naming its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from landslide_ssgan.config import load_params, override, parse_params
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
    (("prepare", "grid", "resolution"), -10,
     "prepare.grid.resolution: -10.0 is out of range (0.0, 10000.0]"),
    (("prepare", "grid", "resolution"), True, "prepare.grid.resolution: expected float"),
    (("prepare", "layers", "slope", "source"), "dem", "slope.source: 'dem' is not a layer"),
    (("prepare", "layers", "landuse", "kind"), "raster", "landuse.kind: 'raster' is not one"),
    (("features", "set"), "all", "features.set: 'all' is not one of"),
    (("sample", "negatives"), "anywhere", "sample.negatives: 'anywhere' is not one of"),
    (("sample", "negative_buffer_m"), -5, "sample.negative_buffer_m: -5.0 is out of range"),
    (("sample", "unlabelled_ratio"), 5000, "sample.unlabelled_ratio: 5000.0 is out of range"),
    (("sample", "unlabelled_from"), "test", "sample.unlabelled_from: 'test' is not one of"),
    (("calibrate", "prevalence"), 0, "calibrate.prevalence: 0"),
    (("study", "variants", "long"), {"steps": 0}, "study.variants.long.steps: expected an "
                                                  "integer >= 1, got 0"),
    (("study", "variants", "pool"), {"unlabelled_ratio": "big"},
     "study.variants.pool.unlabelled_ratio: expected a number >= 0"),
    (("seed",), 1.5, "seed: expected int"),
    (("seed",), -1, "seed: -1 is out of range [0, 4294967295]"),
    (("seed",), 2**33, "seed: 8589934592 is out of range [0, 4294967295]"),
    (("train", "lr_d"), float("nan"), "train.lr_d: nan is not a finite number"),
    (("train", "lr_g"), float("inf"), "train.lr_g: inf is not a finite number"),
    (("map", "threshold"), float("nan"), "map.threshold: nan is not a finite number"),
    (("sample", "negative_buffer_m"), float("nan"),
     "sample.negative_buffer_m: nan is not a finite number"),
    (("train", "d_widths"), [8], "train.d_widths: expected a list of 2"),
    (("train", "loss_weights", "unlabelled"), -1, "train.loss_weights.unlabelled: -1.0 is out"),
    (("map", "connectivity"), 6, "map.connectivity: 6 is not one of 4, 8"),
    (("train", "consistency", "cutout"), 13, "train: train.consistency.cutout 13 must be "
     "smaller than the window (13 pixels)"),
    (("train", "consistency", "threshold"), 0.3, "train.consistency.threshold: 0.3 is out"),
    (("tune", "space", "consistency.cutout"), {"choices": [3, 20]},
     "tune.space.consistency.cutout: train.consistency.cutout 20 must be smaller"),
    (("tune", "space", "batch_size"), {"choices": [0, 64]},
     "tune.space.batch_size: 0 is out of range [1, inf]"),
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


def test_a_feature_set_without_bands_is_refused_before_anything_runs() -> None:
    raw = copy.deepcopy(_raw())
    del raw["prepare"]["layers"]["sentinel2"], raw["prepare"]["layers"]["ndvi"]
    raw["prepare"]["grid"]["extent_layer"] = "elevation"
    with pytest.raises(ConfigError, match=r"^evaluate.feature_sets: 'optical' has no bands: "
                                          r"no layer of prepare.layers has role 'optical'"):
        parse_params(raw)
    raw["evaluate"]["feature_sets"], raw["features"]["set"] = ["factors", "joint"], "joint"
    assert parse_params(raw).evaluate.feature_sets == ("factors", "joint")


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


def test_pseudo_labels_from_the_batch_have_no_teacher_to_average() -> None:
    raw = copy.deepcopy(_raw())
    raw["train"]["consistency"].update(pseudo_from="batch", teacher_ema=0.99)
    with pytest.raises(ConfigError, match="train.consistency.pseudo_from: batch takes the "
                       "pseudo-labels from the network's own training pass"):
        parse_params(raw)
    raw["train"]["consistency"]["teacher_ema"] = 0.0
    assert parse_params(raw).train.consistency.pseudo_from == "batch"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["train"].update(epocs=3),
     "train.epocs is not a setting (did you mean train.epochs?)"),
    (lambda raw: raw.update(trian=raw.pop("train")),
     "trian is not a setting (did you mean train?)"),
    (lambda raw: raw["tune"]["space"].update(lr_dd={"low": 0.001, "high": 0.01}),
     "tune.space.lr_dd is not a setting (did you mean tune.space.lr_d?)"),
    (lambda raw: raw["tune"]["space"].update(w_unlabelled={"low": 0.5, "high": 2.0}),
     "tune.space.w_unlabelled is not a setting (did you mean "
     "tune.space.loss_weights.unlabelled?)"),
    (lambda raw: raw["tune"]["space"]["lr_d"].update(hihg=0.1),
     "tune.space.lr_d.hihg is not a setting (did you mean tune.space.lr_d.high?)"),
    (lambda raw: raw["study"]["variants"].update(big={"loss_weights": {"unlabeled": 2.0}}),
     "study.variants.big.loss_weights.unlabeled is not a setting (did you mean "
     "study.variants.big.loss_weights.unlabelled?)"),
    (lambda raw: raw["prepare"]["layers"]["sentinel2"].update(band=["B4"]),
     "prepare.layers.sentinel2.band is not a setting (did you mean "
     "prepare.layers.sentinel2.bands?)"),
    (lambda raw: raw["evaluate"].update(models=["ssgan", "forest"]),
     "evaluate.models is not a setting (split it into evaluate.networks (the window "
     "networks, dvc.yaml's train) and evaluate.classifiers (forest, glm: dvc.yaml's fit))"),
    (lambda raw: raw["paths"].update(mdoels="x"),
     "paths.mdoels is not a setting (did you mean paths.models?)"),
])
def test_an_unknown_key_is_named_with_the_closest_valid_one(edit: Any, message: str) -> None:
    raw = copy.deepcopy(_raw())
    edit(raw)
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert str(info.value) == message


def test_evaluate_names_at_least_one_window_kind() -> None:
    raw = copy.deepcopy(_raw())
    raw["evaluate"].update(networks=[], classifiers=[])
    with pytest.raises(ConfigError, match="^evaluate.networks: evaluate.networks and "
                       "evaluate.classifiers are both empty"):
        parse_params(raw)


def test_names_are_the_params_yaml_names() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.train.loss_weights.unlabelled == 1.0
    assert "loss_weights.unlabelled" in params.tune.space
    assert params.prepare.inventory.layer == "inventory"


def test_override_checks_changes_like_params_yaml() -> None:
    train = load_params(ROOT / "params.yaml").train
    changed = override(train, {"loss_weights": {"generated": 0.5}, "ema": 0.9})
    assert changed.loss_weights.generated == 0.5 and changed.ema == 0.9
    assert changed.loss_weights.labelled == train.loss_weights.labelled
    with pytest.raises(ConfigError, match=r"^x.ema: 2.0 is out of range \[0.0, 0.9999\]$"):
        override(train, {"ema": 2.0}, "x")


def test_a_study_variant_may_change_steps_and_the_unlabelled_pool() -> None:
    raw = _raw()
    raw["study"]["variants"] = {"long": {"steps": 600, "ema": 0.99},
                                "small_pool": {"unlabelled_ratio": 1}}
    params = parse_params(raw)
    long = params.study.variant(params.train, "long")
    assert (long.steps, long.train.ema, long.unlabelled_ratio) == (600, 0.99, None)
    small = params.study.variant(params.train, "small_pool")
    assert (small.steps, small.train, small.unlabelled_ratio) == (params.study.steps,
                                                                 params.train, 1.0)
