"""The Optuna pieces: search space, pruning on validation F1, storage errors."""

from __future__ import annotations

import optuna
import pytest

from landslide_ssgan.config import Params
from landslide_ssgan.errors import ConfigError, InputError
from landslide_ssgan.ops.tuning import (
    PruneOnValidationF1,
    apply,
    complete_study,
    create_study,
    open_storage,
    run_study,
    suggest,
)


def test_suggestions_stay_in_the_declared_space(crop_params: Params, tmp_path) -> None:
    study = create_study(crop_params.tune, f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask()
    values = suggest(trial, crop_params.tune.space)
    assert set(values) == set(crop_params.tune.space)
    space = crop_params.tune.space
    assert space["lr_d"]["low"] <= values["lr_d"] <= space["lr_d"]["high"]
    assert values["batch_size"] in space["batch_size"]["choices"]
    train = apply(crop_params.train, values, epochs=3)
    assert train.epochs == 3 and train.lr_d == values["lr_d"]
    with pytest.raises(ConfigError, match="tune.space.bogus is not a setting"):
        apply(crop_params.train, {"bogus": 1}, epochs=3)
    nested = apply(crop_params.train, {"loss_weights.unlabelled": 0.5}, epochs=3)
    assert nested.loss_weights.unlabelled == 0.5
    assert nested.loss_weights.generated == crop_params.train.loss_weights.generated


def test_pruner_stops_a_trial_whose_validation_f1_lags(crop_params: Params, tmp_path) -> None:
    cfg = crop_params.tune.__class__(**{**crop_params.tune.__dict__, "startup_trials": 1,
                                        "warmup_epochs": 0})
    study = create_study(cfg, f"sqlite:///{tmp_path / 's.db'}")

    def objective(trial: optuna.Trial) -> float:
        callback = PruneOnValidationF1(trial)
        f1 = 0.9 if trial.number == 0 else 0.1  # the second trial is clearly worse
        for epoch in range(4):
            callback.on_epoch_end(epoch, {"val_f1": f1})
        return f1

    run_study(study, objective, trials=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    run_study(study, objective, trials=2)  # the budget is spent: nothing more runs
    assert len(study.trials) == 2


def test_unreachable_storage_is_one_line(crop_params: Params) -> None:
    with pytest.raises(InputError, match="postgresql://u:\\*\\*\\*@127.0.0.1:9/x cannot be "
                                         "opened") as info:
        open_storage(crop_params.tune, "postgresql://u:secret@127.0.0.1:9/x")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_a_study_is_tied_to_its_data_and_settings(crop_params: Params, tmp_path) -> None:
    """New samples or other base settings start a new study; a larger trial budget resumes
    the same one."""
    from dataclasses import replace

    from landslide_ssgan.data.source import TrainingData
    from landslide_ssgan.stages.tune import Trials, study_name

    samples, stack = tmp_path / "samples.csv", tmp_path / "stack.tif"
    samples.write_text("row,col\n1,2\n")
    stack.write_bytes(b"stack")
    data = TrainingData(str(stack), str(samples), "norm.json", "l.tif", "i.tif", "s.tif")
    trials = Trials(crop_params.seed, crop_params.train, "joint", 13, "spatial", data,
                    crop_params.calibrate)
    tune = crop_params.tune
    name = study_name(tune, trials)
    assert name.startswith(tune.study + "-")
    assert study_name(replace(tune, trials=tune.trials + 5), trials) == name
    assert study_name(tune, replace(trials, train=replace(crop_params.train, lr_d=0.1))) != name
    samples.write_text("row,col\n1,3\n")
    assert study_name(tune, trials) != name


def test_a_trial_past_the_budget_never_trains(crop_params: Params, tmp_path) -> None:
    """Two workers that both see room for one more trial: the one whose trial the storage
    numbered later gives it up (FAIL, marked) before training; the budget holds."""
    study = create_study(crop_params.tune, f"sqlite:///{tmp_path / 's.db'}")
    first = study.ask()
    study.tell(first, 0.5)
    other_worker = study.ask()  # running elsewhere: it holds the second slot
    calls: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        calls.append(trial.number)
        return 0.1

    run_study(study, objective, 2)
    assert calls == []
    extra = study.trials[-1]
    assert extra.number == other_worker.number + 1
    assert extra.state == optuna.trial.TrialState.FAIL
    assert extra.user_attrs["beyond_budget"] is True
    study.tell(other_worker, 0.4)
    run_study(study, objective, 2)  # budget met: nothing more runs
    assert calls == [] and len(study.trials) == 3


def _scored(space: dict) -> object:
    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space)
        return float(values["dropout"])
    return objective


def test_resumed_and_concurrent_trials_never_repeat_parameters(crop_params: Params,
                                                               tmp_path) -> None:
    """Every process used to seed its sampler alike, so a resumed run and a second worker drew
    the very parameters of trials 0, 1, ...; now trial n draws from seed + n."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    space = dict(crop_params.tune.space)
    run_study(create_study(crop_params.tune, storage), _scored(space), 3)
    run_study(create_study(crop_params.tune, storage), _scored(space), 5)  # a resumed process
    workers = [create_study(crop_params.tune, storage) for _ in range(2)]
    running = [study.ask() for study in workers]  # two workers, side by side
    for trial in running:
        suggest(trial, space)
    trials = create_study(crop_params.tune, storage).trials
    assert len(trials) == 7
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == len(drawn), drawn


def test_a_study_run_straight_through_is_reproducible(crop_params: Params, tmp_path) -> None:
    space = dict(crop_params.tune.space)
    drawn = []
    for name in ("a", "b"):
        study = create_study(crop_params.tune, f"sqlite:///{tmp_path / name}.db")
        run_study(study, _scored(space), 4)
        drawn.append([t.params for t in study.trials])
    assert drawn[0] == drawn[1]


def test_a_killed_workers_trial_is_failed_and_run_again(crop_params: Params, tmp_path) -> None:
    """A trial whose worker died stays RUNNING; once its heartbeat is three beats old the next
    worker fails it (the callback closes its MLflow run) and the budget counts only finished
    trials."""
    import time
    from dataclasses import replace

    cfg = replace(crop_params.tune, heartbeat_s=1)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    stale: list[int] = []
    study = create_study(cfg, storage, on_stale=lambda _, trial: stale.append(trial.number))
    killed = study.ask()
    study._storage.record_heartbeat(killed._trial_id)  # its worker beat once, then died
    time.sleep(4.5)  # three beats, plus the second SQLite rounds its clock to
    run_study(study, _scored(dict(cfg.space)), 2)
    states = [t.state for t in study.trials]
    assert stale == [killed.number]
    assert states[killed.number] == optuna.trial.TrialState.FAIL
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert optuna.trial.TrialState.RUNNING not in states


def test_a_worker_reports_only_once_the_others_trials_are_done(crop_params: Params,
                                                               tmp_path) -> None:
    """A worker that meets a trial another worker is still running (its heartbeat fresh)
    waits for it before the study is called complete; a killed worker's trial, once stale,
    is failed and its slot run here, so the budget is met with finished trials."""
    from dataclasses import replace

    cfg = replace(crop_params.tune, heartbeat_s=1)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = create_study(cfg, storage)
    killed = study.ask()
    study._storage.record_heartbeat(killed._trial_id)  # its worker beat once, then died
    waits: list[int] = []
    complete_study(study, _scored(dict(cfg.space)), 2, cfg.heartbeat_s, waits.append)
    states = [t.state for t in study.trials]
    assert waits == [1]  # said once that it waits for the other worker's trial
    assert states[killed.number] == optuna.trial.TrialState.FAIL
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert optuna.trial.TrialState.RUNNING not in states


IMPORTANCE_FIGURE = """
import hashlib, sys
import optuna
from optuna.distributions import FloatDistribution
from landslide_ssgan.reporting import plots

optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.create_study(direction="maximize")
names = ["lr", "dropout", "beta1", "width", "depth", "ratio"]
for i in range(8):  # only lr matters: the other five tie at no importance
    params = {n: (i / 10 if n == "lr" else 0.5) for n in names}
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions={n: FloatDistribution(0, 1) for n in names},
        value=float(i)))
plots.study_figures(study, sys.argv[1] + "/history.png", sys.argv[1] + "/importance.png")
print(hashlib.md5(open(sys.argv[1] + "/importance.png", "rb").read()).hexdigest())
"""


@pytest.mark.slow  # fresh Python processes, each importing TensorFlow or Optuna
def test_the_importance_figure_does_not_depend_on_string_hashing(tmp_path) -> None:
    """Parameters of equal importance came in the order of a set of names, which Python's
    string hashing reorders from one process to the next."""
    import os
    import subprocess
    import sys

    figures = {subprocess.run(
        [sys.executable, "-c", IMPORTANCE_FIGURE, str(tmp_path)], check=True, text=True,
        capture_output=True, env=os.environ | {"PYTHONHASHSEED": str(seed)}).stdout.strip()
        for seed in range(3)}
    assert len(figures) == 1
