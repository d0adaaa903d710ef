"""evaluate: every model judged twice.

1. The paper's protocol: every model of every feature set on the balanced test windows.
2. The map: every model of the main feature set maps the whole stack, and each map is scored
   on the validation and test areas, every pixel at the real prevalence (map_metrics), at the
   model's own threshold (chosen on the validation area by the calibrate stage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.metrics import precision_recall_curve

from landslide_ssgan.config import FeatureSet, MapConfig, Params, WindowsConfig
from landslide_ssgan.data.blocks import preview_image
from landslide_ssgan.data.source import load_window_source, load_window_sources
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.files import write_json, write_text
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.models.prior import balanced
from landslide_ssgan.ops import tracking
from landslide_ssgan.reporting import plots, tables

Results = dict[str, dict[str, dict[str, Any]]]  # feature set -> model -> scores
HEADLINE = ("f1", "kappa", "miou")  # balanced-window figures kept as DVC metrics
RowHook = Callable[[str, str, dict[str, Any]], None]  # feature set, kind, balanced scores
MapHook = Callable[[str, dict[str, Any]], None]  # kind, its map's scores per area


def run_all(cfg: Params, on_row: RowHook | None = None,
            on_map: MapHook | None = None) -> tuple[Results, MapResults]:
    """Both judgements of every kind params.yaml's evaluate section names: balanced test
    windows on every feature set, then the maps of features.set (`on_row` and `on_map` hear
    of each model's scores as they come, for a progress line)."""
    kinds, segmenters = cfg.evaluate.window_kinds, cfg.evaluate.segmenters
    learners.check_kinds(cfg.evaluate.networks, "evaluate.networks", stage="train")
    learners.check_kinds(cfg.evaluate.classifiers, "evaluate.classifiers", stage="fit")
    learners.check_kinds(segmenters, "evaluate.segmenters", stage="segment")
    paths = cfg.paths
    results = run(cfg.evaluate.feature_sets, kinds, main_set=cfg.features.set,
                  threshold=cfg.train.threshold, window=cfg.sample.window,
                  split_method=cfg.sample.split.method, stack=paths.stack,
                  samples=paths.samples, norm=paths.norm, models=paths.models,
                  reports=paths.reports, windows=cfg.windows, segmenters=segmenters,
                  on_row=on_row)
    ground = scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)
    maps = run_maps(cfg.features.set, (*kinds, *segmenters), ground, cfg.map,
                    rgb=cfg.features.rgb,
                    stack=paths.stack, models=paths.models, reports=paths.reports,
                    protocol=tables.sampling_protocol(cfg.sample), on_map=on_map)
    return results, maps


def run(feature_sets: tuple[FeatureSet, ...], kinds: tuple[str, ...], *, main_set: str,
        threshold: float,
        window: int, split_method: str, stack: str, samples: str, norm: str, models: str,
        reports: str, windows: WindowsConfig | None = None,
        segmenters: tuple[str, ...] = (), on_row: RowHook | None = None) -> Results:
    """Balanced-window test metrics of every model of `kinds` (and of `segmenters`, on
    `main_set`), to reports/ (metrics.json, evaluation_details.json, evaluation.md for
    `main_set`, feature_sets.md, loss curves) and to each model's MLflow run. A segmenter
    answers each test window's centre pixel from the patch around it. Every model is scored
    at the balanced windows' one-half prior (prior.balanced: a segmenter learns at its
    patches' landslide share)."""
    results: Results = {}
    sources = load_window_sources(stack, samples, norm, feature_sets, window, windows)
    for feature_set, source in zip(feature_sets, sources, strict=True):
        test_windows, labels = source.windows("test")
        if len(labels) == 0:
            raise InputError(f"{samples}: has no test windows")
        results[feature_set] = {}
        for kind in (*kinds, *(segmenters if feature_set == main_set else ())):
            folder = bundle.model_dir(models, feature_set, kind)
            model = bundle.load_bundle(folder)
            seen = (test_windows if model.window == window else  # a segmenter: its patch
                    load_window_source(stack, samples, norm, feature_set, model.window,
                                       windows).windows("test")[0])
            trained = model.prior.trained if model.prior is not None else 0.5
            scores, matrix = evaluate_probabilities(
                labels, balanced(model.probability(seen), trained), threshold)
            row = {**scores, "confusion_matrix": matrix.tolist(), "test_windows": len(labels)}
            results[feature_set][kind] = row
            _log_test_metrics(bundle.read_run(folder)["run_id"], scores, row)
            if on_row is not None:
                on_row(feature_set, kind, row)
    _write_reports(results, main_set, split_method, threshold, models, Path(reports))
    return results


def _log_test_metrics(run_id: str, scores: dict[str, float], row: dict[str, Any]) -> None:
    client = MlflowClient()
    client.log_batch(run_id, metrics=[tracking.metric(f"test_{k}", v) for k, v in scores.items()])
    client.log_dict(run_id, row, "evaluation/test_metrics.json")


def _write_reports(results: Results, main_set: str, split_method: str, threshold: float,
                   models: str, reports: Path) -> None:
    write_json(reports / "metrics.json", {s: {k: {m: round(row[m], 4) for m in HEADLINE}
                                              for k, row in rows.items()}
                                          for s, rows in results.items()})
    write_json(reports / "evaluation_details.json", results)
    write_text(reports / "evaluation.md", tables.comparison_table(
        results[main_set], main_set, split_method, threshold))
    write_text(reports / "feature_sets.md", tables.feature_set_table(results))
    networks = [kind for kind in results[main_set] if learners.learner(kind).network]
    plots.loss_curves({kind: bundle.read_history(bundle.model_dir(models, main_set, kind))
                       for kind in networks}, reports / "loss_curves.png")
    # the paper's Figure 5: its model's losses on each feature set (the first network trained
    # where the paper's model is not)
    shown = learners.PAPER_MODEL if learners.PAPER_MODEL in networks else next(
        iter(networks), None)
    plots.loss_curves({s: bundle.read_history(bundle.model_dir(models, s, shown))
                       for s in results if shown is not None},
                      reports / "feature_set_losses.png")


