"""The training wrapper: the core (data, models, metrics) wired to files and MLflow.

Each function is one DVC stage's work; the CLI only loads the config and calls it.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import joblib
import keras
import mlflow
import mlflow.sklearn
import numpy as np
import optuna
import yaml
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from landslide_ssgan import bodies, factors, forest, mapping, plots, tracking, tuning
from landslide_ssgan.config import Params
from landslide_ssgan.data.blocks import (
    Block,
    body_polygons,
    read_decimated,
    write_cog_from_blocks,
    write_geopackage,
)
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.stack import read_single_band, read_stack
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import file_digest, write_json, write_text
from landslide_ssgan.metrics import METRIC_NAMES, evaluate_probabilities
from landslide_ssgan.training import (
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
from landslide_ssgan.urls import redacted

IMAGE_ROWS = 8


def load_window_source(cfg: Params) -> WindowSource:
    return window_source(read_stack(cfg.paths.stack), read_samples(cfg.paths.samples),
                         Normalisation.load(cfg.paths.norm), cfg.features.set, cfg.sample.window)


def flat_params(cfg: Params) -> dict[str, Any]:
    """The settings that shape a model, flattened for MLflow's params table."""
    train = {f"train.{k}": v for k, v in asdict(cfg.train).items()}
    return {**train, "seed": cfg.seed, "features.set": cfg.features.set,
            "sample.window": cfg.sample.window, "sample.split.method": cfg.sample.split.method}


def model_dir(cfg: Params, kind: str, feature_set: str | None = None) -> Path:
    """models/<feature set>/<model>: every model of the feature-set experiment has a home."""
    return Path(cfg.paths.models) / (feature_set or cfg.features.set) / kind


def train_and_log(kind: ModelKind, cfg: Params) -> Path:
    """Train one network on cfg.features.set, log it as an MLflow run, and write
    models/<set>/<kind>/ (atomically)."""
    source = load_window_source(cfg)
    out = model_dir(cfg, kind)
    backup = out.with_name(f".{kind}.backup")
    run_id = _resumable_run(kind, cfg, backup)
    with mlflow.start_run(run_id=run_id) as run:
        (backup / "run_id").write_text(run.info.run_id)
        # seeded after the MLflow calls, which may draw from Python's random module, and
        # right before the model draws its initial weights: same seed, same model
        seed_everything(cfg.seed)
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
        mlflow.set_tag("model_uri", model_uri)
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
    return _new_run(kind, cfg)


def data_digest(cfg: Params) -> str:
    """Identifies the data a model saw: the DVC hashes of the samples and the stack."""
    return _digest_of(file_digest(cfg.paths.samples),
                      file_digest(cfg.paths.stack))


def _digest_of(samples_md5: str, stack_md5: str) -> str:
    return samples_md5[:8] + stack_md5[:8]


def _new_run(kind: str, cfg: Params, stage: str = "train", nested: bool = False) -> str:
    """An MLflow run with the data hashes, params and tags that make runs comparable."""
    inputs = {"stack": cfg.paths.stack, "samples": cfg.paths.samples, "norm": cfg.paths.norm}
    with mlflow.start_run(run_name=f"{kind}-{cfg.features.set}", nested=nested) as run:
        digests = tracking.log_dataset_inputs(inputs)
        mlflow.log_params(flat_params(cfg))
        mlflow.set_tags({
            "model": kind, "feature_set": cfg.features.set, "stage": stage,
            "data_digest": _digest_of(digests["samples"], digests["stack"]),
            "split_method": cfg.sample.split.method, "mlflow.source.git.commit":
            tracking.git_commit(), "mlflow.note.content":
            f"{kind} on the {cfg.features.set} feature set; compare with the other models "
            "of the same data_digest."})
        return run.info.run_id


