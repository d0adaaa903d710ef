"""The inventory as labels: polygons, points and raster masks, in any CRS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely

from landslide_ssgan.config import InventoryConfig, Params
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN, rasterize_inventory
from landslide_ssgan.data.stack import Stack


def _centres(grid: Grid) -> np.ndarray:
    rows, cols = np.indices(grid.shape)
    xs = grid.transform.c + (cols + 0.5) * grid.resolution
    ys = grid.transform.f - (rows + 0.5) * grid.resolution
    return shapely.points(xs, ys)


def test_polygon_counts_match_pixel_centres_inside(crop_labels: tuple, crop_stack: Stack,
                                                   crop_params: Params) -> None:
    labels, ids = crop_labels
    inventory = gpd.read_file(crop_params.prepare.inventory.path).to_crs(crop_stack.grid.crs)
    centres = _centres(crop_stack.grid)
    for cls, code in (("landslide", LANDSLIDE), ("stable", STABLE)):
        union = shapely.union_all(inventory[inventory["class"] == cls].geometry)
        inside = shapely.contains_xy(union, shapely.get_x(centres), shapely.get_y(centres))
        if cls == "stable":
            inside &= labels != LANDSLIDE
        assert inside.sum() > 10, cls
        # rasterio burns pixels whose centre is inside: equal up to centres on an edge
        assert abs(int((labels == code).sum()) - int(inside.sum())) <= 2, cls
    assert set(np.unique(labels)) <= {LANDSLIDE, STABLE, UNKNOWN}
    assert ((ids > 0) == (labels == LANDSLIDE)).all()
    assert len(np.unique(ids[ids > 0])) >= 3


def test_points_in_another_crs(crop_stack: Stack, crop_params: Params, tmp_path: Path) -> None:
    grid = crop_stack.grid
    rows, cols = np.array([10, 50, 120]), np.array([20, 60, 150])
    xs = grid.transform.c + (cols + 0.5) * grid.resolution
    ys = grid.transform.f - (rows + 0.5) * grid.resolution
    frame = gpd.GeoDataFrame({"kind": ["slide", "slide", "ok"]},
                             geometry=shapely.points(xs, ys), crs=grid.crs).to_crs(3857)
    path = tmp_path / "points.gpkg"
    frame.to_file(path)
    cfg = replace(crop_params.prepare.inventory, path=str(path), layer=None,
                  field="kind", landslide=("slide",), stable=("ok",))
    labels, ids = rasterize_inventory(cfg, grid)
    assert (labels == LANDSLIDE).sum() == 2 and (labels == STABLE).sum() == 1
    assert labels[10, 20] == LANDSLIDE and labels[120, 150] == STABLE
    assert sorted(np.unique(ids[ids > 0])) == [1, 2]


def _mask_inventory(mask: np.ndarray, grid: Grid, params: Params, path: Path
                    ) -> InventoryConfig:
    """`mask` (2 landslide, 1 stable, 0 unknown) as a GeoTIFF inventory on `grid`."""
    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
                       dtype="uint8", crs=grid.crs, transform=grid.transform) as dst:
        dst.write(mask, 1)
    return replace(params.prepare.inventory, path=str(path), layer=None, field=None,
                   landslide=("2",), stable=("1",))


def test_raster_mask_inventory(crop_stack: Stack, crop_labels: tuple, crop_params: Params,
                               tmp_path: Path) -> None:
    grid = crop_stack.grid
    labels, _ = crop_labels
    mask = np.where(labels == LANDSLIDE, 2, np.where(labels == STABLE, 1, 0)).astype(np.uint8)
    cfg = _mask_inventory(mask, grid, crop_params, tmp_path / "mask.tif")
    from_mask, ids = rasterize_inventory(cfg, grid)
    np.testing.assert_array_equal(from_mask, labels)
    assert ids.max() >= 1


def test_mask_patches_crossing_parts_keep_the_whole_grids_ids(crop_stack: Stack,
                                                              crop_params: Params,
                                                              tmp_path: Path) -> None:
    """A raster inventory is labelled a part of the grid at a time; its patches (8
    neighbours, some touching a seam only at a corner) get the ids that labelling the whole
    grid gives."""
    from scipy import ndimage

    from landslide_ssgan.data.inventory import InventoryOnGrid

    grid = crop_stack.grid
    rng = np.random.default_rng(3)
    slides = ndimage.binary_opening(rng.random(grid.shape) < 0.35)
    slides[9:11, 9:11] = [[True, False], [False, True]]  # a diagonal step across a corner
    mask = np.where(slides, 2, 1).astype(np.uint8)
    cfg = _mask_inventory(mask, grid, crop_params, tmp_path / "patches.tif")
    expected, count = ndimage.label(slides, structure=np.ones((3, 3), dtype=bool))
    assert count > 20
    for size in (5, 10, 64):
        inventory = InventoryOnGrid(cfg, grid, size)
        ids = np.zeros(grid.shape, np.int32)
        for part in grid.parts(size):
            ids[part.row:part.row + part.rows, part.col:part.col + part.cols] = \
                inventory.part(part)[1]
        np.testing.assert_array_equal(ids, expected, err_msg=f"parts of {size} px")
