"""The Optuna pieces: search space, pruning on validation F1, storage errors."""

from __future__ import annotations

import optuna
import pytest

from landslide_ssgan.config import Params
from landslide_ssgan.errors import ConfigError, InputError
from landslide_ssgan.tuning import (
    PruneOnValidationF1,
    apply,
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

    from landslide_ssgan.stages.tune import Trials, study_name
    from landslide_ssgan.training import TrainingData

    samples, stack = tmp_path / "samples.csv", tmp_path / "stack.tif"
    samples.write_text("row,col\n1,2\n")
    stack.write_bytes(b"stack")
    data = TrainingData(str(stack), str(samples), "norm.json", "l.tif", "i.tif", "s.tif")
    trials = Trials(crop_params.seed, crop_params.train, "joint", 13, "spatial", data)
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
