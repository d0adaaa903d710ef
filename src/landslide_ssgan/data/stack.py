"""The aligned multi-band stack: every layer of params.yaml on one metric grid.

Each band remembers its layer and role (optical or factor) in the GeoTIFF's band tags, so that
choosing a feature set later only selects bands and never needs params.yaml's layer list.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import rasterio.io
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.windows import Window

from landslide_ssgan.config import LayerConfig, PrepareConfig
from landslide_ssgan.data import layers as io
from landslide_ssgan.data import terrain
from landslide_ssgan.data.grid import Grid, Part, grid_over
from landslide_ssgan.data.strips import STRIP_PIXELS, PackedMask
from landslide_ssgan.errors import ConfigError, InputError, first_line
from landslide_ssgan.files import atomic_path

PART = 1024  # pixels on the side of the parts of the grid prepared at a time (4 x 4 tiles)


@dataclass(frozen=True)
class BandInfo:
    name: str
    layer: str
    role: str
    categorical: bool


@dataclass(frozen=True)
class Stack:
    data: np.ndarray  # (bands, rows, cols) float32, NaN = nodata
    grid: Grid
    bands: tuple[BandInfo, ...]

    @property
    def valid(self) -> np.ndarray:
        """Where every band has data: the only pixels that are sampled or predicted."""
        return valid_mask(self.parts(), self.grid.shape)

    def parts(self, size: int = PART) -> Iterator[tuple[Part, np.ndarray]]:
        """The in-memory stack as the parts a stack file is read in (`stack_parts`)."""
        for part in self.grid.parts(size):
            yield part, self.data[:, part.row:part.row + part.rows,
                                  part.col:part.col + part.cols]

    def indices(self, feature_set: str) -> list[int]:
        return band_indices(self.bands, feature_set)


def band_indices(bands: tuple[BandInfo, ...], feature_set: str) -> list[int]:
    """Band positions of a feature set: `factors`, `optical` or `joint` (all)."""
    if feature_set == "joint":
        return list(range(len(bands)))
    role = {"factors": "factor", "optical": "optical"}[feature_set]
    found = [i for i, band in enumerate(bands) if band.role == role]
    if not found:
        raise ConfigError(f"features.set / evaluate.feature_sets: {feature_set!r} has no "
                          f"bands here (no layer of role {role!r} in the stack); use "
                          f"another feature set")
    return found


# --- building ---------------------------------------------------------------------------


Arrays = list[np.ndarray]
PartReader = Callable[[Part], Arrays]  # one array per band over the part


def reference_grid(cfg: PrepareConfig) -> Grid:
    """The grid every layer is warped onto; refused when its pixel count passes
    prepare.grid.max_pixels (a typo of 0.05 m for 5 m would run for days)."""
    try:  # pyproj first: GDAL would print PROJ's own error line beside the project's
        pyproj.CRS.from_user_input(cfg.grid.crs)
        crs = CRS.from_user_input(cfg.grid.crs)
    except (CRSError, pyproj.exceptions.CRSError) as exc:
        raise ConfigError(f"prepare.grid.crs: {cfg.grid.crs!r} is not a CRS that PROJ knows "
                          f"({first_line(exc)})") from None
    if not crs.is_projected:
        raise ConfigError(f"prepare.grid.crs: {cfg.grid.crs} is not metric; slope, distances "
                          "and areas need a projected CRS such as a UTM zone")
    extent = next(layer for layer in cfg.layers if layer.name == cfg.grid.extent_layer)
    if extent.path is None:
        raise ConfigError("prepare.grid.extent_layer: must name a layer read from a file")
    bounds = io.layer_bounds(extent.path, crs, extent.layer)
    grid = grid_over(bounds, crs, cfg.grid.resolution)  # type: ignore[arg-type]
    pixels = grid.width * grid.height
    if pixels > cfg.grid.max_pixels:
        km = [(bounds[2] - bounds[0]) / 1000, (bounds[3] - bounds[1]) / 1000]
        raise ConfigError(f"prepare.grid.resolution: {cfg.grid.resolution} m over "
                          f"{extent.name}'s {km[0]:.3g} x {km[1]:.3g} km makes {grid.width:,} "
                          f"x {grid.height:,} = {pixels:,} pixels, more than "
                          f"prepare.grid.max_pixels ({cfg.grid.max_pixels:,}); use a coarser "
                          "resolution or raise the limit")
    return grid


@dataclass(frozen=True)
class StackPlan:
    """Every layer of params.yaml opened and checked, ready to give the stack one part of the
    grid at a time: memory holds a part (and a distance layer's padding), never the area."""

    grid: Grid
    bands: tuple[BandInfo, ...]
    readers: tuple[PartReader, ...]

    def part(self, part: Part) -> np.ndarray:
        """Every band over `part`, float32 (bands, rows, cols), NaN = nodata."""
        arrays = [array for read in self.readers for array in read(part)]
        return np.stack(arrays).astype(np.float32)

    def parts(self, size: int = PART) -> Iterator[tuple[Part, np.ndarray]]:
        for part in self.grid.parts(size):
            yield part, self.part(part)


def plan_stack(cfg: PrepareConfig) -> StackPlan:
    grid = reference_grid(cfg)
    infos: dict[str, list[BandInfo]] = {}
    readers: dict[str, PartReader] = {}
    for layer in cfg.layers:
        if layer.kind != "derived":
            infos[layer.name], readers[layer.name] = _layer_reader(layer, grid)
    for layer in cfg.layers:
        if layer.kind == "derived":
            source = layer.source or ""
            infos[layer.name], readers[layer.name] = _derived_reader(
                layer, infos[source], readers[source], grid)
    bands = [info for layer in cfg.layers for info in infos[layer.name]]
    names = [info.name for info in bands]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"prepare.layers: band names {duplicated} occur more than once")
    return StackPlan(grid.with_bands(tuple(names)), tuple(bands),
                     tuple(readers[layer.name] for layer in cfg.layers))


