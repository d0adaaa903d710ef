"""The classic susceptibility yardstick: a logistic regression (statsmodels) on the bands of
each window's centre pixel.

One-hot class bands sum to one within a layer, and a class absent from the training pixels is
a constant column: either makes the design singular. Columns are therefore taken in band order
and kept only when they add to the design's rank, which drops one reference level per one-hot
layer and every constant band, so the coefficients and their standard errors are defined.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit


@dataclass(frozen=True)
class CentreLogit:
    """Fitted coefficients; P(landslide) = expit(intercept + centre[:, columns] @ slopes)."""

    columns: tuple[int, ...]      # band indices in the design (after dropping dependent ones)
    names: tuple[str, ...]        # their band names
    params: np.ndarray            # intercept, then one slope per column
    table: pd.DataFrame           # estimate, standard error, z, p-value per term

    def probability(self, centres: np.ndarray) -> np.ndarray:
        """P(landslide) from centre-pixel values (N, C) of all bands, normalised."""
        x = np.asarray(centres, np.float64)[..., list(self.columns)]
        return expit(self.params[0] + x @ self.params[1:])

    def window_probability(self, windows: np.ndarray) -> np.ndarray:
        half = windows.shape[1] // 2
        return self.probability(windows[:, half, half, :])


def independent_columns(x: np.ndarray) -> list[int]:
    """Columns, in order, that raise the rank of [1, x[:, kept]]."""
    kept: list[int] = []
    design = np.ones((len(x), 1))
    rank = 1
    for j in range(x.shape[1]):
        trial = np.column_stack([design, x[:, j]])
        if np.linalg.matrix_rank(trial) > rank:
            design, rank = trial, rank + 1
            kept.append(j)
    return kept


def fit_glm(centres: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> CentreLogit:
    """Maximum-likelihood fit; where the classes separate perfectly the estimates run off and
    statsmodels warns, and the fit stops at its iteration limit (a usable, if overconfident,
    model: its standard errors then say so). Newton's method first, BFGS where Newton's
    Hessian turns singular (a few labels, a one-hot level seen with one class only).
    statsmodels is imported here, by the processes that fit: the others (every network's
    stage, the maps) only predict, and its import costs each about half a second."""
    import statsmodels.api as sm

    x = np.asarray(centres, np.float64)
    columns = independent_columns(x)
    design = sm.add_constant(x[:, columns], has_constant="add")
    logit = sm.Logit(np.asarray(labels, float), design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / separation warnings: see docstring
        try:
            result = logit.fit(disp=0, maxiter=200)
        except np.linalg.LinAlgError:
            # Newton's method inverts the Hessian, which a class-pure level of a one-hot band
            # makes singular once its estimate has run off; BFGS needs no inverse (its
            # standard errors are then NaN where the Hessian says nothing)
            result = logit.fit(disp=0, maxiter=1000, method="bfgs")
    terms = ["intercept", *(names[j] for j in columns)]
    table = pd.DataFrame({"estimate": result.params, "std_error": result.bse,
                          "z": result.tvalues, "p_value": result.pvalues}, index=terms)
    return CentreLogit(tuple(columns), tuple(names[j] for j in columns),
                       np.asarray(result.params, np.float64), table)
