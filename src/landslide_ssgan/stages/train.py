"""train: one window model (SSGAN, supervised baseline, FixMatch, random forest or GLM) on one
feature set; the segment stage trains the patch segmenters through `run` here too.

Every model then maps the validation area, and its map threshold (best F1 there, or a target
recall) and validation map scores go into its folder's model.json and its MLflow run. The
model folder models/<set>/<model>/ is written under a temporary name and renamed when
complete; an interrupted network training resumes its MLflow run and its last finished epoch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.data.source import TrainingData, WindowSource
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.evaluation import scoring
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.evaluation.realism import real_vs_generated_auroc
from landslide_ssgan.files import write_json
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.models.glm import CentreLogit
from landslide_ssgan.models.ssgan import SSGAN
from landslide_ssgan.ops import pyfunc, tracking
from landslide_ssgan.reporting import plots
from landslide_ssgan.training.fit import Source, real_and_generated, train_network

IMAGE_ROWS = 8  # generated windows per image logged to MLflow
REALISM_WINDOWS = 1000  # real and generated windows each for the real-vs-generated check


def run(learner: learners.Learner, feature_set: str, data: TrainingData, source: Source, *,
        seed: int, train: TrainConfig, rgb: tuple[str, ...], split_method: str, models: str,
        restart: bool = False) -> Path:
    """Train, log the run to MLflow (params, data hashes, per-epoch losses and validation
    scores, generator images, the map threshold, the model) and write models/<set>/<kind>/.
    An interrupted network training resumes only with the same settings and data; `restart`
    discards it."""
    kind = learner.name
    out = bundle.model_dir(models, feature_set, kind)
    inputs = {"stack": data.stack, "samples": data.samples, "norm": data.norm}
    params = tracking.model_params(train, seed, feature_set, source.window, split_method)
    staging = _fresh(out.with_name(f".{kind}.staging"))
    mapper = functools.partial(map_threshold, kind, data, train, source)
    if not learner.network:
        _train_classifier(learner, source, seed, train, staging,
                          tracking.new_run(kind, feature_set, params, inputs), mapper)
    else:
        backup = out.with_name(f".{kind}.backup")
        recipe = {"params": params, "data": tracking.data_digest(data.samples, data.stack)}
        run_id = _resumable_run(backup, recipe, restart, kind, lambda: tracking.new_run(
            kind, feature_set, params, inputs))
        _train_network(learner, source, seed, train, rgb, staging, backup, run_id, mapper)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def map_threshold(kind: str, data: TrainingData, train: TrainConfig, source: Source,
                  folder: Path) -> None:
    """The model in `folder` maps the stack; its threshold, validation map scores and prior
    go to model.json and to the active MLflow run."""
    ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
    prior = scoring.model_prior(kind, train, source.training_labels(), ground)
    tracking.log_model_info(scoring.record_threshold(kind, folder, data.stack, ground, train,
                                                     prior))


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _resumable_run(backup: Path, recipe: dict[str, Any], restart: bool, kind: str,
                   new_run: Callable[[], str]) -> str:
    """The MLflow run of an interrupted training of this model with the same settings and
    data, or a new, fully tagged one. A checkpoint of other settings or data is an error
    (resuming it would train a mixture and log the old params); `restart` discards it."""
    if restart and backup.exists():
        _close_run(backup, "KILLED")
        shutil.rmtree(backup)
    previous, saved = backup / "run_id", backup / "recipe.json"
    if previous.is_file() and saved.is_file():
        changed = _changes(json.loads(saved.read_text()), recipe)
        if changed:
            raise ConfigError(
                f"{backup} holds an interrupted training with other settings or data "
                f"({changed}): run `landslide train {kind} --restart` to discard it")
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
                   mapper: Callable[[Path], None]) -> None:
    try:
        _train_logged(learner, source, seed, train, rgb, staging, backup, run_id, mapper)
    except Exception:
        shutil.rmtree(backup, ignore_errors=True)  # a failed run is never resumed
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _train_logged(learner: learners.Learner, source: Source, seed: int, train: TrainConfig,
                  rgb: tuple[str, ...], staging: Path, backup: Path, run_id: str,
                  mapper: Callable[[Path], None]) -> None:
    """Train in the run (which MLflow ends FAILED on an error) and fill the staging folder."""
    with mlflow.start_run(run_id=run_id):
        image = (_generator_image(source, rgb, train.latent_dim, seed) if learner.generator
                 else None)
        logger = tracking.MlflowEpochLogger(run_id, train.image_every, image)
        trained = train_network(learner, train, source, seed, workdir=backup / "keras",
                                threshold=train.threshold, callbacks=(logger,),
                                history_path=backup / "history.json")
        bundle.save_trained(staging, trained.model, source.normalisation, trained.history)
        mapper(staging)
        if isinstance(trained.model, SSGAN) and isinstance(source, WindowSource):
            _record_realism(trained.model, source, seed, staging)
        model_uri = pyfunc.log_window_model(staging, pyfunc.pinned_requirements())
        mlflow.set_tag("model_uri", model_uri)
        bundle.save_run(staging, run_id, model_uri)


def _record_realism(gan: SSGAN, source: WindowSource, seed: int, staging: Path) -> None:
    """How easily a forest tells the generator's windows from real ones (AUROC; 0.5 =
    plausible), to model.json and the run."""
    auroc = real_vs_generated_auroc(*real_and_generated(gan, source, REALISM_WINDOWS, seed),
                                    seed=seed)
    mlflow.log_metric("generator_realism_auroc", auroc)
    bundle.save_info(staging, {**bundle.read_info(staging), "generator_realism_auroc": auroc})


def _generator_image(source: Source, rgb: tuple[str, ...], latent_dim: int,
                     seed: int) -> Any:
    """The generator's windows at fixed noise, as one image (drawn from its own generator, so
    it does not disturb the training's random numbers)."""
    noise = np.random.default_rng(seed).normal(size=(IMAGE_ROWS, latent_dim)).astype("float32")

    def make(model: Any) -> np.ndarray:
        windows = model.generator(noise, training=False)
        return plots.window_grid(np.asarray(windows), source.bands, rgb)

    return make


