"""Label budgets for the label-efficiency study, and the statistics of its results.

A budget keeps a fraction of the labelled training windows, taken whole inventory polygons at
a time (a landslide is labelled or not, never half of it), and the windows whose labels are
withheld join the unlabelled pool, as they would for a team that mapped fewer landslides. The
budgets of one seed are nested: the polygons are put in one random order and each budget
takes the shortest prefix that reaches its share, so the 10 % set contains the 5 % set.

Pure numpy / pandas / scipy; the study runner wires it to training and MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from landslide_ssgan.data.sampling import LANDSLIDE, STABLE, UNLABELLED, Samples


def polygon_units(samples: Samples, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The polygon of every labelled training window: the inventory id for landslide windows,
    a negative number per connected stable area for stable windows, and for a negative window
    outside the inventory (`sample.negatives: outside`) a negative number of its own (it was
    labelled as a point, not as part of a polygon)."""
    train = samples.of("train")
    rows, cols = train.row.to_numpy(), train.col.to_numpy()
    stable_areas, n_areas = ndimage.label(labels == STABLE, structure=np.ones((3, 3), bool))
    is_slide = train.label.to_numpy() == LANDSLIDE
    area = stable_areas[rows, cols].astype(np.int64)
    point = n_areas + 1 + np.arange(len(train))
    negative = -np.where(area > 0, area, point)
    return np.where(is_slide, ids[rows, cols], negative).astype(np.int64)


def nested_budgets(units: np.ndarray, classes: np.ndarray, fractions: Sequence[float],
                   seed: int) -> dict[float, np.ndarray]:
    """Per fraction, a mask over the labelled training windows: for each class, the shortest
    prefix of a seeded random order of its polygons that holds at least that fraction of
    the class's windows (at least one polygon)."""
    rng = np.random.default_rng(seed)
    masks = {f: np.zeros(len(units), bool) for f in fractions}
    for label in np.unique(classes):
        of_class = classes == label
        order = rng.permutation(np.unique(units[of_class]))
        counts = np.array([(units[of_class] == u).sum() for u in order])
        reached = np.cumsum(counts) / counts.sum()
        for fraction in fractions:
            taken = order[:int(np.searchsorted(reached, fraction - 1e-9)) + 1]
            masks[fraction] |= of_class & np.isin(units, taken)
    return masks


def with_budget(samples: Samples, keep: np.ndarray) -> Samples:
    """The samples with the labels of the training windows outside `keep` withheld (they
    become unlabelled training windows); validation and test are untouched."""
    table = samples.table.copy()
    train_labelled = np.flatnonzero(((table.split == "train")
                                     & (table.label != UNLABELLED)).to_numpy())
    withheld = train_labelled[~keep]
    table.loc[table.index[withheld], "label"] = UNLABELLED
    return Samples(table)


def paired_difference(results: pd.DataFrame, metric: str, a: str, b: str,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Per split and budget: mean of (a - b) over seeds with a t confidence interval; pairs
    share seed and budget, hence the same labelled windows."""
    wide = results.pivot_table(index=["split", "budget", "seed"], columns="model",
                               values=metric)
    diff = (wide[a] - wide[b]).dropna().rename("diff").reset_index()
    rows = []
    for (split, budget), group in diff.groupby(["split", "budget"]):
        values = group["diff"].to_numpy()
        mean = float(values.mean())
        if len(values) > 1:
            half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                         * values.std(ddof=1) / np.sqrt(len(values)))
        else:
            half = float("nan")
        rows.append({"split": split, "budget": budget, "n": len(values), "mean": mean,
                     "low": mean - half, "high": mean + half})
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds per split, budget and model."""
    grouped = results.groupby(["split", "budget", "model"])
    table = grouped[list(metrics)].agg(["mean", "std"])
    table["labelled_windows"] = grouped["labelled_windows"].mean()
    return table
