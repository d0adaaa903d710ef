"""The landslide inventory as a label raster: 1 landslide, 0 known stable, 255 unknown.

The inventory may be polygons, points or a raster mask, in any CRS. Each landslide also gets
an id (polygon, point or connected patch of the mask) so that a spatial split can keep every
landslide whole on one side.
"""

from __future__ import annotations

import numpy as np
from rasterio.features import rasterize
from scipy import ndimage

from landslide_ssgan.config import InventoryConfig
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.data.layers import (
    is_vector,
    on_grid,
    read_class_raster_on_grid,
    read_vector,
    require_file,
)
from landslide_ssgan.errors import InputError

LANDSLIDE, STABLE, UNKNOWN = 1, 0, 255


def rasterize_inventory(cfg: InventoryConfig, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint8, landslide ids int32 with 0 = none) on `grid`."""
    path = require_file(cfg.path)
    if is_vector(path):
        labels, ids = _from_vector(cfg, grid)
    else:
        labels, ids = _from_raster(cfg, grid)
    if not (labels == LANDSLIDE).any():
        raise InputError(f"{cfg.path}: no landslide ({', '.join(cfg.landslide)}) "
                         "falls on the reference grid")
    return labels, ids


def _from_vector(cfg: InventoryConfig, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    frame = read_vector(cfg.path, cfg.layer)
    if cfg.field is None:
        values = np.array([cfg.landslide[0]] * len(frame), dtype=object)
    elif cfg.field not in frame.columns:
        raise InputError(f"{cfg.path}: has no attribute '{cfg.field}' "
                         f"(has {', '.join(map(str, frame.columns))})")
    else:
        values = frame[cfg.field].astype(str).to_numpy()
    is_slide = np.isin(values, cfg.landslide)
    if not is_slide.any():
        raise InputError(f"{cfg.path}: no feature has {cfg.field} in {list(cfg.landslide)}")
    frame = on_grid(frame, grid, cfg.path)
    geoms = frame.geometry.to_numpy()
    stable = [g for g, v in zip(geoms, values, strict=True) if v in cfg.stable]
    slides = geoms[is_slide]
    labels = np.full(grid.shape, UNKNOWN, dtype=np.uint8)
    if stable:
        labels[_burn(stable, grid) > 0] = STABLE
    ids = _burn(slides, grid, ids=True)
    labels[ids > 0] = LANDSLIDE  # a landslide wins where the two overlap
    return labels, ids


def _burn(geoms: list | np.ndarray, grid: Grid, ids: bool = False) -> np.ndarray:
    shapes = ((g, i + 1 if ids else 1) for i, g in enumerate(geoms))
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0,
                     dtype="int32")


def _from_raster(cfg: InventoryConfig, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    codes = read_class_raster_on_grid(cfg.path, grid)
    try:
        slide_values = [float(v) for v in cfg.landslide]
        stable_values = [float(v) for v in cfg.stable]
    except ValueError as exc:
        raise InputError(f"{cfg.path}: a raster inventory needs numeric class values "
                         f"in prepare.inventory ({exc})") from exc
    labels = np.full(grid.shape, UNKNOWN, dtype=np.uint8)
    labels[np.isin(codes, stable_values)] = STABLE
    slides = np.isin(codes, slide_values)
    labels[slides] = LANDSLIDE
    ids, _ = ndimage.label(slides, structure=np.ones((3, 3), dtype=bool))
    return labels, ids.astype(np.int32)
