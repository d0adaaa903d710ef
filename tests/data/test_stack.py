"""The aligned stack on real crops: grid, warping, classes, distances, valid mask, file."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from landslide_ssgan.config import Params
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.data.layers import distance_to_lines
from landslide_ssgan.data.stack import (
    RasterLayers,
    Stack,
    read_stack,
    values_at,
    write_single_band,
    write_single_band_parts,
    write_stack,
)
from landslide_ssgan.errors import InputError


def test_grid_is_metric_10m_over_the_optical_crop(crop_stack: Stack) -> None:
    grid = crop_stack.grid
    assert grid.crs.to_epsg() == 32646
    assert grid.resolution == 10.0
    assert 215 <= grid.width <= 235 and 235 <= grid.height <= 250  # 240 px of ~9.3 x 10 m
    assert grid.transform.c % 10 == 0 and grid.transform.f % 10 == 0


def test_band_names_and_roles(crop_stack: Stack) -> None:
    names = crop_stack.grid.band_names
    assert names[:4] == ("B4", "B3", "B2", "B8")
    assert {"elevation", "slope", "aspect", "ndvi", "dist_faults", "dist_rivers"} <= set(names)
    assert all(b.role == "optical" for b in crop_stack.bands[:4])
    assert crop_stack.indices("optical") == [0, 1, 2, 3]
    assert crop_stack.indices("factors") == list(range(4, len(names)))
    assert crop_stack.indices("joint") == list(range(len(names)))


def test_categorical_layers_only_hold_classes(crop_stack: Stack) -> None:
    for layer in ("lithology", "landuse"):
        idx = [i for i, b in enumerate(crop_stack.bands) if b.layer == layer]
        assert len(idx) >= 2, layer
        onehot = crop_stack.data[idx]
        known = np.isfinite(onehot).all(axis=0)
        assert set(np.unique(onehot[:, known])) <= {0.0, 1.0}
        # exactly one class per pixel: never a blend from averaging
        np.testing.assert_array_equal(onehot[:, known].sum(axis=0), 1.0)
        # nodata is nodata in every band of the layer
        assert np.isnan(onehot[:, ~known]).all()


def test_landuse_codes_match_nearest_neighbour_of_the_source(crop_stack: Stack,
                                                             crop_dir: Path) -> None:
    import rasterio
    idx = [i for i, b in enumerate(crop_stack.bands) if b.layer == "landuse"]
    names = [crop_stack.bands[i].name.split("_")[1] for i in idx]
    onehot = crop_stack.data[idx]
    rows, cols = np.mgrid[5:190:17, 5:180:17]
    xs, ys = rasterio.transform.xy(crop_stack.grid.transform, rows.ravel(), cols.ravel())
    with rasterio.open(crop_dir / "landcover_2024_30m.tif") as src:
        sampled = np.array([v[0] for v in src.sample(zip(xs, ys, strict=True))])
    for r, c, value in zip(rows.ravel(), cols.ravel(), sampled, strict=True):
        if value == -128:
            assert np.isnan(onehot[:, r, c]).all()
        else:
            assert names[int(np.argmax(onehot[:, r, c]))] == str(value)


def test_distance_raster_matches_shapely(crop_stack: Stack, crop_params: Params) -> None:
    layer = next(x for x in crop_params.prepare.layers if x.name == "dist_rivers")
    lines = gpd.read_file(layer.path).to_crs(crop_stack.grid.crs)
    grid = crop_stack.grid
    distance = distance_to_lines(lines, grid, layer.path or "")
    rng = np.random.default_rng(0)
    rows = rng.integers(0, grid.height, 200)
    cols = rng.integers(0, grid.width, 200)
    xs = grid.transform.c + (cols + 0.5) * grid.resolution
    ys = grid.transform.f - (rows + 0.5) * grid.resolution
    exact = shapely.distance(shapely.points(xs, ys), shapely.union_all(lines.geometry))
    # lines are burnt into pixels: exact to within half a pixel diagonal
    np.testing.assert_allclose(distance[rows, cols], exact, atol=grid.resolution * 0.75)
    assert exact.min() > 100  # the crop lies away from the river: a real far-field check


def test_distance_is_exact_where_the_nearest_line_lies_outside_the_grid(crop_stack: Stack) -> None:
    grid = crop_stack.grid
    left, bottom, right, top = grid.bounds
    far_line = shapely.LineString([(right + 5000, bottom - 5000), (right + 5000, top + 5000)])
    frame = gpd.GeoDataFrame(geometry=[far_line], crs=grid.crs)
    distance = distance_to_lines(frame, grid, "synthetic")
    expected_west = right + 5000 - (left + 0.5 * grid.resolution)
    assert abs(distance[0, 0] - expected_west) <= grid.resolution


def test_valid_mask_is_where_every_layer_has_data(crop_stack: Stack) -> None:
    valid = crop_stack.valid
    assert 0 < valid.mean() <= 1
    assert np.isfinite(crop_stack.data[:, valid]).all()
    assert (~np.isfinite(crop_stack.data[:, ~valid])).any(axis=0).all()


def test_stack_file_round_trip(crop_stack: Stack, tmp_path: Path) -> None:
    import rasterio
    path = tmp_path / "stack.tif"
    write_stack(crop_stack, path)
    back = read_stack(path)
    assert back.bands == crop_stack.bands
    np.testing.assert_array_equal(back.data, crop_stack.data)
    with rasterio.open(path) as src:
        assert src.profile["tiled"] and src.compression.value == "DEFLATE"
        assert src.descriptions == crop_stack.grid.band_names
    assert not list(tmp_path.glob(".*tmp*"))


def test_the_stack_file_does_not_depend_on_how_the_cpu_signs_nan(crop_stack: Stack,
                                                                   tmp_path: Path) -> None:
    """numpy's AVX-512 paths make -NaN where AVX2 makes +NaN (aspect's nodata did): the same
    map, other bytes, another MD5 in dvc.lock on every other machine. Both write one file."""
    import dataclasses

    data = crop_stack.data.copy()
    data[:, :3, :3] = np.nan
    negative = data.copy()
    negative[:, :3, :3] = -np.float32(np.nan)
    assert np.signbit(negative[:, :3, :3]).all() and not np.signbit(data[:, :3, :3]).any()
    write_stack(dataclasses.replace(crop_stack, data=data), tmp_path / "plus.tif")
    write_stack(dataclasses.replace(crop_stack, data=negative), tmp_path / "minus.tif")
    assert (tmp_path / "plus.tif").read_bytes() == (tmp_path / "minus.tif").read_bytes()


def _three_factor_raster(dem: str, path: Path) -> Path:
    """Three terrain factors in one GeoTIFF, each named in its band description."""
    import rasterio

    with rasterio.open(dem) as src:
        data = src.read(1).astype("float32")
        profile = src.profile | {"count": 3, "dtype": "float32", "nodata": -9999.0}
        nodata = src.nodata
    valid = data != nodata if nodata is not None else np.isfinite(data)
    bands = np.stack([np.where(valid, data, -9999.0), np.where(valid, data + 1.0, -9999.0),
                      np.where(valid, data * 0.5, -9999.0)]).astype("float32")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        dst.descriptions = ("elev_copy", "elev_plus_one", "elev_half")
    return path


def test_a_multi_band_factor_raster_gives_named_factor_bands(base_params: dict,
                                                             tmp_path: Path) -> None:
    import copy

    import pytest

    from landslide_ssgan.config import parse_params
    from landslide_ssgan.data.stack import build_stack
    from landslide_ssgan.errors import InputError

    raw = copy.deepcopy(base_params)
    raw["paths"] = {k: str(tmp_path / k) for k in (
        "stack", "labels", "inventory_ids", "samples", "norm", "split", "trained", "models", "maps",
        "reports")}
    dem = raw["prepare"]["layers"]["elevation"]["path"]
    raster = _three_factor_raster(dem, tmp_path / "terrain.tif")
    raw["prepare"]["layers"]["terrain"] = {
        "kind": "continuous", "role": "factor", "path": str(raster),
        "bands": ["elev_copy", "elev_plus_one", "elev_half"]}
    stack = build_stack(parse_params(raw).prepare)
    names = stack.grid.band_names
    first = names.index("elev_copy")
    assert names[first:first + 3] == ("elev_copy", "elev_plus_one", "elev_half")
    assert all(stack.bands[first + i].role == "factor" for i in range(3))
    assert first + 1 in stack.indices("factors")
    elevation = stack.data[names.index("elevation")]
    np.testing.assert_allclose(stack.data[first], elevation, equal_nan=True)
    np.testing.assert_allclose(stack.data[first + 1], elevation + 1.0, rtol=1e-6,
                               equal_nan=True)

    raw["prepare"]["layers"]["terrain"]["bands"] = ["elev_copy", "elev_plus_one"]
    with pytest.raises(InputError, match=r"terrain.tif: has 3 bands \(elev_copy, "
                                         r"elev_plus_one, elev_half\), params name 2"):
        build_stack(parse_params(raw).prepare)


def test_an_area_without_optical_bands(base_params: dict, tmp_path: Path) -> None:
    """Factors only: the optical feature set is refused in one line, previews fall back to
    the first band in grey."""
    import copy

    import pytest

    from landslide_ssgan.config import parse_params
    from landslide_ssgan.data.blocks import preview_image
    from landslide_ssgan.data.stack import build_stack
    from landslide_ssgan.errors import ConfigError
    from landslide_ssgan.reporting.plots import _stretched_rgb

    raw = copy.deepcopy(base_params)
    raw["paths"] = {k: str(tmp_path / k) for k in (
        "stack", "labels", "inventory_ids", "samples", "norm", "split", "trained", "models", "maps",
        "reports")}
    layers = raw["prepare"]["layers"]
    for name in ("sentinel2", "ndvi"):
        del layers[name]
    raw["prepare"]["grid"]["extent_layer"] = "elevation"
    raw["features"]["set"] = "factors"
    raw["evaluate"]["feature_sets"] = ["factors"]
    stack = build_stack(parse_params(raw).prepare)
    assert stack.indices("factors") == list(range(len(stack.bands)))
    with pytest.raises(ConfigError, match="'optical' has no bands here"):
        stack.indices("optical")
    write_stack(stack, tmp_path / "stack.tif")
    image = preview_image(tmp_path / "stack.tif", 64, ("B4", "B3", "B2"))
    assert image.shape[0] == 1
    grey = _stretched_rgb(image)
    assert grey.shape[-1] == 3 and np.array_equal(grey[..., 0], grey[..., 2])


def test_a_stack_made_by_parts_of_any_size_is_the_whole_grids(crop_params: Params) -> None:
    """`landslide prepare` makes the stack one part of the grid at a time. Every band (the
    optical scene warped from geographic coordinates with a kernel that GDAL would otherwise
    scale per part, slope and aspect across the seams, distances to lines beyond the part,
    classes first seen in a later part) must not depend on the parts' size."""
    from landslide_ssgan.data.stack import build_stack

    cfg = crop_params.prepare
    whole = build_stack(cfg, size=10_000)
    for size in (23, 100):  # odd small parts: many seams; larger: a part's edge mid-grid
        parts = build_stack(cfg, size=size)
        assert parts.bands == whole.bands
        np.testing.assert_array_equal(parts.data, whole.data, err_msg=f"parts of {size} px")


