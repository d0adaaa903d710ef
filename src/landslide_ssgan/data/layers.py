"""Reading one layer (raster or vector, any CRS) onto the reference grid.

Rasters are warped with GDAL (bilinear for continuous values, nearest for classes, so a class
is never averaged into a value that is no class); vectors are rasterised. Nodata of any
convention (0, -9999, -128, NaN) comes out as NaN, or -1 for class codes.
"""

from __future__ import annotations

import contextlib
import math
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
from rasterio.warp import reproject, transform_bounds
from scipy import ndimage

from landslide_ssgan.data.grid import Grid
from landslide_ssgan.errors import InputError, first_line

VECTOR_SUFFIXES = frozenset({".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml"})
MAX_DISTANCE_GRID_PIXELS = 400_000_000


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


def read_raster_on_grid(path: str | Path, grid: Grid, resampling: Resampling,
                        expected_bands: int | None = None) -> np.ndarray:
    """All bands of a raster warped onto `grid` as float32 (bands, rows, cols), NaN = nodata."""
    path = require_file(path)
    with open_raster(path) as src:
        if src.crs is None:
            raise InputError(f"{path}: raster has no CRS")
        if expected_bands is not None and src.count != expected_bands:
            found = ", ".join(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            raise InputError(f"{path}: has {src.count} bands ({found}), params name "
                             f"{expected_bands}; list the bands' names under `bands:`")
        if not _overlaps(transform_bounds(src.crs, grid.crs, *src.bounds), grid.bounds):
            raise InputError(f"{path}: does not overlap the reference grid")
        data = src.read().astype(np.float32)
        _reject_bad_values(path, data, src.nodata)
        if src.nodata is not None and not math.isnan(src.nodata):
            data[data == np.float32(src.nodata)] = np.nan
        out = np.full((src.count, *grid.shape), np.nan, dtype=np.float32)
        reproject(source=data, destination=out, src_transform=src.transform, src_crs=src.crs,
                  src_nodata=np.nan, dst_transform=grid.transform, dst_crs=grid.crs,
                  dst_nodata=np.nan, resampling=resampling)
    return out


def _reject_bad_values(path: Path, data: np.ndarray, nodata: float | None) -> None:
    if np.isinf(data).any():
        raise InputError(f"{path}: contains infinite values")
    if nodata is not None and not math.isnan(nodata) and np.isnan(data).any():
        raise InputError(f"{path}: contains NaN values but its nodata value is {nodata}")


def read_class_raster_on_grid(path: str | Path, grid: Grid) -> np.ndarray:
    """A categorical raster warped by nearest neighbour: codes as float32, NaN = nodata."""
    return read_raster_on_grid(path, grid, Resampling.nearest, expected_bands=1)[0]


@contextlib.contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    """rasterio.open for reading: a corrupt, truncated or unsupported file, found on opening or
    while reading inside the block, is one line that names it, not GDAL's traceback."""
    path = require_file(path)
    try:
        with rasterio.open(path) as src:
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


def rasterize_classes(frame: gpd.GeoDataFrame, field: str, grid: Grid,
                      path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Polygons with a class attribute as codes 0..k-1 (int32, -1 = no polygon) plus the
    sorted class names the codes index."""
    if field not in frame.columns:
        raise InputError(f"{path}: has no attribute '{field}' (has {', '.join(frame.columns)})")
    frame = on_grid(frame, grid, path)
    names = tuple(sorted({str(v) for v in frame[field] if v is not None}))
    code = {name: i for i, name in enumerate(names)}
    shapes = ((geom, code[str(v)]) for geom, v in zip(frame.geometry, frame[field], strict=True)
              if v is not None)
    codes = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=-1,
                      dtype="int32")
    return codes, names


def distance_to_lines(frame: gpd.GeoDataFrame, grid: Grid, path: str | Path) -> np.ndarray:
    """Euclidean distance in metres from every pixel centre to the nearest line.

    Lines are burnt into a grid padded far enough that the nearest line of every pixel lies
    inside it, so the distance transform is exact up to the burn-in (half a pixel) even where
    the nearest line is outside the study area.
    """
    geoms = frame.to_crs(grid.crs).geometry.to_numpy()
    if len(geoms) == 0:
        raise InputError(f"{path}: has no line features")
    pad = _pad_for_nearest_line(geoms, grid)
    padded = grid.padded(pad)
    if padded.width * padded.height > MAX_DISTANCE_GRID_PIXELS:
        raise InputError(f"{path}: the nearest line is {pad * grid.resolution / 1000:.0f} km "
                         "from the grid, too far for a distance raster")
    burnt = rasterize(((g, 1) for g in geoms), out_shape=padded.shape,
                      transform=padded.transform, fill=0, all_touched=True, dtype="uint8")
    distance = ndimage.distance_transform_edt(burnt == 0, sampling=grid.resolution)
    return distance[pad:pad + grid.height, pad:pad + grid.width].astype(np.float32)


def _pad_for_nearest_line(geoms: np.ndarray, grid: Grid) -> int:
    """Pixels of padding that surely hold every pixel's nearest line: the distance function
    is 1-Lipschitz, so its maximum over the grid is at most the maximum over a coarse lattice
    plus the lattice's half-diagonal."""
    left, bottom, right, top = grid.bounds
    xs, ys = np.linspace(left, right, 33), np.linspace(bottom, top, 33)
    lattice = shapely.points(*np.meshgrid(xs, ys))
    farthest = float(shapely.distance(lattice, shapely.union_all(geoms)).max())
    half_diagonal = math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / 2
    return math.ceil((farthest + half_diagonal) / grid.resolution) + 2
