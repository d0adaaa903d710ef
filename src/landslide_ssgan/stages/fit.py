"""fit: one classifier on window features (the random forest, the GLM) on one feature set.

A classifier is fitted at once rather than trained by epochs, and reads only its own train
settings (train.forest_trees, train.threshold): a stage of its own, so that changing a
network's settings (`dvc exp run -S train.epochs=2`) leaves it up to date. Otherwise it is
logged and saved exactly as the train stage saves a window network (stages/train.py): MLflow
run, trained/<set>/<kind>/; the calibrate stage then gives it its map threshold and prior.
"""

from __future__ import annotations

from pathlib import Path

from landslide_ssgan.config import Params
from landslide_ssgan.models import learners
from landslide_ssgan.stages import train as training


def main(cfg: Params, kind: str, feature_set: str | None = None) -> Path:
    """The stage as `landslide fit KIND` and dvc.yaml run it: params.yaml's settings, the
    sample stage's windows of `feature_set` (default features.set)."""
    learners.check_kinds((kind,), "MODEL", stage="fit")
    return training.train_windows(cfg, learners.learner(kind), feature_set)
