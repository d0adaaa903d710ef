"""tune: an Optuna study over a network's settings (tune.model: the SSGAN by default), every
trial an MLflow run nested under the study's run; shared by workers (here or on other
machines) through the study's storage."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import optuna
import yaml
from mlflow.tracking import MlflowClient

from landslide_ssgan.config import CalibrateConfig, Params, SampleConfig, TrainConfig, TuneConfig
from landslide_ssgan.data.patches import load_patch_source
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import scoring
from landslide_ssgan.files import write_json, write_text
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.ops import pyfunc, tracking, tuning
from landslide_ssgan.ops.callbacks import MlflowEpochLogger
from landslide_ssgan.ops.urls import redacted
from landslide_ssgan.reporting import plots
from landslide_ssgan.training.fit import Source, train_network

# part of the study's name: a study begun with another sampling scheme is not resumed with this one
SAMPLER = "tpe, seeded per trial number, constant liar"


@dataclass(frozen=True)
class Trials:
    """What every trial trains on (the base settings and the data) and thresholds its map
    with (the inventory and the split areas)."""

    seed: int
    train: TrainConfig
    feature_set: str
    window: int
    split_method: str
    data: TrainingData
    calibrate: CalibrateConfig           # each trial's map threshold, as calibrate gives one
    sample: SampleConfig | None = None  # a segmenter's patches need its negatives settings
    score: str = "auprc"                # the objective: registry.score, as register ranks


def run(cfg: TuneConfig, trials: Trials, *, experiment: str, reports: str, tuned: str,
        params_file: Path, storage: str | None = None, workers: int = 1,
        parent_run: str | None = None, overrides: dict[str, str] | None = None,
        on_trial: tuning.TrialHook | None = None) -> dict[str, Any] | None:
    """Run this process's share of the study (and `workers - 1` helper processes of the same
    command, reading the same `overrides` of params.yaml); the process that started the
    helpers then writes the reports and the best trial's model folder (`tuned`) and returns
    the summary. A helper (given `parent_run`) returns None."""
    learners.check_kinds((cfg.model,), "tune.model", networks_only=True)
    url = storage or cfg.storage
    cfg = replace(cfg, study=study_name(cfg, trials))
    tuning.open_storage(cfg, url)  # creates the study once, before any worker races
    parent = parent_run or study_parent_run(cfg, trials.feature_set, experiment, url)
    settings = [arg for name, value in {**(overrides or {}),
                                        "tracking.experiment": experiment}.items()
                for arg in (f"--{name}", value)]  # the helpers read the same settings
    # the storage URL (it may hold a password) goes by the environment, never argv (ps)
    helpers = [subprocess.Popen([sys.executable, "-m", "landslide_ssgan.cli", "tune",
                                 "--params", str(params_file), "--workers", "1",
                                 "--parent-run", parent, *settings],
                                env={**os.environ, "LANDSLIDE_TUNE_STORAGE": url})
               for _ in range(workers - 1)]
    source = _source(learners.learner(cfg.model, "tune.model"), trials)
    study = tuning.create_study(cfg, url, on_stale=functools.partial(close_stale_run,
                                                                     experiment))
    with tracking.start_run(run_id=parent):
        tuning.complete_study(study, lambda trial: _trial(trial, cfg, trials, source),
                              cfg.trials, cfg.heartbeat_s, _waiting, on_trial)
    failed = [p.args for p in helpers if p.wait() != 0]
    if parent_run is not None:
        return None  # a helper worker: the process that started it writes the reports
    summary = report_study(cfg, url, parent, Path(reports), trials.score)
    save_best_model(cfg.study, parent, summary["best_trial"], Path(tuned))
    return {**summary, "failed_workers": len(failed)}


def _waiting(running: int) -> None:
    print(f"note: waiting for {running} trial(s) that other workers are running (a killed "
          "worker's trial is failed and run again once its heartbeat is stale)",
          file=sys.stderr)


def study_name(cfg: TuneConfig, trials: Trials) -> str:
    """tune.study plus a digest of what its trials' values depend on (the data, the base
    train settings, the search space, epochs, feature set, seed): a study resumes only for the
    same data and settings; after `sample` changes, the pipeline tunes afresh instead of
    reusing trials scored on other windows."""
    data = trials.data
    recipe = json.dumps({"sampler": SAMPLER, "model": cfg.model, "objective": trials.score,
                         "data": tracking.data_digest(data.samples, data.stack),
                         "train": dataclasses.asdict(trials.train), "space": cfg.space,
                         "epochs": cfg.epochs, "features": trials.feature_set,
                         "seed": trials.seed, "window": trials.window}, sort_keys=True,
                        default=str)
    return f"{cfg.study}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


def save_best_model(study: str, parent_run_id: str, trial: int, out: Path) -> None:
    """The best trial's model folder, from its MLflow run, written atomically. It is the
    tune stage's DVC output: without it a fresh clone would skip tuning (its other outputs
    are reports in git) and `register` would choose among fewer runs than here."""
    client = MlflowClient()
    runs = client.search_runs(
        [client.get_run(parent_run_id).info.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' AND tags.optuna_study = '{study}' "
            f"AND tags.optuna_trial = '{trial}' AND tags.model_uri != ''"), max_results=1)
    if not runs:
        raise InputError(f"study {study}: trial {trial} has no logged model")
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(pyfunc.window_model_folder(runs[0].data.tags["model_uri"], Path(tmp)),
                        staging)
    bundle.save_run(staging, runs[0].info.run_id, runs[0].data.tags["model_uri"])
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def study_parent_run(cfg: TuneConfig, feature_set: str, experiment: str, storage: str) -> str:
    """The MLflow run that holds a study's trials: found again when the study resumes."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        runs = MlflowClient().search_runs(
            [found.experiment_id], filter_string=(
                f"tags.optuna_study = '{cfg.study}' AND tags.stage = 'tune-study'"),
            max_results=50)
        for run in runs:
            if run.data.tags.get("optuna_storage") == redacted(storage):
                return str(run.info.run_id)
    with tracking.start_run(run_name=f"study-{cfg.study}") as run:
        mlflow.set_tags({"stage": "tune-study", "optuna_study": cfg.study,
                         "optuna_storage": redacted(storage), "feature_set": feature_set,
                         "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"tune.trials": cfg.trials, "tune.epochs": cfg.epochs,
                           "tune.sampler_seed": cfg.sampler_seed})
        return str(run.info.run_id)


