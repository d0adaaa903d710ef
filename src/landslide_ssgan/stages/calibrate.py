"""calibrate: each trained model (trained/<set>/<kind>/) is given what its map needs, on the
validation area, and becomes models/<set>/<kind>/, ready to evaluate, map and serve.

Apart from the train and segment stages so that choosing thresholds, the prior, the realism
check or the MLflow model reruns in minutes without retraining anything. For each model:

- its map of the validation area (every pixel, real prevalence) chooses the map threshold
  (best F1, or calibrate.target_recall) and gives the validation map scores (AUPRC chooses the
  champion in the register stage);
- its prior: the landslide share it learnt at (recorded by train) and the area's
  (calibrate.prevalence), which `map.prior_correction` moves its probabilities between;
- a segmenter's views (calibrate.symmetries): its map the mean over the tile turned and
  mirrored in the square's 8 symmetries, recorded so that evaluate, map and serving answer
  alike;
- an SSGAN's generator is checked for realism (can a forest tell its windows from real ones);
- all of that goes to model.json and to the model's MLflow training run, with the pyfunc
  model that the registry and `landslide serve` take (tag `model_uri`).

Each folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from landslide_ssgan.config import CalibrateConfig, Params
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import scoring
from landslide_ssgan.evaluation.realism import real_and_generated, real_vs_generated_auroc
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.ops import pyfunc, tracking

REALISM_WINDOWS = 1000  # real and generated windows each for the real-vs-generated check


@dataclass(frozen=True)
class Target:
    feature_set: str
    name: str  # a kind of the learner table, or bundle.TUNED


def targets(window_kinds: tuple[str, ...], feature_sets: tuple[str, ...],
            segmenters: tuple[str, ...], main_set: str, trained: str) -> list[Target]:
    """What dvc.yaml trains and fits (evaluate.networks and evaluate.classifiers on every
    feature set, evaluate.segmenters on features.set) and the tuned model, where the tune
    stage left one."""
    found = [Target(s, k) for s in feature_sets for k in window_kinds]
    found += [Target(main_set, k) for k in segmenters]
    if bundle.model_dir(trained, main_set, bundle.TUNED).is_dir():
        found.append(Target(main_set, bundle.TUNED))
    return found


def run(chosen: list[Target], data: TrainingData, cfg: CalibrateConfig, *, trained: str,
        models: str, seed: int) -> Iterator[tuple[Target, dict[str, Any]]]:
    """Calibrate every chosen model in turn, yielding each one's model.json as it is done."""
    ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
    for target in chosen:
        source = bundle.model_dir(trained, target.feature_set, target.name)
        out = bundle.model_dir(models, target.feature_set, target.name)
        yield target, calibrate(source, out, target.feature_set, data, ground, cfg, seed)


def calibrate(source: Path, out: Path, feature_set: str, data: TrainingData,
              ground: scoring.Ground, cfg: CalibrateConfig, seed: int) -> dict[str, Any]:
    """One trained folder -> its calibrated copy `out`, logged to its training run."""
    if not source.is_dir():
        raise InputError(f"{source}: not found; train it first (`dvc repro`, or `landslide "
                         f"train` / `landslide segment` {source.name} --feature-set "
                         f"{feature_set})")
    info = bundle.read_info(source)
    if "trained_prior" not in info:
        raise InputError(f"{source}: not a trained model (no trained_prior in "
                         f"{bundle.INFO}); train it first (`dvc repro` or `landslide train`)")
    run_id = _training_run(source)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    prior = scoring.model_prior(float(info["trained_prior"]), cfg, ground)
    learner = learners.learner(info["kind"])
    if learner.patches:  # before the threshold: it is chosen on the map the views make
        bundle.save_info(staging, {**info, "symmetries": cfg.symmetries})
    with tracking.start_run(run_id=run_id):
        scoring.record_threshold(info["kind"], staging, data.stack, ground, cfg, prior)
        tracking.log_model_info(bundle.read_info(staging))
        if learner.generator and not learner.patches:
            _record_realism(staging, feature_set, data, seed)
        model_uri = pyfunc.log_window_model(staging, pyfunc.pinned_requirements())
        mlflow.set_tag("model_uri", model_uri)
    bundle.save_run(staging, run_id, model_uri)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return bundle.read_info(out)


def _training_run(folder: Path) -> str:
    """The MLflow run the model was trained in; a one-line error where the tracking store
    no longer holds it (its calibration has nowhere to go)."""
    run_id = bundle.read_run(folder)["run_id"]
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"{folder}: its MLflow run {run_id} is not in the tracking store "
                         f"({mlflow.get_tracking_uri()}); train it again") from None
    return run_id


def _record_realism(folder: Path, feature_set: str, data: TrainingData, seed: int) -> None:
    """How easily a forest tells the generator's windows from real ones (AUROC; 0.5 =
    plausible), to model.json and the run."""
    generator = bundle.load_generator(folder)
    if generator is None:
        return
    source = data.window_source(feature_set, int(generator.output_shape[1]))  # its window
    real, generated = real_and_generated(generator, int(generator.input_shape[1]), source,
                                         REALISM_WINDOWS, seed)
    auroc = real_vs_generated_auroc(real, generated, seed=seed)
    tracking.log_metrics({"generator_realism_auroc": auroc})
    bundle.save_info(folder, {**bundle.read_info(folder), "generator_realism_auroc": auroc})


def main(cfg: Params, kind: str | None = None,
         feature_set: str | None = None) -> Iterator[tuple[Target, dict[str, Any]]]:
    """The stage as `landslide calibrate` and dvc.yaml run it: every model params.yaml trains
    (and the tuned one), or the one `kind` on `feature_set` (default features.set)."""
    paths = cfg.paths
    if kind is None:
        chosen = targets(cfg.evaluate.window_kinds, cfg.evaluate.feature_sets,
                         cfg.evaluate.segmenters, cfg.features.set, paths.trained)
    else:
        learners.learner(kind, "MODEL")
        chosen = [Target(feature_set or cfg.features.set, kind)]
    return run(chosen, TrainingData.of(cfg), cfg.calibrate, trained=paths.trained,
               models=paths.models, seed=cfg.seed)
