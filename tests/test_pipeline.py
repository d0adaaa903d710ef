"""prepare -> sample -> train (both models) -> evaluate on the real crop, through the CLI, into a
temporary MLflow store; then the logged pyfunc model against the Keras model."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.config import WindowsConfig, parse_params
from landslide_ssgan.data.source import WindowSource, load_window_source
from landslide_ssgan.data.windows import FileWindows
from landslide_ssgan.models.discriminator import landslide_probability
from landslide_ssgan.models.learners import learner
from landslide_ssgan.models.ssgan import predict_probability
from landslide_ssgan.training.fit import train_network
from tests.conftest import write_params

runner = CliRunner()


def _source(cfg: Any) -> WindowSource:
    paths = cfg.paths
    return load_window_source(paths.stack, paths.samples, paths.norm, cfg.features.set,
                              cfg.sample.window)
TINY = {"epochs": 2, "batch_size": 32, "latent_dim": 8, "d_widths": [4, 8], "d_hidden": 8,
        "g_width": 8, "image_every": 1}


@pytest.fixture(scope="module")
def pipeline(base_params: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pipeline")
    raw = json.loads(json.dumps(base_params))
    raw["paths"] = {k: str(root / v) for k, v in {
        "stack": "stack.tif", "labels": "labels.tif", "inventory_ids": "ids.tif",
        "samples": "samples.csv", "norm": "norm.json", "split": "split.tif", "trained": "trained",
        "models": "models",
        "maps": "maps", "reports": "reports"}.items()}
    raw["train"].update(TINY | {"forest_trees": 20})
    raw["train"]["patch"].update({"size": 32, "depth": 2, "width": 4, "epochs": 1,
                                  "batch_size": 8})
    raw["evaluate"] = {"feature_sets": ["joint"], "models": base_params["evaluate"]["models"],
                       "segmenters": ["unet"]}
    raw["map"].update({"block_size": 100, "preview_size": 200})
    raw["study"].update({"budgets": [0.5, 1.0], "seeds": [0], "steps": 2, "forest_trees": 10,
                         "models": ["ssgan", "baseline", "fixmatch", "forest"],
                         "splits": ["spatial", "random"],
                         "variants": {"pool": {"unlabelled_ratio": 1, "steps": 3},
                                      "fm": {"consistency.ssgan_weight": 1.0}}})
    raw["tune"].update({"trials": 3, "epochs": 2, "storage": f"sqlite:///{root / 'optuna.db'}",
                        "startup_trials": 1, "warmup_epochs": 0})
    params = write_params(raw, root / "params.yaml")
    store = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(root)  # the default artifact root (./mlruns) lands in the temporary folder
        for command in (["prepare"], ["sample"], ["factors"], ["train", "ssgan"],
                        ["train", "baseline"], ["train", "fixmatch"], ["train", "forest"],
                        ["train", "glm"], ["segment", "unet"], ["tune"], ["calibrate"],
                        ["evaluate"], ["register"], ["map"]):
            result = runner.invoke(app, [*command, "--params", str(params)])
            assert result.exit_code == 0, (command, result.output, repr(result.exception))
    mlflow.set_tracking_uri(store)
    return {"raw": raw, "store": store, "root": root}


@pytest.fixture(autouse=True)
def _pipeline_store(pipeline: dict[str, Any]) -> Any:
    """Every test starts on the pipeline's store, whatever the previous one pointed at."""
    mlflow.set_tracking_uri(pipeline["store"])
    yield
    mlflow.set_tracking_uri(pipeline["store"])


def test_reports_hold_every_model(pipeline: dict[str, Any]) -> None:
    reports = Path(pipeline["raw"]["paths"]["reports"])
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) == {"joint"}
    assert set(metrics["joint"]) == {"ssgan", "baseline", "fixmatch", "forest", "glm", "unet"}
    for row in metrics["joint"].values():  # headline figures only: dvc metrics show stays short
        assert set(row) == {"f1", "kappa", "miou"}
    details = json.loads((reports / "evaluation_details.json").read_text())
    for row in details["joint"].values():
        assert np.array(row["confusion_matrix"]).sum() == row["test_windows"] > 0
    table = (reports / "evaluation.md").read_text()
    assert "| ssgan |" in table and "| baseline |" in table and "| forest |" in table
    assert "| glm |" in table
    assert "| joint / ssgan |" in (reports / "feature_sets.md").read_text()
    for figure in ("loss_curves.png", "feature_set_losses.png", "factor_importance.png",
                   "factor_vif.png"):
        assert (reports / figure).stat().st_size > 5000, figure
    factors = json.loads((reports / "factors.json").read_text())
    assert set(factors["ranking"]) == set(factors["vif_labelled"])
    assert 0 < factors["oob_score"] <= 1


def test_every_model_is_judged_by_its_map_on_held_out_areas(pipeline: dict[str, Any]) -> None:
    raw = pipeline["raw"]
    reports = Path(raw["paths"]["reports"])
    compact = json.loads((reports / "map_evaluation.json").read_text())
    assert set(compact) == {"val", "test"}
    for area in compact.values():
        assert set(area) == {"ssgan", "baseline", "fixmatch", "forest", "glm", "unet"}
        for row in area.values():
            assert set(row) == {"auprc", "auroc", "f1", "flagged_share", "object_recall",
                                "object_precision"}
            assert 0 <= row["auprc"] <= 1 and 0 <= row["flagged_share"] <= 1
    details = json.loads((reports / "map_evaluation_details.json").read_text())
    test = details["ssgan"]["test"]
    assert test["all"]["pixels"] > test["labelled"]["pixels"] > 0
    assert test["all"]["prevalence"] < test["labelled"]["prevalence"]
    for kind in ("ssgan", "glm"):  # the threshold each model chose on the validation area
        info = json.loads((Path(raw["paths"]["models"]) / "joint" / kind / "model.json")
                          .read_text())
        assert info["threshold"] == details[kind]["test"]["threshold"]
        assert "validation area" in info["threshold_source"]
        assert 0 <= info["validation_map"]["auprc"] <= 1
    gan = json.loads((Path(raw["paths"]["models"]) / "joint" / "ssgan" / "model.json")
                     .read_text())
    assert 0.5 <= gan["generator_realism_auroc"] <= 1  # a 2-epoch generator is easy to spot
    for name in ("map_pr_curves.png", "map_test_preview.png"):
        assert (reports / name).stat().st_size > 10_000, name
    assert "## Test area" in (reports / "map_evaluation.md").read_text()
    assert "| intercept |" in (reports / "glm_coefficients.md").read_text()
    client = MlflowClient(pipeline["store"])
    run_id = json.loads((Path(raw["paths"]["models"]) / "joint" / "glm" / "run.json")
                        .read_text())["run_id"]
    logged = client.get_run(run_id).data.metrics
    assert {"val_map_auprc", "test_map_auprc", "map_threshold"} <= set(logged)


