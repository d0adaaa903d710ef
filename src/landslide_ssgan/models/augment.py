"""Views of a batch of normalised windows for consistency training (issue 17, FixMatch family),
and the symmetric views a segmenter's map is averaged over (test-time augmentation).

A window is labelled by its centre pixel, so every view keeps the centre where it is and the
label with it:

- the weak view turns and mirrors each window (one of the eight symmetries of the square).
  Every band keeps its meaning: the aspect band is a compass direction, so it turns with the
  window (and flat ground, aspect -1, stays flat); slope, distances, classes and reflectances
  do not depend on direction.
- the strong view adds what French et al. (BMVC 2020) found to work for segmentation: noise
  on the continuous bands, a cut-out square (the centre pixel is kept) and whole bands dropped
  to the training mean (0 after normalisation).

Pure TensorFlow on (batch, w, w, bands) tensors of z-scored bands, so it runs inside a
`train_step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

FLAT_ASPECT = -1.0  # data.terrain.FLAT_ASPECT: the aspect GIS packages give flat ground


@dataclass(frozen=True)
class Bands:
    """What the views must know about the window's bands: where the aspect band is and how it
    was normalised (to turn it in degrees), and which bands are classes (no noise on them)."""

    aspect: int | None
    aspect_mean: float
    aspect_std: float
    categorical: tuple[bool, ...]

    @classmethod
    def of(cls, names: Sequence[str], categorical: Sequence[bool], mean: np.ndarray,
           std: np.ndarray) -> Bands:
        aspect = list(names).index("aspect") if "aspect" in names else None
        return cls(aspect, float(mean[aspect]) if aspect is not None else 0.0,
                   float(std[aspect]) if aspect is not None else 1.0, tuple(categorical))

    @classmethod
    def of_map(cls, names: Sequence[str], mean: np.ndarray, std: np.ndarray) -> Bands:
        """What a map's symmetric views need: the aspect band (they add no noise, so no band
        needs to be known as a class)."""
        return cls.of(names, [False] * len(names), mean, std)


def turned_aspect(degrees: tf.Tensor, quarter_turns: tf.Tensor, mirrored: tf.Tensor
                  ) -> tf.Tensor:
    """The compass direction a slope faces after its window is mirrored east-west (if
    `mirrored`) and then turned `quarter_turns` times anticlockwise (tf.image.rot90): a mirror
    sends east to west (a -> 360 - a), an anticlockwise quarter turn sends north to west
    (a -> a - 90). Flat ground stays flat."""
    quarter_turns = tf.cast(quarter_turns, degrees.dtype)
    mirrored = tf.cast(mirrored, tf.bool)
    mirrored_degrees = tf.where(mirrored, 360.0 - degrees, degrees)
    turned = tf.math.floormod(mirrored_degrees - 90.0 * quarter_turns, 360.0)
    return tf.where(degrees == FLAT_ASPECT, degrees, turned)


def _symmetry(window: tf.Tensor, quarter_turns: tf.Tensor, mirrored: tf.Tensor) -> tf.Tensor:
    window = tf.cond(mirrored, lambda: tf.image.flip_left_right(window), lambda: window)
    return tf.image.rot90(window, k=quarter_turns)


def weak_view(windows: tf.Tensor, bands: Bands, seed: tf.Tensor) -> tf.Tensor:
    """Each window turned by a random multiple of 90 degrees and mirrored with probability
    1/2 (`seed`: a stateless seed of shape (2,)); the aspect band turned with it."""
    n = tf.shape(windows)[0]
    turns = tf.random.stateless_uniform([n], seed, 0, 4, dtype=tf.int32)
    mirrors = tf.random.stateless_uniform([n], seed + 1, 0, 2, dtype=tf.int32) > 0
    viewed = tf.map_fn(lambda args: _symmetry(*args), (windows, turns, mirrors),
                       fn_output_signature=windows.dtype)
    return _aspect_turned(viewed, bands, turns[:, None, None], mirrors[:, None, None])


def _aspect_turned(viewed: tf.Tensor, bands: Bands, turns: tf.Tensor | int,
                   mirrors: tf.Tensor | bool) -> tf.Tensor:
    """`viewed` (turned and mirrored images) with its z-scored aspect band turned as the
    images were (`turns` and `mirrors` broadcast against (N, rows, cols))."""
    if bands.aspect is None:
        return viewed
    z = viewed[..., bands.aspect]
    degrees = z * bands.aspect_std + bands.aspect_mean
    flat = tf.abs(degrees - FLAT_ASPECT) < 1e-3
    degrees = tf.where(flat, FLAT_ASPECT, degrees)
    turned = turned_aspect(degrees, turns, mirrors)
    turned_z = tf.where(flat, z, (turned - bands.aspect_mean) / bands.aspect_std)
    return tf.concat([viewed[..., :bands.aspect], turned_z[..., None],
                      viewed[..., bands.aspect + 1:]], axis=-1)


SYMMETRIES = tuple((turns, mirrored) for turns in range(4) for mirrored in (False, True))


def symmetric_view(images: np.ndarray, bands: Bands, turns: int, mirrored: bool
                   ) -> np.ndarray:
    """Normalised images (N, rows, cols, C) in one of the square's eight symmetries (mirrored
    east-west if `mirrored`, then turned `turns` times anticlockwise, as the weak view does),
    the aspect band turned with them: one of the views a segmenter's map is the mean of."""
    viewed = np.rot90(images[:, :, ::-1] if mirrored else images, turns, axes=(1, 2))
    return np.asarray(_aspect_turned(tf.constant(np.ascontiguousarray(viewed)), bands,
                                     turns, mirrored))


