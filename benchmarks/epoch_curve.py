"""How many epochs a segmenter needs: its validation-area map AUPRC after each epoch, over seeds.

    .venv/bin/python benchmarks/epoch_curve.py [--params params.yaml] [--kind unet]
        [--epochs 30] [--every 2] [--seeds 0,1,2] [--set NAME=VALUE] [--json FILE]

After `dvc repro` (or on a folder kept by `benchmarks/visible_scars.py --keep DIR`: `--params
DIR/params.yaml`) it trains the segmenter as the segment stage does (the params file's train
settings and patches, the seed's own patch draw and weights) and every `--every` epochs maps
the validation area and scores every pixel at the real prevalence, as calibrate and register
do. Training is deterministic and the learning rate constant, so the model after epoch k is
the model `train.patch.epochs: k` trains: the curve chooses the number of epochs on the
validation area alone (the test area is never mapped). That holds for
`train.patch.lr_schedule: constant` only: with `poly` the rate depends on `--epochs`, so
compare settings at the epochs they would run (`--every` equal to `--epochs`). `--set` gives
a setting of the params file (as YAML; repeatable). It prints one line per point (seed,
epoch, seconds of training so far, validation AUPRC) and a table of the means over seeds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from landslide_ssgan.config import load_params
from landslide_ssgan.data.patches import load_patch_source
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.models import learners
from landslide_ssgan.models.bundle import ModelBundle
from landslide_ssgan.training.fit import train_network


class ValidationCurve(keras.callbacks.Callback):
    """Every `every` epochs: the validation area's map AUPRC and the training seconds so far
    (the mapping's own time left out)."""

    def __init__(self, kind: str, source: Any, stack: str, ground: scoring.Ground, every: int,
                 seed: int) -> None:
        super().__init__()
        self.kind, self.source, self.stack, self.ground = kind, source, stack, ground
        self.every, self.seed = every, seed
        self.rows: list[dict[str, float]] = []
        self.bundle: ModelBundle | None = None  # made once: it holds the model's variables
        self.trained_s = 0.0
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.trained_s += time.perf_counter() - self.started
        if (epoch + 1) % self.every:
            return
        row = {"seed": self.seed, "epoch": epoch + 1, "seconds": round(self.trained_s, 1),
               "val_map_auprc": self._auprc()}
        print(json.dumps(row), flush=True)
        self.rows.append(row)

    def _auprc(self) -> float:
        if self.bundle is None:
            self.bundle = ModelBundle(self.source.normalisation,
                                      learners.learner(self.kind).predictor(self.model))
        probability = scoring.model_map(self.stack, self.bundle, self.ground, ("val",))
        scores = map_metrics.pixel_scores(*map_metrics.scored_pixels(
            probability, self.ground.truth, self.ground.area("val"), "all"), 0.5)
        return round(float(scores["auprc"]), 5)


def curve(params: Path, overrides: dict[str, str], kind: str, epochs: int, every: int,
          seed: int) -> list[dict[str, float]]:
    cfg = load_params(params, overrides)
    data = TrainingData.of(cfg)
    learner = learners.learner(kind)
    if not learner.patches:
        raise SystemExit(f"--kind {kind}: not a segmenter (one of "
                         f"{', '.join(learners.of_stage('segment'))})")
    source = load_patch_source(data, cfg.features.set, cfg.train.patch, cfg.sample, seed)
    ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
    callback = ValidationCurve(kind, source, data.stack, ground, every, seed)
    with tempfile.TemporaryDirectory() as tmp:
        train_network(learner, cfg.train, source, seed, workdir=Path(tmp) / "backup",
                      epochs=epochs, callbacks=(callback,))
    return callback.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--kind", default="unet")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the params file, as YAML (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every point to this file")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    rows = [row for seed in args.seeds.split(",")
            for row in curve(args.params, overrides, args.kind, args.epochs, args.every,
                             int(seed))]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{args.kind}, {args.params}: validation-area map AUPRC, mean over seeds "
          f"{args.seeds} (min to max), training seconds")
    print(f"{'epoch':>5s} {'seconds':>8s}  validation AUPRC, mean (min to max)")
    for epoch in sorted({row["epoch"] for row in rows}):
        at = [row for row in rows if row["epoch"] == epoch]
        auprc = np.array([row["val_map_auprc"] for row in at])
        seconds = np.mean([row["seconds"] for row in at])
        print(f"{epoch:5d} {seconds:8.1f}  {auprc.mean():.4f} ({auprc.min():.4f} to "
              f"{auprc.max():.4f})")


if __name__ == "__main__":
    main()