def train_forest_and_log(cfg: Params) -> Path:
    """The random forest on window features, logged like the networks (validation scores,
    an MLflow sklearn model); written to models/<set>/forest/."""
    source = load_window_source(cfg)
    windows, labels = source.windows("train")
    model = forest.fit_forest(windows, labels, cfg.train.forest_trees, cfg.seed)
    out = model_dir(cfg, "forest")
    staging = out.with_name(".forest.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    run_id = _new_run("forest", cfg)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_param("train.forest_trees", cfg.train.forest_trees)
        val_windows, val_labels = source.windows("val")
        if len(val_labels):
            scores, _ = evaluate_probabilities(
                val_labels, forest.forest_probability(model, val_windows), cfg.train.threshold)
            mlflow.log_metrics({f"val_{k}": v for k, v in scores.items()})
        features = forest.window_features(windows[:5])
        signature = infer_signature(features, model.predict_proba(features))
        info = mlflow.sklearn.log_model(
            model, name="model", signature=signature, serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # scikit-learn's own tree type
            pip_requirements=tracking.pinned_requirements(("mlflow", "scikit-learn", "numpy",
                                                           "skops")))
    joblib.dump(model, staging / "forest.joblib")
    write_json(staging / "normalisation.json", _normalisation_spec(source))
    write_json(staging / "run.json", {"run_id": run_id, "model_uri": str(info.model_uri)})
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


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

EVALUATED = ("ssgan", "baseline", "forest")


def load_predictor(folder: Path) -> Callable[[np.ndarray], np.ndarray]:
    """P(landslide) of normalised windows, whichever kind of model the folder holds."""
    if (folder / "discriminator.keras").is_file():
        discriminator = keras.saving.load_model(folder / "discriminator.keras", compile=False)
        return lambda windows: predict_probability(discriminator, windows)
    if (folder / "forest.joblib").is_file():
        model = joblib.load(folder / "forest.joblib")
        return lambda windows: forest.forest_probability(model, windows)
    raise InputError(f"{folder}: no trained model (run `dvc repro` or `landslide train`)")


def evaluate_and_log(cfg: Params) -> dict[str, dict[str, dict[str, Any]]]:
    """Test metrics of every model of every feature set in evaluate.feature_sets, to
    reports/ and to each model's MLflow run."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    client = MlflowClient()
    stack, samples = read_stack(cfg.paths.stack), read_samples(cfg.paths.samples)
    norm = Normalisation.load(cfg.paths.norm)
    for feature_set in cfg.evaluate.feature_sets:
        source = window_source(stack, samples, norm, feature_set, cfg.sample.window)
        windows, labels = source.windows("test")
        if len(labels) == 0:
            raise InputError(f"{cfg.paths.samples}: has no test windows")
        results[feature_set] = {}
        for kind in EVALUATED:
            folder = model_dir(cfg, kind, feature_set)
            scores, matrix = evaluate_probabilities(labels, load_predictor(folder)(windows),
                                                    cfg.train.threshold)
            row = {**scores, "confusion_matrix": matrix.tolist(), "test_windows": len(labels)}
            results[feature_set][kind] = row
            run_id = json.loads((folder / "run.json").read_text())["run_id"]
            client.log_batch(run_id, metrics=[
                mlflow.entities.Metric(f"test_{k}", v, 0, 0) for k, v in scores.items()])
            client.log_dict(run_id, row, "evaluation/test_metrics.json")
    _write_evaluation_reports(cfg, results)
    return results


def _write_evaluation_reports(cfg: Params, results: dict[str, dict[str, dict[str, Any]]],
                              ) -> None:
    reports = Path(cfg.paths.reports)
    main = cfg.features.set
    write_json(reports / "metrics.json", results)
    write_text(reports / "evaluation.md", comparison_table(results[main], cfg))
    write_text(reports / "feature_sets.md", feature_set_table(results, cfg))
    networks = ("ssgan", "baseline")
    plots.loss_curves({k: _read_history(model_dir(cfg, k, main) / "history.csv")
                       for k in networks}, reports / "loss_curves.png")
    plots.loss_curves({s: _read_history(model_dir(cfg, "ssgan", s) / "history.csv")
                              for s in results}, reports / "feature_set_losses.png")


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        raise InputError(f"{path}: file not found (train the model first)")
    with open(path) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _metric_rows(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, row in rows.items():
        (tn, fp), (fn, tp) = row["confusion_matrix"]
        cells = " | ".join(f"{row[metric]:.4f}" for metric in METRIC_NAMES)
        lines.append(f"| {name} | {cells} | {tp} | {fp} | {fn} | {tn} |")
    return lines


def _header(first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(METRIC_NAMES) + " | TP | FP | FN | TN |",
            "|" + "---|" * (len(METRIC_NAMES) + 5)]


def comparison_table(results: dict[str, dict[str, Any]], cfg: Params) -> str:
    n_test = next(iter(results.values()))["test_windows"]
    lines = [
        f"# Test metrics: SSGAN, supervised baseline and random forest "
        f"({cfg.features.set} features)", "",
        f"Split: {cfg.sample.split.method}; threshold {cfg.train.threshold}; {n_test} test "
        "windows. The forest sees each window's centre pixel and its per-band mean and "
        "standard deviation.", "", *_header("model"),
        *_metric_rows(results)]
    return "\n".join(lines) + "\n"


def feature_set_table(results: dict[str, dict[str, dict[str, Any]]], cfg: Params) -> str:
    lines = ["# The three sample sets: factors, optical, joint", "",
             "Same windows, same split, same settings; only the bands differ. Discriminator "
             "loss components per epoch of each SSGAN: `feature_set_losses.png`.", "",
             *_header("feature set / model")]
    for feature_set, rows in results.items():
        lines += _metric_rows({f"{feature_set} / {kind}": row for kind, row in rows.items()})
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


# --- tune -------------------------------------------------------------------------------


def study_parent_run(cfg: Params, storage: str) -> str:
    """The MLflow run that holds a study's trials: found again when the study resumes."""
    found = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if found is not None:
        runs = MlflowClient().search_runs(
            [found.experiment_id], filter_string=(
                f"tags.optuna_study = '{cfg.tune.study}' AND tags.stage = 'tune-study'"),
            max_results=50)
        for run in runs:
            if run.data.tags.get("optuna_storage") == redacted(storage):
                return str(run.info.run_id)
    with mlflow.start_run(run_name=f"study-{cfg.tune.study}") as run:
        mlflow.set_tags({"stage": "tune-study", "optuna_study": cfg.tune.study,
                         "optuna_storage": redacted(storage), "feature_set":
                         cfg.features.set, "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"tune.trials": cfg.tune.trials, "tune.epochs": cfg.tune.epochs,
                           "tune.sampler_seed": cfg.tune.sampler_seed})
        return str(run.info.run_id)


def tune_trials(cfg: Params, storage: str, parent_run_id: str) -> optuna.Study:
    """Run this worker's share of the study: trials until the study's budget is finished."""
    source = load_window_source(cfg)
    study = tuning.create_study(cfg.tune, storage)
    with mlflow.start_run(run_id=parent_run_id):
        tuning.run_study(study, lambda trial: _trial(trial, cfg, source), cfg.tune.trials)
    return study


def _trial(trial: optuna.Trial, cfg: Params, source: WindowSource) -> float:
    values = tuning.suggest(trial, cfg.tune.space)
    trial_cfg = replace(cfg, train=tuning.apply(cfg.train, values, cfg.tune.epochs))
    run_id = _new_run("ssgan", trial_cfg, stage="tune", nested=True)
    with mlflow.start_run(run_id=run_id, nested=True), tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"optuna_study": cfg.tune.study, "optuna_trial": str(trial.number),
                         "mlflow.runName": f"trial-{trial.number}"})
        seed_everything(cfg.seed)  # after MLflow, right before the weights are drawn
        model = build_model("ssgan", trial_cfg.train, source, cfg.seed)
        validation = ValidationScores(*source.windows("val"), cfg.train.threshold)
        logger = tracking.MlflowEpochLogger(run_id, cfg.tune.epochs)
        pruner = tuning.PruneOnValidationF1(trial)
        data = training_dataset("ssgan", source, trial_cfg.train.batch_size, cfg.seed)
        try:
            fit(model, data, cfg.tune.epochs, [validation, logger, pruner], Path(tmp) / "backup")
        except optuna.TrialPruned:
            mlflow.set_tag("optuna_state", "pruned")
            raise
        model.discriminator.save(Path(tmp) / "discriminator.keras")
        uri = tracking.log_window_model(Path(tmp) / "discriminator.keras",
                                        _normalisation_spec(source), Path(tmp),
                                        tracking.pinned_requirements())
        mlflow.set_tags({"optuna_state": "complete", "model_uri": uri})
        return float(validation.history[-1].get("val_f1", 0.0))


