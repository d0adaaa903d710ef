"""Figures for reports/: previews a person looks at to check a stage did the right thing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from landslide_ssgan.data.stack import BandInfo  # noqa: E402
from landslide_ssgan.data.strips import PackedMask  # noqa: E402
from landslide_ssgan.files import atomic_path  # noqa: E402


def _save(fig: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def stack_preview(bands: tuple[BandInfo, ...], data: np.ndarray, labels: np.ndarray,
                  path: str | Path) -> None:
    """Every band (2-98 % stretch, nodata white) and the labels, already decimated."""
    panels = len(bands) + 1
    cols = 6
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 3.6))
    for ax, band, small in zip(axes.flat, bands, data, strict=False):
        finite = small[np.isfinite(small)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0, 1)
        ax.imshow(small, cmap="viridis", vmin=low, vmax=high if high > low else low + 1)
        ax.set_title(band.name, fontsize=8)
    label_view = np.where(labels == 255, np.nan, labels.astype(float))
    ax = axes.flat[panels - 1]
    ax.imshow(np.isfinite(data).all(axis=0), cmap="Greys", alpha=0.3)
    ax.imshow(label_view, cmap="coolwarm", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title("labels (red = landslide)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[panels:]:
        ax.axis("off")
    _save(fig, path)


def split_preview(labels_shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                  splits: np.ndarray | pd.Categorical, valid: np.ndarray | PackedMask,
                  path: str | Path) -> None:
    """Where the train, validation and test windows lie, drawn as a raster of cells about
    one screen pixel wide (a tile's millions of windows as scatter points held 600 MB). The
    splits may be a Categorical: as an array of Python strings they would cost 300 MB more.
    The valid mask (an array, or its bits) is shown at most 2048 pixels a side: matplotlib
    would otherwise hold a float copy of a tile-sized mask."""
    fig, ax = plt.subplots(figsize=(5, 8))
    extent = (-0.5, labels_shape[1] - 0.5, labels_shape[0] - 0.5, -0.5)
    step = max(1, math.ceil(max(labels_shape) / 2048))
    shown = valid.sampled(step) if isinstance(valid, PackedMask) else valid[::step, ::step]
    ax.imshow(shown, cmap="Greys", alpha=0.25, extent=extent)
    cell = max(1, math.ceil(max(labels_shape) / 600))
    cells = (-(-labels_shape[0] // cell), -(-labels_shape[1] // cell))
    image = np.zeros((*cells, 4))
    colours = {"train": "tab:blue", "val": "tab:orange", "test": "tab:red"}
    for name, colour in colours.items():  # test drawn last, on top
        chosen = np.asarray(splits == name)
        used = np.bincount((rows[chosen] // cell) * cells[1] + cols[chosen] // cell,
                           minlength=cells[0] * cells[1]).reshape(cells) > 0
        image[used] = to_rgba(colour)
    ax.imshow(image, interpolation="nearest",
              extent=(-0.5, cells[1] * cell - 0.5, cells[0] * cell - 0.5, -0.5))
    ax.set_xlim(0, labels_shape[1])
    ax.set_ylim(labels_shape[0], 0)
    ax.legend(handles=[Patch(color=colour, label=name)
                       for name, colour in colours.items()], loc="lower left")
    ax.set_title(f"sample windows by split (cells of {cell} x {cell} pixels)")
    _save(fig, path)


def loss_curves(histories: dict[str, list[dict[str, float]]], path: str | Path) -> None:
    """Per model: the discriminator's (or segmenter's) loss components and the generator loss
    by epoch, and the validation F1 of all models in one panel (alone, and empty, without
    networks)."""
    fig, grid = plt.subplots(1, len(histories) + 1, figsize=(5 * (len(histories) + 1), 3.8),
                             squeeze=False)
    axes = grid[0]
    for ax, (name, rows) in zip(axes, histories.items(), strict=False):
        epochs = [row["epoch"] for row in rows]
        for key in ("d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss",
                    "d_consistency_loss", "segmentation_loss", "consistency_loss"):
            if key in rows[0]:
                ax.plot(epochs, [row[key] for row in rows], label=key)
        ax.set_title(f"{name}: training losses")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    ax = axes[-1]
    for name, rows in histories.items():
        if "val_f1" in rows[0]:
            ax.plot([row["epoch"] for row in rows], [row["val_f1"] for row in rows], label=name)
    ax.set_title("validation F1")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    _save(fig, path)


def factor_charts(importance: Any, vif: Any, importance_path: str | Path,
                  vif_path: str | Path, threshold: float) -> None:
    """Bar charts: OOB permutation importance (with impurity beside it) and VIF per factor."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(importance) + 1.5))
    positions = np.arange(len(importance))
    ax.barh(positions - 0.2, importance["oob_permutation"], 0.4,
            xerr=importance["oob_permutation_std"], label="OOB permutation (accuracy drop)")
    ax.barh(positions + 0.2, importance["impurity"], 0.4, label="impurity (mean decrease)")
    ax.set_yticks(positions, importance.index)
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    ax.set_title("random-forest importance of the factors")
    _save(fig, importance_path)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(vif) + 1.5))
    ax.barh(vif.index, vif["vif"], color=["tab:red" if c else "tab:blue" for c in vif["collinear"]])
    ax.axvline(threshold, color="k", linestyle="--", label=f"VIF = {threshold:g}")
    ax.invert_yaxis()
    ax.set_xlabel("VIF (GVIF for one-hot factors)")
    ax.legend(fontsize=7)
    ax.set_title("multicollinearity of the factors (labelled pixels)")
    _save(fig, vif_path)


