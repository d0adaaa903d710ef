"""Study areas other than Chattogram's full layer set, end to end through the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from tests.conftest import write_params

runner = CliRunner()


def test_an_area_with_factors_only_runs_end_to_end(base_params: dict[str, Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No optical image: terrain, geology, land use and distances only, features.rgb unset;
    prepare -> sample -> train (ssgan, baseline, forest, glm; 2 epochs) -> evaluate -> register ->
    map."""
    raw = copy.deepcopy(base_params)
    layers = raw["prepare"]["layers"]
    for name in ("sentinel2", "ndvi"):
        del layers[name]
    raw["prepare"]["grid"]["extent_layer"] = "elevation"
    raw["features"] = {"set": "factors"}
    raw["evaluate"]["feature_sets"] = ["factors"]
    raw["train"].update({"epochs": 2, "batch_size": 32, "latent_dim": 8, "d_widths": [4, 8],
                         "d_hidden": 8, "g_width": 8, "forest_trees": 10})
    raw["map"].update({"block_size": 100, "preview_size": 100})
    raw["paths"] = {k: str(tmp_path / v) for k, v in {
        "stack": "stack.tif", "labels": "labels.tif", "inventory_ids": "ids.tif",
        "samples": "samples.csv", "norm": "norm.json", "split": "split.tif", "models": "models",
        "maps": "maps", "reports": "reports"}.items()}
    params = str(write_params(raw, tmp_path / "params.yaml"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    for command in (["prepare"], ["sample"], ["train", "ssgan"], ["train", "baseline"],
                    ["train", "forest"], ["train", "glm"], ["evaluate"], ["register"], ["map"]):
        result = runner.invoke(app, [*command, "--params", params])
        assert result.exit_code == 0, (command, result.output, repr(result.exception))
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"factors"}
    summary = json.loads((tmp_path / "reports" / "map_summary.json").read_text())
    assert "test" in summary["champion"]["areas"]
    assert (tmp_path / "reports" / "map_preview.png").stat().st_size > 1000
    result = runner.invoke(app, ["train", "ssgan", "--feature-set", "optical", "--params",
                                 params])
    assert result.exit_code == 2 and "'optical' has no bands here" in result.stderr
