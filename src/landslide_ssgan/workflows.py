"""The training wrapper: the core (data, models, metrics) wired to files and MLflow.

Each function is one DVC stage's work; the CLI only loads the config and calls it.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from landslide_ssgan import factors, plots, tracking
from landslide_ssgan.config import Params
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.stack import read_stack
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import write_json, write_text
from landslide_ssgan.metrics import METRIC_NAMES, evaluate_probabilities
from landslide_ssgan.training import (
    MODEL_KINDS,
    ModelKind,
    ValidationScores,
    WindowSource,
    build_model,
    fit,
    predict_probability,
    seed_everything,
    training_dataset,
    window_source,
)

IMAGE_ROWS = 8


def load_window_source(cfg: Params) -> WindowSource:
    return window_source(read_stack(cfg.paths.stack), read_samples(cfg.paths.samples),
                         Normalisation.load(cfg.paths.norm), cfg.features.set, cfg.sample.window)


def flat_params(cfg: Params) -> dict[str, Any]:
    """The settings that shape a model, flattened for MLflow's params table."""
    train = {f"train.{k}": v for k, v in asdict(cfg.train).items()}
    return {**train, "seed": cfg.seed, "features.set": cfg.features.set,
            "sample.window": cfg.sample.window, "sample.split.method": cfg.sample.split.method}


