"""prepare: every layer on the metric reference grid as one stack, the inventory as labels.

Made and written one strip of rows at a time (`data.stack.STRIP`): memory holds a strip, the
summary's running sums and a decimated copy for the preview, whatever the area's size."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan import plots
from landslide_ssgan.config import PrepareConfig
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.data.inventory import (
    LANDSLIDE,
    STABLE,
    UNKNOWN,
    InventoryOnGrid,
    require_landslides,
)
from landslide_ssgan.data.stack import (
    STRIP,
    BandInfo,
    describe_stack,
    open_tiled,
    plan_stack,
    write_rows,
)
from landslide_ssgan.files import staged_together, write_json

PREVIEW_SIDE = 512  # pixels on the longest side of each panel of the preview


def run(cfg: PrepareConfig, *, stack: str, labels: str, inventory_ids: str,
        reports: str) -> dict[str, Any]:
    """Writes the stack, the label and landslide-id rasters, reports/prepare.json and a preview
    of every layer, all renamed into place together; returns the summary."""
    plan = plan_stack(cfg)
    inventory = InventoryOnGrid(cfg.inventory, plan.grid, STRIP)
    summary = Summary(plan.bands, plan.grid)
    preview = Preview(plan.grid)
    with staged_together() as staged:
        with open_tiled(staged.path(stack), plan.grid, len(plan.bands), "float32",
                        float("nan")) as out_stack, \
                open_tiled(staged.path(labels), plan.grid, 1, "uint8", 255) as out_labels, \
                open_tiled(staged.path(inventory_ids), plan.grid, 1, "int32", 0) as out_ids:
            for row, data in plan.strips(STRIP):
                label_strip, id_strip = inventory.strip(row)
                write_rows(out_stack, row, data)
                write_rows(out_labels, row, label_strip)
                write_rows(out_ids, row, id_strip)
                summary.add(data, label_strip, id_strip)
                preview.add(row, data, label_strip)
            describe_stack(out_stack, plan.bands)
            out_labels.set_band_description(1, "label")
            out_ids.set_band_description(1, "landslide_id")
        require_landslides(cfg.inventory, summary.landslide_count)
        result = summary.result()
        write_json(staged.path(Path(reports) / "prepare.json"), result)
        plots.stack_preview(plan.bands, preview.data(), preview.labels(),
                            staged.path(Path(reports) / "prepare_layers.png"))
    return result


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == code).sum())
            for name, code in (("landslide", LANDSLIDE), ("stable", STABLE), ("unknown", UNKNOWN))}


class Summary:
    """reports/prepare.json, accumulated strip by strip: per band min, mean and max of its
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
    """Every `step`-th row and column of the stack and labels, kept as the strips pass."""

    def __init__(self, grid: Grid) -> None:
        self.step = max(4, math.ceil(max(grid.shape) / PREVIEW_SIDE))
        self.parts: list[np.ndarray] = []
        self.label_parts: list[np.ndarray] = []

    def add(self, row: int, data: np.ndarray, labels: np.ndarray) -> None:
        first = -row % self.step
        self.parts.append(data[:, first::self.step, ::self.step])
        self.label_parts.append(labels[first::self.step, ::self.step])

    def data(self) -> np.ndarray:
        return np.concatenate(self.parts, axis=1)

    def labels(self) -> np.ndarray:
        return np.concatenate(self.label_parts)
