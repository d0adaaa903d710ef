"""study: the label-efficiency study, SSGAN vs supervised twin vs random forest as labels shrink.

For every split method, seed and label budget, each model is trained on the same labelled
windows (whole polygons, nested budgets) and scored on the same test windows; every run is an
MLflow run nested under one parent. Networks get the same number of optimiser steps at every
budget, so a small budget is not also a short training. There is no model selection in the
study: the model after the last step is scored, on the balanced test windows (the paper's
protocol) and, on the spatial split, by its map over the test area at the real prevalence
(AUPRC; F1 at the threshold that is best on the validation area, the only use of validation
data). Not part of the default `dvc repro` (studies/dvc.yaml).
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from landslide_ssgan.config import (
    CalibrateConfig,
    Params,
    SampleConfig,
    StudyConfig,
    TrainConfig,
    Variant,
    override,
)
from landslide_ssgan.data import patches
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import (
    UNLABELLED,
    Samples,
    draw_samples,
    negative_ground,
    read_samples,
    training_cover,
    training_statistics,
)
from landslide_ssgan.data.source import TrainingData, WindowSource, window_source
from landslide_ssgan.data.stack import Stack, read_single_band, read_stack
from landslide_ssgan.evaluation import budgets, map_metrics, scoring
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.evaluation.realism import real_and_generated, real_vs_generated_auroc
from landslide_ssgan.files import write_text
from landslide_ssgan.models import learners
from landslide_ssgan.models.bundle import ModelBundle, with_symmetries
from landslide_ssgan.models.prior import balanced
from landslide_ssgan.ops import tracking
from landslide_ssgan.reporting import plots, tables
from landslide_ssgan.training.fit import Source, train_network

METRICS = ("f1", "kappa", "miou", "precision", "recall", "map_auprc", "map_f1", "map_flagged",
           "val_map_auprc", "generator_realism")
REALISM_WINDOWS = 500
Maps = tuple[str, scoring.Ground]  # the stack and the ground of the spatial split


def run(cfg: StudyConfig, data: TrainingData, *, seed: int, sample: SampleConfig, feature_set: str,
        train: TrainConfig, reports: str, calibrate: CalibrateConfig,
        on_run: Callable[[dict[str, Any]], None] | None = None) -> tuple[pd.DataFrame, Path]:
    """Every run, then reports/label_efficiency.md, .png and .csv."""
    learners.check_kinds(cfg.models, "study.models")
    started = time.perf_counter()
    results = label_efficiency(cfg, data, seed=seed, sample=sample, feature_set=feature_set,
                               train=train, calibrate=calibrate, on_run=on_run)
    folder = Path(reports)
    write_text(folder / "label_efficiency.csv", results.to_csv(index=False))
    plots.label_efficiency(results, ("f1", "kappa", "miou"), folder / "label_efficiency.png",
                           {kind: learner.colour for kind, learner in learners.LEARNERS.items()})
    path = folder / "label_efficiency.md"
    write_text(path, tables.study_report(results, cfg, feature_set, train.batch_size,
                                            time.perf_counter() - started,
                                            tables.sampling_protocol(sample)))
    return results, path


def study_runs(cfg: StudyConfig, train: TrainConfig,
               split: str) -> Iterator[tuple[str, str, Variant]]:
    """(name, model kind, variant): the models, then the variants of the paper's model
    (spatial split only: the improvements are judged on the honest split)."""
    for kind in cfg.models:
        yield kind, kind, Variant(train, cfg.steps, None)
    paper = learners.PAPER_MODEL
    if split == "spatial" and paper in cfg.models:
        for name in cfg.variants:
            yield f"{paper}+{name}", paper, cfg.variant(train, name)


def smaller_pool(samples: Samples, ratio: float | None, seed: int) -> Samples:
    """The samples with only `ratio` unlabelled windows per landslide training window, a
    seeded random subset of the pool (None: all of it)."""
    if ratio is None:
        return samples
    table = samples.table
    pool = np.flatnonzero((table.label == UNLABELLED).to_numpy())
    slides = int(((table.split == "train") & (table.label == 1)).sum())
    keep = min(len(pool), round(ratio * slides))
    dropped = np.random.default_rng(seed).choice(pool, size=len(pool) - keep, replace=False)
    return Samples(table.drop(index=table.index[dropped]), samples.areas)


def _split_samples(data: TrainingData, sample: SampleConfig, seed: int, image: Stack,
                   labels: np.ndarray, ids: np.ndarray, split: str) -> tuple[Samples,
                                                                         Normalisation]:
    """The pipeline's samples for its own split method; the other method's drawn afresh
    (same seed and shares), with its own training-only normalisation."""
    if split == sample.split.method:
        return read_samples(data.samples), Normalisation.load(data.norm)
    other = override(sample, {"split": {"method": split}})
    drawn = draw_samples(labels, ids, image.valid, other, seed,
                         pixel_size=image.grid.resolution)
    mean, std = training_statistics(image.parts(),
                                    training_cover(drawn, image.grid.shape, sample.window))
    return drawn, Normalisation(image.grid.band_names, mean, std, sample.window)


def _trained(kind: str, train: TrainConfig, source: Source, seed: int, steps: int,
             cfg: StudyConfig) -> tuple[ModelBundle, float]:
    """The trained model and, for a model with a generator, how easily its generated windows
    are told from real ones (realism.py; NaN for the other models)."""
    learner = learners.learner(kind, "study.models")
    norm = source.normalisation
    if learner.fit is not None:
        fitted = learner.fit(learner.settings(replace(train, forest_trees=cfg.forest_trees)),
                             source, seed)
        return ModelBundle(norm, learner.predictor(fitted)), float("nan")
    if isinstance(source, patches.PatchSource):
        labelled, batch = int(source.centres.labelled.sum()), train.patch.batch_size
    else:
        labelled, batch = len(source.samples.of("train")), train.batch_size
    epochs = math.ceil(steps / math.ceil(labelled / batch))
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_network(learner, train, source, seed,
                                workdir=Path(tmp) / "backup", epochs=epochs)
    realism = float("nan")
    if learner.generator and isinstance(source, WindowSource):
        gan = trained.model
        realism = real_vs_generated_auroc(*real_and_generated(
            gan.generator, gan.latent_dim, source, REALISM_WINDOWS, seed), seed=seed)
    return ModelBundle(norm, learner.predictor(trained.model)), realism


def _patch_source(image: Stack, samples: Samples, norm: Normalisation, feature_set: str,
                  train: TrainConfig, target: np.ndarray, ids: np.ndarray, kept: np.ndarray,
                  seed: int) -> patches.PatchSource:
    """The budget's patches: the pixels of the training area's landslide polygons outside
    `kept` are unknown (their labels withheld, as the window budgets withhold their windows),
    the patches drawn afresh from what is left."""
    withheld = (target == patches.LANDSLIDE) & ~np.isin(ids, kept)
    target = np.where(withheld, np.uint8(patches.UNKNOWN), target)
    patch = train.patch
    centres = patches.patch_centres(target, patch.size, patch.stride, patch.min_inside,
                                    patch.negative_ratio, seed, patch.max_labelled)
    return patches.PatchSource.of(window_source(image, samples, norm, feature_set, patch.size),
                                  target, centres)


def _train_and_score(kind: str, variant: Variant, source: Source, seed: int,
                     cfg: StudyConfig, maps: Maps | None, calibrate: CalibrateConfig
                     ) -> dict[str, float]:
    """Balanced test-window scores, and with `maps` (stack, ground) the map's test-area
    scores at the real prevalence; a segmenter answers as calibrate makes it answer."""
    train = variant.train
    model, realism = _trained(kind, train, source, seed, variant.steps, cfg)
    model = with_symmetries(model, calibrate.symmetries)
    test_windows, test_labels = source.windows("test")
    trained = learners.learner(kind).trained_prior(train, source.training_labels())
    scores, _ = evaluate_probabilities(
        test_labels, balanced(model.probability(test_windows), trained), train.threshold)
    nan = float("nan")
    scores |= {"map_auprc": nan, "map_f1": nan, "map_flagged": nan, "val_map_auprc": nan,
               "generator_realism": realism}
    if maps is not None:
        scores |= _map_scores(model, *maps, calibrate.min_val_landslides)
    return scores


def _map_scores(model: ModelBundle, stack: str, ground: scoring.Ground,
                min_landslides: int) -> dict[str, float]:
    """AUPRC and flagged share of the model's map on the test area, every pixel; F1 at the
    threshold that is best on the validation area (only those two areas are mapped); the
    validation area's AUPRC, which is what a choice between settings may look at."""
    probability = scoring.model_map(stack, model, ground, scoring.SCORED_AREAS)
    threshold, _ = scoring.validation_threshold(probability, ground, None, min_landslides)
    val, test = (map_metrics.pixel_scores(*map_metrics.scored_pixels(
        probability, ground.truth, ground.area(name), "all"), threshold)
        for name in ("val", "test"))
    return {"map_auprc": test["auprc"], "map_f1": test["f1"],
            "map_flagged": test["flagged_share"], "val_map_auprc": val["auprc"]}


