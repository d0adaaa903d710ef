"""Windows cut on the fly: at the stack's edges, over nodata, tf.data equal to numpy; from a
temporary file written by parts, the same windows, batches and value range as in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from landslide_ssgan.data.grid import Part
from landslide_ssgan.data.windows import (
    NORMALISED_STRIP,
    FileWindows,
    ImageWindows,
    cut_windows,
    file_windows,
    normalised_bands,
    normalised_image,
    window_dataset,
)


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.arange(2 * 20 * 30, dtype=np.float32).reshape(2, 20, 30)
    data[1, 5, 5] = np.nan
    return data, np.array([100.0, 200.0]), np.array([10.0, 20.0])


def test_window_in_the_interior_is_the_normalised_neighbourhood() -> None:
    data, mean, std = _toy()
    image = normalised_image(data, [0, 1], mean, std, 5)
    window = cut_windows(image, np.array([10]), np.array([12]), 5)[0]
    expected = (data[:, 8:13, 10:15] - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(window, np.moveaxis(expected, 0, -1))


def test_the_image_normalised_by_strips_is_the_whole_stack_normalised_at_once() -> None:
    """More rows than a strip and a last strip cut short, nodata, a subset of the bands in
    another order: bit for bit the whole-array arithmetic, zero-padded."""
    rng = np.random.default_rng(0)
    data = rng.normal(50, 20, size=(4, NORMALISED_STRIP * 2 + 7, 33)).astype(np.float32)
    data[2, NORMALISED_STRIP - 1:NORMALISED_STRIP + 1, 4] = np.nan
    mean, std, bands = np.array([50.0, 40.0, 60.0, 1.0]), np.array([20.0, 3.0, 7.0, 2.0]), [2, 0]
    whole = np.pad(normalised_bands(data[bands], mean[bands], std[bands]),
                   ((6, 6), (6, 6), (0, 0)))
    image = normalised_image(data, bands, mean, std, 13)
    assert image.dtype == np.float32 and image.shape == whole.shape
    np.testing.assert_array_equal(image, whole)
    assert image[6 + NORMALISED_STRIP, 10, 0] == 0.0  # the nodata pixel, at a strip's seam


def test_window_at_the_corner_is_zero_padded() -> None:
    data, mean, std = _toy()
    image = normalised_image(data, [0, 1], mean, std, 5)
    window = cut_windows(image, np.array([0]), np.array([29]), 5)[0]
    assert window.shape == (5, 5, 2)
    assert (window[:2] == 0).all() and (window[:, 3:] == 0).all()
    np.testing.assert_allclose(window[2, 2], (data[:, 0, 29] - mean) / std)


def test_nodata_becomes_the_training_mean_zero() -> None:
    data, mean, std = _toy()
    image = normalised_image(data, [1], mean, std, 3)
    window = cut_windows(image, np.array([5]), np.array([5]), 3)[0]
    assert window[1, 1, 0] == 0.0 and np.isfinite(window).all()


def test_tf_pipeline_equals_numpy_and_selects_bands() -> None:
    data, mean, std = _toy()
    image = normalised_image(data, [1], mean, std, 5)
    rows, cols = np.array([0, 4, 19, 7]), np.array([0, 29, 3, 7])
    labels = np.array([1, 0, 1, 0])
    batches = list(window_dataset(image, rows, cols, labels, 5, batch_size=3))
    windows = np.concatenate([b[0].numpy() for b in batches])
    got_labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(windows, cut_windows(image, rows, cols, 5))
    np.testing.assert_array_equal(got_labels, labels)
    assert windows.shape == (4, 5, 5, 1)


def _parts(data: np.ndarray, size: int) -> Iterator[tuple[Part, np.ndarray]]:
    rows, cols = data.shape[1:]
    for row in range(0, rows, size):
        for col in range(0, cols, size):
            part = Part(row, col, min(size, rows - row), min(size, cols - col))
            yield part, data[:, row:row + part.rows, col:col + part.cols]


def _both(size: int, ranged: tuple[np.ndarray, np.ndarray], folder: Path,
          window: int = 5) -> tuple[ImageWindows, FileWindows]:
    data, mean, std = _toy()
    image = ImageWindows(normalised_image(data, [0, 1], mean, std, window), window)
    return image, file_windows(_parts(data, size), data.shape[1:], mean, std, window, ranged,
                               str(folder))


@pytest.mark.parametrize("size", [7, 11, 64])
def test_a_window_file_written_by_parts_gives_the_in_memory_windows(size: int,
                                                                     tmp_path: Path) -> None:
    rows, cols = np.array([0, 5, 19, 7, 13, 0]), np.array([0, 5, 3, 29, 14, 29])
    image, file = _both(size, (rows, cols), tmp_path)
    np.testing.assert_array_equal(file.cut(rows, cols), image.cut(rows, cols))
    assert file.channels == image.channels == 2


@pytest.mark.parametrize("rows, cols", [(np.array([10, 9, 12]), np.array([12, 15, 14])),
                                        (np.array([12, 10]), np.array([14, 29]))],
                         ids=["inside", "reaching-the-padding"])
def test_the_value_range_found_part_by_part_is_the_footprints(
        rows: np.ndarray, cols: np.ndarray, tmp_path: Path) -> None:
    image, file = _both(7, (rows, cols), tmp_path)
    expected = image.value_range(rows, cols)
    for got in (file.value_range(rows, cols),  # found while the file was written
                file.value_range(rows[::-1], cols[::-1])):  # other centres: read back
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    # the grid's values there are all above 0: a lowest value of 0 is the padding's
    assert (expected[0] == 0).all() == (cols.max() == 29)


def test_a_window_file_draws_the_in_memory_batches_and_leaves_no_file(tmp_path: Path) -> None:
    rows, cols = np.arange(20) % 20, (np.arange(20) * 7) % 30
    labels = np.arange(20) % 2
    image, file = _both(7, (rows, cols), tmp_path)
    assert list(tmp_path.iterdir()) == []  # unnamed from the start
    expected = image.dataset(rows, cols, labels, 6, shuffle=True, seed=3)
    got = file.dataset(rows, cols, labels, 6, shuffle=True, seed=3)
    for _ in range(2):  # two epochs: each draws a new order, the same on both
        for (a, la), (b, lb) in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            np.testing.assert_array_equal(la.numpy(), lb.numpy())


def test_each_pass_draws_every_window_once_in_a_new_order() -> None:
    """The shuffle holds no buffer: each epoch (and each cycle of a repeated set, as the
    unlabelled pool is) is a whole permutation, a new one, and the same for the same seed."""
    rows, cols = np.arange(50) % 20, (np.arange(50) * 7) % 30
    labels = np.arange(50)  # the label names the window
    image = ImageWindows(np.zeros((26, 36, 1), np.float32), 7)

    def passes(data: object, n: int) -> list[list[int]]:
        drawn = np.concatenate([lab.numpy() for _, lab in data])  # type: ignore[attr-defined]
        return [list(drawn[i * 50:(i + 1) * 50]) for i in range(n)]

    data = image.dataset(rows, cols, labels, 8, shuffle=True, seed=3)
    epochs = passes(data, 1) + passes(data, 1)
    cycles = passes(image.dataset(rows, cols, labels, 10, shuffle=True, seed=3)
                    .repeat(3), 3)
    again = passes(image.dataset(rows, cols, labels, 8, shuffle=True, seed=3), 1)
    for order in epochs + cycles:
        assert sorted(order) == list(range(50))
    assert epochs[0] != epochs[1] and cycles[0] != cycles[1] != cycles[2]
    assert again[0] == epochs[0] and epochs[0] != list(range(50))


def test_the_shuffle_holds_nothing_whatever_the_count() -> None:
    """Ten billion positions: a shuffle buffer would need 80 GB before the first came out."""
    from landslide_ssgan.data.windows import _order

    first = [int(p) for p in _order(10**10, True, 5).take(3)]
    assert all(0 <= p < 10**10 for p in first) and len(set(first)) == 3
