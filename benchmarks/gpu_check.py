"""Does TensorFlow use the GPU, and how fast do training and mapping run on it beside the CPU?

Run after `dvc repro` (it reads the stack, the samples and the calibrated SSGAN of
params.yaml's features.set), in an environment set up with the CUDA libraries
(`bash scripts/bootstrap.sh --gpu`):

    .venv/bin/python benchmarks/gpu_check.py [--epochs 3] [--blocks 4] [--block 512]

The same measurement runs twice, each in a fresh process: once with every GPU hidden
(`CUDA_VISIBLE_DEVICES=-1`), once on whatever TensorFlow finds. Each trains a fresh SSGAN
of params.yaml's settings on the sample stage's windows for 1 + `--epochs` epochs (the
first, which builds and traces the graphs, is timed apart) and maps the `--blocks` fullest
blocks of the stack with the calibrated SSGAN's exact dense twin (after one warm-up block);
it prints the device, the steady epochs per second and the map's pixels per second, then
the GPU / CPU ratios. Where no GPU is visible (no device, or TensorFlow without CUDA) the
second process says so and only the CPU figures print; where the device run fails (for
example an op without a deterministic GPU kernel: the training enables TensorFlow's op
determinism) its one-line error is printed instead. Nothing in the tests or the pipeline
needs a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from child import ChildFailed, child_json  # benchmarks/child.py: a measurement in a fresh process

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def device_name() -> str:
    """The GPU TensorFlow places ops on, or the CPU with its thread count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU ({details.get('device_name', gpus[0].name)})"
    return f"CPU ({os.cpu_count()} cores)"


def training_rate(params: Any, epochs: int, workdir: Path) -> dict[str, float]:
    """Seconds of the first epoch and steady epochs per second of a fresh SSGAN."""
    from landslide_ssgan.data.source import load_window_source
    from landslide_ssgan.models.learners import learner
    from landslide_ssgan.training.fit import EpochReport, train_network

    source = load_window_source(params.paths.stack, params.paths.samples, params.paths.norm,
                                params.features.set, params.sample.window)
    ends: list[float] = []
    start = time.perf_counter()
    train_network(learner("ssgan"), params.train, source, params.seed, workdir=workdir,
                  epochs=1 + epochs,
                  callbacks=(EpochReport(lambda *_: ends.append(time.perf_counter()),
                                         1 + epochs),))
    return {"first_epoch_s": ends[0] - start,
            "epochs_per_s": epochs / (ends[-1] - ends[0])}


def mapping_rate(params: Any, blocks: int, size: int) -> float:
    """Pixels per second of the calibrated SSGAN's dense twin on the fullest blocks."""
    import numpy as np

    from landslide_ssgan.data.blocks import blocks_of, read_block, stack_grid
    from landslide_ssgan.inference.mapping import WindowModel
    from landslide_ssgan.models.bundle import model_dir

    model = WindowModel.load(model_dir(params.paths.models, params.features.set, "ssgan"))
    grid = stack_grid(params.paths.stack)
    bands = model.band_indices(grid, params.paths.stack)
    raws = [read_block(params.paths.stack, b, bands, model.window // 2)
            for b in blocks_of(grid, size)]
    fullest = sorted(raws, key=lambda r: -float(np.isfinite(r).mean()))[:blocks]
    model.block_probability(fullest[0])  # warm-up: tracing is not inference
    start = time.perf_counter()
    for raw in fullest:
        model.block_probability(raw)
    pixels = sum((r.shape[1] - model.window + 1) * (r.shape[2] - model.window + 1)
                 for r in fullest)
    return pixels / (time.perf_counter() - start)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One process's figures (the child)."""
    import tensorflow as tf

    from landslide_ssgan.config import load_params

    device = device_name()
    if args.require_gpu and not tf.config.list_physical_devices("GPU"):
        return {"device": None}
    params = load_params(args.params)
    with tempfile.TemporaryDirectory() as tmp:
        figures = training_rate(params, args.epochs, Path(tmp) / "keras")
    return {"device": device, **figures,
            "pixels_per_s": mapping_rate(params, args.blocks, args.block)}


def run_child(args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    """`measure` in a fresh process, the GPUs hidden unless `gpu`; its error as one line."""
    env = dict(os.environ)
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    command = [sys.executable, __file__, "--child", "--params", str(args.params),
               "--epochs", str(args.epochs), "--blocks", str(args.blocks),
               "--block", str(args.block), *(["--require-gpu"] if gpu else [])]
    try:
        return child_json(command, env)
    except ChildFailed as failed:
        return {"error": failed.line or str(failed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the first")
    parser.add_argument("--blocks", type=int, default=4, help="map blocks timed")
    parser.add_argument("--block", type=int, default=512, help="pixels a side of a block")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--require-gpu", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    cpu, gpu = run_child(args, gpu=False), run_child(args, gpu=True)
    print(f"SSGAN of {args.params}: {args.epochs} epochs after the first; dense map of "
          f"{args.blocks} blocks of {args.block} x {args.block} pixels")
    for name, row in (("CPU only", cpu), ("GPU", gpu)):
        if "error" in row:
            print(f"{name}: failed: {row['error']}")
        elif row["device"] is None:
            print(f"{name}: no GPU visible to TensorFlow (no device, or TensorFlow without "
                  "CUDA: bash scripts/bootstrap.sh --gpu)")
        else:
            print(f"{name}: {row['device']}: first epoch {row['first_epoch_s']:.1f} s, "
                  f"{row['epochs_per_s']:.3f} epochs/s, map {row['pixels_per_s']:,.0f} px/s")
    if cpu.get("device") and gpu.get("device"):
        print(f"GPU / CPU: training {gpu['epochs_per_s'] / cpu['epochs_per_s']:.1f}x, "
              f"mapping {gpu['pixels_per_s'] / cpu['pixels_per_s']:.1f}x")


if __name__ == "__main__":
    main()
