"""Windows cut on the fly from the in-memory stack: the samples are only index files.

The stack is normalised once with the training statistics (nodata then becomes 0, the
training mean) and padded by half a window of zeros, so a window at the stack's edge is cut
like any other. A tf.data pipeline slices windows by their centre; nothing is materialised.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def normalised_image(data: np.ndarray, bands: list[int], mean: np.ndarray, std: np.ndarray,
                     window: int) -> np.ndarray:
    """(rows + 2h, cols + 2h, C) float32: chosen bands, z-scored, NaN -> 0, zero-padded."""
    half = window // 2
    chosen = (data[bands] - mean[bands, None, None]) / std[bands, None, None]
    image = np.nan_to_num(np.moveaxis(chosen, 0, -1), nan=0.0).astype(np.float32)
    return np.pad(image, ((half, half), (half, half), (0, 0)))


def cut_windows(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                window: int) -> np.ndarray:
    """Windows centred on (rows, cols) of the unpadded grid, from a padded image: (N, w, w, C).
    The numpy twin of the tf.data pipeline, for batch use and checks."""
    offsets = np.arange(window)
    r = rows[:, None, None] + offsets[None, :, None]
    c = cols[:, None, None] + offsets[None, None, :]
    return image[r, c]


def window_dataset(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray,
                   window: int, batch_size: int, shuffle: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """(windows, labels) batches; `image` comes from `normalised_image`."""
    pixels = tf.constant(image)
    size = tf.constant([window, window, image.shape[-1]])

    def cut(row: tf.Tensor, col: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        start = tf.stack([row, col, tf.constant(0, tf.int32)])
        return tf.slice(pixels, start, size), label

    data = tf.data.Dataset.from_tensor_slices(
        (rows.astype(np.int32), cols.astype(np.int32), labels.astype(np.int32)))
    if shuffle:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return data.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
        .batch(batch_size).prefetch(tf.data.AUTOTUNE)