def build_stack(cfg: PrepareConfig, size: int = PART) -> Stack:
    """The whole stack in memory, made part by part (for small areas and tests; `landslide
    prepare` writes each part as it is made)."""
    plan = plan_stack(cfg)
    data = np.empty((len(plan.bands), *plan.grid.shape), dtype=np.float32)
    for part, values in plan.parts(size):
        data[:, part.row:part.row + part.rows, part.col:part.col + part.cols] = values
    return Stack(data, plan.grid, plan.bands)


def _remembered(read: PartReader) -> PartReader:
    """`read` that keeps its last two parts: a layer's part is asked for again by the layers
    derived from it (NDVI the same part, slope and aspect the part with a halo)."""
    return functools.lru_cache(maxsize=2)(read)


def _layer_reader(layer: LayerConfig, grid: Grid) -> tuple[list[BandInfo], PartReader]:
    path = layer.path or ""
    if layer.kind == "optical" or (layer.kind == "continuous" and layer.bands):
        # a multi-band raster (an optical image, or several terrain factors in one file):
        # one named band of the stack per band of the file, in the file's order
        raster = io.RasterOnGrid(path, grid, Resampling.bilinear, len(layer.bands))
        return ([BandInfo(name, layer.name, layer.role, False) for name in layer.bands],
                _remembered(lambda part: list(raster.read(part))))
    if layer.kind == "continuous":
        single = io.RasterOnGrid(path, grid, Resampling.bilinear, expected_bands=1)
        return ([BandInfo(layer.name, layer.name, layer.role, False)],
                _remembered(lambda part: list(single.read(part))))
    if layer.kind == "lines":
        lines = io.LinesOnGrid(io.read_vector(path, layer.layer), grid, path)
        return ([BandInfo(layer.name, layer.name, layer.role, False)],
                lambda part: [lines.distance(part)])
    codes, names = _class_codes(layer, grid)
    return _class_bands(layer, codes, names)


Codes = Callable[[Part], np.ndarray]  # class codes over a part, -1 = nodata


