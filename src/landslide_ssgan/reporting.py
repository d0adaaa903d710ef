"""Summaries that stages write to reports/ for people (and `dvc metrics`) to read."""

from __future__ import annotations

from typing import Any

import numpy as np

from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN
from landslide_ssgan.data.sampling import SPLITS, UNLABELLED, Samples, shared_pixels
from landslide_ssgan.data.stack import Stack


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == code).sum())
            for name, code in (("landslide", LANDSLIDE), ("stable", STABLE), ("unknown", UNKNOWN))}


def prepare_summary(stack: Stack, labels: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
    valid = stack.valid
    bands = {}
    for band, array in zip(stack.bands, stack.data, strict=True):
        finite = array[np.isfinite(array)]
        bands[band.name] = {
            "layer": band.layer, "role": band.role, "categorical": band.categorical,
            "min": float(finite.min()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "nodata_share": float(1 - finite.size / array.size),
        }
    return {
        "grid": {"crs": stack.grid.crs.to_string(), "resolution_m": stack.grid.resolution,
                 "width": stack.grid.width, "height": stack.grid.height,
                 "bounds": list(stack.grid.bounds)},
        "valid_fraction": float(valid.mean()),
        "labels_on_grid": _label_counts(labels),
        "labels_on_valid_pixels": _label_counts(labels[valid]),
        "landslides": int(len(np.unique(ids[ids > 0]))),
        "bands": bands,
    }


def sample_summary(samples: Samples, shape: tuple[int, int], window: int,
                   method: str) -> dict[str, Any]:
    table = samples.table
    names = {1: "landslide", 0: "stable", UNLABELLED: "unlabelled"}
    counts = {split: {names[k]: int(((table.split == split) & (table.label == k)).sum())
                      for k in names} for split in SPLITS}
    return {
        "method": method,
        "window": window,
        "counts": counts,
        "landslide_groups_per_split": {
            split: int(table[(table.split == split) & (table.label == 1)].group.nunique())
            for split in SPLITS} if method == "spatial" else None,
        "shared_window_pixels": {
            f"{a}_{b}": shared_pixels(samples, a, b, shape, window)
            for a, b in (("test", "train"), ("val", "train"), ("test", "val"))},
    }
