"""Figures for reports/: previews a person looks at to check a stage did the right thing."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from landslide_ssgan.data.stack import Stack  # noqa: E402
from landslide_ssgan.files import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def stack_preview(stack: Stack, labels: np.ndarray, path: str | Path, step: int = 4) -> None:
    """Every band (2-98 % stretch, nodata white) and the labels, decimated by `step`."""
    panels = len(stack.bands) + 1
    cols = 6
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 3.6))
    for ax, band, array in zip(axes.flat, stack.bands, stack.data, strict=False):
        small = array[::step, ::step]
        finite = small[np.isfinite(small)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0, 1)
        ax.imshow(small, cmap="viridis", vmin=low, vmax=high if high > low else low + 1)
        ax.set_title(band.name, fontsize=8)
    label_view = np.where(labels == 255, np.nan, labels.astype(float))[::step, ::step]
    ax = axes.flat[panels - 1]
    ax.imshow(np.isfinite(stack.data).all(axis=0)[::step, ::step], cmap="Greys", alpha=0.3)
    ax.imshow(label_view, cmap="coolwarm", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title("labels (red = landslide)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[panels:]:
        ax.axis("off")
    _save(fig, path)


def split_preview(labels_shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                  splits: np.ndarray, valid: np.ndarray, path: str | Path) -> None:
    """Where the train, validation and test windows lie."""
    fig, ax = plt.subplots(figsize=(5, 8))
    ax.imshow(valid, cmap="Greys", alpha=0.25)
    for name, colour in (("train", "tab:blue"), ("val", "tab:orange"), ("test", "tab:red")):
        mask = splits == name
        ax.scatter(cols[mask], rows[mask], s=1, c=colour, label=name)
    ax.set_xlim(0, labels_shape[1])
    ax.set_ylim(labels_shape[0], 0)
    ax.legend(markerscale=8, loc="lower left")
    ax.set_title("sample windows by split")
    _save(fig, path)
