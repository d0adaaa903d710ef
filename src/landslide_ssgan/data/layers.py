"""Reading one layer (raster or vector, any CRS) onto the reference grid.

Rasters are warped with GDAL (bilinear for continuous values, nearest for classes, so a class
is never averaged into a value that is no class); vectors are rasterised. Nodata of any
convention (0, -9999, -128, NaN) comes out as NaN, or -1 for class codes.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import rasterio.errors
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from landslide_ssgan.data.grid import Grid, Part
from landslide_ssgan.errors import InputError, first_line

# GDAL's block cache defaults to 5 % of the machine's memory and grows with what a process
# reads: `landslide map` of 30 M pixels peaked 760 MiB above 7.5 M pixels, 70 MiB with this
# cap (benchmarks/tile_scale.py). Reads and writes here are block-sized; a fixed cap (MiB)
# keeps memory flat, for the commands and for any other caller of the data layer (a
# benchmark's map process grew 20 MiB a block without it). Set before GDAL reads anything;
# a GDAL_CACHEMAX of the user's own is kept.
os.environ.setdefault("GDAL_CACHEMAX", "256")

VECTOR_SUFFIXES = frozenset({".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml"})
MAX_DISTANCE_GRID_PIXELS = 400_000_000
# GDAL's error threshold (pixels) for interpolating the coordinate transformation: this small
# makes every point exact (0 itself is refused by rasterio's WarpedVRT)
EXACT = 1e-9


def is_vector(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return path


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- rasters ----------------------------------------------------------------------------


def raster_band_names(path: str | Path) -> tuple[str | None, ...]:
    with open_raster(path) as src:
        return tuple(src.descriptions)


def check_rgb(rgb: tuple[str, ...], stack: str | Path) -> None:
    """features.rgb, where set, names bands of the stack (a feature set without them draws
    its previews in grey; a misspelt name would do so silently)."""
    if not rgb:
        return
    names = raster_band_names(stack)
    missing = [band for band in rgb if band not in names]
    if missing:
        raise InputError(f"features.rgb: {missing} are not bands of {stack} "
                         f"({', '.join(str(n) for n in names)}); name three of its bands or "
                         "leave features.rgb empty")


def layer_bounds(path: str | Path, crs: CRS, vector_layer: str | None = None) -> tuple[float, ...]:
    """The layer's extent in `crs` (used to lay the reference grid over the optical scene)."""
    path = require_file(path)
    if is_vector(path):
        frame = read_vector(path, vector_layer).to_crs(crs)
        return tuple(float(v) for v in frame.total_bounds)
    with open_raster(path) as src:
        if src.crs is None:
            raise InputError(f"{path}: raster has no CRS")
        return tuple(transform_bounds(src.crs, crs, *src.bounds, densify_pts=21))


