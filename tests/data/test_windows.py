"""Windows cut on the fly: at the stack's edges, over nodata, tf.data equal to numpy."""

from __future__ import annotations

import numpy as np

from landslide_ssgan.data.windows import cut_windows, normalised_image, window_dataset


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
