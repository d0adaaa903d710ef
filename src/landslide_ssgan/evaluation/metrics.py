"""Test metrics exactly as the paper defines them (METHOD.md, "Metrics"); landslide = positive.

Pure numpy, so the same functions serve validation during training, the test evaluation and
the checks against scikit-learn.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("precision", "recall", "f1", "kappa", "miou", "accuracy")


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2 x 2 counts, rows = truth (0 stable, 1 landslide), columns = prediction."""
    y_true = np.asarray(y_true).astype(int).ravel()
    y_pred = np.asarray(y_pred).astype(int).ravel()
    return np.bincount(2 * y_true + y_pred, minlength=4).reshape(2, 2)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def scores(matrix: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, Cohen's kappa, mean IoU of both classes, overall accuracy."""
    (tn, fp), (fn, tp) = matrix.astype(float)
    n = matrix.sum()
    observed = np.trace(matrix) * n
    chance = float(matrix.sum(axis=1) @ matrix.sum(axis=0))
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "kappa": _ratio(observed - chance, n * n - chance),
        "miou": (_ratio(tp, tp + fp + fn) + _ratio(tn, tn + fp + fn)) / 2,
        "accuracy": _ratio(tp + tn, n),
    }


def evaluate_probabilities(y_true: np.ndarray, probability: np.ndarray,
                           threshold: float = 0.5) -> tuple[dict[str, float], np.ndarray]:
    matrix = confusion(y_true, np.asarray(probability) >= threshold)
    return scores(matrix), matrix
