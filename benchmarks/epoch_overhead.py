"""What a window network's training spends outside its steps, before and after 2026-12-07.

Every epoch of `landslide train` scores the validation windows (the val_ metrics MLflow
shows) and used to write a checkpoint. Keras' `predict` built a dataset on every call (0.1 to
0.2 s), and the checkpoint took about 0.1 s; a window network's epoch is about 1.5 s on 2
cores, so the two were a seventh of it. Now the scores go through `predict_on_batch` (the
same numbers to the bit) and the checkpoint is written every 30 s of training.

The real recipe (`train_network`, validation scores at the threshold) trains the same network
on the project's data for `--epochs` epochs as it is now and as it was (checkpoint every
epoch, scores through `predict`), alternating, `--repeats` times each; prints the medians,
the seconds each epoch saved and the ratio. Nothing of the project's is written.

Run after `dvc repro` (or `dvc pull --allow-missing && dvc repro -s prepare`):

    .venv/bin/python benchmarks/epoch_overhead.py [--kind baseline] [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from landslide_ssgan.config import load_params  # noqa: E402
from landslide_ssgan.data.source import load_window_source  # noqa: E402
from landslide_ssgan.models import ssgan  # noqa: E402
from landslide_ssgan.models.discriminator import landslide_probability  # noqa: E402
from landslide_ssgan.models.learners import learner  # noqa: E402
from landslide_ssgan.training.fit import CHECKPOINT_EVERY_S, train_network  # noqa: E402


def keras_predict(discriminator, windows, batch_size=1024):  # type: ignore[no-untyped-def]
    """The validation scores as they were: Keras' `predict`, a new dataset every call."""
    logits = discriminator.predict(windows, batch_size=batch_size, verbose=0)[0]
    return np.asarray(landslide_probability(logits), dtype=np.float64)


@contextmanager
def scored_by_predict() -> Iterator[None]:
    now = ssgan.predict_probability
    ssgan.predict_probability = keras_predict
    try:
        yield
    finally:
        ssgan.predict_probability = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="baseline")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_params("params.yaml")
    source = load_window_source(cfg.paths.stack, cfg.paths.samples, cfg.paths.norm,
                                cfg.features.set, cfg.sample.window)

    def run(as_it_was: bool) -> float:
        scoring = scored_by_predict() if as_it_was else nullcontext()
        every_s = 0.0 if as_it_was else CHECKPOINT_EVERY_S
        with tempfile.TemporaryDirectory() as tmp, scoring:
            start = time.perf_counter()
            train_network(learner(args.kind), cfg.train, source, cfg.seed, workdir=Path(tmp),
                          epochs=args.epochs, threshold=cfg.train.threshold,
                          checkpoint_every_s=every_s)
            return time.perf_counter() - start

    run(False)  # warm-up: the first training in a process traces its functions
    now, was = [], []
    for _ in range(args.repeats):
        was.append(run(True))
        now.append(run(False))
    now_s, was_s = statistics.median(now), statistics.median(was)
    print(f"{args.kind}, {args.epochs} epochs of {len(source.samples.of('train'))} labelled "
          f"windows, {os.cpu_count()} CPUs, medians of {args.repeats}")
    print(f"{'as it was (checkpoint every epoch, predict)':52s} {was_s:8.1f} s")
    print(f"{'as it is (checkpoint every 30 s, predict_on_batch)':52s} {now_s:8.1f} s")
    print(f"{'saved per epoch':52s} {(was_s - now_s) / args.epochs:8.3f} s")
    print(f"{'as it was / as it is':52s} {was_s / now_s:8.2f}x")


if __name__ == "__main__":
    main()