def label_efficiency(cfg: StudyConfig, data: TrainingData, *, seed: int, sample: SampleConfig,
                     feature_set: str, train: TrainConfig,
                     calibrate: CalibrateConfig,
                     on_run: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Every (split, seed, budget, model) run, logged under one MLflow parent run."""
    image = read_stack(data.stack)
    labels, _ = read_single_band(data.labels)
    ids, _ = read_single_band(data.inventory_ids)
    ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
    target = patches.pixel_targets(labels, negative_ground(labels, sample, image.grid.resolution),
                                   ground.areas, image.valid, "train")
    rows: list[dict[str, Any]] = []
    with tracking.start_run(run_name="label-efficiency"):
        mlflow.set_tags({"stage": "study", "feature_set": feature_set,
                         "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"study.budgets": list(cfg.budgets), "study.seeds": list(cfg.seeds),
                           "study.steps": cfg.steps, "study.splits": list(cfg.splits)})
        for split in cfg.splits:
            samples, norm = _split_samples(data, sample, seed, image, labels, ids, split)
            units = budgets.polygon_units(samples, labels, ids)
            classes = samples.of("train").label.to_numpy()
            for run_seed in cfg.seeds:
                masks = budgets.nested_budgets(units, classes, cfg.budgets, run_seed)
                for budget in cfg.budgets:
                    source = window_source(image, budgets.with_budget(samples, masks[budget]),
                                           norm, feature_set, sample.window)
                    context = {"split": split, "seed": run_seed, "budget": budget,
                               "labelled_windows": int(masks[budget].sum()),
                               "labelled_polygons": int(len(np.unique(units[masks[budget]])))}
                    maps = ((data.stack, ground)
                            if split == "spatial" and ground.has_areas else None)
                    kept = units[masks[budget] & (units > 0)]
                    patched = functools.cache(functools.partial(  # drawn once, if asked for
                        _patch_source, image, samples, norm, feature_set, train, target, ids,
                        kept, run_seed))
                    for name, kind, variant in study_runs(cfg, train, split):
                        if learners.learner(kind).patches and maps is None:
                            continue  # patches lie in a split's area: the spatial split only
                        row = _one_run(name, kind, variant, patched() if learners.learner(
                            kind).patches else source, cfg, context, maps, calibrate)
                        rows.append(row)
                        if on_run:
                            on_run(row)
    return pd.DataFrame(rows)


def _one_run(name: str, kind: str, variant: Variant, source: Source, cfg: StudyConfig,
             context: dict[str, Any], maps: Maps | None, calibrate: CalibrateConfig
             ) -> dict[str, Any]:
    started = time.perf_counter()
    if isinstance(source, WindowSource):
        source = replace(source, samples=smaller_pool(source.samples, variant.unlabelled_ratio,
                                                      context["seed"]))
        unlabelled = len(source.samples.unlabelled())
    else:
        unlabelled = len(source.centres.part(False)[0])
    with tracking.start_run(run_name=f"{name}-{context['split']}-{context['budget']:g}-"
                          f"s{context['seed']}", nested=True):
        mlflow.set_tags({"stage": "study", "model": name, "split_method": context["split"],
                         "budget": str(context["budget"]), "seed": str(context["seed"])})
        mlflow.log_params({"labelled_windows": context["labelled_windows"],
                           "labelled_polygons": context["labelled_polygons"],
                           "steps": variant.steps,
                           "unlabelled_windows": unlabelled,
                           **(tracking.train_params(variant.train)
                              if learners.learner(kind).network else {})})
        scores = _train_and_score(kind, variant, source, context["seed"], cfg, maps,
                                  calibrate)
        tracking.log_metrics({k if k.startswith("val_") else f"test_{k}": v
                              for k, v in scores.items() if v == v})
    return {**context, "model": name, **{k: scores[k] for k in METRICS},
            "seconds": round(time.perf_counter() - started, 2)}


def main(cfg: Params, on_run: Callable[[dict[str, Any]], None] | None = None
         ) -> tuple[pd.DataFrame, Path]:
    """The stage as `landslide study` runs it: params.yaml's settings."""
    return run(cfg.study, TrainingData.of(cfg), seed=cfg.seed, sample=cfg.sample,
               feature_set=cfg.features.set, train=cfg.train, reports=cfg.paths.reports,
               calibrate=cfg.calibrate, on_run=on_run)
