"""prepare: every layer on the metric reference grid as one stack, the inventory as labels.

Made and written one part of the grid at a time (`data.stack.PART` pixels square): memory
holds a part, the summary's running sums and a decimated copy for the preview, whatever the
area's size."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan.config import Params, PrepareConfig
from landslide_ssgan.data.grid import Grid, Part
from landslide_ssgan.data.inventory import (
    LANDSLIDE,
    STABLE,
    UNKNOWN,
    InventoryOnGrid,
    require_landslides,
)
from landslide_ssgan.data.stack import (
    PART,
    BandInfo,
    describe_stack,
    open_tiled,
    plan_stack,
    write_part,
)
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import staged_together, write_json
from landslide_ssgan.reporting import plots

PREVIEW_SIDE = 512  # pixels on the longest side of each panel of the preview


def run(cfg: PrepareConfig, *, stack: str, labels: str, inventory_ids: str,
        reports: str) -> dict[str, Any]:
    """Writes the stack, the label and landslide-id rasters, reports/prepare.json and a preview
    of every layer, all renamed into place together; returns the summary."""
    plan = plan_stack(cfg)
    inventory = InventoryOnGrid(cfg.inventory, plan.grid, PART)
    summary = Summary(plan.bands, plan.grid)
    preview = Preview(plan.grid, len(plan.bands))
    with staged_together() as staged:
        with open_tiled(staged.path(stack), plan.grid, len(plan.bands), "float32",
                        float("nan")) as out_stack, \
                open_tiled(staged.path(labels), plan.grid, 1, "uint8", 255) as out_labels, \
                open_tiled(staged.path(inventory_ids), plan.grid, 1, "int32", 0) as out_ids:
            for part, data in plan.parts(PART):
                part_labels, part_ids = inventory.part(part)
                write_part(out_stack, part, data)
                write_part(out_labels, part, part_labels)
                write_part(out_ids, part, part_ids)
                summary.add(data, part_labels, part_ids)
                preview.add(part, data, part_labels)
            describe_stack(out_stack, plan.bands)
            out_labels.set_band_description(1, "label")
            out_ids.set_band_description(1, "landslide_id")
        require_landslides(cfg.inventory, summary.landslide_count)
        summary.require_data(cfg)
        result = summary.result()
        write_json(staged.path(Path(reports) / "prepare.json"), result)
        plots.stack_preview(plan.bands, preview.data, preview.labels,
                            staged.path(Path(reports) / "prepare_layers.png"))
    return result


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == code).sum())
            for name, code in (("landslide", LANDSLIDE), ("stable", STABLE), ("unknown", UNKNOWN))}


class Summary:
    """reports/prepare.json, accumulated part by part: per band min, mean and max of its
    data and its nodata share; the labels on the grid and on valid pixels."""

    def __init__(self, bands: tuple[BandInfo, ...], grid: Grid) -> None:
        self.bands, self.grid = bands, grid
        n = len(bands)
        self.low, self.high = np.full(n, np.inf), np.full(n, -np.inf)
        self.total, self.finite = np.zeros(n), np.zeros(n, np.int64)
        self.valid = 0
        self.on_grid = dict.fromkeys(("landslide", "stable", "unknown"), 0)
        self.on_valid = dict(self.on_grid)
        self.landslides: set[int] = set()

    def add(self, data: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> None:
        finite = np.isfinite(data)
        self.finite += finite.sum(axis=(1, 2))
        self.total += np.where(finite, data, 0).sum(axis=(1, 2), dtype=np.float64)
        self.low = np.minimum(self.low, np.where(finite, data, np.inf).min(axis=(1, 2)))
        self.high = np.maximum(self.high, np.where(finite, data, -np.inf).max(axis=(1, 2)))
        valid = finite.all(axis=0)
        self.valid += int(valid.sum())
        for name, count in _label_counts(labels).items():
            self.on_grid[name] += count
        for name, count in _label_counts(labels[valid]).items():
            self.on_valid[name] += count
        self.landslides.update(np.unique(ids[ids > 0]).tolist())

    def require_data(self, cfg: PrepareConfig) -> None:
        """A layer with no value on the grid, or a grid where no pixel has every layer, makes
        a stack that nothing can be learnt from: one line naming the layer, not a 0 % stack."""
        paths = {layer.name: layer.path or f"derived from {layer.source}"
                 for layer in cfg.layers}
        for i, band in enumerate(self.bands):
            if self.finite[i] == 0:
                raise InputError(f"{paths[band.layer]}: layer {band.layer!r} (band "
                                 f"{band.name!r}) has no valid pixel on the grid: all nodata "
                                 "or NaN there; check its nodata value and that it covers "
                                 "prepare.grid.extent_layer")
        if self.valid == 0:
            raise InputError("prepare.layers: no pixel of the grid has data in every layer; "
                             "the layers' valid areas do not overlap (see each band's "
                             "nodata_share in a run without the emptiest layer)")

    @property
    def landslide_count(self) -> int:
        return len(self.landslides)

    def result(self) -> dict[str, Any]:
        size = self.grid.width * self.grid.height
        bands = {}
        for i, band in enumerate(self.bands):
            some = self.finite[i] > 0
            bands[band.name] = {
                "layer": band.layer, "role": band.role, "categorical": band.categorical,
                "min": float(self.low[i]) if some else None,
                "mean": float(self.total[i] / self.finite[i]) if some else None,
                "max": float(self.high[i]) if some else None,
                "nodata_share": float(1 - self.finite[i] / size),
            }
        return {
            "grid": {"crs": self.grid.crs.to_string(), "resolution_m": self.grid.resolution,
                     "width": self.grid.width, "height": self.grid.height,
                     "bounds": list(self.grid.bounds)},
            "valid_fraction": self.valid / size,
            "labels_on_grid": self.on_grid,
            "labels_on_valid_pixels": self.on_valid,
            "landslides": self.landslide_count,
            "bands": bands,
        }


class Preview:
    """Every `step`-th row and column of the stack and labels, kept as the parts pass."""

    def __init__(self, grid: Grid, bands: int) -> None:
        self.step = max(4, math.ceil(max(grid.shape) / PREVIEW_SIDE))
        shape = (-(-grid.height // self.step), -(-grid.width // self.step))
        self.data = np.full((bands, *shape), np.nan, dtype=np.float32)
        self.labels = np.full(shape, UNKNOWN, dtype=np.uint8)

    def add(self, part: Part, data: np.ndarray, labels: np.ndarray) -> None:
        top, left = -part.row % self.step, -part.col % self.step
        rows = slice(-(-part.row // self.step), -(-(part.row + part.rows) // self.step))
        cols = slice(-(-part.col // self.step), -(-(part.col + part.cols) // self.step))
        self.data[:, rows, cols] = data[:, top::self.step, left::self.step]
        self.labels[rows, cols] = labels[top::self.step, left::self.step]


def main(cfg: Params) -> dict[str, Any]:
    """The stage as `landslide prepare` and dvc.yaml run it: params.yaml's settings."""
    paths = cfg.paths
    return run(cfg.prepare, stack=paths.stack, labels=paths.labels,
               inventory_ids=paths.inventory_ids, reports=paths.reports)
