"""The aligned multi-band stack: every layer of params.yaml on one metric grid.

Each band remembers its layer and role (optical or factor) in the GeoTIFF's band tags, so that
choosing a feature set later only selects bands and never needs params.yaml's layer list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.windows import Window

from landslide_ssgan.config import LayerConfig, PrepareConfig
from landslide_ssgan.data import layers as io
from landslide_ssgan.data import terrain
from landslide_ssgan.data.grid import Grid, grid_over
from landslide_ssgan.errors import ConfigError, InputError
from landslide_ssgan.files import atomic_path


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
        return np.isfinite(self.data).all(axis=0)

    def indices(self, feature_set: str) -> list[int]:
        """Band positions of a feature set: `factors`, `optical` or `joint` (all)."""
        if feature_set == "joint":
            return list(range(len(self.bands)))
        role = {"factors": "factor", "optical": "optical"}[feature_set]
        found = [i for i, band in enumerate(self.bands) if band.role == role]
        if not found:
            raise ConfigError(f"features.set / evaluate.feature_sets: {feature_set!r} has no "
                              f"bands here (no layer of role {role!r} in the stack); use "
                              f"another feature set")
        return found


# --- building ---------------------------------------------------------------------------

Bands = list[tuple[BandInfo, np.ndarray]]


def reference_grid(cfg: PrepareConfig) -> Grid:
    try:
        crs = CRS.from_user_input(cfg.grid.crs)
    except CRSError as exc:
        raise ConfigError(f"prepare.grid.crs: {cfg.grid.crs!r} is not a CRS ({exc})") from exc
    if not crs.is_projected:
        raise ConfigError(f"prepare.grid.crs: {cfg.grid.crs} is not metric; slope, distances "
                          "and areas need a projected CRS such as a UTM zone")
    extent = next(layer for layer in cfg.layers if layer.name == cfg.grid.extent_layer)
    if extent.path is None:
        raise ConfigError("prepare.grid.extent_layer: must name a layer read from a file")
    bounds = io.layer_bounds(extent.path, crs, extent.layer)
    return grid_over(bounds, crs, cfg.grid.resolution)  # type: ignore[arg-type]


def build_stack(cfg: PrepareConfig) -> Stack:
    grid = reference_grid(cfg)
    read: dict[str, Bands] = {}
    for layer in cfg.layers:
        if layer.kind != "derived":
            read[layer.name] = _read_layer(layer, grid)
    for layer in cfg.layers:
        if layer.kind == "derived":
            read[layer.name] = _derive(layer, read[layer.source or ""], grid)
    bands = [band for layer in cfg.layers for band in read[layer.name]]
    names = [info.name for info, _ in bands]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"prepare.layers: band names {duplicated} occur more than once")
    data = np.stack([array for _, array in bands]).astype(np.float32)
    return Stack(data, grid.with_bands(tuple(names)), tuple(info for info, _ in bands))


def _read_layer(layer: LayerConfig, grid: Grid) -> Bands:
    path = layer.path or ""
    if layer.kind == "optical" or (layer.kind == "continuous" and layer.bands):
        # a multi-band raster (an optical image, or several terrain factors in one file):
        # one named band of the stack per band of the file, in the file's order
        data = io.read_raster_on_grid(path, grid, Resampling.bilinear, len(layer.bands))
        return [(BandInfo(name, layer.name, layer.role, False), band)
                for name, band in zip(layer.bands, data, strict=True)]
    if layer.kind == "continuous":
        data = io.read_raster_on_grid(path, grid, Resampling.bilinear, expected_bands=1)
        return [(BandInfo(layer.name, layer.name, layer.role, False), data[0])]
    if layer.kind == "lines":
        frame = io.read_vector(path, layer.layer)
        distance = io.distance_to_lines(frame, grid, path)
        return [(BandInfo(layer.name, layer.name, layer.role, False), distance)]
    codes, names = _class_codes(layer, grid)
    return _encode_classes(layer, codes, names)


def _class_codes(layer: LayerConfig, grid: Grid) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes 0..k-1 (-1 = nodata) and the class names they index, in params' order if given."""
    path = layer.path or ""
    if io.is_vector(path):
        if layer.field is None:
            raise ConfigError(f"prepare.layers.{layer.name}.field: a categorical vector layer "
                              "needs the attribute that holds its class")
        codes, names = io.rasterize_classes(io.read_vector(path, layer.layer),
                                            layer.field, grid, path)
    else:
        values = io.read_class_raster_on_grid(path, grid)
        present = np.unique(values[np.isfinite(values)])
        names = tuple(f"{v:g}" for v in present)
        codes = np.full(grid.shape, -1, dtype=np.int32)
        known = np.isfinite(values)
        codes[known] = np.searchsorted(present, values[known])
    if not layer.classes:
        return codes, names
    unknown = sorted(set(names) - set(layer.classes))
    if unknown:
        raise InputError(f"{path}: classes {unknown} are not listed in "
                         f"prepare.layers.{layer.name}.classes")
    remap = np.array([layer.classes.index(n) for n in names] + [-1], dtype=np.int32)
    return remap[codes], layer.classes