def report_study(cfg: Params, storage: str, parent_run_id: str) -> dict[str, Any]:
    """Best trial, optimisation history and parameter importances, to reports/ and to the
    study's parent run. Tuning never rewrites params.yaml: best params go to their own file."""
    study = tuning.create_study(cfg.tune, storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"study {cfg.tune.study}: no trial completed")
    reports = Path(cfg.paths.reports)
    best = study.best_trial
    summary = {"study": cfg.tune.study, "best_trial": best.number, "best_val_f1": best.value,
               "best_params": best.params, "finished_trials": len(study.get_trials(
                   deepcopy=False, states=tuning.FINISHED)),
               "pruned_trials": len(study.get_trials(
                   deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))}
    write_text(reports / "best_params.yaml", yaml.safe_dump(
        {"train": best.params, "val_f1": float(best.value or 0.0), "trial": best.number},
        sort_keys=True))
    plots.study_figures(study, reports / "tune_history.png", reports / "tune_importance.png")
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.log_metric("best_val_f1", float(best.value or 0.0))
        mlflow.set_tags({"best_trial": str(best.number)})
        for name in ("best_params.yaml", "tune_history.png", "tune_importance.png"):
            if (reports / name).exists():
                mlflow.log_artifact(str(reports / name))
    write_json(reports / "tune.json", summary)
    return summary


