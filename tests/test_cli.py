"""The `landslide` stages end to end on the real crop, and every bad input they must refuse."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.stack import read_stack
from tests.conftest import write_params

runner = CliRunner()


def _run(command: str, raw: dict[str, Any], tmp_path: Path):
    params = write_params(raw, tmp_path / "params.yaml")
    return runner.invoke(app, [command, "--params", str(params)])


def _outputs(raw: dict[str, Any]) -> list[Path]:
    paths = [Path(p) for k, p in raw["paths"].items() if k != "reports"]
    reports = Path(raw["paths"]["reports"])
    return [p for p in paths if p.exists()] + (list(reports.iterdir()) if reports.exists() else [])


def test_prepare_then_sample(params_dict: dict[str, Any], tmp_path: Path) -> None:
    result = _run("prepare", params_dict, tmp_path)
    assert result.exit_code == 0, result.output
    stack = read_stack(params_dict["paths"]["stack"])
    assert stack.data.shape[0] == 20
    reports = Path(params_dict["paths"]["reports"])
    summary = json.loads((reports / "prepare.json").read_text())
    assert summary["labels_on_grid"]["landslide"] > 0
    assert set(summary["bands"]) == set(stack.grid.band_names)
    assert 0 < summary["valid_fraction"] <= 1
    assert (reports / "prepare_layers.png").stat().st_size > 10_000

    result = _run("sample", params_dict, tmp_path)
    assert result.exit_code == 0, result.output
    samples = read_samples(params_dict["paths"]["samples"])
    assert (samples.table.split == "test").any()
    sample_report = json.loads((reports / "sample.json").read_text())
    assert sample_report["shared_window_pixels"]["test_train"] == 0
    norm = json.loads(Path(params_dict["paths"]["norm"]).read_text())
    assert norm["bands"] == list(stack.grid.band_names)
    assert not list(tmp_path.rglob(".*.tmp-*"))


def _write_like(src_path: str, dst: Path, edit: Callable[[np.ndarray, dict], tuple]) -> str:
    with rasterio.open(src_path) as src:
        data, profile = edit(src.read(), dict(src.profile))
    with rasterio.open(dst, "w", **(profile | {"count": data.shape[0]})) as out:
        out.write(data)
    return str(dst)


def _no_crs(data: np.ndarray, profile: dict) -> tuple:
    return data, profile | {"crs": None}


def _far_away(data: np.ndarray, profile: dict) -> tuple:
    t = profile["transform"]
    return data, profile | {"transform": rasterio.Affine(t.a, 0, t.c + 5e5, 0, t.e, t.f)}


def _three_bands(data: np.ndarray, profile: dict) -> tuple:
    return data[:3], profile


def _infinite(data: np.ndarray, profile: dict) -> tuple:
    data = data.copy()
    data[0, 5, 5] = np.inf
    return data, profile


def _nan_not_nodata(data: np.ndarray, profile: dict) -> tuple:
    data = data.copy()
    data[0, 5, 5] = np.nan
    return data, profile


@pytest.mark.parametrize(("layer", "edit", "message"), [
    ("elevation", _no_crs, "raster has no CRS"),
    ("elevation", _far_away, "does not overlap the reference grid"),
    ("sentinel2", _three_bands, "has 3 bands (band1, band2, band3), params name 4"),
    ("elevation", _infinite, "contains infinite values"),
    ("elevation", _nan_not_nodata, "contains NaN values but its nodata value is -9999"),
])
def test_bad_rasters(params_dict: dict[str, Any], tmp_path: Path, layer: str,
                     edit: Callable, message: str) -> None:
    spec = params_dict["prepare"]["layers"][layer]
    spec["path"] = _write_like(spec["path"], tmp_path / f"bad_{layer}.tif", edit)
    _assert_refused(_run("prepare", params_dict, tmp_path), f"bad_{layer}.tif", message)
    assert _outputs(params_dict) == []


def test_missing_file(params_dict: dict[str, Any], tmp_path: Path) -> None:
    params_dict["prepare"]["layers"]["landuse"]["path"] = str(tmp_path / "gone.tif")
    _assert_refused(_run("prepare", params_dict, tmp_path), "gone.tif", "file not found")
    assert _outputs(params_dict) == []


def test_vector_without_crs(params_dict: dict[str, Any], tmp_path: Path) -> None:
    spec = params_dict["prepare"]["layers"]["dist_faults"]
    frame = gpd.read_file(spec["path"])
    path = tmp_path / "faults.shp"  # a shapefile without its .prj (GeoJSON implies WGS 84)
    frame.to_file(path)
    path.with_suffix(".prj").unlink()
    spec["path"] = str(path)
    _assert_refused(_run("prepare", params_dict, tmp_path), "faults.shp",
                    "vector layer has no CRS")


def test_inventory_without_landslides(params_dict: dict[str, Any], tmp_path: Path) -> None:
    inventory = params_dict["prepare"]["inventory"]
    frame = gpd.read_file(inventory["path"])
    path = tmp_path / "stable_only.gpkg"
    frame[frame["class"] == "stable"].to_file(path, layer="inventory")
    inventory["path"] = str(path)
    _assert_refused(_run("prepare", params_dict, tmp_path), "stable_only.gpkg",
                    "no feature has class in ['landslide']")
    assert _outputs(params_dict) == []


def test_bad_params_value(params_dict: dict[str, Any], tmp_path: Path) -> None:
    params_dict["sample"]["unlabelled_ratio"] = "lots"
    result = _run("sample", params_dict, tmp_path)
    _assert_refused(result, "params.yaml", "sample.unlabelled_ratio: expected float")


def test_sample_before_prepare(params_dict: dict[str, Any], tmp_path: Path) -> None:
    _assert_refused(_run("sample", params_dict, tmp_path), "stack.tif", "file not found")


def _assert_refused(result: Any, names: str, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and names in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["train"].update(epocs=3),
     "params.yaml: train.epocs is not a setting (did you mean train.epochs?)"),
    (lambda raw: raw.update(trian=raw.pop("train")),
     "params.yaml: trian is not a setting (did you mean train?)"),
])
def test_a_misspelt_key_stops_the_command(params_dict: dict[str, Any], tmp_path: Path,
                                          edit: Callable, message: str) -> None:
    edit(params_dict)
    result = runner.invoke(app, ["train", "ssgan", "--params",
                                 str(write_params(params_dict, tmp_path / "params.yaml"))])
    _assert_refused(result, "params.yaml", message)
    assert not Path(params_dict["paths"]["models"]).exists()


def test_an_unknown_model_or_feature_set_is_refused_by_the_command_line(
        params_dict: dict[str, Any], tmp_path: Path) -> None:
    params = str(write_params(params_dict, tmp_path / "params.yaml"))
    for args, says in ((["train", "gan"], "MODEL: unknown model kind 'gan'; the kinds are"),
                       (["train", "ssgan", "--feature-set", "all"], "Invalid value")):
        result = runner.invoke(app, [*args, "--params", params])
        assert result.exit_code == 2 and says in result.output, result.output


@pytest.mark.slow  # fresh Python processes, each importing TensorFlow or Optuna
def test_an_error_is_the_only_line_the_command_prints(tmp_path: Path) -> None:
    """The real `landslide` process: TensorFlow's absl lines, MLflow's logs and warnings used
    to come first (about eight lines before the error)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "landslide_ssgan.cli", "train", "ssgan",
                             "--params", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'missing.yaml'}: file not found"]


