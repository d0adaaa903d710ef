"""VIF, tolerance, one-hot factors and random-forest importance."""

from __future__ import annotations

import numpy as np
import pytest

from landslide_ssgan.data.inventory import LANDSLIDE, STABLE
from landslide_ssgan.data.stack import Stack
from landslide_ssgan.evaluation.factors import factor_table, forest_importance, vif_table


def _continuous_table(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.8 * a + 0.6 * rng.normal(size=n)
    c = rng.normal(size=n)
    values = np.column_stack([a, b, c])
    return values, factor_table(values, ["a", "b", "c"], ["a", "b", "c"], [False] * 3)


def test_vif_matches_a_direct_regression() -> None:
    values, table = _continuous_table()
    vif = vif_table(table)
    for j, name in enumerate(["a", "b", "c"]):
        others = np.column_stack([np.ones(len(values)), np.delete(values, j, axis=1)])
        coef, *_ = np.linalg.lstsq(others, values[:, j], rcond=None)
        residual = values[:, j] - others @ coef
        r2 = 1 - residual.var() / values[:, j].var()
        assert vif.loc[name, "vif"] == pytest.approx(1 / (1 - r2), rel=1e-6)
        assert vif.loc[name, "tolerance"] == pytest.approx(1 - r2, rel=1e-6)
    assert vif.loc["a", "vif"] > 1.5 and vif.loc["c", "vif"] < 1.1


def test_collinear_factor_is_flagged() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=300)
    values = np.column_stack([a, a + 0.01 * rng.normal(size=300), rng.normal(size=300)])
    vif = vif_table(factor_table(values, ["a", "b", "c"], ["a", "b", "c"], [False] * 3))
    assert vif.loc["a", "collinear"] and vif.loc["b", "collinear"]
    assert not vif.loc["c", "collinear"]


def test_one_hot_factor_avoids_the_dummy_trap() -> None:
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 3, 500)
    onehot = np.eye(3)[classes]
    other = rng.normal(size=500)
    values = np.column_stack([other, onehot, np.zeros(500)])  # plus a level never present
    names = ["x", "geo_a", "geo_b", "geo_c", "geo_d"]
    table = factor_table(values, names, ["x", "geo", "geo", "geo", "geo"],
                         [False, True, True, True, True])
    # the absent level and one reference level are dropped: no columns that sum to one
    assert table.groups["geo"] == ["geo_b", "geo_c"]
    vif = vif_table(table)
    assert np.isfinite(vif.loc["geo", "vif"]) and vif.loc["geo", "vif"] < 1.2
    assert vif.loc["geo", "df"] == 2
    assert vif.loc["geo", "tolerance"] == pytest.approx(1 / vif.loc["geo", "vif"])


def test_permutation_importance_ranks_a_planted_factor_first(crop_stack: Stack,
                                                             crop_labels: tuple) -> None:
    labels, _ = crop_labels
    valid = crop_stack.valid & ((labels == LANDSLIDE) | (labels == STABLE))
    rows, cols = np.nonzero(valid)
    bands = crop_stack.indices("factors")
    values = crop_stack.data[bands][:, rows, cols].T
    y = (labels[rows, cols] == LANDSLIDE).astype(int)
    rng = np.random.default_rng(3)
    planted = y + 0.3 * rng.normal(size=len(y))  # informative by construction
    noise = rng.normal(size=len(y))  # uninformative by construction
    names = [crop_stack.bands[i].name for i in bands] + ["planted", "noise"]
    layers = [crop_stack.bands[i].layer for i in bands] + ["planted", "noise"]
    categorical = [crop_stack.bands[i].categorical for i in bands] + [False, False]
    table = factor_table(np.column_stack([values, planted, noise]), names, layers, categorical)
    importance, oob = forest_importance(table, y, trees=60, seed=0)
    assert importance.index[0] == "planted"
    assert importance.loc["noise", "oob_permutation"] < importance.loc["planted",
                                                                       "oob_permutation"] / 5
    assert 0.5 < oob <= 1.0
    assert set(importance.index) == set(table.groups)