# --- register ---------------------------------------------------------------------------


def register_champion(cfg: Params) -> dict[str, Any]:
    """Register the best SSGAN run's model and move the champion alias to it only if it beats
    the current champion on the current validation windows; write reports/champion.json."""
    digest = data_digest(cfg)
    run = tracking.best_candidate(cfg.tracking.experiment, cfg.features.set, digest)
    if run is None:
        raise InputError(f"no SSGAN run on the {cfg.features.set} features of this data "
                         "(digest {digest}) has a logged model: run `dvc repro` or "
                         "`landslide tune` first")
    name, alias = cfg.registry.model_name, cfg.registry.alias
    source = load_window_source(cfg)
    val_windows, val_labels = source.windows("val")
    raw_windows = (val_windows * source.std + source.mean).astype(np.float32)

    def validation_f1(model_uri: str) -> float:
        probability = mlflow.pyfunc.load_model(model_uri).predict(raw_windows)
        return evaluate_probabilities(val_labels, probability, cfg.train.threshold)[0]["f1"]

    candidate_f1 = validation_f1(run.data.tags["model_uri"])
    version = tracking.registered_version(name, run.info.run_id, run.data.tags["model_uri"], {
        "feature_set": cfg.features.set, "data_digest": digest,
        "val_f1": f"{candidate_f1:.6f}", "stage": run.data.tags.get("stage", "")})
    current = tracking.alias_version(name, alias)
    current_f1 = validation_f1(f"models:/{name}/{current.version}") if current else None
    promoted = current is None or (str(current.version) != str(version.version)
                                   and candidate_f1 > (current_f1 or 0.0))
    if promoted:
        MlflowClient().set_registered_model_alias(name, alias, version.version)
    champion: Any = version if promoted else current
    summary = {"name": name, "alias": alias, "version": str(champion.version),
               "run_id": champion.run_id, "promoted": promoted,
               "candidate": {"version": str(version.version), "run_id": run.info.run_id,
                             "val_f1": candidate_f1},
               "previous_champion_val_f1": current_f1, "data_digest": digest}
    write_json(Path(cfg.paths.reports) / "champion.json", summary)
    return summary


# --- map --------------------------------------------------------------------------------

MAP_PREFIX = {"champion": "landslide", "baseline": "baseline"}  # file names of each model's map


def map_outputs(maps: Path, prefix: str) -> dict[str, Path]:
    """probability and class COGs and the GeoPackage of landslide bodies of one model."""
    polygons = "landslides.gpkg" if prefix == "landslide" else f"{prefix}_landslides.gpkg"
    return {"probability": maps / f"{prefix}_probability.tif",
            "class": maps / f"{prefix}_class.tif", "polygons": maps / polygons}


