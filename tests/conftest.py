"""Fixtures: small real crops of the Chattogram layers, written to tmp_path.

The crop is a 240 x 240 pixel piece of the Sentinel-2 scene (about 2.2 x 2.4 km) in the hills
where the inventory has many landslides and the DEM has data; the DEM and land cover are
cropped around it with a margin and the vector layers are copied whole (they are small).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from landslide_ssgan.config import Params, parse_params
from landslide_ssgan.data.inventory import rasterize_inventory
from landslide_ssgan.data.stack import Stack, build_stack

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw" / "chattogram"
OPTICAL_WINDOW = Window(col_off=576, row_off=1440, width=240, height=240)
MARGIN_M = 300.0


def _write_window(src: rasterio.DatasetReader, window: Window, path: Path) -> None:
    profile = src.profile | {"width": int(window.width), "height": int(window.height),
                             "transform": src.window_transform(window)}
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with rasterio.open(path, "w", **(profile | {"tiled": False})) as dst:
        dst.write(src.read(window=window))
        dst.descriptions = src.descriptions


@pytest.fixture(scope="session")
def crop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (RAW / "sentinel2_b4_b3_b2_b8.tif").is_file():
        pytest.fail(f"{RAW} is empty: run scripts/bootstrap.sh (it runs dvc pull) first")
    out = tmp_path_factory.mktemp("chattogram_crop")
    with rasterio.open(RAW / "sentinel2_b4_b3_b2_b8.tif") as src:
        _write_window(src, OPTICAL_WINDOW, out / "sentinel2.tif")
        bounds = rasterio.windows.bounds(OPTICAL_WINDOW, src.transform)
        optical_crs = src.crs
    for name in ("dem_30m.tif", "landcover_2024_30m.tif"):
        with rasterio.open(RAW / name) as src:
            left, bottom, right, top = transform_bounds(optical_crs, src.crs, *bounds)
            window = from_bounds(left - MARGIN_M, bottom - MARGIN_M, right + MARGIN_M,
                                 top + MARGIN_M, src.transform).round_offsets().round_lengths()
            _write_window(src, window, out / name)
    for name in ("inventory.gpkg", "geology.gpkg", "faults.gpkg", "rivers.gpkg"):
        shutil.copy(RAW / name, out / name)
    return out


@pytest.fixture(scope="session")
def base_params(crop_dir: Path) -> dict[str, Any]:
    """params.yaml as a dict, with the layers pointing at the crop."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    layers = raw["prepare"]["layers"]
    layers["sentinel2"]["path"] = str(crop_dir / "sentinel2.tif")
    layers["elevation"]["path"] = str(crop_dir / "dem_30m.tif")
    layers["landuse"]["path"] = str(crop_dir / "landcover_2024_30m.tif")
    for name, file in (("lithology", "geology"), ("dist_faults", "faults"),
                       ("dist_rivers", "rivers")):
        layers[name]["path"] = str(crop_dir / f"{file}.gpkg")
    raw["prepare"]["inventory"]["path"] = str(crop_dir / "inventory.gpkg")
    # the crop is small: smaller blocks and a larger validation share give every split
    # both classes
    raw["sample"]["split"].update({"block_size": 26, "train": 0.5, "val": 0.2, "test": 0.3})
    return raw


@pytest.fixture
def params_dict(base_params: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A fresh copy whose outputs go to this test's tmp_path."""
    raw = copy.deepcopy(base_params)
    raw["paths"] = {
        "stack": str(tmp_path / "prepared" / "stack.tif"),
        "labels": str(tmp_path / "prepared" / "labels.tif"),
        "inventory_ids": str(tmp_path / "prepared" / "ids.tif"),
        "samples": str(tmp_path / "samples" / "samples.csv"),
        "norm": str(tmp_path / "samples" / "norm.json"),
        "split": str(tmp_path / "samples" / "split.tif"),
        "trained": str(tmp_path / "trained"),
        "models": str(tmp_path / "models"),
        "maps": str(tmp_path / "maps"),
        "reports": str(tmp_path / "reports"),
    }
    return raw


def write_params(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def crop_params(base_params: dict[str, Any]) -> Params:
    return parse_params(base_params | {"paths": {k: f"unused/{k}" for k in (
        "stack", "labels", "inventory_ids", "samples", "norm", "split", "trained", "models", "maps",
        "reports")}})


@pytest.fixture(scope="session")
def crop_stack(crop_params: Params) -> Stack:
    return build_stack(crop_params.prepare)


@pytest.fixture(scope="session")
def crop_labels(crop_params: Params, crop_stack: Stack) -> tuple[np.ndarray, np.ndarray]:
    return rasterize_inventory(crop_params.prepare.inventory, crop_stack.grid)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the real Chattogram crop (they need `dvc pull`) and the end-to-end CLI tests
    are the `slow` tier; `pytest -m "not slow"` runs the rest, on data made in tmp_path."""
    for item in items:
        if "crop_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