# --- the maps ---------------------------------------------------------------------------

MapResults = dict[str, dict[str, Any]]  # model -> area -> scores


def run_maps(main_set: str, kinds: tuple[str, ...], ground: scoring.Ground, post: MapConfig,
             *, rgb: tuple[str, ...],
             stack: str, models: str, reports: str, protocol: str = "",
             on_map: MapHook | None = None) -> MapResults:
    """Every model of `kinds` on `main_set` maps the stack; its map is scored on the validation and
    test areas. Writes reports/map_evaluation.json (DVC metrics: the figures a map is judged
    by; thresholds and everything else in map_evaluation_details.json),
    map_evaluation_details.json, map_evaluation.md, map_pr_curves.png, map_test_preview.png
    and the GLM's coefficients; adds val_map_* and test_map_* metrics to each model's run."""
    if not ground.has_areas:
        raise InputError("map evaluation needs held-out areas: sample.split.method must be "
                         "spatial")
    results: MapResults = {}
    maps: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    curves: dict[str, dict[str, Any]] = {area: {} for area in scoring.SCORED_AREAS}
    for kind in kinds:
        folder = bundle.model_dir(models, main_set, kind)
        model = bundle.load_bundle(folder)
        probability = scoring.model_map(stack, model, ground, scoring.SCORED_AREAS)
        thresholds[kind] = model.threshold if model.threshold is not None else 0.5
        results[kind] = scoring.score_areas(probability, ground, thresholds[kind], post)
        for area in scoring.SCORED_AREAS:
            is_landslide, values = map_metrics.scored_pixels(probability, ground.truth,
                                                             ground.area(area), "all")
            precision, recall, _ = precision_recall_curve(is_landslide, values)
            curves[area][kind] = (recall, precision, results[kind][area]["all"]["auprc"])
        maps[kind] = probability
        _log_map_metrics(bundle.read_run(folder)["run_id"], results[kind])
        if on_map is not None:
            on_map(kind, results[kind])
    folder = Path(reports)
    _write_map_reports(results, main_set, folder, protocol)
    plots.pr_curves(curves, {a: results[kinds[0]][a]["all"]["prevalence"]
                             for a in scoring.SCORED_AREAS}, folder / "map_pr_curves.png")
    _test_preview(maps, thresholds, ground, stack, rgb, post.preview_size,
                  folder / "map_test_preview.png")
    write_text(folder / "glm_coefficients.md", _coefficients(models, main_set, kinds))
    return results


def _coefficients(models: str, main_set: str, kinds: tuple[str, ...]) -> str:
    """The coefficient tables of the models that have one (the GLM's), or a line that none
    was trained."""
    tables_found = [tables.coefficient_table(pd.read_csv(path, index_col=0), main_set)
                    for kind in kinds
                    if (path := bundle.model_dir(models, main_set, kind)
                        / bundle.COEFFICIENTS).is_file()]
    return "\n".join(tables_found) or (f"No model of {', '.join(kinds)} has coefficients.\n")


def _log_map_metrics(run_id: str, scores: dict[str, Any]) -> None:
    client = MlflowClient()
    metrics = [tracking.metric(f"{area}_map_{k}", v)
               for area, result in scores.items()
               for k, v in map_metrics.headline(result).items() if v == v]
    client.log_batch(run_id, metrics=metrics)
    client.log_dict(run_id, scores, "evaluation/map_scores.json")


def _write_map_reports(results: MapResults, main_set: str, reports: Path,
                       protocol: str) -> None:
    compact = {area: {kind: {k: v for k, v in map_metrics.headline(scores[area]).items()
                             if k in map_metrics.DVC_HEADLINE}
                      for kind, scores in results.items()} for area in scoring.SCORED_AREAS}
    write_json(reports / "map_evaluation.json", compact)
    write_json(reports / "map_evaluation_details.json", results)
    write_text(reports / "map_evaluation.md", tables.map_table(results, main_set, protocol))


def _test_preview(maps: dict[str, np.ndarray], thresholds: dict[str, float],
                  ground: scoring.Ground, stack: str, rgb: tuple[str, ...], size: int,
                  path: Path) -> None:
    image = preview_image(stack, size, rgb)
    rows = np.linspace(0, ground.areas.shape[0] - 1, image.shape[1]).astype(int)
    cols = np.linspace(0, ground.areas.shape[1] - 1, image.shape[2]).astype(int)

    def small(array: np.ndarray) -> np.ndarray:
        return array[np.ix_(rows, cols)]

    plots.map_preview(image, {k: small(v) for k, v in maps.items()}, thresholds,
                      {k: k for k in maps}, path, area=small(ground.area("test")),
                      landslides=small(ground.truth.ids > 0))


def main(cfg: Params, on_row: RowHook | None = None,
         on_map: MapHook | None = None) -> tuple[Results, MapResults]:
    """The stage as `landslide evaluate` and dvc.yaml run it: params.yaml's settings."""
    return run_all(cfg, on_row, on_map)
