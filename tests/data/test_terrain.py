"""Slope, aspect and NDVI: in metres, in compass degrees, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_ssgan.data import terrain
from landslide_ssgan.data.stack import Stack


def _band(stack: Stack, name: str) -> np.ndarray:
    return stack.data[stack.grid.band_names.index(name)]


def test_slope_of_warped_dem_matches_numpy_gradient_in_metres(crop_stack: Stack) -> None:
    dem = _band(crop_stack, "elevation").astype(np.float64)
    res = crop_stack.grid.resolution
    gy, gx = np.gradient(dem, res, res)  # metres per metre
    expected = np.degrees(np.arctan(np.sqrt(gx**2 + gy**2)))
    slope = _band(crop_stack, "slope")
    both = np.isfinite(expected) & np.isfinite(slope)
    assert both.mean() > 0.9
    np.testing.assert_allclose(slope[both], expected[both], atol=1e-4)
    # the real crop is hilly: slopes are not all flat, and stay physical
    assert 1.0 < np.nanmax(slope) < 90.0


def test_slope_would_be_wrong_in_degrees_of_a_geographic_grid(crop_stack: Stack) -> None:
    """The reason for the metric grid: a 1e-4 degree pixel size inflates slope to ~90 deg."""
    dem = _band(crop_stack, "elevation")
    assert np.nanmedian(terrain.slope_degrees(dem, 1e-4)) > 80
    assert np.nanmedian(_band(crop_stack, "slope")) < 20


@pytest.mark.parametrize(("dz_east", "dz_north", "aspect"), [
    (0.0, -1.0, 0.0),    # falls to the north: faces north
    (-1.0, 0.0, 90.0),   # falls to the east
    (0.0, 1.0, 180.0),   # falls to the south
    (1.0, 0.0, 270.0),   # falls to the west
    (-1.0, -1.0, 45.0),
])
def test_aspect_is_the_compass_direction_the_slope_faces(dz_east: float, dz_north: float,
                                                         aspect: float) -> None:
    res = 10.0
    rows, cols = np.indices((9, 9)).astype(float)
    east, north = cols * res, -rows * res
    dem = 0.2 * (dz_east * east + dz_north * north)
    got = terrain.aspect_degrees(dem, res)
    assert np.allclose(got, aspect, atol=1e-6) or (aspect == 0 and np.allclose(got % 360, 0))
    expected_slope = np.degrees(np.arctan(0.2 * np.hypot(dz_east, dz_north)))
    np.testing.assert_allclose(terrain.slope_degrees(dem, res), expected_slope, atol=1e-5)


def test_flat_ground_has_flat_aspect_and_nodata_spreads() -> None:
    dem = np.full((5, 5), 12.0)
    assert (terrain.aspect_degrees(dem, 10.0) == terrain.FLAT_ASPECT).all()
    dem[2, 2] = np.nan
    slope = terrain.slope_degrees(dem, 10.0)
    assert np.isnan(slope[2, 2]) and np.isnan(slope[1, 2]) and np.isnan(slope[2, 1])
    assert np.isfinite(slope[0, 0])


def test_ndvi_from_real_bands(crop_stack: Stack) -> None:
    red, nir = _band(crop_stack, "B4"), _band(crop_stack, "B8")
    expected = (nir.astype(np.float64) - red) / (nir.astype(np.float64) + red)
    np.testing.assert_allclose(_band(crop_stack, "ndvi"), expected, rtol=1e-5, atol=1e-6)
    assert np.nanmin(_band(crop_stack, "ndvi")) >= -1 and np.nanmax(_band(crop_stack, "ndvi")) <= 1
    assert np.isnan(terrain.ndvi(np.array([0.0]), np.array([0.0])))[0]