def _train_classifier(learner: learners.Learner, source: Source, seed: int,
                      train: TrainConfig, staging: Path, run_id: str,
                      mapper: Callable[[Path], None]) -> None:
    """A classifier on window features (the forest, the GLM), logged like the networks
    (validation scores, map threshold, a model in MLflow)."""
    assert learner.fit is not None
    model = learner.fit(train, source, seed)
    bundle.save_classifier(staging, model, source.normalisation)
    fitted = bundle.load_bundle(staging)
    with mlflow.start_run(run_id=run_id):
        val_windows, val_labels = source.windows("val")
        if len(val_labels):
            scores, _ = evaluate_probabilities(val_labels, fitted.probability(val_windows),
                                               train.threshold)
            mlflow.log_metrics({f"val_{k}": v for k, v in scores.items()})
        mapper(staging)
        if isinstance(model, CentreLogit):
            _log_coefficients(model, staging)
        # the window model, like the networks': the registry and `landslide serve` take any
        model_uri = pyfunc.log_window_model(staging, pyfunc.pinned_requirements())
        mlflow.set_tag("model_uri", model_uri)
    bundle.save_run(staging, run_id, model_uri)


def _log_coefficients(model: CentreLogit, staging: Path) -> None:
    """The GLM's coefficient table beside the model and in MLflow."""
    model.table.to_csv(staging / bundle.COEFFICIENTS)
    mlflow.log_artifact(str(staging / bundle.COEFFICIENTS))
    for term, row in model.table.iterrows():
        mlflow.log_metric(f"coef_{term}", float(row["estimate"]))


