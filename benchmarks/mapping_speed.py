"""Mapping speed and memory, measured side by side in one run.

Run after `dvc repro` (it reads the real stack and the trained joint SSGAN of params.yaml):

    .venv/bin/python benchmarks/mapping_speed.py

1. Dense versus per-window inference with the same model on the same real blocks (the
   per-window path cuts every 13 x 13 window and classifies it alone, in batches): pixels
   per second of each and the ratio.
2. The whole Chattogram stack mapped block by block (reading, inference, saving blocks).
3. Peak memory (max RSS of a fresh process) of mapping the stack and a 2 x 2 mosaic of it
   (4x the pixels), each in its own process: inference into the block store plus the COG,
   then also the post-processing into bodies.
4. The projected time for the paper's 4314 x 7210 stack at the dense speed on data pixels.
5. Batch normalisation folded into the convolutions of the dense twin against kept apart
   (same blocks, same model), and the floating-point rate that makes beside the machine's own
   rate on one large convolution (TensorFlow, this process's threads).
6. The dense twin run as one traced graph (convolution, bias and activation fused) against
   called eagerly, layer by layer, on the same blocks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from child import child_json  # benchmarks/child.py: a measurement in a fresh process

from landslide_ssgan.config import load_params  # noqa: E402
from landslide_ssgan.data.blocks import (  # noqa: E402
    blocks_of,
    read_block,
    stack_grid,
    write_cog_from_blocks,
)
from landslide_ssgan.inference.mapping import WindowModel, map_probability  # noqa: E402
from landslide_ssgan.models.dense import dense_discriminator  # noqa: E402
from landslide_ssgan.models.graphs import run_graph  # noqa: E402
from landslide_ssgan.stages.map import bodies_by_blocks, model_threshold  # noqa: E402

PAPER_PIXELS = 4314 * 7210


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dense_versus_per_window(stack: str, folder: Path) -> tuple[float, float]:
    model = WindowModel.load(folder)
    slow = WindowModel.load(folder, dense=False)  # one window at a time
    grid = stack_grid(stack)
    bands = model.band_indices(grid, stack)
    halo = model.window // 2
    blocks = blocks_of(grid, 256)
    raws = [read_block(stack, b, bands, halo) for b in blocks]
    full = sorted(raws, key=lambda r: -np.isfinite(r).mean())[:2]  # the two fullest of data
    pixels = 2 * 256 * 256
    model.block_probability(full[0])  # warm-up: graph tracing is not inference
    slow.block_probability(full[0][:, :40, :40])
    start = time.perf_counter()
    dense = [model.block_probability(r) for r in full]
    dense_rate = pixels / (time.perf_counter() - start)
    start = time.perf_counter()
    per_window = [slow.block_probability(r) for r in full]
    window_rate = pixels / (time.perf_counter() - start)
    gap = max(float(np.abs(d - w).max()) for d, w in zip(dense, per_window, strict=True))
    print(f"same 2 blocks of 256 x 256 pixels: max |dense - per-window| = {gap:.1e}")
    return dense_rate, window_rate


def conv_flops_per_pixel(dense: Any) -> int:
    """Multiply-adds x 2 of every convolution of the dense twin, per output pixel (each layer
    of the twin keeps the block's size, less the valid border)."""
    import keras

    return sum(2 * int(np.prod(layer.kernel.shape)) for layer in dense.layers
               if isinstance(layer, keras.layers.Conv2D))


def machine_gflops(repeats: int = 5) -> float:
    """One large 3 x 3 convolution (512 x 512 x 64 -> 64), the machine's best case."""
    import tensorflow as tf

    x = tf.random.normal((1, 512, 512, 64))
    kernel = tf.random.normal((3, 3, 64, 64))
    conv = tf.function(lambda a: tf.nn.conv2d(a, kernel, 1, "VALID"))
    conv(x).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        conv(x).numpy()
    seconds = (time.perf_counter() - start) / repeats
    return 2 * 510 * 510 * 9 * 64 * 64 / seconds / 1e9


def folding_versus_not(stack: str, folder: Path, machine: float) -> None:
    folded = WindowModel.load(folder)
    network = folded.bundle.predictor
    apart = dataclasses.replace(folded, bundle=dataclasses.replace(
        folded.bundle, predictor=dataclasses.replace(
            network, twin=dense_discriminator(network.discriminator, fold=False))))
    grid = stack_grid(stack)
    bands = folded.band_indices(grid, stack)
    raws = [read_block(stack, b, bands, folded.window // 2) for b in blocks_of(grid, 512)]
    full = sorted(raws, key=lambda r: -np.isfinite(r).mean())[:2]
    pixels = sum(r.shape[1] * r.shape[2] for r in full)
    rates = {}
    for name, model in (("folded", folded), ("apart", apart)):
        model.block_probability(full[0])  # warm-up
        start = time.perf_counter()
        values = [model.block_probability(r) for r in full]
        rates[name] = (pixels / (time.perf_counter() - start), values)
    gap = max(float(np.nanmax(np.abs(a - b))) for a, b in
              zip(rates["folded"][1], rates["apart"][1], strict=True))
    flops = conv_flops_per_pixel(network.twin)
    print(f"batch norm folded   {rates['folded'][0]:12,.0f} px/s")
    print(f"batch norm apart    {rates['apart'][0]:12,.0f} px/s")
    print(f"folded / apart      {rates['folded'][0] / rates['apart'][0]:12.2f} x "
          f"(max |difference| {gap:.1e} in probability)")
    print(f"block_probability (normalising, the twin, probabilities): {flops:,} FLOP per "
          f"pixel -> {rates['folded'][0] * flops / 1e9:.1f} GFLOP/s; one large convolution on "
          f"this machine: {machine:.1f} GFLOP/s ({rates['folded'][0] * flops / 1e9 / machine:.0%}"
          " of it)")


def graph_versus_eager(stack: str, folder: Path, machine: float) -> None:
    """The dense twin on the same normalised 512 x 512 blocks, run as one traced graph (what
    mapping does: models/graphs.py) and called eagerly layer by layer (as it did before)."""
    model = WindowModel.load(folder)
    twin = model.bundle.predictor.twin
    grid = stack_grid(stack)
    bands = model.band_indices(grid, stack)
    raws = [read_block(stack, b, bands, model.window // 2) for b in blocks_of(grid, 512)]
    full = sorted(raws, key=lambda r: -np.isfinite(r).mean())[:2]
    images = [np.nan_to_num((np.moveaxis(r, 0, -1) - model.mean) / model.std, nan=0.0
                            ).astype(np.float32)[None] for r in full]
    pixels = sum(r.shape[1] * r.shape[2] for r in full)
    runs = {"graph": lambda image: run_graph(twin, image, output=0),
            "eager": lambda image: np.asarray(twin(image, training=False)[0])}
    rates = {}
    for name, infer in runs.items():
        infer(images[0])  # warm-up: tracing and oneDNN's kernel choice are not inference
        start = time.perf_counter()
        values = [infer(image) for image in images]
        rates[name] = (pixels / (time.perf_counter() - start), values)
    gap = max(float(np.abs(a - b).max()) for a, b in
              zip(rates["graph"][1], rates["eager"][1], strict=True))
    print(f"dense twin as a graph {rates['graph'][0]:12,.0f} px/s")
    print(f"dense twin eager      {rates['eager'][0]:12,.0f} px/s")
    print(f"graph / eager       {rates['graph'][0] / rates['eager'][0]:12.2f} x "
          f"(max |difference| {gap:.1e} in logits)")
    flops = conv_flops_per_pixel(twin) * rates["graph"][0] / 1e9
    print(f"dense twin as a graph: {flops:.1f} GFLOP/s, {flops / machine:.0%} of one large "
          f"convolution ({machine:.1f} GFLOP/s)")


def child(stack: str, folder: str, block_size: int) -> None:
    """One mapping in a fresh process; prints its peak memory as JSON."""
    cfg = load_params("params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        run, store, blocks = map_probability(stack, folder, Path(tmp) / "store", block_size)
        outputs = {k: Path(tmp) / f"{k}.{ext}" for k, ext in (
            ("probability", "tif"), ("class", "tif"), ("polygons", "gpkg"))}
        write_cog_from_blocks(outputs["probability"], run.grid,
                              ((b, store.load(b)) for b in blocks), "float32", float("nan"),
                              "p")
        inference = rss_mib()
        threshold, _ = model_threshold("auto", Path(folder))  # on uncorrected probabilities
        mapped = dataclasses.replace(cfg.map, block_size=block_size, threshold=threshold)
        found, _ = bodies_by_blocks(outputs, run.grid, mapped)  # as `landslide map` does
        print(json.dumps({"inference_mib": inference, "with_bodies_mib": rss_mib(),
                          "pixels": run.grid.width * run.grid.height, "seconds": run.seconds,
                          "bodies": len(found.areas_m2)}))


def mosaic(stack: str, path: Path) -> None:
    """The stack tiled 2 x 2 (4x the pixels), written block by block."""
    with rasterio.open(stack) as src:
        profile = src.profile | {"width": 2 * src.width, "height": 2 * src.height}
        data = src.read()
        with rasterio.open(path, "w", **profile) as dst:
            for r in range(2):
                for c in range(2):
                    dst.write(data, window=rasterio.windows.Window(
                        c * src.width, r * src.height, src.width, src.height))
            dst.descriptions = src.descriptions


def measured(stack: str, folder: Path, block_size: int) -> dict:
    return child_json([sys.executable, __file__, "--child", stack, str(folder),
                       str(block_size)])


def main() -> None:
    cfg = load_params("params.yaml")
    stack, folder = cfg.paths.stack, Path(cfg.paths.models) / cfg.features.set / "ssgan"
    dense_rate, window_rate = dense_versus_per_window(stack, folder)
    print(f"dense inference     {dense_rate:12,.0f} px/s")
    print(f"per-window (batched){window_rate:12,.0f} px/s")
    print(f"dense / per-window  {dense_rate / window_rate:12.1f} x")
    machine = machine_gflops()
    folding_versus_not(stack, folder, machine)
    graph_versus_eager(stack, folder, machine)

    with tempfile.TemporaryDirectory() as tmp:
        run, _, _ = map_probability(stack, folder, Path(tmp) / "store", cfg.map.block_size)
    grid = run.grid
    print(f"whole stack {grid.height} x {grid.width} ({run.blocks} blocks of "
          f"{cfg.map.block_size}): {run.seconds:.1f} s, {run.pixels_per_second:,.0f} px/s "
          "(blocks without data are skipped)")
    print(f"projected for the paper's 4314 x 7210 stack, all data: "
          f"{PAPER_PIXELS / dense_rate:.0f} s at the dense rate on data pixels")

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "mosaic.tif"
        mosaic(stack, big)
        one = measured(stack, folder, cfg.map.block_size)
        four = measured(str(big), folder, cfg.map.block_size)
    for name, row in (("stack", one), ("4x mosaic", four)):
        print(f"peak memory {name:9s} ({row['pixels']:>10,} px): inference + COG "
              f"{row['inference_mib']:7.0f} MiB, with bodies {row['with_bodies_mib']:7.0f} MiB")
    print(f"memory growth for 4x the pixels: inference + COG "
          f"{four['inference_mib'] / one['inference_mib'] - 1:+.1%}, with bodies "
          f"{four['with_bodies_mib'] / one['with_bodies_mib'] - 1:+.1%}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
