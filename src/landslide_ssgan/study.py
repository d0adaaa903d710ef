"""The label-efficiency study: SSGAN vs supervised baseline vs random forest as labels shrink.

For every split method, seed and label budget, each model is trained on the same labelled
windows (whole polygons, nested budgets) and scored on the same test windows; every run is an
MLflow run nested under one parent. Networks get the same number of optimiser steps at every
budget, so a small budget is not also a short training. No validation data is used for
anything: there is no model selection in the study, the model after the last step is scored.
"""

from __future__ import annotations

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

from landslide_ssgan import budgets, forest, plots, tracking
from landslide_ssgan.config import Params, TrainConfig
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import (
    Samples,
    draw_samples,
    read_samples,
    training_statistics,
)
from landslide_ssgan.data.stack import Stack, read_single_band, read_stack
from landslide_ssgan.files import write_text
from landslide_ssgan.metrics import evaluate_probabilities
from landslide_ssgan.training import (
    WindowSource,
    build_model,
    fit,
    predict_probability,
    seed_everything,
    training_dataset,
    window_source,
)

METRICS = ("f1", "kappa", "miou", "precision", "recall")


def study_runs(cfg: Params, split: str) -> Iterator[tuple[str, str, TrainConfig]]:
    """(name, model kind, train settings): the models, then the SSGAN variants (spatial split
    only: the improvements are judged on the honest split)."""
    for kind in cfg.study.models:
        yield kind, kind, cfg.train
    if split == "spatial" and "ssgan" in cfg.study.models:
        for name, settings in cfg.study.variants.items():
            yield f"ssgan+{name}", "ssgan", replace(cfg.train, **dict(settings))


def _split_samples(cfg: Params, stack: Stack, labels: np.ndarray, ids: np.ndarray,
                   split: str) -> tuple[Samples, Normalisation]:
    """The pipeline's samples for its own split method; the other method's drawn afresh
    (same seed and shares), with its own training-only normalisation."""
    if split == cfg.sample.split.method:
        return read_samples(cfg.paths.samples), Normalisation.load(cfg.paths.norm)
    sample_cfg = replace(cfg.sample, split=replace(cfg.sample.split, method=split))  # type: ignore[arg-type]
    samples = draw_samples(labels, ids, stack.valid, sample_cfg, cfg.seed)
    mean, std = training_statistics(stack.data, samples, cfg.sample.window)
    return samples, Normalisation(stack.grid.band_names, mean, std)


def _train_and_score(kind: str, train: TrainConfig, source: WindowSource, seed: int,
                     cfg: Params) -> dict[str, float]:
    test_windows, test_labels = source.windows("test")
    if kind == "forest":
        windows, labels = source.windows("train")
        model = forest.fit_forest(windows, labels, cfg.study.forest_trees, seed)
        probability = forest.forest_probability(model, test_windows)
    else:
        labelled = len(source.samples.of("train"))
        epochs = math.ceil(cfg.study.steps / math.ceil(labelled / train.batch_size))
        seed_everything(seed)
        network = build_model(kind, train, source, seed)  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as tmp:
            fit(network, training_dataset(kind, source, train.batch_size, seed),  # type: ignore[arg-type]
                epochs, [], Path(tmp) / "backup")
        probability = predict_probability(network.discriminator, test_windows)
    scores, _ = evaluate_probabilities(test_labels, probability, cfg.train.threshold)
    return scores


