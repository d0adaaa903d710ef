"""The views of consistency training keep each window's label and each band's meaning."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from landslide_ssgan.data.terrain import aspect_degrees, slope_degrees
from landslide_ssgan.models.augment import (
    SYMMETRIES,
    Bands,
    Strong,
    pseudo_labels,
    strong_view,
    symmetric_view,
    turned_aspect,
    undo_symmetry,
    weak_view,
)

RESOLUTION = 10.0


def _dem(side: int = 13, seed: int = 0) -> np.ndarray:
    """An asymmetric hillside: a tilted plane, a bump off centre and noise, with a flat patch
    (aspect -1) in one corner."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((side, side), dtype=float)
    dem = 3.0 * cols - 1.5 * rows + 20 * np.exp(-((rows - 3) ** 2 + (cols - 8) ** 2) / 6)
    dem += rng.normal(0, 0.5, dem.shape)
    dem[-3:, :3] = 50.0
    return dem


def _symmetry(array: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """The same symmetry as augment._symmetry (a mirror east-west, then anticlockwise turns)."""
    return np.rot90(array[:, ::-1] if mirrored else array, k=turns)


def _angle_gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    gap = np.abs(a - b) % 360.0
    return np.minimum(gap, 360.0 - gap)


def test_a_turned_windows_aspect_is_the_aspect_of_the_turned_dem() -> None:
    dem = _dem()
    aspect = aspect_degrees(dem, RESOLUTION)
    assert (aspect == -1.0).any() and (aspect >= 0).sum() > 100
    for turns in range(4):
        for mirrored in (False, True):
            recomputed = aspect_degrees(_symmetry(dem, turns, mirrored), RESOLUTION)
            turned = turned_aspect(tf.constant(aspect), tf.constant(turns),
                                   tf.constant(mirrored)).numpy()
            moved = _symmetry(turned, turns, mirrored)
            np.testing.assert_array_equal(moved == -1.0, recomputed == -1.0)
            assert _angle_gap(moved, recomputed).max() < 1e-3, (turns, mirrored)


def _normalised_batch(count: int) -> tuple[np.ndarray, Bands, list[np.ndarray]]:
    """Windows of three bands (slope, aspect, a one-hot class), z-scored as the pipeline does."""
    dems = [_dem(seed=i) for i in range(count)]
    raw = np.stack([np.stack([slope_degrees(d, RESOLUTION), aspect_degrees(d, RESOLUTION),
                              (d > 40).astype(float)], axis=-1) for d in dems])
    mean, std = raw.mean(axis=(0, 1, 2)), raw.std(axis=(0, 1, 2))
    bands = Bands.of(("slope", "aspect", "class_a"), (False, False, True), mean, std)
    return ((raw - mean) / std).astype(np.float32), bands, dems


def test_a_maps_symmetric_views_are_the_turned_dems_bands_and_undo_back() -> None:
    """Each of the eight views a segmenter's map is averaged over (test-time augmentation)
    is what the turned ground would have given: its slope moved, its aspect the aspect of the
    turned DEM (flat ground flat); undoing the view puts a map back on the image's grid."""
    windows, bands, dems = _normalised_batch(2)
    views = Bands.of_map(("slope", "aspect", "class_a"), bands.aspect_mean * np.ones(3),
                         bands.aspect_std * np.ones(3))
    assert (views.aspect, views.aspect_mean, views.aspect_std) == (1, bands.aspect_mean,
                                                                    bands.aspect_std)
    assert len(set(SYMMETRIES)) == 8
    for turns, mirrored in SYMMETRIES:
        viewed = symmetric_view(windows, views, turns, mirrored)
        for window, view, dem in zip(windows, viewed, dems, strict=True):
            np.testing.assert_array_equal(view[..., 0], _symmetry(window[..., 0], turns,
                                                                  mirrored))
            degrees = view[..., 1] * bands.aspect_std + bands.aspect_mean
            recomputed = aspect_degrees(_symmetry(dem, turns, mirrored), RESOLUTION)
            flat = recomputed == -1.0
            assert np.abs(degrees[flat] + 1.0).max() < 1e-3
            assert _angle_gap(degrees[~flat], recomputed[~flat]).max() < 1e-2, (turns, mirrored)
        back = undo_symmetry(viewed[..., 0], turns, mirrored)
        np.testing.assert_array_equal(back, windows[..., 0])


def test_the_weak_view_turns_every_band_and_the_aspect_with_it() -> None:
    windows, bands, dems = _normalised_batch(16)
    viewed = weak_view(tf.constant(windows), bands, tf.constant([3, 7])).numpy()
    seen = set()
    for window, view, dem in zip(windows, viewed, dems, strict=True):
        # the slope band identifies the symmetry used (slope does not depend on direction)
        matches = [(t, m) for t in range(4) for m in (False, True)
                   if np.allclose(_symmetry(window[..., 0], t, m), view[..., 0])]
        assert len(matches) == 1
        turns, mirrored = matches[0]
        seen.add(matches[0])
        np.testing.assert_array_equal(view[..., 2], _symmetry(window[..., 2], turns, mirrored))
        degrees = view[..., 1] * bands.aspect_std + bands.aspect_mean
        recomputed = aspect_degrees(_symmetry(dem, turns, mirrored), RESOLUTION)
        flat = recomputed == -1.0
        assert np.abs(degrees[flat] + 1.0).max() < 1e-3
        assert _angle_gap(degrees[~flat], recomputed[~flat]).max() < 1e-2
        assert view[6, 6, 0] == _symmetry(window[..., 0], turns, mirrored)[6, 6]
    assert len(seen) >= 4  # the views differ from window to window


def test_the_strong_view_keeps_the_centre_and_cuts_a_square_elsewhere() -> None:
    windows, bands, _ = _normalised_batch(32)
    weak = weak_view(tf.constant(windows), bands, tf.constant([5, 9])).numpy()
    cut = strong_view(tf.constant(windows), bands, Strong(noise=0.0, cutout=5,
                                                          band_dropout=0.0),
                      tf.constant([5, 9])).numpy()
    np.testing.assert_array_equal(cut[:, 6, 6], weak[:, 6, 6])
    erased = (cut == 0) & (weak != 0)
    per_window = erased.any(axis=-1).sum(axis=(1, 2))
    assert ((per_window == 25) | (per_window == 24)).all()  # 24: the square held the centre


def test_the_strong_views_noise_spares_the_classes_and_dropout_drops_whole_bands() -> None:
    windows, bands, _ = _normalised_batch(64)
    weak = weak_view(tf.constant(windows), bands, tf.constant([1, 2])).numpy()
    noisy = strong_view(tf.constant(windows), bands, Strong(noise=0.5, cutout=0,
                                                            band_dropout=0.0),
                        tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(noisy[..., 2], weak[..., 2])
    assert 0.4 < np.std(noisy[..., 0] - weak[..., 0]) < 0.6
    dropped = strong_view(tf.constant(windows), bands, Strong(noise=0.0, cutout=0,
                                                              band_dropout=0.5),
                          tf.constant([1, 2])).numpy()
    whole = (dropped == 0).all(axis=(1, 2)) & ~(weak == 0).all(axis=(1, 2))
    kept = np.isclose(dropped, weak).all(axis=(1, 2))
    assert (whole | kept).all() and 0.3 < whole.mean() < 0.7


def test_pseudo_labels_respect_the_threshold() -> None:
    probability = tf.constant([0.99, 0.5, 0.02, 0.9, 0.05, 0.951])
    labels, mask = pseudo_labels(probability, 0.95)
    np.testing.assert_array_equal(labels.numpy(), [1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(mask.numpy(), [1, 0, 1, 0, 1, 1])
