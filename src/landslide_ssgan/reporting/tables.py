"""Summaries and tables that stages write to reports/ for people (and `dvc metrics`) to read.

Pure: numbers in, text or dicts out; the stages write the files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from landslide_ssgan.config import SampleConfig, StudyConfig
from landslide_ssgan.evaluation import budgets, map_metrics
from landslide_ssgan.evaluation.metrics import METRIC_NAMES

# --- evaluate: test metrics of every model ---------------------------------------------
from landslide_ssgan.models.learners import (
    COMPARISONS,
    LEARNERS,
    PAPER_MODEL,
    SUPERVISED_TWIN,
)

PAPER, TWIN = PAPER_MODEL, SUPERVISED_TWIN
SEMI = tuple(k for k, learner in LEARNERS.items() if learner.unlabelled)  # semi-supervised
CLASSIFIERS = tuple(k for k, learner in LEARNERS.items() if not learner.network)


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


def comparison_table(results: dict[str, dict[str, Any]], feature_set: str, split_method: str,
                     threshold: float) -> str:
    n_test = next(iter(results.values()))["test_windows"]
    lines = [
        f"# Test metrics: SSGAN, supervised baseline and random forest "
        f"({feature_set} features)", "",
        f"Split: {split_method}; threshold {threshold}; {n_test} test "
        "windows. The forest sees each window's centre pixel and its per-band mean and "
        "standard deviation.", "", *_header("model"),
        *_metric_rows(results)]
    return "\n".join(lines) + "\n"


def feature_set_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["# The three sample sets: factors, optical, joint", "",
             "Same windows, same split, same settings; only the bands differ. Discriminator "
             "loss components per epoch of each SSGAN: `feature_set_losses.png`.", "",
             *_header("feature set / model")]
    for feature_set, rows in results.items():
        lines += _metric_rows({f"{feature_set} / {kind}": row for kind, row in rows.items()})
    return "\n".join(lines) + "\n"


# --- evaluate: the maps ------------------------------------------------------------------

MAP_COLUMNS = (("auprc", "AUPRC"), ("auroc", "AUROC"), ("f1", "F1"), ("iou", "IoU"),
               ("precision", "precision"), ("recall", "recall"),
               ("flagged_share", "flagged share"), ("object_recall", "object recall"),
               ("object_precision", "object precision"), ("threshold", "threshold"))


def _cell(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def map_table(results: dict[str, dict[str, Any]], feature_set: str, protocol: str = "") -> str:
    """One table per held-out area: every model's map scored on every pixel."""
    lines = [f"# The maps, judged on held-out ground ({feature_set} features)", "",
             "Every model maps the whole study area; each map is scored on the validation and "
             "test areas of the spatial split, every valid pixel at the real prevalence "
             "(inventory landslides against all other ground), at the model's own threshold "
             "(best F1 on the validation area). Flagged share: share of the area's pixels the "
             "map calls landslide. Object recall: share of the area's inventory landslides "
             "that a mapped body overlaps; object precision: share of mapped bodies that touch "
             "an inventory landslide. Balanced-window scores (the paper's protocol) are in "
             "evaluation.md.", "", *([protocol, ""] if protocol else [])]
    for area in ("test", "val"):
        first = next(iter(results.values()))[area]
        lines += [f"## {'Test' if area == 'test' else 'Validation'} area: "
                  f"{first['all']['pixels']:,} pixels, inventory landslides "
                  f"{first['inventory_share']:.2%} of them "
                  f"({first['objects']['inventory_landslides']} landslides)", "",
                  "| model | " + " | ".join(name for _, name in MAP_COLUMNS) + " |",
                  "|---|" + "---|" * len(MAP_COLUMNS)]
        if map_metrics.point_inventory(first["objects"]):
            lines[-2:-2] = [
                "**The inventory marks each landslide with one pixel (points).** The pixel "
                "scores count that pixel as landslide and the rest of each scar as stable "
                "ground, so they say little about a map that outlines scars: read object "
                "recall (points inside a mapped body) and object precision (bodies over or "
                "next to a point).", ""]
        for kind, scores in results.items():
            row = {**scores[area]["all"], **scores[area]["objects"],
                   "threshold": scores[area]["threshold"]}
            lines.append(f"| {kind} | " + " | ".join(_cell(row[key]) for key, _ in MAP_COLUMNS)
                         + " |")
        lines += ["", "Only the pixels the inventory labels (landslide or stable ground); "
                  "unknown ground is left out, and the share of it flagged is given apart:", "",
                  "| model | AUPRC | F1 | precision | recall | landslide share | "
                  "unknown ground flagged |", "|---|---|---|---|---|---|---|"]
        for kind, scores in results.items():
            labelled = scores[area]["labelled"]
            lines.append(f"| {kind} | {_cell(labelled['auprc'])} | {_cell(labelled['f1'])} | "
                         f"{_cell(labelled['precision'])} | {_cell(labelled['recall'])} | "
                         f"{_cell(labelled['prevalence'])} | "
                         f"{_cell(scores[area]['unknown_flagged_share'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def coefficient_table(table: pd.DataFrame, feature_set: str) -> str:
    """The GLM's estimates on normalised bands (one standard deviation of training pixels)."""
    lines = [f"# Logistic regression on the centre pixel ({feature_set} features)", "",
             "Estimates per standard deviation of each band (bands are normalised with the "
             "training pixels' mean and standard deviation); one level of each one-hot layer "
             "and every constant band are left out as the reference. Fitted with statsmodels "
             "(maximum likelihood) on the labelled training windows' centre pixels.", "",
             "| term | estimate | std. error | z | p-value |", "|---|---|---|---|---|"]
    for term, row in table.iterrows():
        lines.append(f"| {term} | {row['estimate']:.4f} | {row['std_error']:.4f} | "
                     f"{row['z']:.2f} | {row['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


# --- study: the label-efficiency report ------------------------------------------------


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


def sampling_protocol(sample: SampleConfig) -> str:
    """How the windows were drawn, in one sentence for the report."""
    negatives = ("the inventory's stable polygons" if sample.negatives == "inventory" else
                 f"any valid ground at least {sample.negative_buffer_m:g} m from a landslide "
                 "(stable polygons included)")
    pool = ("the training area" if sample.unlabelled_from == "train" else
            "the whole mapped area, labels withheld: TRANSDUCTIVE, the SSGAN sees the test "
            "area's pixels, never its labels")
    return (f"Sampling: negatives from {negatives}, {sample.negative_ratio:g} per landslide "
            f"window; unlabelled pool of {sample.unlabelled_ratio:g} windows per landslide "
            f"window from {pool}.")


def study_report(results: pd.DataFrame, study: StudyConfig, feature_set: str, batch_size: int,
                 seconds: float, protocol: str = "") -> str:
    summary = budgets.summary_table(results, ("f1", "kappa", "miou"))
    lines = ["# Does the semi-supervision pay? Label-efficiency study", "",
             f"Feature set `{feature_set}`; budgets {list(study.budgets)} of the "
             f"labelled training windows (whole inventory polygons, nested), seeds "
             f"{list(study.seeds)}; every network trained for {study.steps} optimiser "
             f"steps of {batch_size} windows at every budget (the pipeline's "
             f"network settings otherwise), forests of {study.forest_trees} trees. Withheld "
             "labels join the unlabelled pool of the SSGAN and FixMatch. Window scores are "
             "on the fixed test windows of each split (balanced, the paper's protocol); map "
             "scores (spatial split only: the random split has no held-out area) on every "
             "pixel of the test area, at the real prevalence, F1 at the threshold that is best "
             f"on the validation area (the only use of validation data). {len(results)} runs in "
             f"{seconds / 60:.1f} min (`landslide study`, reports/label_efficiency.csv holds "
             "every run).", "", *([protocol, ""] if protocol else []),
             *_variant_lines(study),
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
    spatial = results[results.split == "spatial"]
    if "map_auprc" in results and spatial["map_auprc"].notna().any():
        mapped = budgets.summary_table(spatial, ("map_auprc", "map_f1", "map_flagged"))
        lines += ["", "## The map at the real prevalence: test area, every pixel (spatial)", "",
                  "| budget | model | AUPRC | F1 | flagged share |", "|---|---|---|---|---|"]
        for (_, budget, model), row in mapped.iterrows():
            lines.append(f"| {budget:g} | {model} | " + " | ".join(
                f"{row[(m, 'mean')]:.4f} ± {np.nan_to_num(row[(m, 'std')]):.4f}"
                for m in ("map_auprc", "map_f1", "map_flagged")) + " |")
        for learner in [m for m in SEMI if m in set(spatial.model)]:
            twin = str(LEARNERS[learner].twin)
            if twin in set(spatial.model):
                lines += ["", f"{learner} minus its supervised twin ({twin}) on the map:", "",
                          *_difference_lines(spatial, learner, twin,
                                             ("map_auprc", "map_f1"))]
    present = set(results.model)
    for learner in [m for m in SEMI if m in present and LEARNERS[m].twin in present]:
        twin = str(LEARNERS[learner].twin)
        lines += ["", f"## {LEARNERS[learner].title} minus its supervised twin ({twin}), "
                  "paired by seed and budget", "",
                  *_difference_lines(results, learner, twin, ("f1", "kappa"))]
    if PAPER in present:
        for other in [m for m in SEMI if m != PAPER and m in present]:
            lines += ["", f"## {LEARNERS[other].title} minus the SSGAN", "",
                      *_difference_lines(results, other, PAPER, ("map_auprc", "f1"))]
        for other in [m for m in CLASSIFIERS if m in present]:
            lines += ["", f"## SSGAN minus the {LEARNERS[other].title}", "",
                      *_difference_lines(results, PAPER, other, ("f1", "kappa"))]
    variants = sorted(m for m in set(results.model) if m.startswith(f"{PAPER}+"))
    if variants:
        lines += ["", "## Improvements: each SSGAN variant minus the plain SSGAN (spatial)", ""]
        for variant in variants:
            lines += [f"### {variant}", "",
                      *_difference_lines(results[results.split == "spatial"], variant,
                                         PAPER, ("map_auprc", "f1")), ""]
    lines += _realism_lines(results)
    lines += ["", "## Spatial versus random split (mean test F1)", "",
              *_split_lines(results)]
    return "\n".join(lines) + "\n"


def _realism_lines(results: pd.DataFrame) -> list[str]:
    """Real-vs-generated AUROC per SSGAN model and budget (realism.py)."""
    if "generator_realism" not in results or results["generator_realism"].isna().all():
        return []
    found = results.dropna(subset=["generator_realism"])
    table = found.groupby(["model", "budget"])["generator_realism"].agg(["mean", "std"])
    lines = ["", "## Are the generated windows plausible? (real vs generated)", "",
             "Out-of-fold AUROC of a random forest telling 500 generated windows from 500 real "
             "unlabelled ones (0.5: indistinguishable; 1.0: every generated window is "
             "recognised), after training.", "",
             "| model | budget | AUROC |", "|---|---|---|"]
    for (model, budget), row in table.iterrows():
        lines.append(f"| {model} | {budget:g} | {row['mean']:.3f} ± "
                     f"{np.nan_to_num(row['std']):.3f} |")
    return lines


def _variant_lines(study: StudyConfig) -> list[str]:
    if not study.variants:
        return []
    return ["SSGAN variants (`study.variants`; `steps` replaces the optimiser steps, "
            "`unlabelled_ratio` keeps that many unlabelled windows per landslide training "
            "window): " + "; ".join(
                f"`{name}` " + ", ".join(f"{k}={v}" for k, v in settings.items())
                for name, settings in study.variants.items()) + ".", ""]


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
            if {PAPER, TWIN} <= set(results.model):
                lines.append(f"- SSGAN vs supervised twin, {split} split, {metric}: "
                             + _readings(results, PAPER, TWIN, split, metric) + ".")
    if "map_auprc" in results and results["map_auprc"].notna().any():
        for a, b in COMPARISONS:
            if {a, b} <= set(results.model):
                lines.append(f"- {a} vs {b}, the map's test-area AUPRC (spatial split): "
                             + _readings(results, a, b, "spatial", "map_auprc") + ".")
    for variant in sorted(m for m in set(results.model) if m.startswith(f"{PAPER}+")):
        for metric in ("map_auprc", "f1"):
            lines.append(f"- {variant} vs SSGAN, spatial split, {metric}: "
                         + _readings(results, variant, PAPER, "spatial", metric) + ".")
        lines.append(f"- {variant} vs supervised twin, spatial split, map_auprc: "
                     + _readings(results, variant, TWIN, "spatial", "map_auprc") + ".")
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