def close_stale_run(experiment: str, study: optuna.Study,
                    trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker was killed: its MLflow run is closed as KILLED, not left RUNNING."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return
    client = MlflowClient()
    for run in client.search_runs([found.experiment_id], filter_string=(
            f"tags.optuna_study = '{study.study_name}' AND tags.optuna_trial = "
            f"'{trial.number}' AND attributes.status = 'RUNNING'")):
        client.set_tag(run.info.run_id, "optuna_state", "failed: worker lost")
        client.set_terminated(run.info.run_id, status="KILLED")


def _source(learner: learners.Learner, trials: Trials) -> Source:
    """What the tuned kind trains on: the windows, or a segmenter's patches."""
    if not learner.patches:
        return trials.data.window_source(trials.feature_set, trials.window)
    if trials.sample is None:
        raise ValueError("tuning a segmenter needs the sample settings (Trials.sample)")
    return load_patch_source(trials.data, trials.feature_set, trials.train.patch,
                             trials.sample, trials.seed)


def _trial(trial: optuna.Trial, cfg: TuneConfig, trials: Trials, source: Source) -> float:
    train = tuning.apply(trials.train, tuning.suggest(trial, cfg.space), cfg.epochs)
    run_id = tracking.new_run(
        cfg.model, trials.feature_set, tracking.model_params(
            train, trials.seed, trials.feature_set, source.window, trials.split_method),
        {"stack": trials.data.stack, "samples": trials.data.samples, "norm": trials.data.norm},
        stage="tune", nested=True)
    with tracking.start_run(run_id=run_id, nested=True), tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"optuna_study": cfg.study, "optuna_trial": str(trial.number),
                         "mlflow.runName": f"trial-{trial.number}"})
        callbacks = (MlflowEpochLogger(run_id, train.image_every),
                     tuning.PruneOnValidationF1(trial))
        try:
            trained = train_network(learners.learner(cfg.model, "tune.model"), train, source,
                                    trials.seed, workdir=Path(tmp) / "backup",
                                    epochs=cfg.epochs, threshold=trials.train.threshold,
                                    callbacks=callbacks)
        except optuna.TrialPruned:
            mlflow.set_tag("optuna_state", "pruned")
            raise
        folder, data = Path(tmp) / "model", trials.data
        learner = learners.learner(cfg.model)
        bundle.save_model(folder, learner.predictor(trained.model), source.normalisation)
        share = learner.trained_prior(train, source.training_labels())
        bundle.save_info(folder, {"kind": cfg.model, "trained_prior": share})
        ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
        info = scoring.record_threshold(cfg.model, folder, data.stack, ground,
                                        trials.calibrate,
                                        scoring.model_prior(share, trials.calibrate, ground))
        tracking.log_model_info(info)
        uri = pyfunc.log_window_model(folder, pyfunc.pinned_requirements())
        mlflow.set_tags({"optuna_state": "complete", "model_uri": uri})
        return objective_value(trials.score, info, trained.history)