def train_and_log(kind: ModelKind, cfg: Params) -> Path:
    """Train one model, log it as an MLflow run, and write models/<kind>/ (atomically)."""
    seed_everything(cfg.seed)
    source = load_window_source(cfg)
    out = Path(cfg.paths.models) / kind
    backup = out.with_name(f".{kind}.backup")
    run_id = _resumable_run(kind, cfg, backup)
    with mlflow.start_run(run_id=run_id) as run:
        (backup / "run_id").write_text(run.info.run_id)
        model = build_model(kind, cfg.train, source, cfg.seed)
        validation = ValidationScores(*source.windows("val"), cfg.train.threshold,
                                      history_path=backup / "history.json")
        image = _generator_image(model, source, cfg) if kind == "ssgan" else None
        logger = tracking.MlflowEpochLogger(run.info.run_id, cfg.train.image_every, image)
        fit(model, training_dataset(kind, source, cfg.train.batch_size, cfg.seed),
            cfg.train.epochs, [validation, logger], backup / "keras")
        staging = out.with_name(f".{kind}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _save_model(model, source, staging, validation.history)
        model_uri = tracking.log_window_model(
            staging / "discriminator.keras", _normalisation_spec(source), staging,
            tracking.pinned_requirements())
        write_json(staging / "run.json", {"run_id": run.info.run_id, "model_uri": model_uri})
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    shutil.rmtree(backup, ignore_errors=True)
    return out


def _resumable_run(kind: ModelKind, cfg: Params, backup: Path) -> str:
    """The run of an interrupted training of this model, or a new, fully tagged one."""
    previous = backup / "run_id"
    if previous.is_file():
        return previous.read_text().strip()
    shutil.rmtree(backup, ignore_errors=True)
    backup.mkdir(parents=True)
    inputs = {"stack": cfg.paths.stack, "samples": cfg.paths.samples, "norm": cfg.paths.norm}
    with mlflow.start_run(run_name=f"{kind}-{cfg.features.set}") as run:
        digests = tracking.log_dataset_inputs(inputs)
        mlflow.log_params(flat_params(cfg))
        mlflow.set_tags({
            "model": kind, "feature_set": cfg.features.set, "stage": "train",
            "data_digest": digests["samples"][:8] + digests["stack"][:8],
            "split_method": cfg.sample.split.method, "mlflow.source.git.commit":
            tracking.git_commit(), "mlflow.note.content":
            f"{kind} on the {cfg.features.set} feature set; compare with the other model "
            "of the same data_digest."})
        return run.info.run_id


def _generator_image(model: Any, source: WindowSource, cfg: Params) -> Any:
    noise = np.random.default_rng(cfg.seed).normal(size=(IMAGE_ROWS, cfg.train.latent_dim))

    def make() -> np.ndarray:
        windows = model.generator(noise.astype("float32"), training=False)
        return plots.window_grid(np.asarray(windows), source.bands, cfg.features.rgb)

    return make


def _normalisation_spec(source: WindowSource) -> dict[str, Any]:
    return {"bands": list(source.bands), "mean": source.mean.tolist(),
            "std": source.std.tolist(), "window": source.window}


def _save_model(model: Any, source: WindowSource, folder: Path,
                history: list[dict[str, float]]) -> None:
    model.discriminator.save(folder / "discriminator.keras")
    if hasattr(model, "generator"):
        model.generator.save_weights(folder / "generator.weights.h5")
    write_json(folder / "normalisation.json", _normalisation_spec(source))
    columns = sorted({key for row in history for key in row} - {"epoch"})
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", *columns])
        writer.writeheader()
        writer.writerows(history)


# --- evaluate ---------------------------------------------------------------------------


def evaluate_and_log(cfg: Params) -> dict[str, dict[str, Any]]:
    """Test metrics of every trained model, to reports/ and to each model's MLflow run."""
    source = load_window_source(cfg)
    windows, labels = source.windows("test")
    if len(labels) == 0:
        raise InputError(f"{cfg.paths.samples}: has no test windows")
    results: dict[str, dict[str, Any]] = {}
    histories: dict[str, list[dict[str, float]]] = {}
    client = MlflowClient()
    for kind in MODEL_KINDS:
        folder = Path(cfg.paths.models) / kind
        if not (folder / "discriminator.keras").is_file():
            raise InputError(f"{folder}: no trained model (run `landslide train {kind}`)")
        discriminator = keras.saving.load_model(folder / "discriminator.keras", compile=False)
        scores, matrix = evaluate_probabilities(
            labels, predict_probability(discriminator, windows), cfg.train.threshold)
        results[kind] = {**scores, "confusion_matrix": matrix.tolist(), "test_windows":
                         int(len(labels))}
        histories[kind] = _read_history(folder / "history.csv")
        run_id = json.loads((folder / "run.json").read_text())["run_id"]
        client.log_batch(run_id, metrics=[
            mlflow.entities.Metric(f"test_{k}", v, 0, 0) for k, v in scores.items()])
        client.log_dict(run_id, results[kind], "evaluation/test_metrics.json")
    reports = Path(cfg.paths.reports)
    write_json(reports / "metrics.json", results)
    write_text(reports / "evaluation.md", comparison_table(results, cfg))
    plots.loss_curves(histories, reports / "loss_curves.png")
    return results


def _read_history(path: Path) -> list[dict[str, float]]:
    with open(path) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def comparison_table(results: dict[str, dict[str, Any]], cfg: Params) -> str:
    header = "| model | " + " | ".join(METRIC_NAMES) + " | TP | FP | FN | TN |"
    lines = [
        f"# Test metrics: SSGAN versus supervised baseline ({cfg.features.set} features)",
        "",
        f"Split: {cfg.sample.split.method}; threshold {cfg.train.threshold}; "
        f"{next(iter(results.values()))['test_windows']} test windows.",
        "", header, "|" + "---|" * (len(METRIC_NAMES) + 5)]
    for kind, row in results.items():
        (tn, fp), (fn, tp) = row["confusion_matrix"]
        cells = " | ".join(f"{row[name]:.4f}" for name in METRIC_NAMES)
        lines.append(f"| {kind} | {cells} | {tp} | {fp} | {fn} | {tn} |")
    return "\n".join(lines) + "\n"


# --- factors ----------------------------------------------------------------------------


def factor_analysis(cfg: Params) -> dict[str, Any]:
    """VIF / tolerance and random-forest importance of the factor bands at the labelled
    training centres (and VIF at the unlabelled ones, reported separately): training pixels
    only, so the analysis can steer factor choices without looking at test data."""
    stack = read_stack(cfg.paths.stack)
    samples = read_samples(cfg.paths.samples)
    bands = stack.indices("factors")
    if not bands:
        raise InputError(f"{cfg.paths.stack}: has no factor bands")

    def table_at(rows: Any) -> factors.FactorTable:
        values = stack.data[bands][:, rows.row.to_numpy(), rows.col.to_numpy()].T
        return factors.factor_table(values, [stack.bands[i].name for i in bands],
                                    [stack.bands[i].layer for i in bands],
                                    [stack.bands[i].categorical for i in bands])

    labelled = samples.of("train")
    table = table_at(labelled)
    vif = factors.vif_table(table)
    importance, oob_score = factors.forest_importance(
        table, labelled.label.to_numpy(), cfg.factors.trees, cfg.seed)
    unlabelled = samples.of("train", labelled=False)
    vif_unlabelled = factors.vif_table(table_at(unlabelled)) if len(unlabelled) > 20 else None
    summary = {
        "pixels": {"labelled": int(len(labelled)), "unlabelled": int(len(unlabelled))},
        "vif_labelled": vif.to_dict(orient="index"),
        "vif_unlabelled": None if vif_unlabelled is None else vif_unlabelled.to_dict(
            orient="index"),
        "collinear": sorted(vif.index[vif.collinear]),
        "importance": importance.to_dict(orient="index"),
        "ranking": list(importance.index),
        "oob_score": oob_score,
    }
    reports = Path(cfg.paths.reports)
    write_json(reports / "factors.json", summary)
    plots.factor_charts(importance, vif, reports / "factor_importance.png",
                        reports / "factor_vif.png", factors.COLLINEAR_VIF)
    with mlflow.start_run(run_name="factors"):
        mlflow.set_tags({"stage": "factors", "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"factors.trees": cfg.factors.trees, "seed": cfg.seed})
        mlflow.log_metric("oob_score", oob_score)
        for factor, row in importance.iterrows():
            mlflow.log_metric(f"importance_{factor}", row["oob_permutation"])
        for factor, row in vif.iterrows():
            mlflow.log_metric(f"vif_{factor}", row["vif"])
        for name in ("factors.json", "factor_importance.png", "factor_vif.png"):
            mlflow.log_artifact(str(reports / name))
    return summary
