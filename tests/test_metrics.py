"""Metrics exactly as METHOD.md defines them, against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    f1_score,
    jaccard_score,
    precision_score,
    recall_score,
)

from landslide_ssgan.evaluation.metrics import confusion, evaluate_probabilities, scores


def test_hand_computed_matrix() -> None:
    # TP 40, FP 10, FN 20, TN 30 (N = 100)
    matrix = np.array([[30, 10], [20, 40]])
    got = scores(matrix)
    assert got["precision"] == pytest.approx(40 / 50)
    assert got["recall"] == pytest.approx(40 / 60)
    assert got["f1"] == pytest.approx(80 / 110)
    # kappa = (N * sum X_ii - sum X_i+ X_+i) / (N^2 - sum X_i+ X_+i)
    chance = 40 * 50 + 60 * 50
    assert got["kappa"] == pytest.approx((100 * 70 - chance) / (100**2 - chance))
    assert got["miou"] == pytest.approx((40 / 70 + 30 / 60) / 2)
    assert got["accuracy"] == pytest.approx(0.7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 500)
    probability = np.clip(truth * 0.3 + rng.random(500) * 0.7, 0, 1)
    got, matrix = evaluate_probabilities(truth, probability, 0.5)
    predicted = probability >= 0.5
    assert matrix.sum() == 500
    assert got["precision"] == pytest.approx(precision_score(truth, predicted))
    assert got["recall"] == pytest.approx(recall_score(truth, predicted))
    assert got["f1"] == pytest.approx(f1_score(truth, predicted))
    assert got["kappa"] == pytest.approx(cohen_kappa_score(truth, predicted))
    assert got["miou"] == pytest.approx(jaccard_score(truth, predicted, average="macro"))
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, predicted))


def test_degenerate_predictions_do_not_divide_by_zero() -> None:
    got = scores(confusion(np.zeros(10), np.zeros(10)))
    assert got["precision"] == 0.0 and got["recall"] == 0.0 and got["accuracy"] == 1.0