def objective_value(score: str, info: dict[str, Any], history: list[dict[str, float]]) -> float:
    """What a trial is worth, as register ranks models (registry.score): the validation
    area's map AUPRC at the real prevalence, or the balanced validation windows' F1 of the
    last epoch (also what the pruner watches each epoch). A map without a validation area
    falls back to the F1."""
    validation = info.get("validation_map")
    if score == "auprc" and validation and validation.get("auprc") == validation.get("auprc"):
        return float(validation["auprc"])
    return float(history[-1].get("val_f1", 0.0)) if history else 0.0


def report_study(cfg: TuneConfig, storage: str, parent_run_id: str,
                 reports: Path, score: str = "auprc") -> dict[str, Any]:
    """Best trial, optimisation history and parameter importances, to reports/ and to the
    study's parent run. Tuning never rewrites params.yaml: best params go to their own file."""
    objective = tracking.SCORE_METRICS[score][0]  # what register ranks by first
    study = tuning.create_study(cfg, storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"study {cfg.study}: no trial completed")
    best = study.best_trial
    summary = {"study": cfg.study, "objective": tracking.metric_key(objective),
               "best_trial": best.number,
               "best_value": best.value,
               "best_params": best.params, "finished_trials": len(study.get_trials(
                   deepcopy=False, states=tuning.FINISHED)),
               "pruned_trials": len(study.get_trials(
                   deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))}
    write_text(reports / "best_params.yaml", yaml.safe_dump(
        {"train": best.params, tracking.metric_key(objective): float(best.value or 0.0),
         "trial": best.number},
        sort_keys=True))
    plots.study_figures(study, reports / "tune_history.png", reports / "tune_importance.png")
    with tracking.start_run(run_id=parent_run_id):
        tracking.log_metrics({f"best_{objective}": best.value or 0.0})
        mlflow.set_tags({"best_trial": str(best.number)})
        for name in ("best_params.yaml", "tune_history.png", "tune_importance.png"):
            if (reports / name).exists():
                mlflow.log_artifact(str(reports / name))
    write_json(reports / "tune.json", summary)
    return summary


def main(cfg: Params, params_file: Path, overrides: dict[str, str], *,
         storage: str | None = None, workers: int = 1, parent_run: str | None = None,
         on_trial: tuning.TrialHook | None = None) -> dict[str, Any] | None:
    """The stage as `landslide tune` and dvc.yaml run it: params.yaml's settings (the
    helper workers read `params_file` again, with the command line's `overrides`)."""
    paths = cfg.paths
    trials = Trials(cfg.seed, cfg.train, cfg.features.set, cfg.sample.window,
                    cfg.sample.split.method, TrainingData.of(cfg), cfg.calibrate, cfg.sample,
                    cfg.registry.score)
    return run(cfg.tune, trials, experiment=cfg.tracking.experiment, reports=paths.reports,
               tuned=str(bundle.model_dir(paths.trained, cfg.features.set, bundle.TUNED)),
               params_file=params_file, storage=storage, workers=workers,
               parent_run=parent_run, overrides=overrides, on_trial=on_trial)
