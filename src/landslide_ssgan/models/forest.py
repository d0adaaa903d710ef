"""A random forest on simple window features: the non-deep baseline the deep models must beat.

Features per window: the centre pixel of every band, and the window's mean and standard
deviation per band (normalised values), so the forest sees the same bands and neighbourhood
as the networks, summarised.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier


def window_features(windows: np.ndarray) -> np.ndarray:
    """(N, w, w, C) -> (N, 3C): centre values, window means, window standard deviations.

    Means and deviations are accumulated in float64, where sums of float32 values are exact,
    so the means do not depend on summation order and the map's box filters give the same
    means, to the bit, as windows cut one by one (see `dense_window_features` for the
    deviations; a window of equal values has a deviation of exactly 0 either way)."""
    half = windows.shape[1] // 2
    centre = windows[:, half, half, :]
    wide = windows.astype(np.float64)
    return np.concatenate([centre, wide.mean(axis=(1, 2)).astype(windows.dtype),
                           wide.std(axis=(1, 2)).astype(windows.dtype)], axis=1)


def fit_forest(windows: np.ndarray, labels: np.ndarray, trees: int,
               seed: int) -> RandomForestClassifier:
    forest = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, random_state=seed,
                                    n_jobs=-1)
    return forest.fit(window_features(windows), labels)


def forest_probability(forest: RandomForestClassifier, windows: np.ndarray) -> np.ndarray:
    """P(landslide) per window."""
    return probability_of_features(forest, window_features(windows))


def probability_of_features(forest: RandomForestClassifier, features: np.ndarray) -> np.ndarray:
    column = list(forest.classes_).index(1)
    return forest.predict_proba(features)[:, column]


def dense_window_features(image: np.ndarray, window: int) -> np.ndarray:
    """`window_features` of every window of a padded block (rows + w - 1, cols + w - 1, C) at
    once: (rows, cols, 3C), by box filters (separable sums of the values and of their squares,
    in float64), so a pixel costs O(C) instead of O(w * w * C): 13 to 15 times faster than
    the windows' own reductions on Chattogram's blocks. The means are the windows' to the
    bit (float64 sums of float32 values are exact); a standard deviation from the squares
    differs from the windows' two-pass one in the last float64 bits, which the float32 result
    absorbs but for about one value in two million (one float32 ulp, not enough to move a
    tree's answer in any of Chattogram's 2.2 million pixels); a window whose values are all
    equal gets exactly 0, as the windows do."""
    half, channels, area = window // 2, image.shape[2], window * window
    inner = (slice(half, image.shape[0] - half), slice(half, image.shape[1] - half))
    wide = image.astype(np.float64)
    mean = _box_sum(wide, window) / area
    variance = np.maximum(_box_sum(wide * wide, window) / area - mean * mean, 0.0)
    size = (window, window, 1)
    flat = (ndimage.maximum_filter(image, size=size)[inner]
            == ndimage.minimum_filter(image, size=size)[inner])
    variance[flat] = 0.0
    out = np.empty((*mean.shape[:2], 3 * channels), image.dtype)
    out[..., :channels] = image[inner]
    out[..., channels:2 * channels] = mean
    out[..., 2 * channels:] = np.sqrt(variance)
    return out


def _box_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sums over every window x window square (valid positions only): down, then across."""
    down = np.lib.stride_tricks.sliding_window_view(values, window, axis=0).sum(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(down, window, axis=1).sum(axis=-1)
