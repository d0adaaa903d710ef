"""A model judged by its map: the whole map in memory, a threshold chosen on the validation
area, and every map score (map_metrics) on the validation and test areas of the spatial split.

Validation area for choices (the threshold, the champion), test area for the report: the test
area is never used to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan.config import CalibrateConfig, MapConfig
from landslide_ssgan.data.inventory import LANDSLIDE
from landslide_ssgan.data.sampling import AREA_CODES
from landslide_ssgan.data.stack import read_single_band
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import map_metrics
from landslide_ssgan.inference import bodies
from landslide_ssgan.inference.mapping import WindowModel, probability_map
from landslide_ssgan.models.bundle import ModelBundle, load_bundle, read_info, save_info
from landslide_ssgan.models.prior import Prior

SCORED_AREAS = ("val", "test")


@dataclass(frozen=True)
class Ground:
    """The inventory and the split areas on the stack's grid."""

    truth: map_metrics.Truth
    areas: np.ndarray  # AREA_CODES per pixel, 0 = no split's area
    pixel_area_m2: float

    def area(self, name: str) -> np.ndarray:
        return self.areas == AREA_CODES[name]

    @property
    def has_areas(self) -> bool:
        return bool(self.area("val").any() and self.area("test").any())


def read_ground(labels: str, inventory_ids: str, split: str) -> Ground:
    label_raster, grid = read_single_band(labels)
    ids, _ = read_single_band(inventory_ids)
    areas, _ = read_single_band(split)
    if areas.shape != label_raster.shape:
        raise InputError(f"{split}: its grid differs from {labels}'s (re-run the sample stage)")
    return Ground(map_metrics.Truth(label_raster, ids), areas, grid.resolution ** 2)


def area_prevalence(ground: Ground, setting: float | str = "auto") -> tuple[float, str]:
    """The landslide share the map's probabilities are corrected to: calibrate.prevalence, or with
    `auto` the inventory's share of the training area's valid pixels (the test area is never
    looked at; with the random split, which has no areas, the share of the whole grid)."""
    if setting != "auto":
        return float(setting), "calibrate.prevalence in params.yaml"
    slides = ground.truth.labels == LANDSLIDE
    if ground.area("train").any():
        share = float(slides[ground.area("train")].mean())
        source = "inventory landslide share of the training area"
    else:
        share = float(slides.mean())
        source = "inventory landslide share of the whole grid (no training area)"
    if not 0.0 < share < 1.0:
        raise InputError(f"the training area's landslide share is {share:g}: set "
                         "calibrate.prevalence in params.yaml")
    return share, source


def model_prior(trained: float, calibrate: CalibrateConfig, ground: Ground) -> Prior:
    """The landslide prior a model learnt at (its folder's `trained_prior`, written when it
    was trained) and the area's (calibrate.prevalence)."""
    return Prior(trained, *area_prevalence(ground, calibrate.prevalence))


def model_map(stack: str, model: ModelBundle, ground: Ground, areas: tuple[str, ...],
              block_size: int = 512) -> np.ndarray:
    """P(landslide) of the stack's pixels, NaN without data; only the blocks that hold a
    pixel of the named areas are computed (each block on its own, so the values are those of
    a whole map)."""
    only = np.isin(ground.areas, [AREA_CODES[name] for name in areas])
    probability, _ = probability_map(stack, WindowModel.from_bundle(model), block_size,
                                     only=only)
    return probability


def validation_threshold(probability: np.ndarray, ground: Ground, target_recall: float | None,
                         min_landslides: int) -> tuple[float, str]:
    """The map threshold and a sentence saying where it came from. A validation area with
    fewer than `min_landslides` landslides would choose the threshold by chance, so the
    model keeps its balanced-window threshold, 0.5, and the sentence says why."""
    if not ground.has_areas:
        return 0.5, "0.5: no validation area (random split)"
    found = map_metrics.landslides_in(ground.truth, ground.area("val")).size
    if found < min_landslides:
        return 0.5, (f"0.5, the model's own: the validation area holds {found} landslides, "
                     f"fewer than calibrate.min_val_landslides ({min_landslides}), too few to "
                     "choose a threshold by")
    is_landslide, values = map_metrics.scored_pixels(probability, ground.truth,
                                                     ground.area("val"), "all")
    threshold = map_metrics.choose_threshold(is_landslide, values, target_recall)
    rule = ("best F1" if target_recall is None else f"recall >= {target_recall:g}")
    return threshold, f"{rule} on the validation area, every pixel (real prevalence)"


def score_areas(probability: np.ndarray, ground: Ground, threshold: float,
                post: MapConfig) -> dict[str, Any]:
    """Every map score on each held-out area; bodies as `landslide map` makes them (opening,
    closing, minimum area of `post`) at `threshold`."""
    if not ground.has_areas:
        return {}
    result = {}
    for name in SCORED_AREAS:
        area = ground.area(name)
        inside = np.where(area, probability, np.nan)
        found = bodies.landslide_bodies(inside, replace(post, threshold=threshold),
                                        ground.pixel_area_m2)
        result[name] = map_metrics.area_scores(probability, ground.truth, area, threshold,
                                               found)
    return result


def model_info(kind: str, probability: np.ndarray, ground: Ground, calibrate: CalibrateConfig,
               prior: Prior | None = None) -> dict[str, Any]:
    """What a model folder records about its map (model.json): the threshold (on the model's
    own, uncorrected probabilities), where it came from, the validation area's pixel scores at
    it (AUPRC chooses the champion), and the prior that corrects its probabilities to the
    area's prevalence."""
    threshold, source = validation_threshold(probability, ground, calibrate.target_recall,
                                             calibrate.min_val_landslides)
    validation = None
    if ground.has_areas:
        found = map_metrics.pixel_scores(*map_metrics.scored_pixels(
            probability, ground.truth, ground.area("val"), "all"), threshold)
        validation = {k: round(float(found[k]), 4) for k in (
            "auprc", "auroc", "f1", "precision", "recall", "flagged_share")}
    return {"kind": kind, "threshold": threshold, "threshold_source": source,
            "validation_map": validation, "prior": prior.as_dict() if prior else None}


def record_threshold(kind: str, folder: Path, stack: str, ground: Ground,
                     calibrate: CalibrateConfig, prior: Prior | None = None) -> dict[str, Any]:
    """The model in `folder` maps the stack; its threshold, where it came from, its
    validation map scores and its prior go to the folder's model.json (and are returned)."""
    info = model_info(kind, model_map(stack, load_bundle(folder), ground, ("val",)), ground,
                      calibrate, prior)
    save_info(folder, {**read_info(folder), **info})
    return info
