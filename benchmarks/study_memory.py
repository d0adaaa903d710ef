"""Does a process that trains many networks (the study, a long tuning) keep growing?

Run after `dvc repro` (it reads the prepared stack, the samples and the split):

    .venv/bin/python benchmarks/study_memory.py [--models unet,ssgan,forest] [--seeds 6]
        [--steps 60]

The label-efficiency study's own code (`study.label_efficiency`: 10 % of the labels, the
given models, seeds 0 to `--seeds` - 1, `--steps` optimiser steps per network, each run
mapped over the validation and test areas) runs twice, each in a fresh process with its own
throw-away MLflow store: once as the study runs, where every network trains from a fresh
Keras state (`training.fit.fresh_keras_state`), and once with that step skipped, as before
2026-12-07. Each prints the process's resident memory after every run; then the growth from
the first run to the last and its ratio. The full study (144 runs) peaked at 13.5 GiB
without the fresh state (`/usr/bin/time -v dvc repro studies/dvc.yaml`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from child import ChildFailed, child_json  # benchmarks/child.py: a measurement in a fresh process

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def resident_gib() -> float:
    """The process's resident memory now (VmRSS), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmRSS in /proc/self/status (this measures Linux processes)")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One process's study runs and its memory after each (the child)."""
    import mlflow

    from landslide_ssgan.config import load_params
    from landslide_ssgan.data.source import TrainingData
    from landslide_ssgan.stages import study
    from landslide_ssgan.training import fit

    if args.without_fresh_state:
        fit.fresh_keras_state = lambda: None  # as before 2026-12-07
    params = load_params(args.params)
    cfg = replace(params.study, models=tuple(args.models.split(",")),
                  seeds=tuple(range(args.seeds)), budgets=(0.1,), variants={},
                  steps=args.steps, splits=("spatial",))
    after: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        study.label_efficiency(cfg, TrainingData.of(params), seed=params.seed,
                               sample=params.sample, feature_set=params.features.set,
                               train=params.train,
                               calibrate=params.calibrate,
                               on_run=lambda _: after.append(resident_gib()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"after_each_run": after, "peak": peak}


def run_child(args: argparse.Namespace, fresh: bool) -> dict[str, Any]:
    """`measure` in a fresh process; its error as one line."""
    command = [sys.executable, __file__, "--child", "--params", str(args.params),
               "--models", args.models, "--seeds", str(args.seeds), "--steps", str(args.steps),
               *([] if fresh else ["--without-fresh-state"])]
    try:
        return child_json(command)
    except ChildFailed as failed:
        raise SystemExit(f"the study runs failed: {failed.line or failed}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--models", default="unet,ssgan,forest", help="study kinds, in order")
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0 to N - 1")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps per network")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--without-fresh-state", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    rows = {"fresh Keras state (the study now)": run_child(args, fresh=True),
            "without it (before 2026-12-07)": run_child(args, fresh=False)}
    runs = len(next(iter(rows.values()))["after_each_run"])
    print(f"study runs of {args.models}, {args.seeds} seeds, 10 % of the labels, "
          f"{args.steps} steps: {runs} runs in one process")
    growth = {}
    for name, row in rows.items():
        after = row["after_each_run"]
        growth[name] = after[-1] - after[0]
        print(f"{name}: after run 1 {after[0]:.2f} GiB, after run {runs} {after[-1]:.2f} GiB "
              f"(+{growth[name]:.2f}), peak {row['peak']:.2f} GiB; after each: "
              + " ".join(f"{gib:.2f}" for gib in after))
    fresh, before = growth.values()
    print(f"growth without / with the fresh state: {before / max(fresh, 0.01):.1f}x")


if __name__ == "__main__":
    main()