def _class_codes(layer: LayerConfig, grid: Grid) -> tuple[Codes, tuple[str, ...]]:
    """Codes 0..k-1 (-1 = nodata) and the class names they index, in params' order if given."""
    path = layer.path or ""
    codes: Codes
    if io.is_vector(path):
        if layer.field is None:
            raise ConfigError(f"prepare.layers.{layer.name}.field: a categorical vector layer "
                              "needs the attribute that holds its class")
        polygons = io.ClassPolygons(io.read_vector(path, layer.layer), layer.field, grid, path)
        codes, names = polygons.codes, polygons.names
    else:
        codes, names = _raster_class_codes(io.RasterOnGrid(path, grid, Resampling.nearest,
                                                           expected_bands=1))
    if not layer.classes:
        return codes, names
    unknown = sorted(set(names) - set(layer.classes))
    if unknown:
        raise InputError(f"{path}: classes {unknown} are not listed in "
                         f"prepare.layers.{layer.name}.classes")
    remap = np.array([layer.classes.index(n) for n in names] + [-1], dtype=np.int32)
    return (lambda part: remap[codes(part)]), layer.classes


def _raster_class_codes(raster: io.RasterOnGrid) -> tuple[Codes, tuple[str, ...]]:
    """A class raster's values on the grid as codes: the values present are found in a first
    pass over the parts, so a part's codes mean the same classes as the whole grid's."""
    found = [np.unique(values[np.isfinite(values)])
             for values in (raster.read(part)[0] for part in raster.grid.parts(PART))]
    present = np.unique(np.concatenate(found))

    def codes(part: Part) -> np.ndarray:
        values = raster.read(part)[0]
        out = np.full(values.shape, -1, dtype=np.int32)
        known = np.isfinite(values)
        out[known] = np.searchsorted(present, values[known])
        return out

    return codes, tuple(f"{v:g}" for v in present)


def _class_bands(layer: LayerConfig, codes: Codes, names: tuple[str, ...]
                 ) -> tuple[list[BandInfo], PartReader]:
    if layer.encoding == "ordinal":
        def ordinal(part: Part) -> Arrays:
            values = codes(part)
            return [np.where(values < 0, np.nan, values).astype(np.float32)]
        return [BandInfo(layer.name, layer.name, layer.role, True)], ordinal

    def onehot(part: Part) -> Arrays:
        values = codes(part)
        return [np.where(values < 0, np.nan, values == k).astype(np.float32)
                for k in range(len(names))]
    return ([BandInfo(f"{layer.name}_{name}", layer.name, layer.role, True) for name in names],
            onehot)


def _derived_reader(layer: LayerConfig, source: list[BandInfo], read: PartReader,
                    grid: Grid) -> tuple[list[BandInfo], PartReader]:
    info = [BandInfo(layer.name, layer.name, layer.role, False)]
    if layer.derive == "ndvi":
        names = [band.name for band in source]
        for key in (layer.red, layer.nir):
            if key not in names:
                raise ConfigError(f"prepare.layers.{layer.name}: band {key!r} is not a band of "
                                  f"{layer.source} ({', '.join(names)})")
        red, nir = names.index(layer.red or ""), names.index(layer.nir or "")
        return info, lambda part: [terrain.ndvi(*(read(part)[i] for i in (red, nir)))]
    if len(source) != 1 or source[0].categorical:
        raise ConfigError(f"prepare.layers.{layer.name}.source: {layer.derive} needs a "
                          "single-band continuous layer (the DEM)")
    derive = terrain.slope_degrees if layer.derive == "slope" else terrain.aspect_degrees

    def derived(part: Part) -> Arrays:
        # one pixel of halo on each side (none at the grid's edge, where the whole grid's
        # one-sided differences apply), so a part's gradient is the whole grid's
        grown, inner = part.grown(1, grid.shape)
        return [derive(read(grown)[0], grid.resolution)[inner]]

    return info, derived


# --- files ------------------------------------------------------------------------------

TILE = 256  # pixels per side of the tiles of every GeoTIFF written


