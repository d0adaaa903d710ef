"""Bad input of every kind through the `landslide` command: exit 2, one line on stderr that
names the file or setting, no traceback, and nothing left behind."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from tests.conftest import write_params

runner = CliRunner()
Case = Callable[[dict[str, Any], Path], list[str]]  # edits params/files, returns extra args


@pytest.fixture(scope="module")
def sampled(base_params: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare and sample once on the crop; each case works on a copy."""
    root = tmp_path_factory.mktemp("sampled")
    raw = _paths(copy.deepcopy(base_params), root)
    params = write_params(raw, root / "params.yaml")
    for command in ("prepare", "sample"):
        result = runner.invoke(app, [command, "--params", str(params)])
        assert result.exit_code == 0, result.output
    return root


def _paths(raw: dict[str, Any], root: Path) -> dict[str, Any]:
    raw["paths"] = {k: str(root / v) for k, v in {
        "stack": "prepared/stack.tif", "labels": "prepared/labels.tif",
        "inventory_ids": "prepared/ids.tif", "samples": "samples/samples.csv",
        "norm": "samples/norm.json", "split": "samples/split.tif", "trained": "trained",
        "models": "models",
        "maps": "maps", "reports": "reports"}.items()}
    return raw


def _truncate(path: str | Path, keep: float = 0.5) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


def _local_copy(raw: dict[str, Any], work: Path, *keys: str) -> str:
    """Copy the layer at prepare.layers.<key>.path (or the inventory) into the case's folder,
    so it can be damaged there; returns the copy's path."""
    spec = raw["prepare"]
    for key in keys:
        spec = spec[key]
    target = work / Path(spec["path"]).name
    shutil.copy(spec["path"], target)
    spec["path"] = str(target)
    return str(target)


def _edit(change: Callable[[dict[str, Any]], None]) -> Case:
    def case(raw: dict[str, Any], work: Path) -> list[str]:
        change(raw)
        return []
    return case


def _truncated_layer(raw: dict[str, Any], work: Path) -> list[str]:
    _truncate(_local_copy(raw, work, "layers", "sentinel2"))
    return []


def _landslides_off_the_grid(raw: dict[str, Any], work: Path) -> list[str]:
    """An inventory whose only landslide lies 1 km past the grid's edge: found only after
    every strip of the stack, labels and ids has been written (under temporary names)."""
    import geopandas as gpd
    import rasterio
    import shapely

    with rasterio.open(raw["paths"]["stack"]) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    points = shapely.points([right + 1000, (left + right) / 2], [top - 50, (bottom + top) / 2])
    path = work / "off_grid.gpkg"
    gpd.GeoDataFrame({"class": ["landslide", "stable"]}, geometry=points, crs=crs).to_file(path)
    raw["prepare"]["inventory"].update(path=str(path), layer=None)
    return []


def _text_as_raster(raw: dict[str, Any], work: Path) -> list[str]:
    Path(_local_copy(raw, work, "layers", "elevation")).write_text("not a raster\n")
    return []


def _corrupt_vector(raw: dict[str, Any], work: Path) -> list[str]:
    Path(_local_copy(raw, work, "layers", "lithology")).write_bytes(b"\0garbage" * 100)
    return []


def _truncated_inventory(raw: dict[str, Any], work: Path) -> list[str]:
    _truncate(_local_copy(raw, work, "inventory"), 0.3)
    return []


def _missing_layer(raw: dict[str, Any], work: Path) -> list[str]:
    raw["prepare"]["layers"]["landuse"]["path"] = str(work / "gone.tif")
    return []


def _truncated_stack(raw: dict[str, Any], work: Path) -> list[str]:
    _truncate(raw["paths"]["stack"], 0.6)
    return []


def _missing_labels(raw: dict[str, Any], work: Path) -> list[str]:
    Path(raw["paths"]["labels"]).unlink()
    return []


def _garbage_samples(raw: dict[str, Any], work: Path) -> list[str]:
    Path(raw["paths"]["samples"]).write_text("row,col,label,split,group\nx,y,z,train,1\n")
    return []


