"""Windows cut on the fly from the normalised stack: the samples are only index files.

The stack is normalised once with the training statistics (nodata then becomes 0, the
training mean) and padded by half a window of zeros, so a window at the stack's edge is cut
like any other. That image is held in memory (`ImageWindows`) while it fits; a larger area's
is written part by part to an unnamed temporary file and read a window row at a time
(`FileWindows`), so memory no longer grows with the area. Both give the same windows in the
same batches: a model trained on either is the same model.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from landslide_ssgan.data.grid import Part
from landslide_ssgan.data.sampling import window_footprint
from landslide_ssgan.data.squares import square_dilation

if TYPE_CHECKING:  # imported where a dataset is made: the classifiers never load TensorFlow
    import tensorflow as tf

Range = tuple[np.ndarray, np.ndarray]  # per band: lowest and highest value
NORMALISED_STRIP = 64  # rows normalised at a time (normalised_image)


def normalised_bands(data: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(rows, cols, C) float32 of (C, rows, cols) data: z-scored, NaN -> 0."""
    chosen = (data - mean[:, None, None]) / std[:, None, None]
    return np.nan_to_num(np.moveaxis(chosen, 0, -1), nan=0.0).astype(np.float32)


def normalised_image(data: np.ndarray, bands: list[int], mean: np.ndarray, std: np.ndarray,
                     window: int) -> np.ndarray:
    """(rows + 2h, cols + 2h, C) float32: chosen bands, z-scored, NaN -> 0, zero-padded.

    Written into the padded image a strip of rows at a time: the whole stack's float64
    temporaries (several times the image) cost 7 to 10 s of page faults on first touch in
    every process that trains or fits on windows, where a strip's are reused (0.25 s on
    Chattogram); the same arithmetic, so the same bits."""
    half = window // 2
    rows, cols = data.shape[1:]
    image = np.zeros((rows + 2 * half, cols + 2 * half, len(bands)), np.float32)
    for top in range(0, rows, NORMALISED_STRIP):
        strip = normalised_bands(data[bands, top:top + NORMALISED_STRIP], mean[bands],
                                 std[bands])
        image[half + top:half + top + len(strip), half:half + cols] = strip
    return image


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
    import tensorflow as tf

    pixels = tf.constant(image)
    size = tf.constant([window, window, image.shape[-1]])
    centres = _centre_table(rows, cols, labels)

    def cut(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        row, col, label = tf.unstack(tf.gather(centres, index))
        start = tf.stack([row, col, tf.constant(0, tf.int32)])
        return tf.slice(pixels, start, size), label

    return _order(len(rows), shuffle, seed) \
        .map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
        .batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _centre_table(rows: np.ndarray, cols: np.ndarray, labels: np.ndarray) -> tf.Tensor:
    """(n, 3) int32: row, col, label of each centre, gathered by position."""
    import tensorflow as tf

    return tf.constant(np.stack([rows, cols, labels], axis=1).astype(np.int32))


def _order(count: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Positions 0..count-1, shuffled: a new permutation each pass (each epoch, each cycle of
    the unlabelled set), drawn position by position (`index_shuffle`) so that nothing is held
    whatever the count: an unlabelled pool of millions (a Sentinel-2 tile's) costs no shuffle
    buffer, and a pass that uses a fraction of it costs only that fraction. Depends on the
    count and the seed only, so every kind of window source draws the same batches."""
    import tensorflow as tf

    order = tf.data.Dataset.range(count)
    if not shuffle or count == 0:
        return order
    last = tf.constant(count - 1, tf.int64)

    def permutation(key: tf.Tensor) -> tf.data.Dataset:
        pair = tf.stack([key, tf.constant(seed, tf.int64)])
        return order.batch(4096).map(
            lambda index: tf.random.experimental.index_shuffle(index, pair, last)).unbatch()

    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    # flat_map hides the length, and Keras opens epochs' iterators differently without it
    return keys.flat_map(permutation).apply(tf.data.experimental.assert_cardinality(count))


def footprint_range(image: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    window: int) -> Range:
    """Per-band min and max over every pixel of the windows centred on (rows, cols) of a
    padded image, read from their footprint (the windows themselves are never cut: an
    unlabelled pool may hold a hundred thousand)."""
    half = window // 2
    pixels = image[window_footprint(rows + half, cols + half, image.shape[:2], window)]
    return pixels.min(axis=0), pixels.max(axis=0)


class Windows(Protocol):
    """Where a window source cuts its windows from."""

    window: int

    @property
    def channels(self) -> int: ...

    def cut(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...

    def dataset(self, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> tf.data.Dataset: ...

    def value_range(self, rows: np.ndarray, cols: np.ndarray) -> Range: ...


class ImageWindows:
    """Windows of the padded, normalised image held in memory (`normalised_image`)."""

    def __init__(self, image: np.ndarray, window: int) -> None:
        self.image, self.window = image, window

    @property
    def channels(self) -> int:
        return int(self.image.shape[-1])

    def cut(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return cut_windows(self.image, rows, cols, self.window)

    def dataset(self, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        return window_dataset(self.image, rows, cols, labels, self.window, batch_size,
                              shuffle, seed)

    def value_range(self, rows: np.ndarray, cols: np.ndarray) -> Range:
        return footprint_range(self.image, rows, cols, self.window)


class FileWindows:
    """The same padded image in an unnamed temporary file, laid out in strips of `strip`
    rows, each stored column by column ((columns, strip rows, bands) per strip), so that a
    window is two contiguous reads (the strip its top row is in and the next), served by
    the page cache with pread, which adds nothing to the process's memory (a memory map's
    touched pages would). The file has no name from the start: a killed run leaves nothing
    on disk."""

    def __init__(self, file: IO[bytes], shape: tuple[int, int, int], window: int,
                 known: tuple[np.ndarray, np.ndarray, Range] | None = None) -> None:
        self.file, self.shape, self.window = file, shape, window
        self.strip = max(16, window)  # rows per strip: a window spans two strips at most
        self.known = known  # centres whose value range was found while writing
        weakref.finalize(self, file.close)  # the file's space is freed with the source

    @property
    def channels(self) -> int:
        return self.shape[2]

    @property
    def strips(self) -> int:
        """Strips of the padded image, plus one of zeros so every window has a next one."""
        return -(-self.shape[0] // self.strip) + 1

    def span(self, strip: Any, col: Any) -> Any:
        """Byte offset of a column of a strip (ints, or arrays of them)."""
        return (strip * self.shape[1] + col) * self.strip * self.channels * 4

    def cut(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        w, s, c = self.window, self.strip, self.channels
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)  # padded = top left
        first = rows // s
        read = np.empty((len(rows), 2, w, s, c), np.float32)  # window, strip, col, row, band
        fd = self.file.fileno()
        offsets = self.span(first[:, None] + np.arange(2)[None], cols[:, None])  # both strips
        spans = read.reshape(-1, w * s * c)
        for i, offset in enumerate(offsets.ravel().tolist()):
            if os.preadv(fd, [spans[i].data], offset) != spans[i].nbytes:
                raise OSError(f"{self.file.name}: the window file ended early")
        columns = read.transpose(0, 2, 1, 3, 4).reshape(len(rows), w, 2 * s, c)
        top = (rows - first * s)[:, None] + np.arange(w)[None]  # rows within the two strips
        return columns[np.arange(len(rows))[:, None, None], np.arange(w)[None, None, :],
                       top[:, :, None]]  # (window, row, col, band)

    def write(self, top: int, left: int, image: np.ndarray) -> None:
        """Put (rows, cols, bands) pixels at padded row `top`, column `left`: each strip they
        touch is read, filled in and written back."""
        fd, s = self.file.fileno(), self.strip
        for strip in range(top // s, (top + image.shape[0] - 1) // s + 1):
            low, high = max(top, strip * s), min(top + image.shape[0], (strip + 1) * s)
            block = np.empty((image.shape[1], s, self.channels), np.float32)
            os.preadv(fd, [block.data], self.span(strip, left))
            block[:, low - strip * s:high - strip * s] = \
                image[low - top:high - top].transpose(1, 0, 2)
            os.pwrite(fd, block.tobytes(), self.span(strip, left))

    def dataset(self, rows: np.ndarray, cols: np.ndarray, labels: np.ndarray, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
        import tensorflow as tf

        shape = (None, self.window, self.window, self.channels)
        centres = _centre_table(rows, cols, labels)

        def cut(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            row, col, label = tf.unstack(tf.gather(centres, index), axis=1)
            windows = tf.numpy_function(self.cut, [row, col], tf.float32, stateful=False)
            return tf.ensure_shape(windows, shape), label

        return _order(len(rows), shuffle, seed).batch(batch_size) \
            .map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
            .prefetch(tf.data.AUTOTUNE)

    def value_range(self, rows: np.ndarray, cols: np.ndarray) -> Range:
        if self.known is not None and np.array_equal(self.known[0], rows) \
                and np.array_equal(self.known[1], cols):
            return self.known[2]
        low, high = _empty_range(self.channels)
        for start in range(0, len(rows), 4096):
            windows = self.cut(rows[start:start + 4096], cols[start:start + 4096])
            low = np.minimum(low, windows.min(axis=(0, 1, 2)))
            high = np.maximum(high, windows.max(axis=(0, 1, 2)))
        return low, high


def file_windows(parts: Iterator[tuple[Part, np.ndarray]], grid_shape: tuple[int, int],
                 mean: np.ndarray, std: np.ndarray, window: int, ranged: tuple[np.ndarray,
                 np.ndarray], folder: str | None = None) -> FileWindows:
    """Write the padded, normalised image of the chosen bands' parts ((C, rows, cols) each)
    to a temporary file, and find the value range of the windows centred on `ranged`
    (rows, cols) on the way, part by part."""
    half = window // 2
    shape = (grid_shape[0] + 2 * half, grid_shape[1] + 2 * half, len(mean))
    file = tempfile.TemporaryFile(dir=folder, prefix="landslide-windows-")  # noqa: SIM115
    try:
        windows = FileWindows(file, shape, window)
        file.truncate(windows.span(windows.strips, 0))  # the zero padding, without writing it
        low, high = _padding_range(*ranged, grid_shape, half, shape[2])
        for part, data in parts:
            image = normalised_bands(data, mean, std)
            windows.write(part.row + half, part.col + half, image)
            part_low, part_high = _part_range(image, part, *ranged, window)
            low, high = np.minimum(low, part_low), np.maximum(high, part_high)
    except BaseException:
        file.close()
        raise
    windows.known = (ranged[0], ranged[1], (low, high))
    return windows


def _padding_range(rows: np.ndarray, cols: np.ndarray, grid_shape: tuple[int, int], half: int,
                   channels: int) -> Range:
    """The zero padding's part of the range: 0 in every band when a window reaches past the
    grid's edge, nothing otherwise."""
    reaches_out = ((rows < half) | (cols < half) | (rows >= grid_shape[0] - half)
                   | (cols >= grid_shape[1] - half)).any()
    zero = np.zeros(channels, np.float32)
    return (zero, zero) if reaches_out else _empty_range(channels)


def _empty_range(channels: int) -> Range:
    """The range of no value at all: what any value's min and max replace."""
    return np.full(channels, np.inf, np.float32), np.full(channels, -np.inf, np.float32)


def _part_range(image: np.ndarray, part: Part, rows: np.ndarray, cols: np.ndarray,
                window: int) -> Range:
    """Min and max of the part's pixels that some window centred on (rows, cols) covers:
    the centres within half a window of the part, dilated by the window, cut back to it."""
    half = window // 2
    near = ((rows >= part.row - half) & (rows < part.row + part.rows + half)
            & (cols >= part.col - half) & (cols < part.col + part.cols + half))
    centres = np.zeros((part.rows + 2 * half, part.cols + 2 * half), bool)
    centres[rows[near] - part.row + half, cols[near] - part.col + half] = True
    footprint = square_dilation(centres, window)
    pixels = image[footprint[half:half + part.rows, half:half + part.cols]]
    if len(pixels) == 0:
        return _empty_range(image.shape[-1])
    return pixels.min(axis=0), pixels.max(axis=0)