def geotiff_profile(grid: Grid, count: int, dtype: str, nodata: float | int) -> dict:
    """Tiled (256), deflate-compressed GeoTIFF with a predictor: every raster we write. Bands
    are interleaved by band, each in its own tiles: a reader of three bands of the 20-band
    stack (a preview) decodes those three, not every band of every tile (measured on a
    5490 x 5490 stack: the colour preview 7.8 -> 0.5 s, all bands of 40 blocks 3.7 -> 2.0 s,
    the file 25 % smaller)."""
    return {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": count,
        "dtype": dtype, "crs": grid.crs, "transform": grid.transform, "nodata": nodata,
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "deflate",
        "interleave": "band", "predictor": 3 if dtype.startswith("float") else 2,
        "BIGTIFF": "IF_SAFER",
    }


def bit_stable(values: np.ndarray) -> np.ndarray:
    """`values` with every NaN the one quiet NaN. NaNs made by arithmetic carry the sign and
    payload of whichever SIMD path numpy picked for the CPU (AVX-512 gives -NaN, AVX2 +NaN):
    equal maps, different bytes, and a file hash (DVC's) that differs from one machine to the
    next."""
    if values.dtype.kind != "f":
        return values
    return np.where(np.isnan(values), values.dtype.type(np.nan), values)


def write_stack(stack: Stack, path: str | Path) -> None:
    with atomic_path(path) as tmp, open_tiled(tmp, stack.grid, len(stack.bands), "float32",
                                              float("nan")) as dst:
        write_part(dst, Part(0, 0, *stack.grid.shape), stack.data)
        describe_stack(dst, stack.bands)


@contextlib.contextmanager
def open_tiled(path: str | Path, grid: Grid, count: int, dtype: str, nodata: float | int
               ) -> Iterator[rasterio.io.DatasetWriter]:
    """A tiled GeoTIFF open for writing rows at a time (`write_rows`); the caller names the
    temporary path it is renamed from."""
    with rasterio.open(path, "w", **geotiff_profile(grid, count, dtype, nodata)) as dst:
        yield dst


def write_part(dst: rasterio.io.DatasetWriter, part: Part, data: np.ndarray) -> None:
    """Every band over `part` (whose corner lies on the tile grid), `data` (bands, rows, cols)
    or (rows, cols). A row of whole tiles at a time, every band at once."""
    data = data if data.ndim == 3 else data[None]
    for top in range(0, part.rows, TILE):
        rows = min(TILE, part.rows - top)
        dst.write(bit_stable(data[:, top:top + rows]), window=Window(  # type: ignore[call-arg]
            part.col, part.row + top, part.cols, rows))


def describe_stack(dst: rasterio.io.DatasetWriter, bands: tuple[BandInfo, ...]) -> None:
    for i, band in enumerate(bands, start=1):
        dst.set_band_description(i, band.name)
        dst.update_tags(i, layer=band.layer, role=band.role,
                        categorical=str(band.categorical).lower())


def read_stack(path: str | Path) -> Stack:
    grid, bands = read_stack_info(path)
    with io.open_raster(path) as src:
        data = src.read(out_dtype="float32")
    return Stack(data, grid, bands)


def read_stack_info(path: str | Path) -> tuple[Grid, tuple[BandInfo, ...]]:
    """The stack's grid and bands, without its pixels."""
    path = io.require_file(path)
    with io.open_raster(path) as src:
        bands = tuple(
            BandInfo(src.descriptions[i - 1] or f"band{i}", src.tags(i).get("layer", ""),
                     src.tags(i).get("role", "factor"), src.tags(i).get("categorical") == "true")
            for i in range(1, src.count + 1)
        )
        grid = Grid(src.crs, src.transform, src.width, src.height, tuple(b.name for b in bands))
    if not bands:
        raise InputError(f"{path}: stack has no bands")
    return grid, bands


def stack_parts(path: str | Path, size: int = PART,
                bands: list[int] | None = None) -> Iterator[tuple[Part, np.ndarray]]:
    """The stack file read one part at a time: (part, float32 (bands, rows, cols)), of every
    band or of the `bands` (0-based positions) chosen."""
    grid, _ = read_stack_info(path)
    indexes = None if bands is None else [band + 1 for band in bands]
    with io.open_raster(path) as src:
        for part in grid.parts(size):
            yield part, src.read(indexes, out_dtype="float32", window=Window(  # type: ignore[call-arg]
                part.col, part.row, part.cols, part.rows))


