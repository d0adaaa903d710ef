"""Label budgets: whole polygons, nested, withheld labels become unlabelled; paired CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from landslide_ssgan.data.sampling import Samples
from landslide_ssgan.evaluation.budgets import (
    nested_budgets,
    paired_difference,
    polygon_units,
    with_budget,
)

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)


def _samples() -> tuple[Samples, np.ndarray, np.ndarray]:
    """Six landslide polygons of different sizes and three stable areas on a 60 x 60 grid."""
    labels = np.full((60, 60), 255, np.uint8)
    ids = np.zeros((60, 60), np.int32)
    rows, cols, label = [], [], []
    for k, size in enumerate((2, 3, 4, 5, 6, 7), start=1):
        r0 = 2 + 9 * (k - 1)
        labels[r0:r0 + size, 2:2 + size] = 1
        ids[r0:r0 + size, 2:2 + size] = k
        rr, cc = np.nonzero(ids == k)
        rows += list(rr)
        cols += list(cc)
        label += [1] * len(rr)
    for k in range(3):
        labels[5 + 15 * k:10 + 15 * k, 30:40] = 0
    rr, cc = np.nonzero(labels == 0)
    rows += list(rr)
    cols += list(cc)
    label += [0] * len(rr)
    table = pd.DataFrame({"row": rows, "col": cols, "label": label, "split": "train",
                          "group": 0})
    extra = pd.DataFrame({"row": [50, 51, 52], "col": [50, 50, 50], "label": [-1, 1, 0],
                          "split": ["train", "test", "test"], "group": 0})
    return Samples(pd.concat([table, extra], ignore_index=True)), labels, ids


def test_budgets_take_whole_polygons_and_are_nested() -> None:
    samples, labels, ids = _samples()
    units = polygon_units(samples, labels, ids)
    classes = samples.of("train").label.to_numpy()
    assert len(np.unique(units[classes == 1])) == 6 and len(np.unique(units[classes == 0])) == 3
    for seed in (0, 1, 2):
        masks = nested_budgets(units, classes, FRACTIONS, seed)
        for small, large in zip(FRACTIONS, FRACTIONS[1:], strict=False):
            assert not (masks[small] & ~masks[large]).any(), "budgets are not nested"
        for fraction, mask in masks.items():
            for unit in np.unique(units):  # a polygon is kept whole or not at all
                assert len(set(mask[units == unit])) == 1
            for label in (0, 1):
                share = mask[classes == label].mean()
                assert share >= fraction - 1e-9 and (mask[classes == label]).any()
        assert masks[1.0].all()
    orders = {tuple(nested_budgets(units, classes, (0.1,), s)[0.1]) for s in range(6)}
    assert len(orders) > 1, "the seed should change which polygons come first"


def test_withheld_labels_become_unlabelled_training_windows() -> None:
    samples, labels, ids = _samples()
    keep = nested_budgets(polygon_units(samples, labels, ids),
                          samples.of("train").label.to_numpy(), (0.25,), 0)[0.25]
    reduced = with_budget(samples, keep)
    assert len(reduced.of("train")) == keep.sum()
    assert len(reduced.unlabelled()) == 1 + (~keep).sum()
    pd.testing.assert_frame_equal(reduced.of("test"), samples.of("test"))


def test_paired_difference_has_a_t_interval() -> None:
    results = pd.DataFrame({
        "split": "spatial", "budget": 0.5, "seed": [0, 1, 2, 0, 1, 2],
        "model": ["ssgan"] * 3 + ["baseline"] * 3, "f1": [0.7, 0.8, 0.9, 0.6, 0.6, 0.6]})
    row = paired_difference(results, "f1", "ssgan", "baseline").iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.2)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert row["low"] == pytest.approx(0.2 - half) and row["high"] == pytest.approx(0.2 + half)


def test_negatives_outside_the_inventory_are_units_of_their_own() -> None:
    """`sample.negatives: outside` labels single points of unknown ground as negatives: each
    is its own unit, so small budgets take a share of them rather than all or none."""
    samples, labels, ids = _samples()
    points = pd.DataFrame({"row": [40, 41, 42, 43], "col": [20, 20, 20, 20], "label": 0,
                           "split": "train", "group": 0})
    samples = Samples(pd.concat([samples.table, points], ignore_index=True))
    units = polygon_units(samples, labels, ids)
    train = samples.of("train")
    outside = labels[train.row.to_numpy(), train.col.to_numpy()] == 255
    assert outside.sum() == 4
    assert len(np.unique(units[outside])) == 4
    assert (units[outside] < 0).all()
    assert not np.isin(units[outside], units[~outside]).any()