def undo_symmetry(maps: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """Maps (N, rows, cols) of a symmetric view back on the images' own grid."""
    back = np.rot90(maps, -turns, axes=(1, 2))
    return back[:, :, ::-1] if mirrored else back


@dataclass(frozen=True)
class Strong:
    """The strong view's settings: noise (standard deviations, on the continuous bands), the
    side of the cut-out square in pixels (0: none) and the chance each band is dropped."""

    noise: float = 0.1
    cutout: int = 5
    band_dropout: float = 0.1


def strong_view(windows: tf.Tensor, bands: Bands, strong: Strong, seed: tf.Tensor
                ) -> tf.Tensor:
    """The weak view, then noise on the continuous bands, a cut-out square that never covers
    the centre pixel, and whole bands set to their training mean (0)."""
    return perturbed(weak_view(windows, bands, seed), bands, strong, seed)


def perturbed(viewed: tf.Tensor, bands: Bands, strong: Strong, seed: tf.Tensor) -> tf.Tensor:
    """The strong view's changes that move no pixel (so a segmenter's pseudo-labels of the
    same patch still line up): noise on the continuous bands, a cut-out square that never
    covers the centre pixel, and whole bands set to their training mean (0)."""
    shape = tf.shape(viewed)
    n, side, channels = shape[0], shape[1], shape[3]
    continuous = tf.constant([0.0 if c else 1.0 for c in bands.categorical], viewed.dtype)
    noise = tf.random.stateless_normal(shape, seed + 2, stddev=strong.noise, dtype=viewed.dtype)
    viewed = viewed + noise * continuous
    keep = tf.ones_like(viewed)
    if strong.cutout > 0:
        corner = tf.random.stateless_uniform([n, 2], seed + 3, 0, side - strong.cutout + 1,
                                             dtype=tf.int32)
        rows = tf.range(side)[None, :, None]
        cols = tf.range(side)[None, None, :]
        inside = ((rows >= corner[:, 0, None, None]) & (rows < corner[:, 0, None, None]
                                                         + strong.cutout)
                  & (cols >= corner[:, 1, None, None]) & (cols < corner[:, 1, None, None]
                                                          + strong.cutout))
        centre = (rows == side // 2) & (cols == side // 2)
        keep = keep * tf.cast(~(inside & ~centre), viewed.dtype)[..., None]
    dropped = tf.random.stateless_uniform([n, 1, 1, channels], seed + 4) < strong.band_dropout
    keep = keep * tf.cast(~dropped, viewed.dtype)
    return viewed * keep


def pseudo_labels(probability: tf.Tensor, threshold: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Hard labels from the weak view's P(landslide), and the mask of those confident enough
    to train on: P >= threshold (landslide) or P <= 1 - threshold (not)."""
    labels = tf.cast(probability >= 0.5, tf.int32)
    confidence = tf.maximum(probability, 1.0 - probability)
    return labels, tf.cast(confidence >= threshold, probability.dtype)
