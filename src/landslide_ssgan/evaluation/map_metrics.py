"""Scores of a probability map over a held-out area, at the area's real prevalence.

The paper scores balanced windows, as many stable as landslide ones; a user who maps an area
meets landslides on a fraction of a percent of it. These scores take every pixel of an area
(the validation or test blocks of the spatial split) as it comes:

- pixel level, landslide class: precision, recall, F1, IoU, plus kappa and MIoU, at a
  threshold; AUROC and AUPRC (average precision) without one;
- the share of the area flagged as landslide beside the inventory's share;
- object level: the share of inventory landslides hit by a mapped body (object recall) and
  the share of mapped bodies that touch an inventory landslide (object precision).

Ground truth comes in two readings, both reported. `all`: every valid pixel that is not an
inventory landslide counts as non-landslide (the real prevalence, as segmentation benchmarks
score masks). `labelled`: only pixels the inventory labels (landslide or stable) count, for
inventories that mark stable ground and leave the rest unknown; the share of unknown ground
flagged as landslide is then reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from landslide_ssgan.data.inventory import LANDSLIDE, STABLE
from landslide_ssgan.evaluation.metrics import confusion, scores
from landslide_ssgan.inference.bodies import Bodies

Ground = Literal["all", "labelled"]
GROUNDS: tuple[Ground, ...] = ("all", "labelled")
DVC_HEADLINE = ("auprc", "auroc", "f1", "flagged_share", "object_recall", "object_precision")


@dataclass(frozen=True)
class Truth:
    """The inventory on the map's grid."""

    labels: np.ndarray  # 1 landslide, 0 stable, 255 unknown
    ids: np.ndarray     # landslide id per pixel, 0 = none


def scored_pixels(probability: np.ndarray, truth: Truth, area: np.ndarray,
                  ground: Ground) -> tuple[np.ndarray, np.ndarray]:
    """(landslide?, probability) of the pixels one reading scores: valid pixels of the area;
    with `labelled`, only those the inventory labels."""
    keep = area & np.isfinite(probability)
    if ground == "labelled":
        keep &= (truth.labels == LANDSLIDE) | (truth.labels == STABLE)
    return truth.labels[keep] == LANDSLIDE, probability[keep].astype(np.float64)


def pixel_scores(is_landslide: np.ndarray, probability: np.ndarray,
                 threshold: float) -> dict[str, float]:
    """Landslide-class scores at a threshold, and the threshold-free AUROC and AUPRC (NaN
    where the pixels hold only one class)."""
    predicted = probability >= threshold
    matrix = confusion(is_landslide.astype(int), predicted.astype(int))
    (_, fp), (fn, tp) = matrix
    both = bool(is_landslide.any() and (~is_landslide).any())
    found = scores(matrix)
    return {
        "precision": found["precision"], "recall": found["recall"], "f1": found["f1"],
        "iou": float(tp / (tp + fp + fn)) if tp + fp + fn else 0.0,
        "kappa": found["kappa"], "miou": found["miou"],
        "auroc": float(roc_auc_score(is_landslide, probability)) if both else float("nan"),
        "auprc": float(average_precision_score(is_landslide, probability)) if both
        else float("nan"),
        "prevalence": float(is_landslide.mean()) if is_landslide.size else float("nan"),
        "flagged_share": float(predicted.mean()) if predicted.size else float("nan"),
        "pixels": int(is_landslide.size),
    }


def landslides_in(truth: Truth, area: np.ndarray) -> np.ndarray:
    """The ids of the inventory landslides with a pixel in `area`."""
    return np.unique(truth.ids[area & (truth.ids > 0)])


def object_scores(found: Bodies, truth: Truth, area: np.ndarray) -> dict[str, float | int]:
    """Object recall: inventory landslides of the area that a mapped body overlaps. Object
    precision: mapped bodies of the area that touch a landslide (overlap, or share an edge or
    corner with one)."""
    sizes = np.bincount(truth.ids[area & (truth.ids > 0)])  # pixels in the area, by id
    inventory = np.flatnonzero(sizes)  # the landslides_in(truth, area), from one pass
    bodies_here = np.unique(found.labels[area & (found.labels > 0)])
    hit = np.unique(truth.ids[(found.labels > 0) & (truth.ids > 0)])
    near_landslide = ndimage.binary_dilation(truth.ids > 0, structure=np.ones((3, 3), bool))
    touching = np.unique(found.labels[near_landslide & (found.labels > 0)])
    return {
        "inventory_landslides": int(inventory.size),
        # 1 for an inventory of points: its pixel scores count one pixel of each scar
        "median_landslide_pixels": float(np.median(sizes[inventory])) if inventory.size
        else float("nan"),
        "mapped_bodies": int(bodies_here.size),
        "object_recall": float(np.isin(inventory, hit).mean()) if inventory.size
        else float("nan"),
        "object_precision": float(np.isin(bodies_here, touching).mean()) if bodies_here.size
        else float("nan"),
    }


def point_inventory(objects: dict[str, Any]) -> bool:
    """Whether the area's inventory marks landslides by single pixels (points), where pixel
    scores mean little and the object scores are the ones to read."""
    size = objects.get("median_landslide_pixels", float("nan"))
    return bool(size == size and size <= 1)


def choose_threshold(is_landslide: np.ndarray, probability: np.ndarray,
                     target_recall: float | None = None) -> float:
    """The threshold with the best F1 (or, with `target_recall`, the highest threshold that
    still reaches that recall) on these pixels: picked on the validation area, never test."""
    if not is_landslide.any():
        return 0.5
    precision, recall, thresholds = precision_recall_curve(is_landslide, probability)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if target_recall is not None:
        reaching = np.flatnonzero(recall >= target_recall)
        return float(thresholds[reaching[-1]])
    f1 = np.where(precision + recall > 0, 2 * precision * recall
                  / np.maximum(precision + recall, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def area_scores(probability: np.ndarray, truth: Truth, area: np.ndarray, threshold: float,
                found: Bodies) -> dict[str, Any]:
    """Every score of one map over one area: pixel scores in both readings, the flagged
    share of unknown ground, object scores of the bodies `found` (extracted at `threshold`)."""
    result: dict[str, Any] = {"threshold": threshold}
    for ground in GROUNDS:
        result[ground] = pixel_scores(*scored_pixels(probability, truth, area, ground),
                                      threshold)
    valid = area & np.isfinite(probability)
    unknown = valid & (truth.labels != LANDSLIDE) & (truth.labels != STABLE)
    result["unknown_flagged_share"] = (float((probability[unknown] >= threshold).mean())
                                       if unknown.any() else float("nan"))
    result["inventory_share"] = (float((truth.labels[valid] == LANDSLIDE).mean())
                                 if valid.any() else float("nan"))
    result["objects"] = object_scores(found, truth, area)
    return result


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The figures a map is judged by (real prevalence, all ground), for DVC metrics."""
    row = {key: result["all"][key] for key in ("auprc", "auroc", "f1", "iou", "precision",
                                               "recall", "flagged_share")}
    row["object_recall"] = result["objects"]["object_recall"]
    row["object_precision"] = result["objects"]["object_precision"]
    row["threshold"] = result["threshold"]
    return {k: (round(float(v), 4) if v == v else v) for k, v in row.items()}