def test_the_command_says_its_version() -> None:
    from landslide_ssgan import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"landslide-ssgan {__version__}\n"


def test_optuna_says_neither_its_study_bookkeeping_nor_its_trial_lines() -> None:
    """A `dvc repro` used to print "A new study created" and then "Using an existing study"
    for the one study tune runs, and each trial twice (Optuna's line with every parameter,
    then `landslide tune`'s own)."""
    import logging

    from landslide_ssgan.quiet import STUDY_BOOKKEEPING, _study_bookkeeping

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(STUDY_BOOKKEEPING[0], logging.INFO, __file__, 1, message,
                                 None, None)

    assert not _study_bookkeeping(record("A new study created in RDB with name: s"))
    assert not _study_bookkeeping(record("Using an existing study with `study_name='s'`"))
    assert not _study_bookkeeping(record("Trial 0 finished with value: 0.5 and parameters"))
    assert not _study_bookkeeping(record("Trial 1 pruned. "))
    assert _study_bookkeeping(record("Trial 2 failed with parameters: {} because of ..."))


def test_the_runs_page_asks_for_the_machine_learning_view() -> None:
    """MLflow 3 opens on its GenAI overview unless the page asks for the runs."""
    from landslide_ssgan.ops.urls import runs_url

    assert runs_url("http://127.0.0.1:5000", None) == "http://127.0.0.1:5000/"
    assert runs_url("http://127.0.0.1:5000", "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning")
    # sorted by what register ranks by: MLflow's own order key, backticks and all
    assert runs_url("http://127.0.0.1:5000", "3", best_first="val_map/auprc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
        "&orderByKey=metrics.%60val_map%2Fauprc%60&orderByAsc=false")


@pytest.mark.slow  # creates a tracking store (MLflow's schema migrations take seconds)
def test_the_ui_is_announced_at_the_experiments_runs(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL `landslide ui` prints asks for the runs of the project's experiment."""
    import mlflow

    from landslide_ssgan.ops.urls import runs_url

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = mlflow.MlflowClient(store).create_experiment("landslide-ssgan")
    assert runs_url("http://127.0.0.1:5000", experiment) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
        "?workflowType=machine_learning")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setattr("landslide_ssgan.ops.server.run_group", lambda *args: 0)
    result = runner.invoke(app, ["ui", "--port", "5999"])
    assert result.exit_code == 0, result.output
    assert (f"/#/experiments/{experiment}/runs?workflowType=machine_learning"
            "&orderByKey=metrics.%60val_map%2Fauprc%60&orderByAsc=false") in result.output
