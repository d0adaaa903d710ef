"""train: one window network (SSGAN, supervised baseline or FixMatch) on one feature set; the
fit stage (the random forest, the GLM) and the segment stage (the patch segmenters) train
through `run` here too.

This stage only trains: params, data hashes, per-epoch losses and balanced validation scores,
generator images and the GLM's coefficients go to the model's MLflow run, with only the
train settings the kind reads (Learner.reads); the model goes to
trained/<set>/<model>/ with the landslide share it learnt at. Its map threshold, prior,
validation map scores, realism check and the logged MLflow model are the calibrate stage's
(stages/calibrate.py), which reruns without retraining. The folder is written under a
temporary name and renamed when complete; an interrupted network training resumes its MLflow
run and its last finished epoch.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np

from landslide_ssgan.config import Params, TrainConfig
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.files import sole_writer, write_json
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.models.glm import CentreLogit
from landslide_ssgan.ops import tracking
from landslide_ssgan.reporting.grids import grid_columns, window_grid

if TYPE_CHECKING:  # the network training (Keras) is imported where a network trains: the
    # classifiers' stage (fit), which runs this module too, never loads TensorFlow
    from landslide_ssgan.training.fit import EpochHook, Source

IMAGE_ROWS = 8  # generated windows per image logged to MLflow


def run(learner: learners.Learner, feature_set: str, data: TrainingData, source: Source, *,
        seed: int, train: TrainConfig, rgb: tuple[str, ...], split_method: str, trained: str,
        restart: bool = False, on_epoch: EpochHook | None = None) -> Path:
    """Train, log the run to MLflow (params, data hashes, per-epoch losses and validation
    scores, generator images) and write trained/<set>/<kind>/. An interrupted network
    training resumes only with the same settings and data; `restart` discards it."""
    out = bundle.model_dir(trained, feature_set, learner.name)
    with sole_writer(out, f"landslide {learner.stage} {learner.name}"):
        return _run(learner, feature_set, data, source, seed=seed,
                    train=learner.settings(train), rgb=rgb,
                    split_method=split_method, out=out, restart=restart, on_epoch=on_epoch)


def _run(learner: learners.Learner, feature_set: str, data: TrainingData, source: Source, *,
         seed: int, train: TrainConfig, rgb: tuple[str, ...], split_method: str, out: Path,
         restart: bool, on_epoch: EpochHook | None) -> Path:
    kind = learner.name
    inputs = {"stack": data.stack, "samples": data.samples, "norm": data.norm}
    params = tracking.model_params(train, seed, feature_set, source.window, split_method)
    staging = _fresh(out.with_name(f".{kind}.staging"))
    if not learner.network:
        run_id = tracking.new_run(kind, feature_set, params, inputs)
        _train_classifier(learner, source, seed, train, staging, run_id)
    else:
        backup = out.with_name(f".{kind}.backup")
        recipe = {"params": params, "data": tracking.data_digest(data.samples, data.stack)}
        run_id = _resumable_run(backup, recipe, restart, kind, lambda: tracking.new_run(
            kind, feature_set, params, inputs))
        _train_network(learner, source, seed, train, rgb, staging, backup, run_id, on_epoch)
    bundle.save_info(staging, {"kind": kind, "trained_prior": learner.trained_prior(
        train, source.training_labels())})
    bundle.save_run(staging, run_id)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _resumable_run(backup: Path, recipe: dict[str, Any], restart: bool, kind: str,
                   new_run: Callable[[], str]) -> str:
    """The MLflow run of an interrupted training of this model with the same settings and
    data, or a new, fully tagged one. A checkpoint of other settings or data is set aside
    with one line (resuming it would train a mixture and log the old params; refusing would
    leave `dvc repro` no way on); `restart` discards even a matching one."""
    previous, saved = backup / "run_id", backup / "recipe.json"
    changed = (_changes(json.loads(saved.read_text()), recipe)
               if previous.is_file() and saved.is_file() else "")
    if changed:
        print(f"note: {backup}: an interrupted {kind} training of other settings or data "
              f"({changed}) is discarded; training afresh", file=sys.stderr)
    if (restart or changed) and backup.exists():
        _close_run(backup, "KILLED")
        shutil.rmtree(backup)
    if previous.is_file() and saved.is_file():
        return previous.read_text().strip()
    run_id = str(new_run())
    _fresh(backup)
    write_json(saved, recipe)
    previous.write_text(run_id)
    return run_id


def _changes(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """The settings that differ, as `name old -> new`, at most three."""
    if saved.get("data") != now["data"]:
        return "the stack or the samples changed"
    old, new = saved.get("params", {}), json.loads(json.dumps(now["params"]))
    names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _close_run(backup: Path, status: str) -> None:
    """End the MLflow run a checkpoint belongs to, so it is not left RUNNING."""
    previous = backup / "run_id"
    if previous.is_file():
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            mlflow.MlflowClient().set_terminated(previous.read_text().strip(), status=status)


def _train_network(learner: learners.Learner, source: Source, seed: int, train: TrainConfig,
                   rgb: tuple[str, ...], staging: Path, backup: Path, run_id: str,
                   on_epoch: EpochHook | None) -> None:
    try:
        _train_logged(learner, source, seed, train, rgb, staging, backup, run_id, on_epoch)
    except Exception:
        shutil.rmtree(backup, ignore_errors=True)  # a failed run is never resumed
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _train_logged(learner: learners.Learner, source: Source, seed: int, train: TrainConfig,
                  rgb: tuple[str, ...], staging: Path, backup: Path, run_id: str,
                  on_epoch: EpochHook | None = None) -> None:
    """Train in the run (which MLflow ends FAILED on an error, and the next command ends
    KILLED if this process is killed) and fill the staging folder."""
    from landslide_ssgan.ops.callbacks import MlflowEpochLogger
    from landslide_ssgan.training.fit import EpochReport, train_network

    with tracking.start_run(run_id):
        image = (_generator_image(source, rgb, train.latent_dim, seed) if learner.generator
                 else None)
        if image is not None:  # the image series' caption: one window per row, these columns
            mlflow.set_tag("generator_image_columns", ", ".join(grid_columns(source.bands,
                                                                             rgb)))
        logger = MlflowEpochLogger(run_id, train.image_every, image)
        epochs = (train.patch if learner.patches else train).epochs
        report = (EpochReport(on_epoch, epochs),) if on_epoch is not None else ()
        trained = train_network(learner, train, source, seed, workdir=backup / "keras",
                                threshold=train.threshold, callbacks=(logger, *report),
                                history_path=backup / "history.json")
        bundle.save_model(staging, learner.predictor(trained.model), source.normalisation,
                          trained.history, getattr(trained.model, "generator", None))


def _generator_image(source: Source, rgb: tuple[str, ...], latent_dim: int,
                     seed: int) -> Any:
    """The generator's windows at fixed noise, as one image (drawn from its own generator, so
    it does not disturb the training's random numbers)."""
    noise = np.random.default_rng(seed).normal(size=(IMAGE_ROWS, latent_dim)).astype("float32")

    def make(model: Any) -> np.ndarray:
        windows = model.generator(noise, training=False)
        return window_grid(np.asarray(windows), source.bands, rgb)

    return make


