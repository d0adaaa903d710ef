"""Throughput of the input pipeline and of baseline, SSGAN and FixMatch epochs, side by side.

Run after `dvc repro` (it reads the real stack and samples named in params.yaml):

    .venv/bin/python benchmarks/training_throughput.py

Prints windows per second for each, and the SSGAN / baseline cost per labelled window. The
input pipeline is measured twice: from the normalised image in memory (Chattogram's case) and
from the temporary file that areas past `windows.in_memory_mib` read (`in_memory_mib: 0`
here), with the ratio of each to what the SSGAN and FixMatch consume. An
SSGAN step runs the discriminator on three batches (labelled, unlabelled, generated) and the
generator twice, so about 3x is the expected cost; much more would mean overhead elsewhere.
The input pipeline must be far faster than either model, or it is the bottleneck.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from landslide_ssgan.config import WindowsConfig, load_params  # noqa: E402
from landslide_ssgan.data.source import load_window_source  # noqa: E402
from landslide_ssgan.models.learners import learner
from landslide_ssgan.training.fit import (  # noqa: E402
    seed_everything,
    train_network,
    training_dataset,
)


def timed(func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    cfg = load_params("params.yaml")
    seed_everything(cfg.seed)
    source = load_window_source(cfg.paths.stack, cfg.paths.samples, cfg.paths.norm,
                                cfg.features.set, cfg.sample.window)
    labelled = len(source.samples.of("train"))
    batch = cfg.train.batch_size

    start = time.perf_counter()
    on_disk = load_window_source(cfg.paths.stack, cfg.paths.samples, cfg.paths.norm,
                                 cfg.features.set, cfg.sample.window,
                                 WindowsConfig(in_memory_mib=0.0))
    made_s = time.perf_counter() - start
    rates = {}
    for name, pixels in (("memory", source), ("file", on_disk)):
        data = training_dataset(learner("ssgan"), pixels, batch, cfg.seed)
        pipeline_s = min(timed(lambda d=data: [None for _ in d]) for _ in range(3))
        rates[f"input pipeline from {name} (labelled + unlabelled)"] = 2 * labelled / pipeline_s

    epoch_s = {}
    for kind in ("baseline", "ssgan", "fixmatch"):
        with tempfile.TemporaryDirectory() as tmp:  # one epoch of the real recipe: warm-up
            model = train_network(learner(kind), cfg.train, source, cfg.seed,
                                  workdir=Path(tmp), epochs=1).model
        ds = training_dataset(learner(kind), source, batch, cfg.seed)
        epoch_s[kind] = min(timed(lambda m=model, d=ds: m.fit(d, epochs=1, verbose=0,
                                                              shuffle=False))
                            for _ in range(3))
        rates[f"{kind} epoch (labelled windows)"] = labelled / epoch_s[kind]

    print(f"{labelled} labelled training windows, batch {batch}, "
          f"{source.channels} bands ({cfg.features.set}), {os.cpu_count()} CPUs; the window "
          f"file was written in {made_s:.1f} s")
    for name, rate in rates.items():
        print(f"{name:50s} {rate:12,.0f} windows/s")
    for kind in ("ssgan", "fixmatch"):
        print(f"{kind + ' / baseline time per labelled window':50s} "
              f"{epoch_s[kind] / epoch_s['baseline']:12.2f}x")
    for name in ("memory", "file"):
        pipeline_rate = rates[f"input pipeline from {name} (labelled + unlabelled)"]
        for kind in ("ssgan", "fixmatch"):  # each consumes a labelled and an unlabelled window
            ratio = pipeline_rate / (2 * labelled / epoch_s[kind])
            print(f"{f'input pipeline from {name} / {kind} consumption':50s} {ratio:12.1f}x")


if __name__ == "__main__":
    main()
