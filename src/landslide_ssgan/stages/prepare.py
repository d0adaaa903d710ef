"""prepare: every layer on the metric reference grid as one stack, the inventory as labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan import plots
from landslide_ssgan.config import PrepareConfig
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN, rasterize_inventory
from landslide_ssgan.data.stack import Stack, build_stack, write_single_band, write_stack
from landslide_ssgan.files import write_json


def run(cfg: PrepareConfig, *, stack: str, labels: str, inventory_ids: str,
        reports: str) -> dict[str, Any]:
    """Writes the stack, the label and landslide-id rasters, reports/prepare.json and a preview
    of every layer; returns the summary."""
    built = build_stack(cfg)
    label_raster, ids = rasterize_inventory(cfg.inventory, built.grid)
    summary = prepare_summary(built, label_raster, ids)
    write_stack(built, stack)
    write_single_band(label_raster, built.grid, labels, 255, "label")
    write_single_band(ids, built.grid, inventory_ids, 0, "landslide_id")
    write_json(Path(reports) / "prepare.json", summary)
    plots.stack_preview(built, label_raster, Path(reports) / "prepare_layers.png")
    return summary


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
