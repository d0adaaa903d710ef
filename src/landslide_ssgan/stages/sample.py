"""sample: window centres of the three sample sets, their split, and the normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan import plots
from landslide_ssgan.config import SampleConfig
from landslide_ssgan.data.inventory import STABLE
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import (
    SPLITS,
    UNLABELLED,
    Samples,
    area_raster,
    draw_samples,
    shared_pixels,
    training_cover,
    training_statistics,
    write_samples,
)
from landslide_ssgan.data.stack import (
    read_single_band,
    read_stack_info,
    stack_parts,
    valid_mask,
    write_single_band,
)
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.files import write_json


def run(cfg: SampleConfig, *, seed: int, stack: str, labels: str, inventory_ids: str,
        samples: str, norm: str, split: str, reports: str) -> dict[str, Any]:
    """Writes the samples index, the per-band normalisation from training pixels only, the
    split raster (train / validation / test area of every pixel, for scoring whole maps),
    reports/sample.json and a map of the split; returns the summary."""
    grid, _ = read_stack_info(stack)
    valid = valid_mask(stack_parts(stack), grid.shape)  # the stack is read a part at a time
    label_raster, _ = read_single_band(labels)
    # the ids are not kept here: draw_samples lets them go once the split's groups are made
    drawn = draw_samples(label_raster, read_single_band(inventory_ids)[0], valid, cfg, seed,
                         pixel_size=grid.resolution)
    refuse_empty_parts(drawn)
    mean, std = training_statistics(stack_parts(stack),
                                    training_cover(drawn, grid.shape, cfg.window))
    summary = {**sample_summary(drawn, label_raster.shape, cfg.window, cfg.split.method),
               **protocol_summary(drawn, label_raster, cfg)}
    write_samples(drawn, samples)
    Normalisation(grid.band_names, mean, std, cfg.window).save(norm)
    write_single_band(area_raster(drawn, label_raster.shape), grid, split, 255, "split")
    write_json(Path(reports) / "sample.json", summary)
    table = drawn.table
    plots.split_preview(label_raster.shape, table.row.to_numpy(), table.col.to_numpy(),
                        table.split.to_numpy(), valid, Path(reports) / "sample_split.png")
    return {**summary, "windows": len(table)}


def refuse_empty_parts(samples: Samples) -> None:
    """Every later stage needs windows of both classes in the validation and test areas and an
    unlabelled pool; an empty part is an error naming the setting, not a silent run whose
    validation scores are missing or whose training fails later on another setting's name."""
    table = samples.table
    groups = table.group[table.label == 1].nunique()
    for split in ("train", "val", "test"):
        labels = set(table.label[table.split == split])
        missing = [name for name, k in (("landslide", 1), ("non-landslide", 0))
                   if k not in labels]
        if missing:
            raise ConfigError(f"sample.split.block_size: the {split} area holds no "
                              f"{' and no '.join(missing)} windows (the split found {groups} "
                              f"group{'' if groups == 1 else 's'} with landslides; each area "
                              f"needs one): use smaller "
                              f"blocks or a larger sample.split.{split}")
    if not (table.label == UNLABELLED).any():
        raise ConfigError("sample.unlabelled_ratio: the training area gave no unlabelled "
                          "windows (the SSGAN needs a pool)")


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


def protocol_summary(samples: Samples, labels: np.ndarray, cfg: SampleConfig) -> dict[str, Any]:
    """How the negatives and the unlabelled pool were drawn, and how many negatives lie on
    the inventory's stable polygons (the rest: ground outside the inventory)."""
    table = samples.table
    negatives = table[table.label == 0]
    on_stable = labels[negatives.row.to_numpy(), negatives.col.to_numpy()] == STABLE
    return {"negatives": cfg.negatives, "negative_buffer_m": cfg.negative_buffer_m,
            "negative_ratio": cfg.negative_ratio, "unlabelled_from": cfg.unlabelled_from,
            "transductive": cfg.unlabelled_from == "area",
            "negatives_on_stable_polygons": {
                split: int(on_stable[(negatives.split == split).to_numpy()].sum())
                for split in SPLITS}}