def _empty_samples(raw: dict[str, Any], work: Path) -> list[str]:
    Path(raw["paths"]["samples"]).write_text("")
    return []


def _broken_norm(raw: dict[str, Any], work: Path) -> list[str]:
    Path(raw["paths"]["norm"]).write_text("{not json")
    return []


def _args(*extra: str) -> Case:
    def case(raw: dict[str, Any], work: Path) -> list[str]:
        return list(extra)
    return case


def _no_params_file(raw: dict[str, Any], work: Path) -> list[str]:
    return ["--params", str(work / "missing.yaml")]


def _bad_yaml(raw: dict[str, Any], work: Path) -> list[str]:
    (work / "bad.yaml").write_text("train: [unclosed\n")
    return ["--params", str(work / "bad.yaml")]


def _one_block(raw: dict[str, Any]) -> None:
    raw["sample"]["split"]["block_size"] = 100_000


def _output_over_an_input(raw: dict[str, Any], work: Path) -> list[str]:
    raw["paths"]["labels"] = _local_copy(raw, work, "layers", "elevation")
    return []


def _layer_of_nodata(raw: dict[str, Any], work: Path) -> list[str]:
    """The DEM with every pixel nodata (a NaN-filled export)."""
    import rasterio

    path = _local_copy(raw, work, "layers", "elevation")
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full((dst.height, dst.width), dst.nodata, dst.dtypes[0]), 1)
    return []


def _zero_std(raw: dict[str, Any], work: Path) -> list[str]:
    norm = json.loads(Path(raw["paths"]["norm"]).read_text())
    norm["std"][0] = 0.0
    Path(raw["paths"]["norm"]).write_text(json.dumps(norm))
    return []


def _one_band_stack(raw: dict[str, Any], work: Path) -> list[str]:
    import rasterio

    stack = Path(raw["paths"]["stack"])
    with rasterio.open(stack) as src:
        profile, first, name = src.profile | {"count": 1}, src.read(1), src.descriptions[0]
    with rasterio.open(stack, "w", **profile) as dst:
        dst.write(first, 1)
        dst.set_band_description(1, name)
    raw["features"]["rgb"] = []
    return []


def _missing_temp_dir(raw: dict[str, Any], work: Path) -> list[str]:
    raw["windows"] = {"in_memory_mib": 0, "temp_dir": str(work / "no_such_folder")}
    return []


def _folder_not_a_model(raw: dict[str, Any], work: Path) -> list[str]:
    return ["--model-uri", str(work)]


