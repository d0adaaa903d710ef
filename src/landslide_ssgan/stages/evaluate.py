"""evaluate: every model of every feature set on the spatially separated test windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from landslide_ssgan import plots, reporting
from landslide_ssgan.config import MODEL_NAMES, FeatureSet
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.stack import read_stack
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import write_json, write_text
from landslide_ssgan.metrics import evaluate_probabilities
from landslide_ssgan.models import bundle
from landslide_ssgan.training import window_source

Results = dict[str, dict[str, dict[str, Any]]]  # feature set -> model -> scores


def run(feature_sets: tuple[FeatureSet, ...], *, main_set: str, threshold: float,
        window: int, split_method: str, stack: str, samples: str, norm: str, models: str,
        reports: str) -> Results:
    """Test metrics of every model, to reports/ (metrics.json, evaluation.md for `main_set`,
    feature_sets.md, loss curves) and to each model's MLflow run."""
    results: Results = {}
    image, drawn, normalisation = read_stack(stack), read_samples(samples), Normalisation.load(norm)
    for feature_set in feature_sets:
        source = window_source(image, drawn, normalisation, feature_set, window)
        windows, labels = source.windows("test")
        if len(labels) == 0:
            raise InputError(f"{samples}: has no test windows")
        results[feature_set] = {}
        for kind in MODEL_NAMES:
            folder = bundle.model_dir(models, feature_set, kind)
            scores, matrix = evaluate_probabilities(
                labels, bundle.load_bundle(folder).probability(windows), threshold)
            row = {**scores, "confusion_matrix": matrix.tolist(), "test_windows": len(labels)}
            results[feature_set][kind] = row
            _log_test_metrics(bundle.read_run(folder)["run_id"], scores, row)
    _write_reports(results, main_set, split_method, threshold, models, Path(reports))
    return results


def _log_test_metrics(run_id: str, scores: dict[str, float], row: dict[str, Any]) -> None:
    client = MlflowClient()
    client.log_batch(run_id, metrics=[mlflow.entities.Metric(f"test_{k}", v, 0, 0)
                                      for k, v in scores.items()])
    client.log_dict(run_id, row, "evaluation/test_metrics.json")


def _write_reports(results: Results, main_set: str, split_method: str, threshold: float,
                   models: str, reports: Path) -> None:
    write_json(reports / "metrics.json", results)
    write_text(reports / "evaluation.md", reporting.comparison_table(
        results[main_set], main_set, split_method, threshold))
    write_text(reports / "feature_sets.md", reporting.feature_set_table(results))
    plots.loss_curves({kind: bundle.read_history(bundle.model_dir(models, main_set, kind))
                       for kind in ("ssgan", "baseline")}, reports / "loss_curves.png")
    plots.loss_curves({s: bundle.read_history(bundle.model_dir(models, s, "ssgan"))
                       for s in results}, reports / "feature_set_losses.png")