def map_area(cfg: Params, model_uri: str | None = None, client: Any = None,
             on_block: Callable[[str, Any, bool, int], None] | None = None) -> dict[str, Any]:
    """Map the whole stack with the champion (and the supervised baseline, for comparison):
    probability and class COGs, landslide polygons, reports/map_summary.json and a preview;
    logged as an MLflow run of its own."""
    uri = model_uri or cfg.map.model_uri or \
        f"models:/{cfg.registry.model_name}@{cfg.registry.alias}"
    summary: dict[str, Any] = {"threshold": cfg.map.threshold, "opening": cfg.map.opening,
                               "closing": cfg.map.closing, "min_area_m2": cfg.map.min_area_m2,
                               "connectivity": cfg.map.connectivity}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"champion": (tracking.window_model_folder(uri, Path(tmp)),
                               tracking.model_version_of(uri))}
        if cfg.map.compare_baseline:
            folder = model_dir(cfg, "baseline")
            models["baseline"] = (folder, {"uri": str(folder)})
        for name, (folder, identity) in models.items():
            hook = (lambda block, resumed, total, n=name: on_block(n, block, resumed, total)) \
                if on_block else None
            summary[name] = {**identity, **_map_with(cfg, folder, MAP_PREFIX[name], client,
                                                     hook)}
    _map_preview(cfg, list(models))
    reports = Path(cfg.paths.reports)
    write_json(reports / "map_summary.json", summary)
    _log_map_run(cfg, summary)
    return summary


def _map_with(cfg: Params, folder: Path, prefix: str, client: Any,
              on_block: Callable[[Any, bool, int], None] | None) -> dict[str, Any]:
    maps = Path(cfg.paths.maps)
    run, store, blocks = mapping.map_probability(
        cfg.paths.stack, folder, maps / f".{prefix}.blocks", cfg.map.block_size, client,
        on_block)
    outputs = map_outputs(maps, prefix)
    write_cog_from_blocks(outputs["probability"], run.grid, ((b, store.load(b)) for b in blocks),
                          "float32", float("nan"), "landslide_probability")
    probability, grid = read_single_band(outputs["probability"])
    found = bodies.landslide_bodies(probability, cfg.map, grid.resolution ** 2)
    whole = Block(0, 0, 0, grid.height, grid.width)
    write_cog_from_blocks(outputs["class"], grid,
                          iter([(whole, bodies.class_raster(found, probability))]), "uint8",
                          bodies.CLASS_NODATA, "landslide_class")
    polygons = body_polygons(found.labels, grid)
    polygons["area_m2"] = found.areas_m2
    polygons["mean_probability"] = found.mean_probability
    write_geopackage(polygons, outputs["polygons"], "landslides")
    store.clear()
    return {**found.summary(), "dense_inference": run.dense,
            "mapped_pixels": int(np.isfinite(probability).sum()),
            "computed_pixels": run.computed_pixels, "resumed_blocks": run.resumed_blocks,
            "seconds": round(run.seconds, 2),
            "pixels_per_second": round(run.pixels_per_second),
            "outputs": {k: str(v) for k, v in outputs.items()}}


def _map_preview(cfg: Params, names: list[str]) -> None:
    size = cfg.map.preview_size
    rgb = read_decimated(cfg.paths.stack, size, cfg.features.rgb)
    folder = Path(cfg.paths.maps)
    maps = {name: read_decimated(map_outputs(folder, MAP_PREFIX[name])["probability"], size,
                                 resampling="nearest")[0] for name in names}
    titles = {"champion": "SSGAN champion", "baseline": "supervised baseline"}
    plots.map_preview(rgb, maps, cfg.map.threshold, titles,
                      Path(cfg.paths.reports) / "map_preview.png")


def _log_map_run(cfg: Params, summary: dict[str, Any]) -> None:
    reports = Path(cfg.paths.reports)
    with mlflow.start_run(run_name="map", tags={"stage": "map",
                                                "model_uri": summary["champion"]["uri"]}):
        mlflow.log_params({f"map.{k}": summary[k] for k in (
            "threshold", "opening", "closing", "min_area_m2", "connectivity")})
        for name in MAP_PREFIX:
            if name in summary:
                mlflow.log_metrics({f"{name}_{k}": float(summary[name][k]) for k in (
                    "count", "total_area_km2", "pixels_per_second")})
        mlflow.log_artifact(str(reports / "map_summary.json"))
        mlflow.log_artifact(str(reports / "map_preview.png"))