class RasterOnGrid:
    """A raster warped onto the grid one part at a time: memory holds a part, never the
    raster or the grid, and a part's pixels are the same whatever the part's size.

    Two things GDAL decides per chunk it warps are fixed for the whole grid instead: the
    coordinate transformation is exact (GDAL's default interpolates it along each chunk's rows
    to within 1/8 pixel, which made each pixel depend on the chunk's width), and the resampling
    kernel's scale (destination pixels per source pixel) is the whole grid's
    (tests/data/test_stack.py)."""

    def __init__(self, path: str | Path, grid: Grid, resampling: Resampling,
                 expected_bands: int | None = None) -> None:
        self.path, self.grid, self.resampling = require_file(path), grid, resampling
        with open_raster(self.path) as src:
            if src.crs is None:
                raise InputError(f"{self.path}: raster has no CRS")
            if expected_bands is not None and src.count != expected_bands:
                found = ", ".join(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
                raise InputError(f"{self.path}: has {src.count} bands ({found}), params name "
                                 f"{expected_bands}; list the bands' names under `bands:`")
            if not _overlaps(transform_bounds(src.crs, grid.crs, *src.bounds), grid.bounds):
                raise InputError(f"{self.path}: does not overlap the reference grid")
            _reject_bad_values(self.path, src)
            self.count = src.count
            self.nodata = _source_nodata(src)
            self.scale = _whole_grid_scale(src, grid)

    def read(self, part: Part) -> np.ndarray:
        """Every band over `part` as float32 (bands, rows, cols), NaN = nodata."""
        with open_raster(self.path) as src, WarpedVRT(
                src, crs=self.grid.crs, transform=self.grid.transform, width=self.grid.width,
                height=self.grid.height, resampling=self.resampling, src_nodata=self.nodata,
                nodata=float("nan"), dtype="float32", tolerance=EXACT,
                XSCALE=self.scale[0], YSCALE=self.scale[1]) as vrt:
            return vrt.read(window=Window(part.col, part.row,  # type: ignore[call-arg]
                                          part.cols, part.rows))


def _source_nodata(src: rasterio.DatasetReader) -> float | None:
    """The source's nodata; NaN for a float raster that declares none (NaN is no value)."""
    if src.nodata is not None:
        return float(src.nodata)
    return float("nan") if np.dtype(src.dtypes[0]).kind == "f" else None


def _whole_grid_scale(src: rasterio.DatasetReader, grid: Grid) -> tuple[float, float]:
    """Destination pixels per source pixel over the whole grid, as GDAL computes it when it
    warps the grid in one chunk: the grid's size over the size of the source window it
    covers, rounded as GDAL rounds it."""
    left, bottom, right, top = transform_bounds(grid.crs, src.crs, *grid.bounds,
                                                densify_pts=21)
    window = src.window(left, bottom, right, top)
    col0, row0 = max(0, math.floor(window.col_off)), max(0, math.floor(window.row_off))
    col1 = min(src.width, math.ceil(window.col_off + window.width))
    row1 = min(src.height, math.ceil(window.row_off + window.height))
    return (_snapped(grid.width / max(1, col1 - col0)),
            _snapped(grid.height / max(1, row1 - row0)))


def _snapped(scale: float) -> float:
    """GDAL's own rounding of a chunk's downsampling scale to the nearest whole reciprocal
    (1/1, 1/2, ...) when within 0.05 of it; an XSCALE given to the warper skips it."""
    if scale >= 1.0:
        return scale
    whole = int(1.0 / scale + 0.5)
    return 1.0 / whole if abs(1.0 / scale - whole) < 0.05 else scale


def _reject_bad_values(path: Path, src: rasterio.DatasetReader) -> None:
    """Infinite values, or NaN in a raster whose nodata is a number, are errors in the
    input; checked block by block over the whole file."""
    if np.dtype(src.dtypes[0]).kind != "f":
        return
    nan_is_data = src.nodata is not None and not math.isnan(src.nodata)
    for _, window in src.block_windows(1):
        data = src.read(window=window)
        if np.isinf(data).any():
            raise InputError(f"{path}: contains infinite values")
        if nan_is_data and np.isnan(data).any():
            raise InputError(f"{path}: contains NaN values but its nodata value is "
                             f"{src.nodata}")


def read_raster_on_grid(path: str | Path, grid: Grid, resampling: Resampling,
                        expected_bands: int | None = None) -> np.ndarray:
    """All bands of a raster warped onto the whole of `grid` (for small grids and tests)."""
    return RasterOnGrid(path, grid, resampling, expected_bands).read(Part(0, 0, *grid.shape))


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    """rasterio.open for reading: a corrupt, truncated or unsupported file, found on opening or
    while reading inside the block, is one line that names it, not GDAL's traceback. A
    GeoTIFF's compressed tiles are decoded on every core (GDAL's NUM_THREADS open option:
    the same pixels, read twice as fast on 2 cores: a map's blocks and previews)."""
    path = require_file(path)
    threads = {"num_threads": "all_cpus"} if path.suffix.lower() in (".tif", ".tiff") else {}
    try:
        with rasterio.open(path, **threads) as src:
            yield src
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"{path}: cannot be read as a raster "
                         f"({gdal_reason(exc, path)})") from None


def gdal_reason(exc: Exception, path: str | Path) -> str:
    """GDAL's message, first line only and without the path the caller names anyway."""
    text = first_line(exc).replace(f"'{path}'", "").replace(str(path), "").strip(" :.,")
    return text[:160]


# --- vectors ----------------------------------------------------------------------------


def read_vector(path: str | Path, vector_layer: str | None = None) -> gpd.GeoDataFrame:
    path = require_file(path)
    try:
        frame = gpd.read_file(path, layer=vector_layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, RuntimeError) as exc:
        raise InputError(f"{path}: cannot be read as a vector layer "
                         f"({gdal_reason(exc, path)})") from None
    if frame.crs is None:
        raise InputError(f"{path}: vector layer has no CRS")
    frame = frame[~frame.geometry.is_empty & frame.geometry.notna()]
    return frame


def on_grid(frame: gpd.GeoDataFrame, grid: Grid, path: str | Path) -> gpd.GeoDataFrame:
    """The features in the grid's CRS; an error if none of them touches the grid."""
    frame = frame.to_crs(grid.crs)
    if len(frame) == 0 or not _overlaps(tuple(frame.total_bounds), grid.bounds):
        raise InputError(f"{path}: does not overlap the reference grid")
    return frame


