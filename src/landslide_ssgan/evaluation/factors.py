"""Factor checks before training (METHOD.md, "Factor checks"): multicollinearity and importance.

- VIF_j = 1 / (1 - R_j^2) and tolerance T_j = 1 / VIF_j from regressing factor j on the others
  (statsmodels). A one-hot factor is one group of columns: its generalized VIF (Fox & Monette
  1992), GVIF = det(R_jj) det(R_-j-j) / det(R), replaces the per-dummy VIF that the dummy trap
  would blow up; GVIF^(1/(2 df)) is comparable with sqrt(VIF), so a group is flagged when
  GVIF^(1/df) > 10, which for one column is the paper's VIF > 10.
- Random-forest importance as the paper measures it: the drop in out-of-bag accuracy when a
  factor is permuted among each tree's out-of-bag samples (a one-hot factor's columns permuted
  together), beside the impurity importance and the forest's OOB score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from statsmodels.stats.outliers_influence import variance_inflation_factor

COLLINEAR_VIF = 10.0


@dataclass(frozen=True)
class FactorTable:
    """Pixel values of the factor bands, with the factor (group) each column belongs to."""

    values: pd.DataFrame
    groups: dict[str, list[str]]  # factor name -> its columns (one, or the one-hot levels)


def factor_table(values: np.ndarray, band_names: list[str], layers: list[str],
                 categorical: list[bool]) -> FactorTable:
    """`values` is (pixels, bands). For each one-hot factor the first level is dropped as the
    reference level, so the columns are not linearly dependent (the dummy trap)."""
    frame = pd.DataFrame(values, columns=band_names)
    constant = {c for c in frame.columns if frame[c].std() == 0}  # levels absent here
    groups: dict[str, list[str]] = {}
    for name, layer, is_class in zip(band_names, layers, categorical, strict=True):
        if name not in constant:
            groups.setdefault(layer if is_class else name, []).append(name)
    dropped = set(constant)
    for factor, columns in groups.items():
        is_class = categorical[band_names.index(columns[0])]
        if is_class and len(columns) > 1:
            dropped.add(columns[0])  # the reference level
            groups[factor] = columns[1:]
    return FactorTable(frame.drop(columns=sorted(dropped)), groups)


def vif_table(table: FactorTable) -> pd.DataFrame:
    """Per factor: VIF (GVIF for a one-hot group), tolerance, df, GVIF^(1/(2 df)), flag."""
    x = table.values.to_numpy(dtype=float)
    design = np.column_stack([np.ones(len(x)), x])  # with a constant, as statsmodels expects
    corr = np.corrcoef(x, rowvar=False)
    columns = list(table.values.columns)
    rows = []
    for factor, cols in table.groups.items():
        idx = [columns.index(c) for c in cols]
        if len(idx) == 1:
            vif = float(variance_inflation_factor(design, idx[0] + 1))
        else:
            rest = [i for i in range(len(columns)) if i not in idx]
            vif = float(np.linalg.det(corr[np.ix_(idx, idx)])
                        * np.linalg.det(corr[np.ix_(rest, rest)]) / np.linalg.det(corr))
        df = len(idx)
        adjusted = vif ** (1 / (2 * df))  # compare with sqrt(VIF) of one column
        rows.append({"factor": factor, "vif": vif, "tolerance": 1.0 / vif, "df": df,
                     "gvif_adjusted": adjusted, "collinear": adjusted**2 > COLLINEAR_VIF})
    return pd.DataFrame(rows).set_index("factor")


def forest_importance(table: FactorTable, labels: np.ndarray, trees: int, seed: int,
                      ) -> tuple[pd.DataFrame, float]:
    """OOB permutation importance and impurity importance per factor, and the OOB score."""
    x = table.values.to_numpy(dtype=float)
    forest = RandomForestClassifier(n_estimators=trees, oob_score=True, random_state=seed,
                                    n_jobs=-1, min_samples_leaf=2)
    forest.fit(x, labels)
    columns = list(table.values.columns)
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {factor: [] for factor in table.groups}
    for tree, in_bag in zip(forest.estimators_, forest.estimators_samples_, strict=True):
        oob = np.setdiff1d(np.arange(len(x)), in_bag)
        if len(oob) < 2:
            continue
        base = np.mean(tree.predict(x[oob]) == labels[oob])
        for factor, cols in table.groups.items():
            idx = [columns.index(c) for c in cols]
            shuffled = x[oob].copy()
            shuffled[:, idx] = shuffled[rng.permutation(len(oob))][:, idx]
            drops[factor].append(base - np.mean(tree.predict(shuffled) == labels[oob]))
    impurity = dict(zip(columns, forest.feature_importances_, strict=True))
    frame = pd.DataFrame({
        "oob_permutation": {f: float(np.mean(d)) for f, d in drops.items()},
        "oob_permutation_std": {f: float(np.std(d)) for f, d in drops.items()},
        "impurity": {f: float(sum(impurity[c] for c in cols))
                     for f, cols in table.groups.items()},
    })
    return frame.sort_values("oob_permutation", ascending=False), float(forest.oob_score_)