def label_efficiency(cfg: Params, on_run: Callable[[dict[str, Any]], None] | None = None
                     ) -> pd.DataFrame:
    """Every (split, seed, budget, model) run, logged under one MLflow parent run."""
    stack = read_stack(cfg.paths.stack)
    labels, _ = read_single_band(cfg.paths.labels)
    ids, _ = read_single_band(cfg.paths.inventory_ids)
    rows: list[dict[str, Any]] = []
    with mlflow.start_run(run_name="label-efficiency"):
        mlflow.set_tags({"stage": "study", "feature_set": cfg.features.set,
                         "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"study.budgets": list(cfg.study.budgets),
                           "study.seeds": list(cfg.study.seeds), "study.steps": cfg.study.steps,
                           "study.splits": list(cfg.study.splits)})
        for split in cfg.study.splits:
            samples, norm = _split_samples(cfg, stack, labels, ids, split)
            units = budgets.polygon_units(samples, labels, ids)
            classes = samples.of("train").label.to_numpy()
            for seed in cfg.study.seeds:
                masks = budgets.nested_budgets(units, classes, cfg.study.budgets, seed)
                for budget in cfg.study.budgets:
                    source = window_source(stack, budgets.with_budget(samples, masks[budget]),
                                           norm, cfg.features.set, cfg.sample.window)
                    context = {"split": split, "seed": seed, "budget": budget,
                               "labelled_windows": int(masks[budget].sum()),
                               "labelled_polygons": int(len(np.unique(units[masks[budget]])))}
                    for name, kind, train in study_runs(cfg, split):
                        row = _one_run(name, kind, train, source, cfg, context)
                        rows.append(row)
                        if on_run:
                            on_run(row)
    return pd.DataFrame(rows)


def _one_run(name: str, kind: str, train: TrainConfig, source: WindowSource, cfg: Params,
             context: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{name}-{context['split']}-{context['budget']:g}-"
                          f"s{context['seed']}", nested=True):
        mlflow.set_tags({"stage": "study", "model": name, "split_method": context["split"],
                         "budget": str(context["budget"]), "seed": str(context["seed"])})
        mlflow.log_params({"labelled_windows": context["labelled_windows"],
                           "labelled_polygons": context["labelled_polygons"],
                           "steps": cfg.study.steps, **({} if kind == "forest" else {
                               f"train.{k}": v for k, v in vars(train).items()})})
        scores = _train_and_score(kind, train, source, context["seed"], cfg)
        mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()})
    return {**context, "model": name, **{k: scores[k] for k in METRICS},
            "seconds": round(time.perf_counter() - started, 2)}


# --- the report ---------------------------------------------------------------------------


def _verdict(low: float, high: float) -> str:
    if np.isnan(low):
        return "one seed: no interval"
    if low > 0:
        return "SSGAN better"
    if high < 0:
        return "SSGAN worse"
    return "no clear difference"


def _difference_lines(results: pd.DataFrame, a: str, b: str, metrics: tuple[str, ...]
                      ) -> list[str]:
    lines = ["| split | budget | metric | mean " + f"{a} − {b}" + " | 95 % CI | seeds | reading |",
             "|---|---|---|---|---|---|---|"]
    for metric in metrics:
        table = budgets.paired_difference(results, metric, a, b)
        for row in table.itertuples():
            lines.append(f"| {row.split} | {row.budget:g} | {metric} | {row.mean:+.3f} | "
                         f"[{row.low:+.3f}, {row.high:+.3f}] | {row.n} | "
                         f"{_verdict(row.low, row.high).replace('SSGAN', a)} |")
    return lines