def values_at(parts: Iterator[tuple[Part, np.ndarray]], rows: np.ndarray,
              cols: np.ndarray) -> np.ndarray:
    """(len(rows), bands) float32: the stack's values at the pixels (rows, cols), gathered
    from its parts, so that only one part is ever in memory."""
    out: np.ndarray | None = None
    for part, data in parts:
        if out is None:
            out = np.full((len(rows), data.shape[0]), np.nan, np.float32)
        inside = ((rows >= part.row) & (rows < part.row + part.rows)
                  & (cols >= part.col) & (cols < part.col + part.cols))
        out[inside] = data[:, rows[inside] - part.row, cols[inside] - part.col].T
    return out if out is not None else np.empty((len(rows), 0), np.float32)


def valid_mask(parts: Iterator[tuple[Part, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Where every band has data, from the stack's parts (1 byte a pixel in memory)."""
    valid = np.zeros(shape, dtype=bool)
    for part, data in parts:
        valid[part.row:part.row + part.rows, part.col:part.col + part.cols] = \
            np.isfinite(data).all(axis=0)
    return valid


def write_single_band(array: np.ndarray, grid: Grid, path: str | Path, nodata: int,
                      description: str) -> None:
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", **geotiff_profile(grid, 1, array.dtype.name, nodata)
    ) as dst:
        dst.write(bit_stable(array), 1)
        dst.set_band_description(1, description)


def read_single_band(path: str | Path) -> tuple[np.ndarray, Grid]:
    with io.open_raster(path) as src:
        return src.read(1), Grid(src.crs, src.transform, src.width, src.height)


def write_single_band_parts(part_of: Callable[[Part], np.ndarray], dtype: str, grid: Grid,
                            path: str | Path, nodata: int, description: str) -> None:
    """A single-band raster made a strip of whole tile rows at a time by `part_of(part)`:
    the same file as `write_single_band` of the whole array, without the whole array."""
    rows = TILE * max(1, STRIP_PIXELS // (grid.width * TILE))
    with atomic_path(path) as tmp, open_tiled(tmp, grid, 1, dtype, nodata) as dst:
        for top in range(0, grid.height, rows):
            part = Part(top, 0, min(rows, grid.height - top), grid.width)
            write_part(dst, part, part_of(part))
        dst.set_band_description(1, description)


class RasterLayers:
    """The sample stage's rasters, read from the prepared files a strip of rows at a time.
    The valid mask needs every band of the stack: it is read once, a part at a time, and
    kept as bits (a Sentinel-2 tile: 15 MB)."""

    def __init__(self, stack: str | Path, labels: str | Path, ids: str | Path) -> None:
        self.grid, _ = read_stack_info(stack)
        self.label_path, self.id_path = Path(labels), Path(ids)
        for path in (self.label_path, self.id_path):
            with io.open_raster(path) as src:
                if (src.height, src.width) != self.grid.shape:
                    raise InputError(f"{path}: {src.width} x {src.height} pixels, the stack "
                                     f"{self.grid.width} x {self.grid.height}: run the prepare "
                                     "stage again")
        self.valid_bits = PackedMask(self.grid.shape)
        for part, data in stack_parts(stack):
            self.valid_bits.put_part(part, np.isfinite(data).all(axis=0))

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def labels(self, top: int, bottom: int) -> np.ndarray:
        return self._rows(self.label_path, top, bottom)

    def ids(self, top: int, bottom: int) -> np.ndarray:
        return self._rows(self.id_path, top, bottom)

    def valid(self, top: int, bottom: int) -> np.ndarray:
        return self.valid_bits.rows(top, bottom)

    def _rows(self, path: Path, top: int, bottom: int) -> np.ndarray:
        with io.open_raster(path) as src:
            return src.read(1, window=Window(0, top, self.grid.width, bottom - top))