CASES: dict[str, tuple[str, Case, str]] = {  # name: (command, set-up, expected in the line)
    "truncated raster layer": ("prepare", _truncated_layer, "sentinel2.tif: cannot be read"),
    "text file as a raster": ("prepare", _text_as_raster, "dem_30m.tif: cannot be read"),
    "corrupt vector layer": ("prepare", _corrupt_vector, "geology.gpkg: cannot be read"),
    "truncated inventory": ("prepare", _truncated_inventory, "inventory.gpkg: cannot be read"),
    "missing layer": ("prepare", _missing_layer, "gone.tif: file not found"),
    "no landslide on the grid": ("prepare", _landslides_off_the_grid,
                                 "off_grid.gpkg: no landslide (landslide) falls on the"),
    "no params file": ("prepare", _no_params_file, "missing.yaml: file not found"),
    "params not YAML": ("prepare", _bad_yaml, "bad.yaml: not valid YAML"),
    "misspelt setting": ("sample", _edit(lambda r: r["sample"].update(windw=13)),
                         "sample.windw is not a setting"),
    "setting of the wrong type": ("sample", _edit(lambda r: r["sample"].update(
        unlabelled_ratio="lots")), "sample.unlabelled_ratio"),
    "empty validation split": ("sample", _edit(lambda r: r["sample"]["split"].update(
        train=0.7, val=0.0, test=0.3)), "each > 0"),
    "no unlabelled pool": ("sample", _edit(lambda r: r["sample"].update(unlabelled_ratio=0)),
                           "sample.unlabelled_ratio"),
    "a split area without landslides": ("sample", _edit(_one_block),
                                        "split found 1 group with landslides"),
    "truncated stack": ("sample", _truncated_stack, "stack.tif: cannot be read"),
    "missing labels": ("sample", _missing_labels, "labels.tif: file not found"),
    "garbage samples table": ("train", _garbage_samples, "samples.csv: a value"),
    "empty samples table": ("train", _empty_samples, "samples.csv: not a samples table"),
    "broken normalisation": ("train", _broken_norm, "norm.json: not a normalisation file"),
    "bad value on the command line": ("train", _args("--epochs", "lots"), "train.epochs"),
    "unknown setting on the command line": ("train", _args("--epocs", "2"),
                                            "train.epocs is not a setting"),
    "nothing trained to calibrate": ("calibrate", _args("glm"),
                                     "trained/joint/glm: not found; train it first"),
    "setting out of range": ("map", _edit(lambda r: r["map"].update(block_size=4)),
                             "map.block_size"),
    "model that does not exist": ("map", _args("--model-uri", "models:/nothing@champion"),
                                  "models:/nothing@champion: cannot be loaded"),
    "unreachable tune storage": ("tune", _args("--storage", "postgresql://u:p@127.0.0.1:9/x"),
                                 "cannot be opened"),
    "an output path that is an input": ("prepare", _output_over_an_input,
                                        "would overwrite prepare.layers.elevation.path"),
    "a layer of nodata only": ("prepare", _layer_of_nodata,
                               "dem_30m.tif: layer 'elevation' (band 'elevation') has no valid"),
    "a grid of billions of pixels": ("prepare", _edit(lambda r: r["prepare"]["grid"].update(
        resolution=0.05)), "more than prepare.grid.max_pixels"),
    "a CRS that PROJ does not know": ("prepare", _edit(lambda r: r["prepare"]["grid"].update(
        crs="EPSG:999999")), "prepare.grid.crs: 'EPSG:999999' is not a CRS that PROJ knows"),
    "a NaN setting": ("train", _edit(lambda r: r["train"].update(lr_d=float("nan"))),
                      "train.lr_d"),
    "a normalisation with zero spread": ("train", _zero_std, "not positive"),
    "a one-band stack": ("train", _one_band_stack, "norm.json: its 20 bands differ from the 1"),
    "rgb bands the stack lacks": ("train", _edit(lambda r: r["features"].update(
        rgb=["B4", "B3", "B9"])), "features.rgb: ['B9'] are not bands of"),
    "rgb of two bands": ("train", _edit(lambda r: r["features"].update(rgb=["B4", "B3"])),
                         "features.rgb"),
    "a missing folder for the windows": ("train", _missing_temp_dir,
                                         "windows.temp_dir: "),
    "a choice that is not one": ("train", _args("--feature-set", "foo"),
                                 "Invalid value for '--feature-set'"),
    "a model kind that is not one": ("calibrate", _args("sgan"), "sgan"),
    "no workers": ("map", _args("--workers", "0"), "'--workers'"),
    "a model URI that climbs out of its run": ("map", _args(
        "--model-uri", "runs:/0123456789abcdef/../../../../etc"), "'..' is not allowed"),
    "a model URI of another scheme": ("map", _args("--model-uri", "file:///etc"),
                                      "neither a model folder nor a models:/ or runs:/ URI"),
    "a folder that is not a model": ("map", _folder_not_a_model, "not a landslide model"),
}


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and "mlflow" not in p.name}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(name: str, base_params: dict[str, Any],
                                                  sampled: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    command, case, expected = CASES[name]
    work = tmp_path / "work"
    shutil.copytree(sampled, work)
    raw = _paths(copy.deepcopy(base_params), work)
    extra = case(raw, work)
    params = write_params(raw, work / "params.yaml")
    before = _files(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    args = [command, *(["ssgan"] if command == "train" else []), "--params", str(params)]
    args += extra if "--params" not in extra else []
    if "--params" in extra:
        args = [command, *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, repr(result.exception))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert _files(work) == before  # nothing written, nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name not in ("work", "mlflow.db",
                                                                "mlruns")]


