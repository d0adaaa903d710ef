"""The landslide inventory as a label raster: 1 landslide, 0 known stable, 255 unknown.

The inventory may be polygons, points or a raster mask, in any CRS. Each landslide also gets
an id (polygon, point or connected patch of the mask) so that a spatial split can keep every
landslide whole on one side. Labels and ids are made one part of the grid at a time, so
memory holds a part whatever the area.
"""

from __future__ import annotations

import numpy as np
from rasterio.enums import Resampling
from scipy import ndimage

from landslide_ssgan.config import InventoryConfig
from landslide_ssgan.data.grid import Grid, Part
from landslide_ssgan.data.layers import (
    Burner,
    RasterOnGrid,
    is_vector,
    on_grid,
    read_vector,
    require_file,
)
from landslide_ssgan.data.seams import Pieces, SeamJoin
from landslide_ssgan.data.stack import PART
from landslide_ssgan.errors import InputError

LANDSLIDE, STABLE, UNKNOWN = 1, 0, 255
class InventoryOnGrid:
    """Labels (uint8) and landslide ids (int32, 0 = none) of the parts of the grid
    (`grid.parts(size)`)."""

    def __init__(self, cfg: InventoryConfig, grid: Grid, size: int) -> None:
        path = require_file(cfg.path)
        self.grid, self.size = grid, size
        self.source: _VectorInventory | _MaskInventory = (
            _VectorInventory(cfg, grid) if is_vector(path) else _MaskInventory(cfg, grid, size))

    def part(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        whole = (min(self.size, self.grid.height - part.row),
                 min(self.size, self.grid.width - part.col))
        if part.row % self.size or part.col % self.size or part.shape != whole:
            # a mask's ids are joined over exactly these parts
            raise ValueError(f"{part} is not one of the grid's parts of {self.size} pixels")
        return self.source.part(part)


def require_landslides(cfg: InventoryConfig, count: int) -> None:
    if count == 0:
        raise InputError(f"{cfg.path}: no landslide ({', '.join(cfg.landslide)}) "
                         "falls on the reference grid")


def rasterize_inventory(cfg: InventoryConfig, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(labels uint8, landslide ids int32 with 0 = none) of the whole grid (for small grids
    and tests; `landslide prepare` writes them part by part)."""
    inventory = InventoryOnGrid(cfg, grid, PART)
    labels = np.empty(grid.shape, dtype=np.uint8)
    ids = np.empty(grid.shape, dtype=np.int32)
    for part in grid.parts(PART):
        where = (slice(part.row, part.row + part.rows), slice(part.col, part.col + part.cols))
        labels[where], ids[where] = inventory.part(part)
    require_landslides(cfg, int((labels == LANDSLIDE).any()))
    return labels, ids


class _VectorInventory:
    def __init__(self, cfg: InventoryConfig, grid: Grid) -> None:
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
        geoms = on_grid(frame, grid, cfg.path).geometry.to_numpy()
        stable = np.isin(values, cfg.stable)
        self.grid = grid
        self.stable = Burner(geoms[stable], np.ones(int(stable.sum()), np.int32))
        # ids count the landslides in the file's order, 1 for the first
        self.slides = Burner(geoms[is_slide], np.arange(1, int(is_slide.sum()) + 1,
                                                        dtype=np.int32))

    def part(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        target = self.grid.part(part)
        labels = np.full(target.shape, UNKNOWN, dtype=np.uint8)
        labels[self.stable.burn(target, fill=0) > 0] = STABLE
        ids = self.slides.burn(target, fill=0)
        labels[ids > 0] = LANDSLIDE  # a landslide wins where the two overlap
        return labels, ids


class _MaskInventory:
    """A raster inventory: its connected patches of landslide pixels (8 neighbours) are the
    landslides, numbered in scan order of their first pixel. Patches that cross parts are
    joined across the seams in a first pass (`seams.SeamJoin`), so every part gives the ids
    that labelling the whole grid would."""

    def __init__(self, cfg: InventoryConfig, grid: Grid, size: int) -> None:
        try:
            self.slide_values = [float(v) for v in cfg.landslide]
            self.stable_values = [float(v) for v in cfg.stable]
        except ValueError as exc:
            raise InputError(f"{cfg.path}: a raster inventory needs numeric class values "
                             f"in prepare.inventory ({exc})") from exc
        self.grid, self.size = grid, size
        self.raster = RasterOnGrid(cfg.path, grid, Resampling.nearest, expected_bands=1)
        self.join = SeamJoin(-(-grid.height // size), -(-grid.width // size), connectivity=8)
        for part in grid.parts(size):
            self.join.add(self._position(part), self._pieces(part))
        self.final, _, _ = self.join.bodies(0.0, 1.0)

    def _position(self, part: Part) -> tuple[int, int]:
        return part.row // self.size, part.col // self.size

    def _patches(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        codes = self.raster.read(part)[0]
        labels = np.full(codes.shape, UNKNOWN, dtype=np.uint8)
        labels[np.isin(codes, self.stable_values)] = STABLE
        slides = np.isin(codes, self.slide_values)
        labels[slides] = LANDSLIDE
        patches, _ = ndimage.label(slides, structure=np.ones((3, 3), dtype=bool))
        return labels, patches.astype(np.int32)

    def _pieces(self, part: Part) -> Pieces:
        _, patches = self._patches(part)
        n = int(patches.max())
        ids = np.arange(1, n + 1)
        rows, cols = np.indices(patches.shape)
        scan = (rows + part.row) * self.grid.width + cols + part.col
        first = ndimage.minimum(scan, patches, ids) if n else np.zeros(0)
        return Pieces(patches, np.bincount(patches.ravel(), minlength=n + 1)[1:],
                      np.zeros(n), np.asarray(first, np.int64).reshape(-1))

    def part(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        labels, patches = self._patches(part)
        return labels, self.join.lookup(self._position(part), self.final, patches)
