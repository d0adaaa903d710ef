"""Study areas of other shapes than Chattogram's, each built from Chattogram's own layers
recast, run end to end through the CLI: prepare -> sample -> train (two of the kinds, the
SSGAN for 2 epochs on the two smallest areas, the forest on every one: evaluate, register and
map take whichever kinds params name) -> segment (a tiny U-Net, 1 epoch) -> calibrate ->
evaluate -> register -> map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from scipy import ndimage
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.data.inventory import LANDSLIDE
from landslide_ssgan.data.stack import Stack
from landslide_ssgan.models import learners
from tests.conftest import write_params

runner = CliRunner()
WITH_SSGAN = ["ssgan", "forest"]  # a subset of the kinds: evaluate, register and map take any
FOREST = ["forest"]  # the SSGAN's tracing is most of an area's time: two areas train it
NETWORKS = learners.of_stage("train")


def _area(raw: dict[str, Any], kinds: list[str]) -> dict[str, Any]:
    """The crop's params (outputs in the test's folder, `params_dict`) with tiny networks."""
    raw["train"].update({"epochs": 2, "batch_size": 32, "latent_dim": 8, "d_widths": [4, 8],
                         "d_hidden": 8, "g_width": 8, "forest_trees": 10})
    raw["train"]["patch"].update({"size": 32, "stride": 16, "depth": 2, "width": 4,
                                  "epochs": 1, "batch_size": 8})
    raw["evaluate"].update({"feature_sets": [raw["features"]["set"]],
                            "networks": [k for k in kinds if k in NETWORKS],
                            "classifiers": [k for k in kinds if k not in NETWORKS],
                            "segmenters": ["unet"]})
    raw["registry"]["kinds"] = [*kinds, "unet"]
    raw["map"].update({"block_size": 100, "preview_size": 100, "compare_baseline": False})
    return raw


def _run_end_to_end(raw: dict[str, Any], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every stage through the CLI; the reports that say what each made of the area."""
    params = str(write_params(raw, tmp_path / "params.yaml"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    pipeline = [["prepare"], ["sample"], *(["train", k] for k in raw["evaluate"]["networks"]),
                *(["fit", k] for k in raw["evaluate"]["classifiers"]),
                *(["segment", k] for k in raw["evaluate"]["segmenters"]), ["calibrate"],
                ["evaluate"], ["register"], ["map"]]
    for command in pipeline:
        result = runner.invoke(app, [*command, "--params", params])
        assert result.exit_code == 0, (command, result.output, repr(result.exception))
    reports = Path(raw["paths"]["reports"])
    summary = json.loads((reports / "map_summary.json").read_text())
    assert "test" in summary["champion"]["areas"]
    assert (reports / "map_preview.png").stat().st_size > 1000
    assert json.loads((reports / "metrics.json").read_text()).keys() == {raw["features"]["set"]}
    return {"params": params, "sample": json.loads((reports / "sample.json").read_text()),
            "prepare": json.loads((reports / "prepare.json").read_text()), "map": summary}


def test_an_area_with_factors_only_runs_end_to_end(params_dict: dict[str, Any], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No optical image: terrain, geology, land use and distances only, features.rgb unset."""
    raw = params_dict
    for name in ("sentinel2", "ndvi"):
        del raw["prepare"]["layers"][name]
    raw["prepare"]["grid"]["extent_layer"] = "elevation"
    raw["features"] = {"set": "factors"}
    out = _run_end_to_end(_area(raw, WITH_SSGAN), tmp_path, monkeypatch)
    result = runner.invoke(app, ["train", "ssgan", "--feature-set", "optical", "--params",
                                 out["params"]])
    assert result.exit_code == 2 and "'optical' has no bands here" in result.stderr


def _terrain_factors(dem: str, path: Path) -> Path:
    """Elevation, local relief and roughness (3 x 3 range and standard deviation) of the
    Chattogram DEM in one GeoTIFF, each named in its band description."""
    with rasterio.open(dem) as src:
        elevation = src.read(1).astype("float64")
        profile = src.profile | {"count": 3, "dtype": "float32", "nodata": -9999.0}
        valid = elevation != src.nodata if src.nodata is not None else np.isfinite(elevation)
    relief = (ndimage.maximum_filter(elevation, 3) - ndimage.minimum_filter(elevation, 3))
    mean = ndimage.uniform_filter(elevation, 3)
    roughness = np.sqrt(np.maximum(ndimage.uniform_filter(elevation ** 2, 3) - mean ** 2, 0))
    inside = ndimage.binary_erosion(valid, np.ones((3, 3)))
    bands = [np.where(mask, band, -9999.0) for band, mask in
             ((elevation, valid), (relief, inside), (roughness, inside))]
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands).astype("float32"))
        dst.descriptions = ("elevation", "relief", "roughness")
    return path


def test_an_area_with_a_multi_band_factor_raster_runs_end_to_end(
        params_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = params_dict
    layers = raw["prepare"]["layers"]
    terrain = _terrain_factors(layers["elevation"]["path"], tmp_path / "terrain.tif")
    for name in ("elevation", "slope", "aspect"):
        del layers[name]
    layers["terrain"] = {"path": str(terrain), "kind": "continuous", "role": "factor",
                         "bands": ["elevation", "relief", "roughness"]}
    out = _run_end_to_end(_area(raw, FOREST), tmp_path, monkeypatch)
    bands = list(out["prepare"]["bands"])
    assert {"elevation", "relief", "roughness"} <= set(bands) and "slope" not in bands


def test_a_mask_inventory_without_unknown_pixels_runs_end_to_end(
        params_dict: dict[str, Any], crop_stack: Stack,
        crop_labels: tuple[np.ndarray, np.ndarray], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pixel labelled (1 landslide, 0 not): the SSGAN's pool is labels withheld."""
    grid = crop_stack.grid
    mask = (crop_labels[0] == LANDSLIDE).astype("uint8")
    with rasterio.open(tmp_path / "mask.tif", "w", driver="GTiff", width=grid.width,
                       height=grid.height, count=1, dtype="uint8", crs=grid.crs,
                       transform=grid.transform) as dst:
        dst.write(mask, 1)
    raw = params_dict
    raw["prepare"]["inventory"] = {"path": str(tmp_path / "mask.tif"), "landslide": ["1"],
                                   "stable": ["0"]}
    out = _run_end_to_end(_area(raw, FOREST), tmp_path, monkeypatch)
    with rasterio.open(raw["paths"]["labels"]) as src:
        assert set(np.unique(src.read(1))) == {0, 1}  # nothing unknown
    assert out["sample"]["counts"]["train"]["unlabelled"] > 0


def test_a_point_inventory_runs_end_to_end(params_dict: dict[str, Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One point inside each inventory polygon, landslides and stable ground alike."""
    raw = params_dict
    inventory = raw["prepare"]["inventory"]
    polygons = gpd.read_file(inventory["path"], layer=inventory["layer"])
    points = polygons.set_geometry(polygons.geometry.representative_point())
    points.to_file(tmp_path / "points.gpkg", layer="points")
    raw["prepare"]["inventory"] |= {"path": str(tmp_path / "points.gpkg"), "layer": "points"}
    out = _run_end_to_end(_area(raw, FOREST), tmp_path, monkeypatch)
    counts = out["sample"]["counts"]
    with rasterio.open(raw["paths"]["labels"]) as src:
        slide_pixels = int((src.read(1) == LANDSLIDE).sum())
    assert sum(counts[s]["landslide"] for s in counts) <= slide_pixels  # a window per point
    validation = out["sample"]["landslide_groups_per_split"]["val"]
    result = runner.invoke(app, ["calibrate", "forest", "--params", out["params"],
                                 "--min_val_landslides", str(validation + 100)])
    assert result.exit_code == 0, result.output
    assert ("map threshold 0.5 (0.5, the model's own: the validation area holds" in result.output
            and f"fewer than calibrate.min_val_landslides ({validation + 100})"
            in result.output)


def test_a_128_pixel_area_runs_end_to_end_with_every_split(
        params_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 128 x 128 pixel crop: validation and test each get a landslide group."""
    raw = params_dict
    optical = raw["prepare"]["layers"]["sentinel2"]
    with rasterio.open(optical["path"]) as src:
        window = Window(56, 56, 128, 128)
        profile = src.profile | {"width": 128, "height": 128,
                                 "transform": src.window_transform(window)}
        with rasterio.open(tmp_path / "small.tif", "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.descriptions = src.descriptions
    optical["path"] = str(tmp_path / "small.tif")
    out = _run_end_to_end(_area(raw, WITH_SSGAN), tmp_path, monkeypatch)
    grid = out["prepare"]["grid"]  # the crop on the metric reference grid: about 128 x 128
    assert 116 <= grid["width"] <= 132 and 116 <= grid["height"] <= 132, grid
    groups = out["sample"]["landslide_groups_per_split"]
    assert all(groups[split] >= 1 for split in ("train", "val", "test")), groups
    assert all(out["sample"]["counts"][split]["landslide"] >= 1 for split in ("val", "test"))