def test_a_file_size_limit_is_one_line_and_keeps_the_previous_outputs(
        base_params: dict[str, Any], sampled: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk or a quota, as the process meets it (a file-size limit: root is bound by
    it too): `sample` stops with one line naming the file, and its five outputs are the
    previous run's, byte for byte (they are replaced together or not at all)."""
    import hashlib
    import resource

    work = tmp_path / "work"
    shutil.copytree(sampled, work)
    raw = _paths(copy.deepcopy(base_params), work)
    raw["seed"] = 7  # other windows: every output would change
    params = write_params(raw, work / "params.yaml")
    outputs = [Path(raw["paths"][k]) for k in ("samples", "norm", "split")] + [
        work / "reports" / "sample.json", work / "reports" / "sample_split.png"]
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in outputs}
    limit = max(p.stat().st_size for p in outputs) // 2
    monkeypatch.chdir(tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        result = runner.invoke(app, ["sample", "--params", str(params)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 2, (result.output, repr(result.exception))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "samples.csv: File too large" in lines[0], lines[0]
    assert "nothing was replaced" in lines[0]
    assert {p: hashlib.md5(p.read_bytes()).hexdigest() for p in outputs} == before
    assert not [p for p in work.rglob(".*") if p.is_file()]  # no staged or temporary file


@pytest.mark.parametrize(("code", "says"), [
    ("EROFS", "Read-only file system"), ("ENOSPC", "No space left on device"),
    ("EACCES", "Permission denied")])
def test_a_read_only_full_or_forbidden_folder_is_one_line_and_keeps_the_outputs(
        code: str, says: str, sampled: Path, base_params: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only folder, a full disk or a folder of another user does to the first
    file `sample` writes (the errors injected: CI runs as root, which ignores permissions,
    and cannot mount a small disk): one line naming the file, the previous outputs whole."""
    import builtins
    import errno
    import hashlib
    import os

    work = tmp_path / "work"
    shutil.copytree(sampled, work)
    raw = _paths(copy.deepcopy(base_params), work)
    raw["seed"] = 7  # other windows: every output would change
    params = write_params(raw, work / "params.yaml")
    outputs = sorted(p for p in (work / "samples").iterdir())
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in outputs}
    real_open = builtins.open

    def refusing_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(m in mode for m in "wax") and str(file).startswith(str(work / "samples")):
            number = getattr(errno, code)
            raise OSError(number, os.strerror(number), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sample", "--params", str(params)])
    monkeypatch.setattr(builtins, "open", real_open)
    assert result.exit_code == 2, (result.output, repr(result.exception))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].startswith(f"error: {work / 'samples' / 'samples.csv'}: {says}; "), lines[0]
    assert sorted(p for p in (work / "samples").iterdir()) == outputs  # nothing left staged
    assert {p: hashlib.md5(p.read_bytes()).hexdigest() for p in outputs} == before


def test_a_second_training_of_the_same_model_refuses_in_one_line(
        base_params: dict[str, Any], sampled: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While one `landslide fit forest` writes trained/joint/forest, another is one line
    naming the folder and the command, and leaves the folder to the first."""
    from landslide_ssgan.files import sole_writer

    work = tmp_path / "work"
    shutil.copytree(sampled, work)
    raw = _paths(copy.deepcopy(base_params), work)
    params = write_params(raw, work / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    out = work / "trained" / "joint" / "forest"
    with sole_writer(out, "landslide fit forest"):  # the first training, still running
        result = runner.invoke(app, ["fit", "forest", "--params", str(params)])
    assert result.exit_code == 2, (result.output, repr(result.exception))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "`landslide fit forest` is already writing it" in lines[0]
    assert not out.exists()
    assert runner.invoke(app, ["fit", "forest", "--params", str(params)]).exit_code == 0
    assert (out / "forest.joblib").is_file()
