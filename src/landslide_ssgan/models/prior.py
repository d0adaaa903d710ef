"""Probabilities at the mapped area's landslide prevalence, not at the training windows'.

A classifier trained on balanced windows learns P(landslide | window) under a 50 % landslide
prior; a study area has landslides on a fraction of a percent of its ground. Bayes' rule
moves a probability from one prior to another without retraining: the logit shifts by the
difference of the two log prior odds (Saerens et al., 2002). The shift is monotone, so a
threshold chosen on the uncorrected map becomes the corrected threshold by the same shift and
the class map is unchanged; only the probabilities become honest.

Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Prior:
    trained: float  # landslide share the model was trained at (of its labelled windows)
    area: float     # landslide share of the area it maps
    source: str     # where `area` came from

    def __post_init__(self) -> None:
        for name in ("trained", "area"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"prior {name} must lie strictly between 0 and 1, got {value}")

    @property
    def logit_shift(self) -> float:
        return _logit(self.area) - _logit(self.trained)

    def correct(self, probability: np.ndarray | float) -> np.ndarray:
        """P(landslide) at the area's prevalence; NaN stays NaN; float64 arithmetic, returned
        in the input's float type."""
        p = np.asarray(probability)
        wide = p.astype(np.float64)
        odds_ratio = np.exp(self.logit_shift)
        with np.errstate(invalid="ignore"):
            corrected = wide * odds_ratio / (wide * odds_ratio + (1.0 - wide))
        return corrected.astype(p.dtype if p.dtype.kind == "f" else np.float64)

    def correct_threshold(self, threshold: float, dtype: Any = np.float32) -> float:
        """The corrected threshold, rounded as the corrected map's values are (`dtype`), so
        `correct(p) >= correct_threshold(t)` holds exactly where `p >= t`."""
        return float(self.correct(np.asarray(threshold, dtype=dtype)))

    def as_dict(self) -> dict[str, Any]:
        return {"trained": self.trained, "area": self.area, "source": self.source}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Prior:
        return cls(float(raw["trained"]), float(raw["area"]), str(raw.get("source", "")))


def trained_share(labels: np.ndarray, class_weighting: bool = False) -> float:
    """The landslide prior a model learns from its labelled training windows: their landslide
    share, or one half when the loss weighs the two classes equally."""
    labels = np.asarray(labels)
    if class_weighting or not len(labels):
        return 0.5
    return float(np.clip((labels == 1).mean(), 1e-6, 1 - 1e-6))


def balanced(probability: np.ndarray, trained: float) -> np.ndarray:
    """Probabilities at a one-half prior, the balanced windows' (the paper's protocol), from a
    model trained at `trained`: a segmenter learns at its patches' landslide share (under 1 %),
    so at 0.5 it would call nothing a landslide on balanced windows. Unchanged (the very same
    values) for a model trained at one half."""
    if trained == 0.5:
        return probability
    return Prior(trained, 0.5, "balanced windows").correct(probability)


def _logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))
