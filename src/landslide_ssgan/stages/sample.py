"""sample: window centres of the three sample sets, their split, and the normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landslide_ssgan.config import Params, SampleConfig
from landslide_ssgan.data.inventory import STABLE
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import (
    SPLITS,
    UNLABELLED,
    Samples,
    draw,
    shared_pixels,
    training_cover_of,
    training_statistics,
    write_samples,
)
from landslide_ssgan.data.stack import RasterLayers, stack_parts, write_single_band_parts
from landslide_ssgan.data.strips import Centres, Layers, strips
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.files import staged_together, write_json
from landslide_ssgan.reporting import plots


def run(cfg: SampleConfig, *, seed: int, stack: str, labels: str, inventory_ids: str,
        samples: str, norm: str, split: str, reports: str) -> dict[str, Any]:
    """Writes the samples index, the per-band normalisation from training pixels only, the
    split raster (train / validation / test area of every pixel, for scoring whole maps),
    reports/sample.json and a map of the split; returns the summary. The rasters are read a
    strip of rows at a time: nothing the size of the area is held but bits of masks."""
    layers = RasterLayers(stack, labels, inventory_ids)
    grid = layers.grid
    drawn = draw(layers, cfg, seed, pixel_size=grid.resolution)
    table, index = drawn.table, Samples(drawn.table)  # no whole-area split raster
    refuse_empty_parts(index, cfg.split.block_size, cfg.window)
    mean, std = training_statistics(stack_parts(stack),
                                    training_cover_of(drawn, grid.shape, cfg.window))
    summary = {**sample_summary(index, grid.shape, cfg.window, cfg.split.method),
               **protocol_summary(index, layers, cfg)}
    with staged_together() as staged:  # all five replaced together, or none
        write_samples(index, staged.path(samples))
        Normalisation(grid.band_names, mean, std, cfg.window).save(staged.path(norm))
        write_single_band_parts(drawn.area_codes, "uint8", grid, staged.path(split), 255,
                                "split")
        write_json(staged.path(Path(reports) / "sample.json"), summary)
        plots.split_preview(grid.shape, table.row.to_numpy(), table.col.to_numpy(),
                            table.split.array, layers.valid_bits,
                            staged.path(Path(reports) / "sample_split.png"))
    return {**summary, "windows": len(table)}


def refuse_empty_parts(samples: Samples, block_size: int, window: int) -> None:
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
                              f"needs one): use smaller blocks (for example "
                              f"sample.split.block_size: {max(2 * window, block_size // 2)}) or "
                              f"a larger sample.split.{split}")
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


def protocol_summary(samples: Samples, layers: Layers, cfg: SampleConfig) -> dict[str, Any]:
    """How the negatives and the unlabelled pool were drawn, and how many negatives lie on
    the inventory's stable polygons (the rest: ground outside the inventory)."""
    table = samples.table
    negatives = table[table.label == 0].sort_values("row", kind="stable")
    on_stable = Centres(negatives.row.to_numpy(), negatives.col.to_numpy()).values(
        layers.labels, strips(layers.shape)) == STABLE
    return {"negatives": cfg.negatives, "negative_buffer_m": cfg.negative_buffer_m,
            "negative_ratio": cfg.negative_ratio, "unlabelled_from": cfg.unlabelled_from,
            "transductive": cfg.unlabelled_from == "area",
            "negatives_on_stable_polygons": {
                split: int(on_stable[(negatives.split == split).to_numpy()].sum())
                for split in SPLITS}}


def main(cfg: Params) -> dict[str, Any]:
    """The stage as `landslide sample` and dvc.yaml run it: params.yaml's settings."""
    paths = cfg.paths
    return run(cfg.sample, seed=cfg.seed, stack=paths.stack, labels=paths.labels,
               inventory_ids=paths.inventory_ids, samples=paths.samples, norm=paths.norm,
               split=paths.split, reports=paths.reports)