def test_the_warp_kernel_is_scaled_by_the_whole_grid(crop_params: Params) -> None:
    """The optical crop is 240 x 240 geographic pixels of about 9.3 x 10 m on 10 m pixels: a
    downsampling across (GDAL's kernel widens, not rounded to 1 as it is within 5 %) and none
    down the grid, as GDAL decides for the whole grid at once."""
    from rasterio.enums import Resampling

    from landslide_ssgan.data.layers import RasterOnGrid
    from landslide_ssgan.data.stack import reference_grid

    cfg = crop_params.prepare
    grid = reference_grid(cfg)
    optical = next(layer for layer in cfg.layers if layer.name == "sentinel2")
    across, down = RasterOnGrid(optical.path or "", grid, Resampling.bilinear).scale
    assert 0.9 < across < 0.95 and down >= 1.0


def test_values_at_pixels_gathered_by_parts_are_the_whole_stacks(crop_stack: Stack) -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, crop_stack.grid.height, 300)
    cols = rng.integers(0, crop_stack.grid.width, 300)
    expected = crop_stack.data[:, rows, cols].T
    for size in (7, 64, 4096):
        np.testing.assert_array_equal(values_at(crop_stack.parts(size), rows, cols), expected)


def test_a_band_written_by_strips_is_the_file_of_the_whole_array(
        crop_stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landslide_ssgan.data import stack as stack_module

    grid = Grid(crop_stack.grid.crs, crop_stack.grid.transform, 300, 600)  # 3 rows of tiles
    codes = np.random.default_rng(0).integers(0, 4, grid.shape).astype(np.uint8)
    write_single_band(codes, grid, tmp_path / "whole.tif", 255, "split")
    monkeypatch.setattr(stack_module, "STRIP_PIXELS", 1)  # one row of tiles at a time
    write_single_band_parts(lambda part: codes[part.row:part.row + part.rows],
                            "uint8", grid, tmp_path / "strips.tif", 255, "split")
    assert (tmp_path / "strips.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()


def test_the_sample_stages_layers_are_read_by_rows(crop_stack: Stack, crop_labels: tuple,
                                                   tmp_path: Path) -> None:
    labels, ids = crop_labels
    write_stack(crop_stack, tmp_path / "stack.tif")
    write_single_band(labels, crop_stack.grid, tmp_path / "labels.tif", 255, "labels")
    write_single_band(ids, crop_stack.grid, tmp_path / "ids.tif", 0, "ids")
    layers = RasterLayers(tmp_path / "stack.tif", tmp_path / "labels.tif", tmp_path / "ids.tif")
    assert layers.shape == crop_stack.grid.shape
    np.testing.assert_array_equal(layers.valid(0, layers.shape[0]), crop_stack.valid)
    np.testing.assert_array_equal(layers.labels(17, 90), labels[17:90])
    np.testing.assert_array_equal(layers.ids(100, 101), ids[100:101])
    small = Grid(crop_stack.grid.crs, crop_stack.grid.transform, 20, 20)
    write_single_band(labels[:20, :20], small, tmp_path / "small.tif", 255, "labels")
    with pytest.raises(InputError, match=r"small\.tif: 20 x 20 pixels, the stack"):
        RasterLayers(tmp_path / "stack.tif", tmp_path / "small.tif", tmp_path / "ids.tif")
