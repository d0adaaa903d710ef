"""Factors derived from other layers: slope and aspect from the DEM, NDVI from red and NIR.

Pure numpy on a metric grid: gradients are taken with the pixel size in metres, so slope is
in true degrees (a DEM in degrees of longitude would give nonsense, which is why the reference
grid is metric).
"""

from __future__ import annotations

import numpy as np

FLAT_ASPECT = -1.0


def elevation_gradient(dem: np.ndarray, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """(dz/d east, dz/d north) in metres per metre by central differences; NaN spreads to
    the neighbours of nodata so no slope is made up at the data's edge."""
    dem = dem.astype(np.float64)
    d_row, d_col = np.gradient(dem, resolution)
    missing = np.isnan(dem)  # central differences skip the centre pixel itself
    d_row[missing] = np.nan
    d_col[missing] = np.nan
    return d_col, -d_row  # rows run south


def slope_degrees(dem: np.ndarray, resolution: float) -> np.ndarray:
    east, north = elevation_gradient(dem, resolution)
    return np.degrees(np.arctan(np.hypot(east, north))).astype(np.float32)


def aspect_degrees(dem: np.ndarray, resolution: float) -> np.ndarray:
    """The compass direction the slope faces (downhill), 0-360 clockwise from north;
    -1 on flat ground, as GIS packages write it."""
    east, north = elevation_gradient(dem, resolution)
    aspect = np.degrees(np.arctan2(-east, -north)) % 360.0
    flat = (east == 0) & (north == 0)
    return np.where(flat, FLAT_ASPECT, aspect).astype(np.float32)


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """(NIR - red) / (NIR + red); NaN where both are zero or missing."""
    red = red.astype(np.float64)
    nir = nir.astype(np.float64)
    total = nir + red
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(total != 0, (nir - red) / total, np.nan)
    return index.astype(np.float32)