def _encode_classes(layer: LayerConfig, codes: np.ndarray, names: tuple[str, ...]) -> Bands:
    missing = codes < 0
    if layer.encoding == "ordinal":
        ordinal = np.where(missing, np.nan, codes).astype(np.float32)
        return [(BandInfo(layer.name, layer.name, layer.role, True), ordinal)]
    bands: Bands = []
    for k, name in enumerate(names):
        onehot = np.where(missing, np.nan, codes == k).astype(np.float32)
        bands.append((BandInfo(f"{layer.name}_{name}", layer.name, layer.role, True), onehot))
    return bands


def _derive(layer: LayerConfig, source: Bands, grid: Grid) -> Bands:
    info = BandInfo(layer.name, layer.name, layer.role, False)
    if layer.derive == "ndvi":
        by_name = {band.name: array for band, array in source}
        for key in (layer.red, layer.nir):
            if key not in by_name:
                raise ConfigError(f"prepare.layers.{layer.name}: band {key!r} is not a band of "
                                  f"{layer.source} ({', '.join(by_name)})")
        return [(info, terrain.ndvi(by_name[layer.red or ""], by_name[layer.nir or ""]))]
    if len(source) != 1 or source[0][0].categorical:
        raise ConfigError(f"prepare.layers.{layer.name}.source: {layer.derive} needs a "
                          "single-band continuous layer (the DEM)")
    dem = source[0][1]
    derive = terrain.slope_degrees if layer.derive == "slope" else terrain.aspect_degrees
    return [(info, derive(dem, grid.resolution))]


# --- files ------------------------------------------------------------------------------

TILE = 256  # pixels per side of the tiles of every GeoTIFF written


def geotiff_profile(grid: Grid, count: int, dtype: str, nodata: float | int) -> dict:
    """Tiled (256), deflate-compressed GeoTIFF with a predictor: every raster we write."""
    return {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": count,
        "dtype": dtype, "crs": grid.crs, "transform": grid.transform, "nodata": nodata,
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "deflate",
        "predictor": 3 if dtype.startswith("float") else 2, "BIGTIFF": "IF_SAFER",
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
    with atomic_path(path) as tmp, rasterio.open(
        tmp, "w", **geotiff_profile(stack.grid, len(stack.bands), "float32", float("nan"))
    ) as dst:
        # a row of whole tiles at a time, every band at once: written band by band, each
        # pixel-interleaved tile is rewritten once per band when GDAL's cache cannot hold them
        for row in range(0, stack.grid.height, TILE):
            rows = min(TILE, stack.grid.height - row)
            dst.write(bit_stable(stack.data[:, row:row + rows]),
                      window=Window(0, row, stack.grid.width, rows))  # type: ignore[call-arg]
        for i, band in enumerate(stack.bands, start=1):
            dst.set_band_description(i, band.name)
            dst.update_tags(i, layer=band.layer, role=band.role,
                            categorical=str(band.categorical).lower())


def read_stack(path: str | Path) -> Stack:
    path = io.require_file(path)
    with io.open_raster(path) as src:
        bands = tuple(
            BandInfo(src.descriptions[i - 1] or f"band{i}", src.tags(i).get("layer", ""),
                     src.tags(i).get("role", "factor"), src.tags(i).get("categorical") == "true")
            for i in range(1, src.count + 1)
        )
        grid = Grid(src.crs, src.transform, src.width, src.height, tuple(b.name for b in bands))
        data = src.read().astype(np.float32)
    if not bands:
        raise InputError(f"{path}: stack has no bands")
    return Stack(data, grid, bands)


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