def test_runs_have_losses_validation_curves_images_and_data_hashes(
        pipeline: dict[str, Any]) -> None:
    client = MlflowClient(pipeline["store"])
    models = Path(pipeline["raw"]["paths"]["models"]) / "joint"
    run_id = json.loads((models / "ssgan" / "run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    for key in ("d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss",
                "val_precision", "val_recall", "val_f1", "val_kappa", "val_miou", "test_f1"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run_id, "g_loss")) == TINY["epochs"]
    assert run.data.tags["model"] == "ssgan" and run.data.tags["feature_set"] == "joint"
    experiment = client.get_experiment(run.info.experiment_id)  # the UI opens on its runs
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.data.params["train.epochs"] == str(TINY["epochs"])
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert names == {"stack", "samples", "norm"}
    images = [a.path for a in client.list_artifacts(run_id, "images")  # a series with steps
              if a.path.endswith(".png") and "generator+step+" in a.path]
    assert len(images) == TINY["epochs"], images
    assert run.data.tags["generator_image_columns"].startswith("RGB B4/B3/B2, ")
    for other in ("baseline", "forest", "glm"):
        other_id = json.loads((models / other / "run.json").read_text())["run_id"]
        other_run = client.get_run(other_id)
        assert other_run.data.tags["data_digest"] == run.data.tags["data_digest"]
        assert "test_f1" in other_run.data.metrics


def _invoke(pipeline: dict[str, Any], args: list[str]) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        return runner.invoke(app, args)


def test_a_checkpoint_of_other_settings_is_set_aside_in_one_line(pipeline: dict[str, Any]
                                                                 ) -> None:
    """An interrupted training resumes only with its own settings: after another learning
    rate (as `dvc repro` meets it after params.yaml changed) the checkpoint is discarded with
    one line naming the setting, its run closed KILLED, and the model trained afresh."""
    raw = json.loads(json.dumps(pipeline["raw"]))
    root = Path(pipeline["root"])
    raw["paths"]["trained"] = str(root / "trained_restart")
    raw["train"]["epochs"] = 3
    params = write_params(raw, root / "params_restart.yaml")
    backup = Path(raw["paths"]["trained"]) / "joint" / ".baseline.backup"
    with pytest.MonkeyPatch.context() as patch:  # a training killed after its first epoch
        patch.setattr("landslide_ssgan.stages.train._train_logged", _killed_after_a_run)
        assert _invoke(pipeline, ["train", "baseline", "--params", str(params)]).exit_code != 0
    assert (backup / "run_id").is_file()
    old_run = (backup / "run_id").read_text().strip()
    raw["train"]["lr_d"] = raw["train"]["lr_d"] * 2
    params = write_params(raw, root / "params_restart.yaml")
    result = _invoke(pipeline, ["train", "baseline", "--params", str(params)])
    assert result.exit_code == 0, result.output
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 1 and "train.lr_d" in notes[0] and "discarded" in notes[0], notes
    assert not backup.exists()
    client = MlflowClient(pipeline["store"])
    assert client.get_run(old_run).info.status == "KILLED"
    new_run = json.loads((backup.parent / "baseline" / "run.json").read_text())["run_id"]
    assert new_run != old_run
    assert float(client.get_run(new_run).data.params["train.lr_d"]) == raw["train"]["lr_d"]


def _killed_after_a_run(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt("killed")


def test_a_training_that_failed_is_never_resumed(pipeline: dict[str, Any]) -> None:
    """The SSGAN fails on samples without unlabelled windows; its run ends FAILED, no
    checkpoint is left, and the next training (good samples) starts a run of its own."""
    raw = json.loads(json.dumps(pipeline["raw"]))
    root = Path(pipeline["root"])
    samples = pd.read_csv(raw["paths"]["samples"])
    samples[samples.label >= 0].to_csv(root / "samples_no_pool.csv", index=False)
    raw["paths"]["trained"] = str(root / "trained_failed")
    bad = json.loads(json.dumps(raw))
    bad["paths"]["samples"] = str(root / "samples_no_pool.csv")
    result = _invoke(pipeline, ["train", "ssgan", "--params",
                                str(write_params(bad, root / "params_bad.yaml"))])
    assert result.exit_code == 2 and "unlabelled" in result.stderr, result.output
    assert not (Path(raw["paths"]["trained"]) / "joint" / ".ssgan.backup").exists()
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED' "
                                "AND tags.model = 'ssgan' AND tags.stage = 'train'")
    assert failed
    result = _invoke(pipeline, ["train", "ssgan", "--params",
                                str(write_params(raw, root / "params_good.yaml"))])
    assert result.exit_code == 0, result.output
    run_id = json.loads((Path(raw["paths"]["trained"]) / "joint" / "ssgan" / "run.json"
                         ).read_text())["run_id"]
    assert run_id not in {r.info.run_id for r in failed}