class ClassPolygons:
    """Polygons with a class attribute burnt as codes 0..k-1 (int32, -1 = no polygon) one part
    of the grid at a time; `names` are the sorted class names the codes index. A part burns
    only the polygons that reach it, in the file's order (a later polygon wins where two
    overlap, as when the whole grid is burnt at once)."""

    def __init__(self, frame: gpd.GeoDataFrame, field: str, grid: Grid,
                 path: str | Path) -> None:
        if field not in frame.columns:
            raise InputError(f"{path}: has no attribute '{field}' "
                             f"(has {', '.join(frame.columns)})")
        frame = on_grid(frame, grid, path)
        frame = frame[frame[field].notna()]
        self.names = tuple(sorted({str(v) for v in frame[field]}))
        code = {name: i for i, name in enumerate(self.names)}
        self.grid = grid
        self.burner = Burner(frame.geometry.to_numpy(),
                             np.array([code[str(v)] for v in frame[field]], dtype=np.int32))

    def codes(self, part: Part) -> np.ndarray:
        return self.burner.burn(self.grid.part(part), fill=-1)


class Burner:
    """Geometries with a value each, burnt onto any part of the grid (pixel centres inside)."""

    def __init__(self, geoms: np.ndarray, values: np.ndarray) -> None:
        self.geoms, self.values = geoms, values
        self.tree = shapely.STRtree(geoms)

    def burn(self, target: Grid, fill: int) -> np.ndarray:
        hits = np.sort(self.tree.query(shapely.box(*target.bounds)))
        if len(hits) == 0:
            return np.full(target.shape, fill, dtype=np.int32)
        shapes = zip(self.geoms[hits], self.values[hits].tolist(), strict=True)
        return rasterize(shapes, out_shape=target.shape, transform=target.transform,
                         fill=fill, dtype="int32")


class LinesOnGrid:
    """Euclidean distance in metres from every pixel centre to the nearest line, one part of
    the grid at a time.

    The lines are burnt into the part padded far enough that the nearest line of every pixel
    lies inside it, so the distance transform is exact up to the burn-in (half a pixel) even
    where the nearest line is outside the study area, and a part gives the same distances as
    the whole grid. Memory grows with the part and the distance to its farthest pixel's
    nearest line (the padding), not with the area."""

    def __init__(self, frame: gpd.GeoDataFrame, grid: Grid, path: str | Path) -> None:
        self.geoms = frame.to_crs(grid.crs).geometry.to_numpy()
        if len(self.geoms) == 0:
            raise InputError(f"{path}: has no line features")
        self.union = shapely.union_all(self.geoms)
        self.grid, self.path = grid, path

    def distance(self, part: Part) -> np.ndarray:
        target = self.grid.part(part)
        pad = _pad_for_nearest_line(self.union, target)
        padded = target.padded(pad)
        if padded.width * padded.height > MAX_DISTANCE_GRID_PIXELS:
            raise InputError(f"{self.path}: the nearest line is "
                             f"{pad * target.resolution / 1000:.0f} km from the grid, too far "
                             "for a distance raster")
        burnt = rasterize(((g, 1) for g in self.geoms), out_shape=padded.shape,
                          transform=padded.transform, fill=0, all_touched=True, dtype="uint8")
        distance = ndimage.distance_transform_edt(burnt == 0, sampling=target.resolution)
        return distance[pad:pad + target.height, pad:pad + target.width].astype(np.float32)


def distance_to_lines(frame: gpd.GeoDataFrame, grid: Grid, path: str | Path) -> np.ndarray:
    """Distances over the whole grid (for small grids and tests)."""
    return LinesOnGrid(frame, grid, path).distance(Part(0, 0, *grid.shape))


def _pad_for_nearest_line(lines: shapely.Geometry, grid: Grid) -> int:
    """Pixels of padding that surely hold every pixel's nearest line: the distance function
    is 1-Lipschitz, so its maximum over the grid is at most the maximum over a coarse lattice
    plus the lattice's half-diagonal."""
    left, bottom, right, top = grid.bounds
    xs, ys = np.linspace(left, right, 33), np.linspace(bottom, top, 33)
    lattice = shapely.points(*np.meshgrid(xs, ys))
    farthest = float(shapely.distance(lattice, lines).max())
    half_diagonal = math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / 2
    return math.ceil((farthest + half_diagonal) / grid.resolution) + 2
