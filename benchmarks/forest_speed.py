"""Where the random forest's map time goes, measured side by side in one run.

Run after `dvc repro` (it reads the real stack and the trained joint forest of params.yaml):

    .venv/bin/python benchmarks/forest_speed.py [--blocks 4]

On the same real blocks of the stack:
1. the window features (centre, mean, standard deviation of every band) by the map's box
   filters (`forest.dense_window_features`) against the windows' own reductions
   (`forest.window_features` on every window cut, a row of windows at a time), in pixels per
   second, their ratio, and how many feature values and probabilities differ;
2. the trees' answers (`predict_proba` of the fitted forest) in pixels per second;
3. the whole forest map of those blocks (`WindowModel.block_probability`) beside the dense
   network twin's (the joint SSGAN), in pixels per second.
The projected time of a 20 M pixel area follows from the forest map's rate.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from landslide_ssgan.config import load_params  # noqa: E402
from landslide_ssgan.data.blocks import blocks_of, read_block, stack_grid  # noqa: E402
from landslide_ssgan.inference.mapping import WindowModel  # noqa: E402
from landslide_ssgan.models import bundle  # noqa: E402
from landslide_ssgan.models import forest as forests  # noqa: E402

LARGE_AREA = 20_000_000


def windows_features(image: np.ndarray, window: int) -> np.ndarray:
    """The reference: every window cut and reduced on its own, a row of windows at a time."""
    views = np.lib.stride_tricks.sliding_window_view(image, (window, window), axis=(0, 1))
    rows = [forests.window_features(np.moveaxis(views[r], 1, -1)) for r in
            range(views.shape[0])]
    return np.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4, help="the fullest blocks of 512")
    args = parser.parse_args()
    cfg = load_params("params.yaml")
    folder = bundle.model_dir(cfg.paths.models, cfg.features.set, "forest")
    forest = WindowModel.load(folder)
    network = WindowModel.load(bundle.model_dir(cfg.paths.models, cfg.features.set, "ssgan"))
    grid = stack_grid(cfg.paths.stack)
    bands = forest.band_indices(grid, cfg.paths.stack)
    half = forest.window // 2
    raws = [read_block(cfg.paths.stack, b, bands, half) for b in blocks_of(grid, 512)]
    raws = sorted(raws, key=lambda r: -np.isfinite(r).all(axis=0).sum())[: args.blocks]
    times = dict.fromkeys(("box", "windows", "trees", "forest map", "network map"), 0.0)
    pixels = differing = answers = 0
    for raw in raws:
        image = np.nan_to_num((np.moveaxis(raw, 0, -1) - forest.mean) / forest.std).astype(
            np.float32)
        pixels += (raw.shape[1] - 2 * half) * (raw.shape[2] - 2 * half)
        start = time.perf_counter()
        box = forests.dense_window_features(image, forest.window)
        times["box"] += time.perf_counter() - start
        start = time.perf_counter()
        cut = windows_features(image, forest.window)
        times["windows"] += time.perf_counter() - start
        differing += int((box != cut).sum())
        model = forest.bundle.predictor.model  # type: ignore[attr-defined]
        flat = box.reshape(-1, box.shape[-1])
        start = time.perf_counter()
        fast = forests.probability_of_features(model, flat)
        times["trees"] += time.perf_counter() - start
        answers += int((fast != forests.probability_of_features(
            model, cut.reshape(-1, cut.shape[-1]))).sum())
        for name, mapper in (("forest map", forest), ("network map", network)):
            start = time.perf_counter()
            mapper.block_probability(raw)
            times[name] += time.perf_counter() - start
    rate = {name: pixels / seconds for name, seconds in times.items()}
    print(f"{args.blocks} blocks of 512 x 512 ({pixels:,} pixels), {os.cpu_count()} cores")
    print(f"window features: box filters {rate['box']:,.0f} px/s, the windows' own "
          f"reductions {rate['windows']:,.0f} px/s: {rate['box'] / rate['windows']:.1f}x; "
          f"{differing} of {pixels * box.shape[-1]:,} feature values differ (float32 ulps)")
    print(f"trees (predict_proba): {rate['trees']:,.0f} px/s; {answers} probabilities "
          "differ between the two features (the threads' own order moves the last bit too)")
    print(f"whole map: forest {rate['forest map']:,.0f} px/s, dense SSGAN twin "
          f"{rate['network map']:,.0f} px/s ({rate['forest map'] / rate['network map']:.2f}x); "
          f"a {LARGE_AREA / 1e6:.0f} M pixel area: forest "
          f"{LARGE_AREA / rate['forest map'] / 60:.1f} min, network "
          f"{LARGE_AREA / rate['network map'] / 60:.1f} min")


if __name__ == "__main__":
    main()