def test_pyfunc_takes_raw_windows_and_matches_keras(pipeline: dict[str, Any]) -> None:
    raw = pipeline["raw"]
    folder = Path(raw["paths"]["models"]) / "joint" / "ssgan"
    model_uri = json.loads((folder / "run.json").read_text())["model_uri"]
    cfg = parse_params(raw)
    source = _source(cfg)
    rows, cols, _ = source.part("test")
    normalised = source.pixels.cut(rows, cols)
    raw_windows = normalised * source.std + source.mean  # back to the stack's own units
    discriminator = keras.saving.load_model(folder / "discriminator.keras", compile=False)
    expected = np.asarray(landslide_probability(discriminator.predict(normalised, verbose=0)[0]))
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    got = pyfunc.predict(raw_windows.astype(np.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # on request, at the area's prevalence that model.json records (Bayes on the logit)
    prior = json.loads((folder / "model.json").read_text())["prior"]
    assert prior["trained"] == 0.5 and 0 < prior["area"] < 0.05
    corrected = pyfunc.predict(raw_windows.astype(np.float32),
                               params={"prior_correction": True})
    odds = expected / (1 - expected) * prior["area"] / (1 - prior["area"])
    np.testing.assert_allclose(corrected, odds / (1 + odds), atol=1e-5)
    # MLflow's signature check or the model's own: both say what shape was expected
    with pytest.raises(Exception, match="expected (windows of )?shape"):
        pyfunc.predict(raw_windows[:, :5].astype(np.float32))
    broken = raw_windows[:2].astype(np.float32).copy()
    broken[0, 0, 0, 0] = np.nan
    with pytest.raises(Exception, match="NaN"):
        pyfunc.predict(broken)


def test_windows_read_from_a_file_train_the_same_network(pipeline: dict[str, Any],
                                                        tmp_path: Path) -> None:
    """Past `windows.in_memory_mib` the image goes to a temporary file: same windows, same
    generator value range, same batches, so the same trained SSGAN."""
    cfg = parse_params(pipeline["raw"])
    paths = cfg.paths
    in_memory = _source(cfg)
    from_file = load_window_source(paths.stack, paths.samples, paths.norm, cfg.features.set,
                                   cfg.sample.window,
                                   WindowsConfig(in_memory_mib=0.0, temp_dir=str(tmp_path)))
    assert isinstance(from_file.pixels, FileWindows) and list(tmp_path.iterdir()) == []
    np.testing.assert_array_equal(from_file.windows("test")[0], in_memory.windows("test")[0])
    for got, expected in zip(from_file.value_range(), in_memory.value_range(), strict=True):
        np.testing.assert_array_equal(got, expected)
    test = in_memory.windows("test")[0]
    probabilities = [predict_probability(train_network(
        learner("ssgan"), cfg.train, source, cfg.seed,
        workdir=tmp_path / name).model.discriminator, test)
        for name, source in (("memory", in_memory), ("file", from_file))]
    np.testing.assert_array_equal(probabilities[0], probabilities[1])


def test_unreachable_tracking_server_is_one_clear_line(pipeline: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params = Path(pipeline["root"]) / "params.yaml"
    result = runner.invoke(app, ["evaluate", "--params", str(params)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: MLflow tracking server http://127.0.0.1:9 cannot")
    assert len(result.stderr.strip().splitlines()) == 1


def test_tune_nests_trials_under_one_study_run_and_resumes(pipeline: dict[str, Any]) -> None:
    import optuna
    import yaml

    raw = pipeline["raw"]
    reports = Path(raw["paths"]["reports"])
    best = yaml.safe_load((reports / "best_params.yaml").read_text())
    assert set(best["train"]) == set(raw["tune"]["space"])
    summary = json.loads((reports / "tune.json").read_text())
    assert summary["objective"] == "val_map_auprc"  # registry.score: what register ranks by
    study_best = MlflowClient(pipeline["store"]).search_runs(
        [MlflowClient(pipeline["store"]).get_experiment_by_name(
            raw["tracking"]["experiment"]).experiment_id],
        f"tags.optuna_trial = '{best['trial']}' AND tags.optuna_study = '{summary['study']}'")[0]
    assert study_best.data.metrics["val_map_auprc"] == pytest.approx(summary["best_value"])
    tuned = Path(raw["paths"]["models"]) / "joint" / "tuned"  # the stage's DVC output
    assert (tuned / "discriminator.keras").is_file() and (tuned / "model.json").is_file()
    tuned_run = json.loads((tuned / "run.json").read_text())["run_id"]
    assert MlflowClient(pipeline["store"]).get_run(tuned_run).data.tags["optuna_trial"] == str(
        best["trial"])
    assert (reports / "tune_history.png").stat().st_size > 5000
    name = json.loads((reports / "tune.json").read_text())["study"]
    assert name.startswith(raw["tune"]["study"] + "-")  # tied to the data and settings
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert len(study.trials) == 3
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    parents = client.search_runs([experiment.experiment_id], "tags.stage = 'tune-study'")
    assert len(parents) == 1
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert len(children) == 3
    states = {run.data.tags["optuna_state"] for run in children}
    assert states <= {"complete", "pruned"}
    assert all("g_loss" in run.data.metrics for run in children)

    # a larger budget resumes the same study and the same parent run: one more trial
    raw = json.loads(json.dumps(raw))
    raw["tune"]["trials"] = 4
    params = write_params(raw, Path(pipeline["root"]) / "params_resume.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        result = runner.invoke(app, ["tune", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert json.loads((reports / "tune.json").read_text())["study"] == name
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == 4  # the resumed trial did not repeat trial 0
    assert len(client.search_runs([experiment.experiment_id], "tags.stage = 'tune-study'")) == 1
    assert len(client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")) == 4


def test_tune_tunes_fixmatch_on_its_consistency_settings(pipeline: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """tune.model: fixmatch; its trials are FixMatch runs (pseudo-label curves, kind tag) over
    a consistency setting, and register can take one."""
    import optuna
    import yaml

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["reports"] = str(tmp_path / "reports")
    raw["paths"]["trained"] = str(tmp_path / "trained")
    raw["tune"].update({"model": "fixmatch", "trials": 2, "study": "fm",
                        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
                        "space": {"consistency.threshold": {"low": 0.6, "high": 0.99}}})
    params = write_params(raw, tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(tmp_path)
        for command in (["tune"], ["register", "--kinds", "[fixmatch]"]):
            result = runner.invoke(app, [*command, "--params", str(params)])
            assert result.exit_code == 0, (command, result.output, repr(result.exception))
    reports = tmp_path / "reports"
    name = json.loads((reports / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert len(study.trials) == 2
    assert all(0.6 <= t.params["consistency.threshold"] <= 0.99 for t in study.trials)
    assert set(yaml.safe_load((reports / "best_params.yaml").read_text())["train"]) == {
        "consistency.threshold"}
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    trials = client.search_runs([experiment.experiment_id], "tags.stage = 'tune'")
    assert len(trials) == 2 and {run.data.tags["model"] for run in trials} == {"fixmatch"}
    assert all("pseudo_label_share" in run.data.metrics for run in trials)
    champion = json.loads((reports / "champion.json").read_text())
    assert champion["kind"] == "fixmatch" and champion["run_id"] in {
        run.info.run_id for run in trials}


def test_a_killed_tune_is_resumed_without_a_trial_left_running(pipeline: dict[str, Any]
                                                               ) -> None:
    """SIGKILL a `landslide tune` mid-trial, then run it again: the lost trial is failed (its
    MLflow run KILLED), the budget is met with finished trials, no parameters repeat."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    raw = json.loads(json.dumps(pipeline["raw"]))
    root = Path(pipeline["root"])
    raw["tune"].update({"study": "killed", "trials": 2, "epochs": 2, "heartbeat_s": 1,
                        "storage": f"sqlite:///{root / 'killed.db'}"})
    params = write_params(raw, root / "params_killed.yaml")
    env = {**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]}
    worker = subprocess.Popen([sys.executable, "-m", "landslide_ssgan.cli", "tune", "--params",
                               str(params)], cwd=root, env=env, stderr=subprocess.PIPE)
    storage = optuna.storages.RDBStorage(raw["tune"]["storage"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and worker.poll() is None:
        studies = optuna.get_all_study_summaries(storage)
        if studies and any(t.state == optuna.trial.TrialState.RUNNING for t in
                           optuna.load_study(study_name=studies[0].study_name,
                                             storage=storage).trials):
            break
        time.sleep(0.5)
    assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
    time.sleep(2)  # a heartbeat or two, mid-trial
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(4.5)  # three heartbeats: the trial is stale
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(root)
        result = runner.invoke(app, ["tune", "--params", str(params)])
    assert result.exit_code == 0, result.output
    name = json.loads((Path(raw["paths"]["reports"]) / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 2
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == len(drawn)
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    runs = {int(r.data.tags["optuna_trial"]): r.info.status for r in client.search_runs(
        [experiment.experiment_id], f"tags.optuna_study = '{name}' AND tags.stage = 'tune'")}
    assert runs[0] == "KILLED" and set(runs) == {0, 1, 2} and "RUNNING" not in runs.values()


def test_register_left_a_champion_that_loads_by_alias(pipeline: dict[str, Any]) -> None:
    raw = pipeline["raw"]
    champion = json.loads((Path(raw["paths"]["reports"]) / "champion.json").read_text())
    assert champion["promoted"] and champion["version"] == "1"
    model = mlflow.pyfunc.load_model(f"models:/{raw['registry']['model_name']}@champion")
    cfg = parse_params(raw)
    source = _source(cfg)
    rows, cols, _ = source.part("val")
    windows = source.pixels.cut(rows, cols) * source.std + source.mean
    probability = model.predict(windows.astype(np.float32))
    assert probability.shape == (len(rows),) and ((probability >= 0) & (probability <= 1)).all()


def test_the_champion_is_the_best_run_of_any_kind(pipeline: dict[str, Any]) -> None:
    """Every kind trained by the pipeline competes; registry.kinds narrows the field; the
    registered version and champion.json say the winner's kind."""
    from landslide_ssgan.ops import tracking

    raw = pipeline["raw"]
    cfg = parse_params(raw)
    digest = tracking.data_digest(cfg.paths.samples, cfg.paths.stack)
    experiment = cfg.tracking.experiment
    client = MlflowClient(pipeline["store"])
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        f"tags.feature_set = 'joint' AND tags.data_digest = '{digest}' AND tags.model_uri != ''")
    trained = set(cfg.evaluate.models) | set(cfg.evaluate.segmenters)
    assert {run.data.tags["model"] for run in runs} == set(cfg.registry.kinds) & trained
    best = max(runs, key=lambda run: (run.data.metrics.get("val_map_auprc", -1.0),
                                      run.data.metrics.get("val_f1", 0.0), -run.info.start_time))
    found = tracking.best_candidate(experiment, "joint", digest, "auprc", cfg.registry.kinds)
    assert found.info.run_id == best.info.run_id
    for kind in ("ssgan", "forest"):
        only = tracking.best_candidate(experiment, "joint", digest, "auprc", (kind,))
        assert only.data.tags["model"] == kind
    champion = json.loads((Path(raw["paths"]["reports"]) / "champion.json").read_text())
    version = client.get_model_version(cfg.registry.model_name, champion["version"])
    assert champion["kind"] == version.tags["kind"] == client.get_run(
        version.run_id).data.tags["model"]


def _constant_model(tmp: Path, source: WindowSource, landslide: bool) -> Path:
    """A model folder whose discriminator calls every window stable (F1 0) or every window a
    landslide."""
    from landslide_ssgan.models import bundle
    from landslide_ssgan.models.discriminator import build_discriminator
    from landslide_ssgan.models.predictors import WindowNetwork

    model = build_discriminator(13, len(source.bands), (2, 2), 2, 0.0, 0.2, outputs=3)
    head = model.get_layer("logits")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([-5.0, 5.0, 0.0] if landslide
                                                      else [5.0, -5.0, 0.0], "float32")])
    folder = tmp / f"{'slide' if landslide else 'stable'}"
    bundle.save_model(folder, WindowNetwork(model), source.normalisation)
    return folder


def test_promotion_moves_the_alias_only_for_a_better_model(
        pipeline: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landslide_ssgan.evaluation import scoring
    from landslide_ssgan.ops import pyfunc, tracking
    from landslide_ssgan.stages import register

    store = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["registry"]["score"] = "balanced_f1"  # constant models: F1 tells them apart, AUPRC not
    raw["paths"]["reports"] = str(tmp_path / "reports")
    cfg = parse_params(raw)
    tracking.use_tracking_store(store, cfg.tracking.experiment)
    source = _source(cfg)
    digest = tracking.data_digest(cfg.paths.samples, cfg.paths.stack)
    paths = cfg.paths
    ground = scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)

    def register_champion() -> dict[str, Any]:
        return register.run(cfg.registry, feature_set=cfg.features.set,
                            threshold=cfg.train.threshold, window=cfg.sample.window,
                            experiment=cfg.tracking.experiment, stack=paths.stack,
                            samples=paths.samples, norm=paths.norm, ground=ground,
                            reports=paths.reports)

    def candidate(landslide: bool, logged_f1: float) -> None:
        with mlflow.start_run():
            uri = pyfunc.log_window_model(_constant_model(tmp_path, source, landslide), [])
            mlflow.set_tags({"model": "ssgan", "feature_set": cfg.features.set,
                             "data_digest": digest, "model_uri": uri})
            mlflow.log_metrics({"val_f1": logged_f1, "val_kappa": 0.0})

    candidate(landslide=False, logged_f1=0.90)  # first model: nothing to beat
    first = register_champion()
    assert first["promoted"] and first["version"] == "1"
    assert first["candidate"]["score"] == 0.0  # re-scored on validation windows, not trusted

    candidate(landslide=True, logged_f1=0.95)  # really better on the validation windows
    second = register_champion()
    assert second["promoted"] and second["version"] == "2"
    assert second["candidate"]["score"] > 0.5

    candidate(landslide=False, logged_f1=0.99)  # claims more, is worse: registered, not promoted
    third = register_champion()
    assert not third["promoted"] and third["version"] == "2"
    assert third["candidate"]["version"] == "3"
    alias = mlflow.tracking.MlflowClient().get_model_version_by_alias(cfg.registry.model_name,
                                                                     cfg.registry.alias)
    assert str(alias.version) == "2"

    again = register_champion()  # the same best run is not registered twice
    assert again["candidate"]["version"] == "3"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, payload: Any) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _wait_until_up(port: int, path: str, process: Any, seconds: float = 120) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            assert process.poll() is None, "the server exited"
            time.sleep(1)
    raise AssertionError(f"nothing answered on port {port}")


def _stopped_cleanly(process: Any, port: int, signum: int | None = None) -> None:
    """SIGTERM (or `signum`): the command and every process it started exit, nothing listens
    any more."""
    import signal
    import socket

    import psutil

    family = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signum or signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
    _, alive = psutil.wait_procs(family, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_served_champion_answers_like_the_model_in_process(pipeline: dict[str, Any]) -> None:
    import os
    import subprocess
    import sys

    raw = pipeline["raw"]
    cfg = parse_params(raw)
    source = _source(cfg)
    rows, cols, _ = source.part("test")
    windows = (source.pixels.cut(rows[:9], cols[:9]) * source.std
               + source.mean).astype(np.float32)
    expected = mlflow.pyfunc.load_model(f"models:/{cfg.registry.model_name}@champion"
                                        ).predict(windows[:8])
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "landslide_ssgan.cli", "serve", "--port", str(port),
         "--max-windows", "8", "--params", str(Path(pipeline["root"]) / "params.yaml")],
        cwd=pipeline["root"], env={**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(port, "/ping", server)
        status, body = _post(port, {"inputs": windows[:8].tolist()})
        assert status == 200
        np.testing.assert_allclose(np.asarray(json.loads(body)["predictions"]).ravel(),
                                   expected, atol=1e-5)
        status, body = _post(port, {"inputs": windows[:8].tolist(),
                                    "params": {"prior_correction": True}})
        assert status == 200  # at the area's prevalence: every probability moves down
        corrected = np.asarray(json.loads(body)["predictions"]).ravel()
        assert (corrected <= expected + 1e-7).all() and (corrected < expected).any()
        status, body = _post(port, {"inputs": windows.tolist()})  # one window too many
        assert status == 413 and "serve.max_windows" in json.loads(body)["message"]
        status, body = _post(port, {"inputs": [windows.tolist()]})  # nested one level deeper
        assert status == 413 and "9 windows" in json.loads(body)["message"], body
        busy = _invoke(pipeline, ["serve", "--port", str(port), "--params",  # a second one
                                  str(Path(pipeline["root"]) / "params.yaml")])
        assert busy.exit_code == 2 and busy.stdout == "", busy.output
        assert busy.stderr.count("\n") == 1 and "already in use" in busy.stderr, busy.stderr
        status, body = _post(port, {"inputs": windows[:8, :, :, :3].tolist()})  # 3 bands
        assert 400 <= status < 500 and "shape" in json.loads(body)["message"].lower(), body
        assert len(body) < 400  # short: no echo of the input, no stack trace
        assert not re.search(r"\d+\.\d+, \d+\.\d+", body.decode()), body  # no numbers
        broken = windows[:8].copy()
        broken[0, 0, 0, 0] = np.nan
        status, body = _post(port, {"inputs": np.where(np.isnan(broken), None, broken).tolist()})
        assert 400 <= status < 500 and len(body) < 400, body[:400]
        _stopped_cleanly(server, port)
    finally:
        server.kill()


def test_serve_with_a_model_that_does_not_exist_is_one_line(pipeline: dict[str, Any]) -> None:
    result = _invoke(pipeline, ["serve", "--model-uri", "models:/no-such-model@champion",
                                "--params", str(Path(pipeline["root"]) / "params.yaml")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "models:/no-such-model@champion" in result.stderr and "Traceback" not in result.output


def test_the_ui_stops_with_every_process_it_started(pipeline: dict[str, Any]) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "landslide_ssgan.cli", "ui", "--port", str(port), "--params",
         str(Path(pipeline["root"]) / "params.yaml")],
        cwd=pipeline["root"], env={**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(port, "/health", ui)
        _stopped_cleanly(ui, port, signal.SIGHUP)  # the terminal that started it closed
    finally:
        ui.kill()


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres() -> Any:
    """A real PostgreSQL server on 127.0.0.1 in a throw-away data directory."""
    import os
    import shutil
    import subprocess
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="pg-"))
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                        str(data / "server.log"), "-o",
                        f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", "start"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(pipeline: dict[str, Any], postgres: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["tune"].update({"study": "shared", "trials": 4, "epochs": 1})
    params = write_params(raw, Path(pipeline["root"]) / "params_pg.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    monkeypatch.chdir(pipeline["root"])
    result = runner.invoke(app, ["tune", "--params", str(params), "--storage", postgres,
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    name = json.loads((Path(raw["paths"]["reports"]) / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=postgres)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 4  # none lost, none beyond the budget
    others = [t for t in study.trials if t not in finished]  # a slot another worker took
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("beyond_budget")
               for t in others)
    assert sorted(t.number for t in finished) == [0, 1, 2, 3]
    drawn = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(drawn)) == 4  # the two workers did not draw the same parameters
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.optuna_study = '{name}' AND tags.stage = 'tune'")
    assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2, 3]


def test_map_writes_cogs_polygons_summary_and_preview(pipeline: dict[str, Any]) -> None:
    import geopandas as gpd
    import rasterio

    from landslide_ssgan.config import load_params
    from landslide_ssgan.data.blocks import body_polygons, is_cog, stack_grid
    from landslide_ssgan.inference.bodies import landslide_bodies

    raw = pipeline["raw"]
    maps, reports = Path(raw["paths"]["maps"]), Path(raw["paths"]["reports"])
    summary = json.loads((reports / "map_summary.json").read_text())
    assert summary["champion"]["uri"] == "models:/landslide-ssgan@champion"
    assert summary["champion"]["version"].isdigit()  # the registry version that was mapped
    assert summary["champion"]["dense_inference"] is True
    for prefix, polygons in (("landslide", "landslides.gpkg"),
                             ("baseline", "baseline_landslides.gpkg")):
        probability, classes = maps / f"{prefix}_probability.tif", maps / f"{prefix}_class.tif"
        assert is_cog(probability) and is_cog(classes)
        with rasterio.open(probability) as src, rasterio.open(classes) as cls:
            values, labels = src.read(1), cls.read(1)
            assert src.crs.to_epsg() == 32646
        valid = np.isfinite(values)
        assert np.array_equal(labels == 255, ~valid)
        assert ((values[valid] >= 0) & (values[valid] <= 1)).all()
        bodies = gpd.read_file(maps / polygons, layer="landslides")
        row = summary["champion" if prefix == "landslide" else "baseline"]
        assert len(bodies) == row["count"]
        assert list(bodies["id"]) == list(range(1, len(bodies) + 1))
        np.testing.assert_allclose(bodies.geometry.area, bodies["area_m2"])
        assert bodies.geometry.is_valid.all()
        assert (bodies["area_m2"] >= raw["map"]["min_area_m2"]).all()
        assert bodies["area_m2"].sum() / 1e6 == pytest.approx(row["total_area_km2"])
        assert (labels == 1).sum() * 100.0 == pytest.approx(bodies["area_m2"].sum())
        # found block by block (map.block_size 100: bodies cross the seams), as the whole
        # map at once finds them
        cfg = dataclasses.replace(load_params(pipeline["root"] / "params.yaml").map,
                                  threshold=row["threshold"])
        whole = landslide_bodies(values, cfg, 100.0)
        np.testing.assert_array_equal(labels == 1, whole.labels > 0)
        np.testing.assert_array_equal(bodies["area_m2"], whole.areas_m2)
        np.testing.assert_allclose(bodies["mean_probability"], whole.mean_probability,
                                   rtol=1e-12)
        expected = body_polygons(whole.labels, stack_grid(probability))
        assert all(bodies.geometry.geom_equals(expected.geometry))
    assert (reports / "map_preview.png").stat().st_size > 10_000
    assert not list(maps.glob(".*"))  # no block store or staging file left behind


def test_maps_carry_their_making_and_open_styled_in_qgis(pipeline: dict[str, Any]) -> None:
    """Tags (model, version, threshold, scale, date, attribution), units, a colour table and
    class names, QGIS styles beside the rasters and in the GeoPackage (version 1.2)."""
    import sqlite3
    import xml.etree.ElementTree as ET

    import pystac
    import rasterio

    raw = pipeline["raw"]
    maps, reports = Path(raw["paths"]["maps"]), Path(raw["paths"]["reports"])
    champion = json.loads((reports / "map_summary.json").read_text())["champion"]
    with rasterio.open(maps / "landslide_probability.tif") as src:
        tags = src.tags()
        assert src.units == ("probability (0 to 1)",)
    assert tags["MODEL_URI"] == "models:/landslide-ssgan@champion"
    assert tags["MODEL_VERSION"] == champion["version"]
    assert float(tags["THRESHOLD"]) == pytest.approx(champion["threshold"], rel=1e-5)
    assert tags["PROBABILITY_SCALE"] == champion["probabilities"]
    assert tags["MODEL_BANDS"].split(",")[0] and tags["CREATED"].startswith("20")
    assert tags["ATTRIBUTION"] == raw["map"]["attribution"]
    with rasterio.open(maps / "landslide_class.tif") as src:
        assert src.tags()["MODEL_URI"] == tags["MODEL_URI"]
        assert src.tags(1) == {"CLASS_0": "not landslide", "CLASS_1": "landslide"}
        assert src.colormap(1)[1] == (215, 25, 28, 255)  # TIFF palettes hold no alpha: QML does
    ramp = ET.parse(maps / "landslide_probability.qml").getroot().findall(".//item")
    values = [float(item.get("value", "nan")) for item in ramp]
    assert values == sorted(values) and champion["threshold"] in [pytest.approx(v) for v in
                                                                 values]
    palette = ET.parse(maps / "landslide_class.qml").getroot().findall(".//paletteEntry")
    assert [entry.get("label") for entry in palette] == ["not landslide", "landslide"]
    with sqlite3.connect(maps / "landslides.gpkg") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (10200,)  # GeoPackage 1.2
        name, default, qml = db.execute("SELECT f_table_name, useAsDefault, styleQML "
                                        "FROM layer_styles").fetchone()
    assert (name, default) == ("landslides", 1)
    assert ET.fromstring(qml.split("\n", 1)[1]).find(".//layer").get("class") == "SimpleFill"
    item = pystac.Item.from_file(str(maps / "landslide.stac.json"))  # the map's STAC item
    assert {"probability", "class", "polygons", "preview", "summary"} <= set(item.assets)
    assert all((maps / asset.href).resolve().is_file() for asset in item.assets.values())
    assert item.assets["class"].extra_fields["classification:classes"][1]["name"] == "landslide"
    west, south, east, north = item.bbox
    assert 91.75 < west < east < 91.87 and 22.30 < south < north < 22.50  # in Chattogram
    assert item.properties["mlm:input"][0]["bands"] == tags["MODEL_BANDS"].split(",")
    assert item.properties["landslide:model_uri"] == tags["MODEL_URI"]
    assert item.properties["proj:code"] == "EPSG:32646"


def test_map_of_new_imagery_goes_to_its_own_folder(pipeline: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """`landslide map --stack FILE --out DIR`: the champion maps another stack, unscored;
    a stack without the model's bands, or an --out that holds the stack, is one line."""
    import rasterio

    raw = pipeline["raw"]
    stack = tmp_path / "other" / "stack.tif"
    stack.parent.mkdir()
    shutil.copy(raw["paths"]["stack"], stack)
    args = ["map", "--params", str(pipeline["root"] / "params.yaml"), "--stack", str(stack)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 0, (result.output, repr(result.exception))
        summary = json.loads((tmp_path / "out" / "map_summary.json").read_text())
        assert set(summary) & {"champion", "baseline"} == {"champion"}
        assert summary["champion"]["areas"] == {}
        assert (tmp_path / "out" / "landslides.gpkg").is_file()
        assert (tmp_path / "out" / "landslide_class.qml").is_file()
        assert (tmp_path / "out" / "landslide.stac.json").is_file()
        with rasterio.open(raw["paths"]["stack"]) as src, rasterio.open(
                tmp_path / "out" / "landslide_probability.tif") as new, rasterio.open(
                Path(raw["paths"]["maps"]) / "landslide_probability.tif") as old:
            assert new.shape == src.shape
            np.testing.assert_allclose(new.read(1), old.read(1), rtol=1e-5)
        with rasterio.open(stack) as src:
            profile, first = src.profile | {"count": 1}, src.read(1)
            name = src.descriptions[0]
        one_band = tmp_path / "one_band.tif"
        with rasterio.open(one_band, "w", **profile) as dst:
            dst.write(first, 1)
            dst.set_band_description(1, name)
        bad = runner.invoke(app, [*args[:-1], str(one_band), "--out", str(tmp_path / "x")])
        stack.rename(stack.with_name("landslide_probability.tif"))
        onto = runner.invoke(app, [*args[:-1], str(stack.with_name("landslide_probability.tif")),
                                   "--out", str(stack.parent)])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.output
    assert "one_band.tif: the model needs bands" in bad.stderr
    assert not (tmp_path / "x" / "landslide_probability.tif").exists()
    assert onto.exit_code == 2 and "would overwrite its own input" in onto.stderr


def test_prior_correction_moves_probabilities_not_the_class_map(pipeline: dict[str, Any],
                                                               tmp_path: Path) -> None:
    import rasterio

    raw = json.loads(json.dumps(pipeline["raw"]))
    assert raw["map"]["prior_correction"] is True  # the pipeline's map is corrected
    raw["paths"]["maps"], raw["paths"]["reports"] = str(tmp_path / "maps"), str(tmp_path)
    raw["map"].update({"prior_correction": False, "compare_baseline": False})
    params = write_params(raw, tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        result = runner.invoke(app, ["map", "--params", str(params)])
    assert result.exit_code == 0, result.output

    def read(folder: str, name: str) -> np.ndarray:
        with rasterio.open(Path(folder) / name) as src:
            return src.read(1)

    ours = pipeline["raw"]["paths"]["maps"]
    np.testing.assert_array_equal(read(ours, "landslide_class.tif"),
                                  read(raw["paths"]["maps"], "landslide_class.tif"))
    raw_p, corrected = (read(raw["paths"]["maps"], "landslide_probability.tif"),
                        read(ours, "landslide_probability.tif"))
    summary = json.loads((Path(pipeline["raw"]["paths"]["reports"]) / "map_summary.json")
                         .read_text())
    assert "prevalence" in summary["champion"]["probabilities"]
    valid = np.isfinite(raw_p)
    assert np.nanmean(corrected) < np.nanmean(raw_p)
    np.testing.assert_array_equal(np.isfinite(corrected), valid)


def test_a_map_that_fails_at_the_end_leaves_the_previous_outputs_whole(
        pipeline: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview is drawn last; if it fails, no new map sits beside the old summary."""
    from landslide_ssgan.reporting import plots

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["maps"], raw["paths"]["reports"] = str(tmp_path / "maps"), str(tmp_path / "r")
    raw["map"].update({"compare_baseline": False, "score_areas": False})
    params = write_params(raw, tmp_path / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    assert runner.invoke(app, ["map", "--params", str(params)]).exit_code == 0
    summary = json.loads((tmp_path / "r" / "map_summary.json").read_text())
    assert summary["champion"]["areas"] == {} and summary["champion"]["count"] > 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
              and p.name != "params.yaml"}

    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(plots, "map_preview", broken)
    raw["map"]["threshold"] = 0.99  # a different map, so a half-finished run would show
    params = write_params(raw, tmp_path / "params.yaml")
    result = runner.invoke(app, ["map", "--params", str(params)])
    assert result.exit_code != 0
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
             and p.name != "params.yaml"}
    assert after == before  # the old maps, polygons, summary and preview, no staged leftovers


def test_map_with_a_model_that_does_not_exist_is_one_line(pipeline: dict[str, Any],
                                                          tmp_path: Path) -> None:
    params = write_params(pipeline["raw"], tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        result = runner.invoke(app, ["map", "--params", str(params), "--model-uri",
                                     "models:/no-such-model@champion"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: model models:/no-such-model@champion")
    assert len(result.output.strip().splitlines()) == 1


def test_a_tiny_study_runs_end_to_end_and_writes_the_report(pipeline: dict[str, Any],
                                                            tmp_path: Path) -> None:
    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["reports"] = str(tmp_path / "reports")
    params = write_params(raw, tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        result = runner.invoke(app, ["study", "--params", str(params)])
    assert result.exit_code == 0, (result.output, repr(result.exception))
    reports = tmp_path / "reports"
    rows = pd.read_csv(reports / "label_efficiency.csv")
    # 2 budgets x 1 seed: spatial has 4 models + 2 variants, random the 4 models
    assert len(rows) == 2 * 6 + 2 * 4
    assert set(rows.model) == {"ssgan", "baseline", "fixmatch", "forest", "ssgan+pool",
                               "ssgan+fm"}
    small, full = (rows[(rows.split == "spatial") & (rows.budget == b)] for b in (0.5, 1.0))
    assert (small.labelled_windows < full.labelled_windows.iloc[0]).all()
    report = (reports / "label_efficiency.md").read_text()
    assert "SSGAN minus its supervised twin" in report and "| spatial | 0.5 |" in report
    assert "Spatial versus random split" in report and "The answer in numbers" in report
    assert "- SSGAN vs supervised twin, spatial split, f1: " in report
    assert "## The map at the real prevalence" in report
    assert "- ssgan vs baseline, the map's test-area AUPRC (spatial split): " in report
    assert "- fixmatch vs baseline, the map's test-area AUPRC (spatial split): " in report
    assert "## FixMatch minus its supervised twin" in report
    spatial = rows[rows.split == "spatial"]
    assert spatial.map_auprc.between(0, 1).all() and spatial.map_f1.between(0, 1).all()
    assert rows[rows.split == "random"].map_auprc.isna().all()  # no held-out area there
    gans = rows.model.str.startswith("ssgan")
    assert rows[gans].generator_realism.between(0, 1).all()
    assert rows[~gans].generator_realism.isna().all()
    assert "## Are the generated windows plausible?" in report
    assert "Sampling: negatives from" in report
    assert (reports / "label_efficiency.png").stat().st_size > 10_000
    client = MlflowClient(pipeline["store"])
    parent = client.search_runs(
        [client.get_experiment_by_name(raw["tracking"]["experiment"]).experiment_id],
        filter_string="tags.stage = 'study' AND attributes.run_name = 'label-efficiency'")[0]
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100)
    assert len(children) == len(rows)
    assert {c.data.tags["budget"] for c in children} == {"0.5", "1.0"}
    assert all("test_f1" in c.data.metrics for c in children)
    pools = {(c.data.tags["model"], c.data.tags["budget"]): c.data.params
             for c in children if c.data.tags["split_method"] == "spatial"}
    assert pools[("ssgan+pool", "1.0")]["steps"] == "3"  # a variant's own steps and pool
    assert int(pools[("ssgan+pool", "1.0")]["unlabelled_windows"]) < int(
        pools[("ssgan", "1.0")]["unlabelled_windows"])


def test_map_on_a_local_dask_cluster_writes_the_same_rasters(pipeline: dict[str, Any],
                                                             tmp_path: Path) -> None:
    import rasterio

    folder = Path(pipeline["raw"]["paths"]["models"]) / "joint" / "ssgan"
    outputs = {}
    for name, extra in (("single", []), ("dask", ["--dask", "--workers", "2"])):
        raw = json.loads(json.dumps(pipeline["raw"]))
        raw["paths"]["maps"] = str(tmp_path / name / "maps")
        raw["paths"]["reports"] = str(tmp_path / name / "reports")
        params = write_params(raw, tmp_path / f"{name}.yaml")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
            result = runner.invoke(app, ["map", "--params", str(params), "--model-uri",
                                         str(folder), *extra])
        assert result.exit_code == 0, (result.output, repr(result.exception))
        with rasterio.open(tmp_path / name / "maps" / "landslide_probability.tif") as src:
            outputs[name] = src.read(1)
    np.testing.assert_array_equal(outputs["dask"], outputs["single"])


def test_mlflow_run_of_an_entry_point_logs_into_the_run_it_opened(pipeline: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    """`mlflow run . -e train -P model=baseline -P epochs=1 --env-manager local`, as an MLflow
    user types it: the command trains in the run MLflow opened (same store and experiment),
    and -P epochs reaches train.epochs."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["trained"] = str(tmp_path / "trained")
    params = write_params(raw, tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "train", "-P", "model=baseline",
         "-P", f"params={params}", "-P", "epochs=1", "--env-manager", "local"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
             "MLFLOW_TRACKING_URI": store,  # a user's shell, with only the store chosen
             "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store)
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])]
    assert len(runs) == 1, [r.data.tags.get("mlflow.runName") for r in runs]
    run = runs[0]
    assert run.data.tags["mlflow.project.entryPoint"] == "train"  # the run mlflow run opened
    assert run.data.tags["model"] == "baseline" and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "1"
    assert len(client.get_metric_history(run.info.run_id, "val_f1")) == 1
    saved = json.loads((tmp_path / "trained" / "joint" / "baseline" / "run.json").read_text())
    assert saved["run_id"] == run.info.run_id


def test_the_registered_version_carries_its_model_card(pipeline: dict[str, Any]) -> None:
    """The registry version explains itself: kind, bands in order, window, threshold on both
    scales, the prior and the validation map scores; reports/model_card.md is the champion's."""
    raw = pipeline["raw"]
    champion = json.loads((Path(raw["paths"]["reports"]) / "champion.json").read_text())
    version = MlflowClient(pipeline["store"]).get_model_version(
        raw["registry"]["model_name"], champion["version"])
    card = version.description
    assert card == (Path(raw["paths"]["reports"]) / "model_card.md").read_text()
    norm = json.loads((Path(raw["paths"]["models"]) / "joint" / champion["kind"]
                       / "normalisation.json").read_text())
    assert f"({champion['kind']})" in card and "## Threshold" in card
    assert "at the area's prevalence" in card and "- auprc: " in card
    assert ", ".join(f"{i}: {b}" for i, b in enumerate(norm["bands"])) in card
    assert f"{norm['window']} x {norm['window']} pixels" in card


def test_the_quickstart_script_asks_the_champion_about_pixels(
        pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/quickstart.py, as the README's user runs it after `dvc repro`: the registered
    champion, loaded through MLflow, answers windows read with rasterio."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "scripts" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    raw = pipeline["raw"]
    uri = f"models:/{raw['registry']['model_name']}@{raw['registry']['alias']}"
    assert quickstart.main(["--model-uri", uri, "--stack", raw["paths"]["stack"]]) == 0
    out = capsys.readouterr().out
    assert re.search(r"on windows of (\d+) x \1 pixels; a landslide at P >= ", out), out
    answers = [line for line in out.splitlines() if line.startswith("pixel (")]
    assert answers and all("as trained" in line for line in answers)
