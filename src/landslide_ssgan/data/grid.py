"""The reference grid every layer is resampled onto."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from affine import Affine
from rasterio.crs import CRS


@dataclass(frozen=True)
class Part:
    """Rows [row, row + rows) x columns [col, col + cols) of a grid."""

    row: int
    col: int
    rows: int
    cols: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    def grown(self, by: int, shape: tuple[int, int]) -> tuple[Part, tuple[slice, slice]]:
        """The part with up to `by` pixels more on each side (fewer where the grid of `shape`
        ends), and the slices that cut the part back out of it."""
        top, left = min(by, self.row), min(by, self.col)
        bottom = min(by, shape[0] - self.row - self.rows)
        right = min(by, shape[1] - self.col - self.cols)
        grown = Part(self.row - top, self.col - left, self.rows + top + bottom,
                     self.cols + left + right)
        return grown, (slice(top, top + self.rows), slice(left, left + self.cols))


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid plus the names of the bands that live on it."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    band_names: tuple[str, ...] = field(default=())

    @property
    def resolution(self) -> float:
        return float(self.transform.a)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return left, top - self.height * self.resolution, left + self.width * self.resolution, top

    def with_bands(self, names: tuple[str, ...]) -> Grid:
        return Grid(self.crs, self.transform, self.width, self.height, names)

    def part(self, part: Part) -> Grid:
        """A part of the grid as a grid of its own; the origin moves by whole pixels, so every
        pixel keeps its coordinates."""
        shift = Affine.translation(part.col * self.resolution, -part.row * self.resolution)
        return Grid(self.crs, shift @ self.transform, part.cols, part.rows, self.band_names)

    def parts(self, size: int) -> list[Part]:
        """The grid cut into size x size parts in row-major order (smaller at the last row
        and column): the pieces `landslide prepare` makes and writes one at a time."""
        return [Part(row, col, min(size, self.height - row), min(size, self.width - col))
                for row in range(0, self.height, size) for col in range(0, self.width, size)]

    def padded(self, pixels: int) -> Grid:
        """The same grid grown by `pixels` on every side (for work that must see past the edge)."""
        shift = Affine.translation(-pixels * self.resolution, pixels * self.resolution)
        return Grid(self.crs, shift @ self.transform, self.width + 2 * pixels,
                    self.height + 2 * pixels, self.band_names)


def grid_over(bounds: tuple[float, float, float, float], crs: CRS, resolution: float) -> Grid:
    """A grid of square `resolution` pixels that covers `bounds` (in `crs`), snapped to whole
    multiples of the resolution so that grids of neighbouring areas line up."""
    left, bottom, right, top = bounds
    left = math.floor(left / resolution) * resolution
    top = math.ceil(top / resolution) * resolution
    width = math.ceil((right - left) / resolution)
    height = math.ceil((top - bottom) / resolution)
    return Grid(crs, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)
