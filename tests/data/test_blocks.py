"""Landslide bodies as polygons: valid for any GIS, with the pixels' area."""

from __future__ import annotations

import numpy as np
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_ssgan.data.blocks import body_polygons
from landslide_ssgan.data.grid import Grid


def test_bodies_whose_pixels_touch_at_corners_are_valid_polygons() -> None:
    """A ring of pixels whose hole touches it at one corner, and two pixels joined only
    diagonally: rasterio traces self-touching rings (invalid before the repair)."""
    labels = np.zeros((8, 8), np.int32)
    labels[1:4, 1:4] = 1
    labels[2, 2] = 0
    labels[1, 1] = 0  # the hole now touches the ring's outside at one corner
    labels[3, 3] = 0
    labels[4, 4] = 1
    labels[5, 6] = 2
    labels[6, 7] = 2
    labels[6, 5] = 2
    grid = Grid(CRS.from_epsg(32646), from_origin(0, 80, 10, 10), 8, 8, ("b",))
    frame = body_polygons(labels, grid)
    assert list(frame.id) == [1, 2]
    assert frame.geometry.is_valid.all()
    assert frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    np.testing.assert_allclose(frame.geometry.area.to_numpy(),
                               [100.0 * (labels == i).sum() for i in (1, 2)])
