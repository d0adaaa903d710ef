"""segment: one patch segmenter (evaluate.segmenters) on one feature set.

The segmenters learn from whole patches of the training area (data/patches.py) rather than the
sample stage's windows; otherwise they are trained, logged and saved exactly as the train stage
trains a window network (stages/train.py): MLflow run, resumption, trained/<set>/<kind>/; the
calibrate stage then gives it its map threshold and prior.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from landslide_ssgan.config import Params, SampleConfig, TrainConfig
from landslide_ssgan.data.patches import load_patch_source
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.models import learners
from landslide_ssgan.stages import train as training
from landslide_ssgan.training.fit import EpochHook


def run(learner: learners.Learner, feature_set: str, data: TrainingData, *, seed: int,
        train: TrainConfig, sample: SampleConfig, rgb: tuple[str, ...], trained: str,
        restart: bool = False, on_epoch: EpochHook | None = None,
        on_patches: Callable[[str], None] | None = None) -> Path:
    """Draw the training area's patches (train.patch; labels as the sample stage's, with
    sample.negatives and sample.negative_buffer_m), say how many (`on_patches`) and train the
    segmenter on them."""
    source = load_patch_source(data, feature_set, train.patch, sample, seed)
    if on_patches is not None:
        on_patches(source.centres.summary(train.patch.batch_size))
    return training.run(learner, feature_set, data, source, seed=seed, train=train, rgb=rgb,
                        split_method=sample.split.method, trained=trained, restart=restart,
                        on_epoch=on_epoch)


def main(cfg: Params, kind: str, feature_set: str | None = None,
         restart: bool = False, on_epoch: EpochHook | None = None,
         on_patches: Callable[[str], None] | None = None) -> Path:
    """The stage as `landslide segment KIND` and dvc.yaml run it: params.yaml's settings."""
    learners.check_kinds((kind,), "MODEL", stage="segment")
    return run(learners.learner(kind), feature_set or cfg.features.set, TrainingData.of(cfg),
               seed=cfg.seed, train=cfg.train, sample=cfg.sample, rgb=cfg.features.rgb,
               trained=cfg.paths.trained, restart=restart, on_epoch=on_epoch,
               on_patches=on_patches)
