"""Optuna search over the SSGAN's settings: the space comes from params.yaml, the objective is
validation F1 (never test), a pruner stops trials whose validation F1 lags.

No MLflow here: the study reports each trial through the callbacks the caller hands in.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import optuna

from landslide_ssgan.config import TrainConfig, TuneConfig, override
from landslide_ssgan.errors import InputError, first_line
from landslide_ssgan.ops.urls import redacted

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# counted against the budget before a worker starts another trial: the trials other workers
# are running count too, so concurrent workers do not overshoot the shared budget
COMMITTED = (*FINISHED, optuna.trial.TrialState.RUNNING)


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One value per setting: {low, high[, log]} for numbers, {choices} for a list."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            values[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"],
                                             log=bool(spec.get("log", False)))
        else:
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log", False)))
    return values


def apply(train: TrainConfig, values: Mapping[str, Any], epochs: int) -> TrainConfig:
    """The training settings of one trial: the base settings with the suggested values
    (dotted names: loss_weights.unlabelled), checked as params.yaml is."""
    return override(train, {**values, "epochs": epochs}, "tune.space")


class PruneOnValidationF1(keras.callbacks.Callback):
    """Reports each epoch's val_f1 to the trial and stops a trial the pruner gives up on.
    Must come after the callback that puts val_f1 into the logs."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial
        self.last = 0.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.last = float((logs or {}).get("val_f1", 0.0))
        self.trial.report(self.last, step=epoch + 1)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation F1 {self.last:.3f} at epoch {epoch + 1}")


def open_storage(cfg: TuneConfig, storage: str) -> optuna.Study:
    """The study, with a one-line error when its storage cannot be opened."""
    try:
        return create_study(cfg, storage)
    except Exception as exc:  # SQLAlchemy and driver errors come in many classes
        raise InputError(f"Optuna storage {redacted(storage)} cannot be opened: "
                         f"{first_line(exc)}") from None


StaleTrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def create_study(cfg: TuneConfig, storage: str,
                 on_stale: StaleTrialCallback | None = None) -> optuna.Study:
    """The persistent study: created on first use, resumed (and shared by every worker
    pointing at the same storage) afterwards. Running trials beat every `heartbeat_s`; a trial
    silent for three beats is failed (`on_stale` hears of it) and no longer takes a slot of
    the budget."""
    with _heartbeats_are_not_experimental():
        rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=cfg.heartbeat_s,
                                         grace_period=3 * cfg.heartbeat_s,
                                         heartbeat_stale_trial_callback=on_stale)
    return optuna.create_study(
        study_name=cfg.study, direction="maximize", load_if_exists=True,
        storage=rdb,
        sampler=TrialSeededTPE(cfg.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials,
                                           n_warmup_steps=cfg.warmup_epochs))


@contextlib.contextmanager
def _heartbeats_are_not_experimental() -> Iterator[None]:
    """Optuna has called heartbeats experimental since 2.9 and warns on every use (optimize
    itself silences the warning around its own calls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random numbers for trial n come from seed + n. A plain seeded sampler starts
    its random stream afresh in every process, so every resumed run and every worker repeated
    the same parameters; seeded per trial number (unique in the storage), no two trials share
    a stream, and a study run straight through is still reproducible. The constant liar makes
    concurrent workers treat each other's running trials as poor, so they explore apart."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed, constant_liar=True)
        self.seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial_seed = (self.seed + trial.number) % 2**32
        self._rng.rng.seed(trial_seed)
        self._random_sampler._rng.rng.seed(trial_seed)
        super().before_trial(study, trial)


TrialHook = Callable[[optuna.trial.FrozenTrial, int, int], None]  # trial, finished, budget


def run_study(study: optuna.Study, objective: Callable[[optuna.Trial], float],
              trials: int, on_trial: TrialHook | None = None) -> None:
    """Run trials until the study holds `trials` finished ones (complete or pruned), however
    many workers share it and however often it was interrupted. Trials left running by a
    killed worker are failed first (once their heartbeat is stale), so they are run again."""
    with _heartbeats_are_not_experimental():
        optuna.storages.fail_stale_trials(study)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    if done >= trials:
        return

    def within_budget(trial: optuna.Trial) -> float:
        if beyond_budget(study, trial.number, trials):
            trial.set_user_attr("beyond_budget", True)
            study.stop()
            raise BeyondBudget(f"trial {trial.number}: the budget of {trials} is taken")
        return objective(trial)

    def told(done: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None and trial.state in FINISHED:
            on_trial(trial, len(done.get_trials(deepcopy=False, states=FINISHED)), trials)

    study.optimize(within_budget, catch=(BeyondBudget,),
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=COMMITTED), told])


POLL_S = 1.0  # how often a waiting worker looks at the study again


def complete_study(study: optuna.Study, objective: Callable[[optuna.Trial], float],
                   trials: int, heartbeat_s: float,
                   on_wait: Callable[[int], None] | None = None,
                   on_trial: TrialHook | None = None) -> None:
    """Run this worker's share, then wait for the trials other workers are running: the
    study is complete when `trials` trials are finished and none runs, so the reports made
    afterwards are the study's, whichever worker makes them. A trial whose worker was killed
    is failed once its heartbeat is stale, and its slot is run again here."""
    told = False
    while True:
        run_study(study, objective, trials, on_trial)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        if not running and finished >= trials:
            return
        if running and on_wait is not None and not told:
            on_wait(len(running))
            told = True
        time.sleep(min(heartbeat_s, POLL_S))
        with _heartbeats_are_not_experimental():
            optuna.storages.fail_stale_trials(study)


class BeyondBudget(Exception):
    """A trial created after other workers had already claimed the whole budget."""


def beyond_budget(study: optuna.Study, number: int, trials: int) -> bool:
    """Whether trial `number` is past the budget: the storage numbers trials in the order
    they are created, so counting the earlier trials that have not failed (finished, or
    running in some worker) decides it without a race. MaxTrialsCallback alone checks only
    after a trial ends, when two workers may each have started one more."""
    earlier = [t for t in study.get_trials(deepcopy=False)
               if t.number < number and t.state != optuna.trial.TrialState.FAIL]
    return len(earlier) >= trials
