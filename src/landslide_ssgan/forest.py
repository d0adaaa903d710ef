"""A random forest on simple window features: the non-deep baseline the deep models must beat.

Features per window: the centre pixel of every band, and the window's mean and standard
deviation per band (normalised values), so the forest sees the same bands and neighbourhood
as the networks, summarised.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def window_features(windows: np.ndarray) -> np.ndarray:
    """(N, w, w, C) -> (N, 3C): centre values, window means, window standard deviations."""
    half = windows.shape[1] // 2
    centre = windows[:, half, half, :]
    return np.concatenate([centre, windows.mean(axis=(1, 2)), windows.std(axis=(1, 2))], axis=1)


def fit_forest(windows: np.ndarray, labels: np.ndarray, trees: int,
               seed: int) -> RandomForestClassifier:
    forest = RandomForestClassifier(n_estimators=trees, min_samples_leaf=2, random_state=seed,
                                    n_jobs=-1)
    return forest.fit(window_features(windows), labels)


def forest_probability(forest: RandomForestClassifier, windows: np.ndarray) -> np.ndarray:
    """P(landslide) per window."""
    column = list(forest.classes_).index(1)
    return forest.predict_proba(window_features(windows))[:, column]
