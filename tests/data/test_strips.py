"""Masks kept as bits and windows found by rows: the sample stage's whole-area pieces."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_ssgan.data.grid import Part
from landslide_ssgan.data.sampling import window_footprint
from landslide_ssgan.data.strips import Centres, PackedMask, strips


@pytest.mark.parametrize("shape", [(9, 8), (17, 21), (5, 1)])
def test_a_mask_kept_as_bits_gives_back_every_part_of_it(shape: tuple[int, int]) -> None:
    mask = np.random.default_rng(1).random(shape) < 0.4
    packed = PackedMask.of(mask)
    np.testing.assert_array_equal(packed.whole(), mask)
    np.testing.assert_array_equal(packed.rows(-3, 4), mask[:4])  # clipped to the grid
    for part in (Part(1, 3, 4, shape[1] - 3), Part(0, 0, 2, 1), Part(2, shape[1] - 1, 3, 1)):
        if part.col < shape[1]:
            np.testing.assert_array_equal(
                packed.part(part),
                mask[part.row:part.row + part.rows, part.col:part.col + part.cols])
    np.testing.assert_array_equal(packed.sampled(3), mask[::3, ::3])


def test_a_mask_written_by_parts_is_the_whole_one() -> None:
    mask = np.random.default_rng(2).random((20, 27)) < 0.5
    packed = PackedMask(mask.shape)
    for row in range(0, 20, 8):
        for col in range(0, 27, 16):
            part = Part(row, col, min(8, 20 - row), min(16, 27 - col))
            packed.put_part(part, mask[row:row + part.rows, col:col + part.cols])
    np.testing.assert_array_equal(packed.whole(), mask)
    with pytest.raises(ValueError, match="column 3"):
        packed.put_part(Part(0, 3, 2, 2), mask[:2, 3:5])


def test_strips_cover_the_grid_in_whole_blocks() -> None:
    found = strips((100, 30), multiple=7, pixels=500)
    assert [(s.top, s.bottom) for s in found][:2] == [(0, 14), (14, 28)]
    assert found[-1].bottom == 100 and all(s.top % 7 == 0 for s in found)
    assert [(s.top, s.bottom) for s in strips((5, 10**6), multiple=3)] == [(0, 3), (3, 5)]
    start, stop, cut = found[0].grown(3)
    assert (start, stop) == (0, 17) and (cut.start, cut.stop) == (0, 14)


def test_footprints_and_values_found_by_rows_are_the_whole_areas() -> None:
    shape, window = (40, 33), 5
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, shape[0], 60), rng.integers(0, shape[1], 60)
    centres = Centres(rows, cols)
    whole = window_footprint(rows, cols, shape, window)
    for part in (Part(0, 0, 7, 33), Part(13, 5, 9, 20), Part(35, 30, 5, 3)):
        np.testing.assert_array_equal(
            centres.footprint(part, shape, window),
            whole[part.row:part.row + part.rows, part.col:part.col + part.cols])
    raster = rng.integers(0, 255, shape).astype(np.uint8)
    values = centres.values(lambda top, bottom: raster[top:bottom], strips(shape, pixels=100))
    np.testing.assert_array_equal(values, raster[centres.rows, centres.cols])
