"""The pipeline's training and evaluation records: reports, MLflow runs, checkpoints, the
logged pyfunc against Keras, the registry's champion and promotion, the study."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from landslide_ssgan.cli import app
from landslide_ssgan.config import WindowsConfig, parse_params
from landslide_ssgan.data.source import WindowSource, load_window_source
from landslide_ssgan.data.windows import FileWindows
from landslide_ssgan.models.discriminator import landslide_probability
from landslide_ssgan.models.learners import learner
from landslide_ssgan.models.prior import Prior
from landslide_ssgan.models.ssgan import predict_probability
from landslide_ssgan.ops import tracking
from landslide_ssgan.training.fit import train_network
from tests.conftest import write_params
from tests.pipeline.conftest import TINY, invoke, runner, window_source_of


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
    segmenter = json.loads((Path(raw["paths"]["models"]) / "joint" / "unet" / "model.json")
                           .read_text())
    assert segmenter["symmetries"] == 8 and "validation area" in segmenter["threshold_source"]
    gan = json.loads((Path(raw["paths"]["models"]) / "joint" / "ssgan" / "model.json")
                     .read_text())
    assert "symmetries" not in gan  # a window model maps once
    assert 0.5 <= gan["generator_realism_auroc"] <= 1  # a 2-epoch generator is easy to spot
    for name in ("map_pr_curves.png", "map_test_preview.png"):
        assert (reports / name).stat().st_size > 10_000, name
    assert "## Test area" in (reports / "map_evaluation.md").read_text()
    assert "| intercept |" in (reports / "glm_coefficients.md").read_text()
    client = MlflowClient(pipeline["store"])
    run_id = json.loads((Path(raw["paths"]["models"]) / "joint" / "glm" / "run.json")
                        .read_text())["run_id"]
    logged = client.get_run(run_id).data.metrics
    assert {"val_map/auprc", "test_map/auprc", "map/threshold"} <= set(logged)
    unet_run = json.loads((Path(raw["paths"]["models"]) / "joint" / "unet" / "run.json")
                          .read_text())["run_id"]
    assert client.get_run(unet_run).data.metrics["map/symmetries"] == 8


def test_runs_have_losses_validation_curves_images_and_data_hashes(
        pipeline: dict[str, Any]) -> None:
    client = MlflowClient(pipeline["store"])
    models = Path(pipeline["raw"]["paths"]["models"]) / "joint"
    run_id = json.loads((models / "ssgan" / "run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    # grouped by prefix, so MLflow's chart view makes a section of each group
    for key in ("train/d_labelled_loss", "train/d_unlabelled_loss", "train/d_generated_loss",
                "train/g_loss", "val/precision", "val/recall", "val/f1", "val/kappa",
                "val/miou", "test/f1"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run_id, "train/g_loss")) == TINY["epochs"]
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
        assert "test/f1" in other_run.data.metrics
        if other in ("forest", "glm"):  # a classifier's run logs only the settings it reads
            assert "train.epochs" not in other_run.data.params
            assert other_run.data.params["train.threshold"] == str(
                pipeline["raw"]["train"]["threshold"])
    # every run a stage opened names the process that last held it (a killed one is closed)
    every = [r for r in client.search_runs([run.info.experiment_id], max_results=1000)
             if "stage" in r.data.tags]
    assert len(every) > 10 and all(tracking.OWNER in r.data.tags for r in every)
    assert all(r.info.status != "RUNNING" for r in every)


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
        assert invoke(pipeline, ["train", "baseline", "--params", str(params)]).exit_code != 0
    assert (backup / "run_id").is_file()
    old_run = (backup / "run_id").read_text().strip()
    raw["train"]["lr_d"] = raw["train"]["lr_d"] * 2
    params = write_params(raw, root / "params_restart.yaml")
    result = invoke(pipeline, ["train", "baseline", "--params", str(params)])
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
    result = invoke(pipeline, ["train", "ssgan", "--params",
                                str(write_params(bad, root / "params_bad.yaml"))])
    assert result.exit_code == 2 and "unlabelled" in result.stderr, result.output
    assert not (Path(raw["paths"]["trained"]) / "joint" / ".ssgan.backup").exists()
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    failed = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED' "
                                "AND tags.model = 'ssgan' AND tags.stage = 'train'")
    assert failed
    result = invoke(pipeline, ["train", "ssgan", "--params",
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
    source = window_source_of(cfg)
    rows, cols, _ = source.part("test")
    normalised = source.pixels.cut(rows, cols)
    raw_windows = normalised * source.std + source.mean  # back to the stack's own units
    discriminator = keras.saving.load_model(folder / "discriminator.keras", compile=False)
    expected = np.asarray(landslide_probability(discriminator.predict(normalised, verbose=0)[0]))
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    got = pyfunc.predict(raw_windows.astype(np.float32), params={"prior_correction": False})
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # by default, as the maps: at the area's prevalence that model.json records (Bayes on
    # the logit)
    prior = json.loads((folder / "model.json").read_text())["prior"]
    assert prior["trained"] == 0.5 and 0 < prior["area"] < 0.05
    corrected = pyfunc.predict(raw_windows.astype(np.float32))
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
    in_memory = window_source_of(cfg)
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


def test_register_left_a_champion_that_loads_by_alias(pipeline: dict[str, Any]) -> None:
    raw = pipeline["raw"]
    champion = json.loads((Path(raw["paths"]["reports"]) / "champion.json").read_text())
    assert champion["promoted"] and champion["version"] == "1"
    model = mlflow.pyfunc.load_model(f"models:/{raw['registry']['model_name']}@champion")
    cfg = parse_params(raw)
    source = window_source_of(cfg)
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
    trained = set(cfg.evaluate.window_kinds) | set(cfg.evaluate.segmenters)
    assert {run.data.tags["model"] for run in runs} == set(cfg.registry.kinds) & trained
    best = max(runs, key=lambda run: (run.data.metrics.get("val_map/auprc", -1.0),
                                      run.data.metrics.get("val/f1", 0.0), -run.info.start_time))
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
    source = window_source_of(cfg)
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
            tracking.log_metrics({"val_f1": logged_f1, "val_kappa": 0.0})  # val/f1, val/kappa

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
    # what a choice between settings may look at: the validation area, beside the test's
    assert spatial.val_map_auprc.between(0, 1).all()
    assert rows[rows.split == "random"].val_map_auprc.isna().all()
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
    assert all("test/f1" in c.data.metrics for c in children)
    assert all(("val_map/auprc" in c.data.metrics) == (c.data.tags["split_method"] == "spatial")
               for c in children)
    pools = {(c.data.tags["model"], c.data.tags["budget"]): c.data.params
             for c in children if c.data.tags["split_method"] == "spatial"}
    assert pools[("ssgan+pool", "1.0")]["steps"] == "3"  # a variant's own steps and pool
    assert int(pools[("ssgan+pool", "1.0")]["unlabelled_windows"]) < int(
        pools[("ssgan", "1.0")]["unlabelled_windows"])


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
    # the threshold tag is on the scale the model answers by default, as the map's is
    info = json.loads((Path(raw["paths"]["models"]) / "joint" / champion["kind"]
                       / "model.json").read_text())
    assert "By default the probabilities are at the area's prevalence" in card
    assert float(version.tags["map_threshold_trained"]) == pytest.approx(info["threshold"],
                                                                         rel=1e-5)
    assert float(version.tags["map_threshold"]) == pytest.approx(Prior.from_dict(
        info["prior"]).correct_threshold(info["threshold"]), rel=1e-5)


def test_evaluate_and_register_print_a_line_per_model_as_it_is_scored(
        pipeline: dict[str, Any]) -> None:
    """The slow stages say what they have done as they go, with the seconds each model took:
    evaluate a line per model and judgement, register a line per model it scores."""
    raw, printed = pipeline["raw"], pipeline["printed"]
    kinds = [*raw["evaluate"]["networks"], *raw["evaluate"]["classifiers"]]
    lines = printed["evaluate"].splitlines()
    for kind in kinds:
        assert any(re.match(rf"joint +{kind} +balanced windows: F1 .*\(\d+ s\)$", line)
                   for line in lines), (kind, lines)
        assert any(re.match(rf"map {kind} +test area: AUPRC .*\(\d+ s\)$", line)
                   for line in lines), (kind, lines)
    register_lines = printed["register"].splitlines()
    assert re.match(r"candidate \w+ \(run \w{8}\): auprc on the validation data [\d.e-]+ "
                    r"\(\d+ s\)$", register_lines[0]), register_lines
    assert "promoted to @champion" in register_lines[-1], register_lines  # MLflow's own
    # "Successfully registered" and "Created version" lines are not printed


def test_segment_says_how_many_patches_it_trains_on(pipeline: dict[str, Any]) -> None:
    """The training time grows with the labelled patches: the stage says how many, first."""
    assert re.search(r"^\d+ labelled patches \(\d+ with a landslide\), \d+ in the unlabelled "
                     r"pool; \d+ steps an epoch$", pipeline["printed"]["segment unet"],
                     re.MULTILINE), pipeline["printed"]["segment unet"]


def test_the_classifier_and_factor_stages_never_load_tensorflow(pipeline: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    """`fit` and `factors` need no network: a process of either that loaded TensorFlow would
    spend seconds on it (seven such stages in `dvc repro`). Run as dvc runs them, in a fresh
    process, into a folder and store of their own."""
    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"].update({"trained": str(tmp_path / "trained"),
                         "reports": str(tmp_path / "reports")})
    params = write_params(raw, tmp_path / "params.yaml")
    commands = [["factors"], ["fit", "forest"], ["fit", "glm"]]
    code = ("import json, sys\nfrom landslide_ssgan.cli import app\n"
            f"for command in {commands!r}:\n"
            "    app([*command, '--params', sys.argv[1]], standalone_mode=False)\n"
            "print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code, str(params)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ,
                               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    for kind, file in (("forest", "forest.joblib"), ("glm", "glm.joblib")):
        assert (tmp_path / "trained" / "joint" / kind / file).is_file()
