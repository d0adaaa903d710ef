"""A random forest on simple window features: the non-deep baseline the deep models must beat.

Features per window: the centre pixel of every band, and the window's mean and standard
deviation per band (normalised values), so the forest sees the same bands and neighbourhood
as the networks, summarised.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def window_features(windows: np.ndarray) -> np.ndarray:
    """(N, w, w, C) -> (N, 3C): centre values, window means, window standard deviations.

    Means and deviations are accumulated in float64, where sums of float32 values are exact,
    so they do not depend on summation order: the map's box filters give the same features,
    to the bit, as windows cut one by one (a tree splitting between a standard deviation of
    0 and 1e-7 would otherwise see different windows)."""
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
    once: (rows, cols, 3C). Window means and standard deviations are box filters, so the map
    gets exactly the features each window would."""
    views = np.lib.stride_tricks.sliding_window_view(image, (window, window), axis=(0, 1))
    half = window // 2
    rows, cols, channels = views.shape[:3]
    out = np.empty((rows, cols, 3 * channels), image.dtype)
    out[..., :channels] = image[half:image.shape[0] - half, half:image.shape[1] - half, :]
    for row in range(rows):  # one row of windows at a time: memory stays at one row's windows
        wide = views[row].astype(np.float64)
        out[row, :, channels:2 * channels] = wide.mean(axis=(-2, -1))
        out[row, :, 2 * channels:] = wide.std(axis=(-2, -1))
    return out