def study_figures(study: Any, history_path: str | Path, importance_path: str | Path) -> None:
    """Optuna's optimisation history and parameter importances (its matplotlib versions). The
    parameters are named in sorted order: left to Optuna, parameters of equal importance came
    in the order of a set of names, which changes with Python's string hashing from one run to
    the next, and so did the figure."""
    import warnings

    from optuna.visualization import matplotlib as optuna_plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks these plots experimental
        ax = optuna_plots.plot_optimization_history(study)
        _save(ax.figure, history_path)
        finished = [t for t in study.trials if t.value is not None]
        if len(finished) >= 2:
            names = sorted(set.intersection(*(set(t.params) for t in finished)))
            ax = optuna_plots.plot_param_importances(study, params=names)
            _save(ax.figure, importance_path)


def _stretched_rgb(rgb: np.ndarray) -> np.ndarray:
    """(3, h, w) -> (h, w, 3) in [0, 1] with a 2-98 % stretch per band; nodata white. One band
    (an area without an optical image) is shown in grey."""
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    out = np.ones((*rgb.shape[1:], 3))
    for k, band in enumerate(rgb):
        finite = band[np.isfinite(band)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        out[..., k] = np.where(np.isfinite(band), np.clip((band - low) / max(high - low, 1e-9),
                                                          0, 1), 1.0)
    return out


def map_preview(rgb: np.ndarray, maps: dict[str, np.ndarray], thresholds: dict[str, float],
                titles: dict[str, str], path: str | Path, area: np.ndarray | None = None,
                landslides: np.ndarray | None = None) -> None:
    """One panel per mapped model: the optical image with the landslide probability laid over
    it where it reaches that model's threshold; with `area`, only that area is shown in
    colour (the rest dimmed), and `landslides` (inventory pixels) are drawn in cyan."""
    background = _stretched_rgb(rgb)
    if area is not None:
        background = np.where(area[..., None], background, 0.35 + 0.3 * background)
    low = min(thresholds.values())
    fig, axes = plt.subplots(1, len(maps), figsize=(4.5 * len(maps), 7), squeeze=False)
    for ax, (name, probability) in zip(axes[0], maps.items(), strict=True):
        ax.imshow(background, interpolation="nearest")
        flagged = probability >= thresholds[name]
        if area is not None:
            flagged &= area
        shown = np.where(flagged, probability, np.nan)
        image = ax.imshow(shown, cmap="autumn_r", vmin=low, vmax=1.0, alpha=0.85,
                          interpolation="nearest")
        if landslides is not None:
            ax.imshow(np.where(landslides, 1.0, np.nan), cmap="cool", vmin=0, vmax=1,
                      interpolation="nearest")
        ax.set_title(f"{titles.get(name, name)} (threshold {thresholds[name]:.3g})",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.5, label="P(landslide)")
    _save(fig, path)


def pr_curves(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]],
              prevalence: dict[str, float], path: str | Path) -> None:
    """Precision against recall of every model's map, one panel per area, precision on a log
    axis; the dashed line is the prevalence (what a map of random scores reaches)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.5), squeeze=False)
    for ax, (area, models) in zip(axes[0], curves.items(), strict=True):
        for name, (recall, precision, auprc) in models.items():
            ax.plot(recall, precision, label=f"{name} (AUPRC {auprc:.3f})")
        ax.axhline(prevalence[area], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision (log scale)")
        ax.set_title(f"{area} area, every pixel (dashed: prevalence)")
        ax.set_xlim(0, 1)
        ax.set_yscale("log")  # at a prevalence of 0.2 % a linear axis shows nothing
        ax.set_ylim(prevalence[area] / 5, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def label_efficiency(results: Any, metrics: tuple[str, ...], path: str | Path,
                     colours: dict[str, str]) -> None:
    """Test scores against the number of labelled windows, one line per model and split
    (mean over seeds, bars = standard deviation), each model in its colour."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4.2), squeeze=False)
    styles = {"spatial": "-", "random": ":"}
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (model, split), part in results.groupby(["model", "split"]):
            if "+" in model:  # a variant of the paper's model: in the report's tables only
                continue
            stats = part.groupby("budget").agg(x=("labelled_windows", "mean"),
                                               y=(metric, "mean"), e=(metric, "std"))
            ax.errorbar(stats.x, stats.y, yerr=stats.e.fillna(0), capsize=3,
                        linestyle=styles.get(split, "-"), color=colours.get(model, "grey"),
                        marker="o", label=f"{model} ({split})")
        ax.set_xscale("log")
        ax.set_xlabel("labelled training windows")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save(fig, path)
