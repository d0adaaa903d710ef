"""The U-Net beside the dense window model, measured side by side in one run.

Run after `dvc repro` (it reads the real stack and the trained joint baseline and U-Net):

    .venv/bin/python benchmarks/segmenter_speed.py [--steps 20]

1. Training: optimiser steps a second of the U-Net (batches of `train.patch.batch_size`
   patches) and of its window counterpart, the supervised twin (batches of
   `train.batch_size` windows), each built by the learner table from the real data, and the
   labelled pixels a second each learns from (a window teaches one pixel, a patch every known
   pixel of it).
2. Inference: pixels a second of the dense window twin and of the U-Net's tiles on the same
   real blocks (512 x 512 with their context), the U-Net in one pass and as calibrate makes
   it answer by default, the mean over the square's 8 symmetries (`calibrate.symmetries`).
3. Peak memory (max RSS of a fresh process, measured first) of a tiled U-Net map of the stack
   and of a 2 x 2 mosaic of it (4x the pixels): inference into the block store plus the COG,
   then the bodies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mapping_speed import measured  # noqa: E402

from landslide_ssgan.config import load_params  # noqa: E402
from landslide_ssgan.data.blocks import blocks_of, read_block, stack_grid  # noqa: E402
from landslide_ssgan.data.patches import load_patch_source  # noqa: E402
from landslide_ssgan.data.source import TrainingData  # noqa: E402
from landslide_ssgan.inference.mapping import WindowModel  # noqa: E402
from landslide_ssgan.models import learners  # noqa: E402
from landslide_ssgan.models.bundle import load_bundle, with_symmetries  # noqa: E402
from landslide_ssgan.training.fit import Source, seed_everything, training_dataset  # noqa: E402

SEGMENTER, TWIN = "unet", learners.SUPERVISED_TWIN


def steps_per_second(kind: str, cfg: object, source: Source, batch: int, steps: int) -> float:
    """Optimiser steps a second after a warm-up step (graph tracing is not training)."""
    learner = learners.learner(kind)
    assert learner.build is not None
    seed_everything(0)
    model = learner.build(cfg, source, 0)
    data = training_dataset(learner, source, batch, 0).repeat()
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps / (time.perf_counter() - start)


def inference_rates(stack: str, window_folder: Path, unet_folder: Path) -> dict[str, float]:
    rates = {}
    unet = load_bundle(unet_folder)
    for name, model in (("dense window twin", WindowModel.load(window_folder)),
                        ("U-Net tiles", WindowModel.from_bundle(with_symmetries(unet, 1))),
                        ("U-Net tiles, 8 views",
                         WindowModel.from_bundle(with_symmetries(unet, 8)))):
        grid = stack_grid(stack)
        bands = model.band_indices(grid, stack)
        raws = [read_block(stack, b, bands, model.window // 2) for b in blocks_of(grid, 512)]
        full = sorted(raws, key=lambda r: -np.isfinite(r).mean())[:2]
        half = model.window // 2
        pixels = sum((r.shape[1] - 2 * half) * (r.shape[2] - 2 * half) for r in full)
        model.block_probability(full[0])  # warm-up
        start = time.perf_counter()
        for raw in full:
            model.block_probability(raw)
        rates[name] = pixels / (time.perf_counter() - start)
    return rates


def memory(stack: str, folder: Path, block_size: int) -> None:
    """Peak memory of the U-Net's map, each in a fresh process started before this one has
    loaded anything large, the mosaic written by a process of its own (a child started by
    fork and exec reports its parent's high-water mark when that is higher)."""
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "mosaic.tif"
        one = measured(stack, folder, block_size)
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "from mapping_speed import mosaic; mosaic(sys.argv[2], sys.argv[3])",
                        str(Path(__file__).resolve().parent), stack, str(big)], check=True)
        four = measured(str(big), folder, block_size)
    for name, row in (("stack", one), ("4x mosaic", four)):
        print(f"U-Net map peak memory {name:9s} ({row['pixels']:>10,} px): inference + COG "
              f"{row['inference_mib']:7.0f} MiB, with bodies {row['with_bodies_mib']:7.0f} MiB"
              f" ({row['seconds']:.0f} s of inference)")
    print(f"memory growth for 4x the pixels: inference + COG "
          f"{four['inference_mib'] / one['inference_mib'] - 1:+.1%}, with bodies "
          f"{four['with_bodies_mib'] / one['with_bodies_mib'] - 1:+.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = load_params("params.yaml")
    paths, feature_set = cfg.paths, cfg.features.set
    memory(paths.stack, Path(paths.models) / feature_set / SEGMENTER, cfg.map.block_size)
    data = TrainingData(paths.stack, paths.samples, paths.norm, paths.labels,
                        paths.inventory_ids, paths.split, cfg.windows)
    patches = load_patch_source(data, feature_set, cfg.train.patch, cfg.sample, cfg.seed)
    windows = data.window_source(feature_set, cfg.sample.window)
    known = patches.training_labels().size / max(1, int(patches.centres.labelled.sum()))
    rows = {SEGMENTER: (steps_per_second(SEGMENTER, cfg.train, patches,
                                         cfg.train.patch.batch_size, args.steps),
                        cfg.train.patch.batch_size * known),
            TWIN: (steps_per_second(TWIN, cfg.train, windows, cfg.train.batch_size,
                                    args.steps), cfg.train.batch_size)}
    print(f"training on {feature_set} ({args.steps} steps each after a warm-up step):")
    for kind, (rate, pixels) in rows.items():
        print(f"  {kind:9s} {rate:7.2f} steps/s  {rate * pixels:12,.0f} labelled pixels/s")
    print(f"  {SEGMENTER} / {TWIN}: {rows[SEGMENTER][0] / rows[TWIN][0]:.2f} x the steps/s, "
          f"{rows[SEGMENTER][0] * rows[SEGMENTER][1] / (rows[TWIN][0] * rows[TWIN][1]):.1f} x "
          "the labelled pixels/s")
    folders = {k: Path(paths.models) / feature_set / k for k in (TWIN, SEGMENTER)}
    rates = inference_rates(paths.stack, folders[TWIN], folders[SEGMENTER])
    for name, rate in rates.items():
        print(f"inference {name:18s} {rate:12,.0f} px/s")
    ratio = rates["U-Net tiles"] / rates["dense window twin"]
    print(f"U-Net tiles / dense window twin: {ratio:.2f} x; the mean over 8 symmetries / one "
          f"pass: {rates['U-Net tiles, 8 views'] / rates['U-Net tiles']:.3f} x")


if __name__ == "__main__":
    main()
