"""Square erosion and dilation in two passes equal scipy's binary morphology."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from landslide_ssgan.data.squares import square_dilation, square_erosion


@pytest.mark.parametrize("size", [1, 3, 13, 19])
@pytest.mark.parametrize("shape", [(40, 57), (5, 7), (1, 30)])
def test_two_passes_equal_the_square_structure(size: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(size)
    square = np.ones((size, size), bool)
    dense, sparse = rng.random(shape) > 0.003, rng.random(shape) > 0.97
    np.testing.assert_array_equal(square_erosion(dense, size),
                                  ndimage.binary_erosion(dense, square, border_value=0))
    np.testing.assert_array_equal(square_dilation(sparse, size),
                                  ndimage.binary_dilation(sparse, square))


def test_an_even_square_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        square_erosion(np.ones((4, 4), bool), 4)