def _train_classifier(learner: learners.Learner, source: Source, seed: int,
                      train: TrainConfig, staging: Path, run_id: str) -> None:
    """A classifier on window features (the forest, the GLM), logged like the networks
    (balanced validation scores; the GLM's coefficients)."""
    assert learner.fit is not None
    model = learner.fit(train, source, seed)
    predictor = learner.predictor(model)
    bundle.save_model(staging, predictor, source.normalisation)
    with tracking.start_run(run_id=run_id):
        val_windows, val_labels = source.windows("val")
        if len(val_labels):
            scores, _ = evaluate_probabilities(val_labels, predictor.probability(val_windows),
                                               train.threshold)
            tracking.log_metrics({f"val_{k}": v for k, v in scores.items()})
        if isinstance(model, CentreLogit):
            _log_coefficients(model, staging)


def _log_coefficients(model: CentreLogit, staging: Path) -> None:
    """The GLM's coefficient table beside the model and in MLflow."""
    model.table.to_csv(staging / bundle.COEFFICIENTS)
    mlflow.log_artifact(str(staging / bundle.COEFFICIENTS))
    for term, row in model.table.iterrows():
        tracking.log_metrics({f"coef_{term}": row["estimate"]})


def main(cfg: Params, kind: str, feature_set: str | None = None,
         restart: bool = False, on_epoch: EpochHook | None = None) -> Path:
    """The stage as `landslide train KIND` and dvc.yaml run it (the fit stage too, for the
    classifiers): params.yaml's settings, the sample stage's windows of `feature_set`
    (default features.set)."""
    learners.check_kinds((kind,), "MODEL", stage="train")
    return train_windows(cfg, learners.learner(kind), feature_set, restart, on_epoch)


def train_windows(cfg: Params, learner: learners.Learner, feature_set: str | None,
                  restart: bool = False, on_epoch: EpochHook | None = None) -> Path:
    """A window kind (network or classifier) on the sample stage's windows."""
    chosen = feature_set or cfg.features.set
    data = TrainingData.of(cfg)
    return run(learner, chosen, data, data.window_source(chosen, cfg.sample.window),
               seed=cfg.seed, train=cfg.train, rgb=cfg.features.rgb,
               split_method=cfg.sample.split.method, trained=cfg.paths.trained,
               restart=restart, on_epoch=on_epoch)