def report(results: pd.DataFrame, cfg: Params, seconds: float) -> str:
    summary = budgets.summary_table(results, ("f1", "kappa", "miou"))
    lines = ["# Does the semi-supervision pay? Label-efficiency study", "",
             f"Feature set `{cfg.features.set}`; budgets {list(cfg.study.budgets)} of the "
             f"labelled training windows (whole inventory polygons, nested), seeds "
             f"{list(cfg.study.seeds)}; every network trained for {cfg.study.steps} optimiser "
             f"steps of {cfg.train.batch_size} windows at every budget (the pipeline's "
             f"network settings otherwise), forests of {cfg.study.forest_trees} trees. Withheld "
             "labels join the SSGAN's unlabelled pool. Scores are on the fixed test windows of "
             f"each split; no validation data is used. {len(results)} runs in "
             f"{seconds / 60:.1f} min (`landslide study`, reports/label_efficiency.csv holds "
             "every run).", "",
             "![test scores against labelled windows](label_efficiency.png)", "",
             "## The answer in numbers", "", *answer(results), "",
             "## Test scores (mean ± standard deviation over seeds)", "",
             "| split | budget | labelled windows | model | F1 | kappa | MIoU |",
             "|---|---|---|---|---|---|---|"]
    for (split, budget, model), row in summary.iterrows():
        lines.append(f"| {split} | {budget:g} | {row['labelled_windows'].iloc[0]:.0f} | "
                     f"{model} | " + " | ".join(
                         f"{row[(m, 'mean')]:.3f} ± {np.nan_to_num(row[(m, 'std')]):.3f}"
                         for m in ("f1", "kappa", "miou")) + " |")
    lines += ["", "## SSGAN minus its supervised twin, paired by seed and budget", "",
              *_difference_lines(results, "ssgan", "baseline", ("f1", "kappa"))]
    if "forest" in set(results.model):
        lines += ["", "## SSGAN minus the random forest", "",
                  *_difference_lines(results, "ssgan", "forest", ("f1", "kappa"))]
    variants = sorted(m for m in set(results.model) if m.startswith("ssgan+"))
    if variants:
        lines += ["", "## Improvements: each SSGAN variant minus the plain SSGAN (spatial)", ""]
        for variant in variants:
            lines += [f"### {variant}", "",
                      *_difference_lines(results[results.split == "spatial"], variant,
                                         "ssgan", ("f1", "kappa")), ""]
    lines += ["", "## Spatial versus random split (mean test F1)", "",
              *_split_lines(results)]
    return "\n".join(lines) + "\n"


def _readings(results: pd.DataFrame, a: str, b: str, split: str, metric: str) -> str:
    """Budgets grouped by what the paired interval says about a - b."""
    table = budgets.paired_difference(results[results.split == split], metric, a, b)
    groups: dict[str, list[str]] = {}
    for row in table.itertuples():
        groups.setdefault(_verdict(row.low, row.high).replace("SSGAN", a), []).append(
            f"{row.budget:g} ({row.mean:+.3f})")
    return "; ".join(f"{verdict} at {', '.join(found)}" for verdict, found in groups.items())


def answer(results: pd.DataFrame) -> list[str]:
    """One line per question, from the paired 95 % intervals (budget: mean difference)."""
    lines = []
    for split in [s for s in ("spatial", "random") if s in set(results.split)]:
        for metric in ("f1", "kappa"):
            if {"ssgan", "baseline"} <= set(results.model):
                lines.append(f"- SSGAN vs supervised twin, {split} split, {metric}: "
                             + _readings(results, "ssgan", "baseline", split, metric) + ".")
    for variant in sorted(m for m in set(results.model) if m.startswith("ssgan+")):
        lines.append(f"- {variant} vs SSGAN, spatial split, f1: "
                     + _readings(results, variant, "ssgan", "spatial", "f1") + ".")
    if {"spatial", "random"} <= set(results.split):
        gain = (results.groupby(["model", "budget", "split"])["f1"].mean()
                .unstack("split").eval("random - spatial").dropna())
        lines.append(f"- The random split raises mean test F1 by {gain.min():+.3f} to "
                     f"{gain.max():+.3f} over the spatial split (model by budget).")
    return lines


def _split_lines(results: pd.DataFrame) -> list[str]:
    means = results.groupby(["model", "budget", "split"])["f1"].mean().unstack("split")
    if not {"spatial", "random"} <= set(means.columns):
        return ["(only one split method in this study)"]
    lines = ["| model | budget | spatial | random | random − spatial |", "|---|---|---|---|---|"]
    for (model, budget), row in means.iterrows():
        if not np.isnan(row["random"]):
            lines.append(f"| {model} | {budget:g} | {row['spatial']:.3f} | {row['random']:.3f} "
                         f"| {row['random'] - row['spatial']:+.3f} |")
    return lines


def write_reports(results: pd.DataFrame, cfg: Params, seconds: float) -> Path:
    reports = Path(cfg.paths.reports)
    write_text(reports / "label_efficiency.csv", results.to_csv(index=False))
    plots.label_efficiency(results, ("f1", "kappa", "miou"), reports / "label_efficiency.png")
    path = reports / "label_efficiency.md"
    write_text(path, report(results, cfg, seconds))
    return path
