"""How a segmenter's maps move over its epochs: the validation-area map AUPRC after each epoch
and of the trained model, over seeds.

    .venv/bin/python benchmarks/epoch_curve.py [--params params.yaml] [--kind unet]
        [--epochs 30] [--every 2] [--seeds 0,1,2] [--set NAME=VALUE] [--json FILE] [--test]
    .venv/bin/python benchmarks/epoch_curve.py --pair A.json B.json

After `dvc repro` (or on a folder kept by `benchmarks/visible_scars.py --keep DIR`: `--params
DIR/params.yaml`) it trains the segmenter as the segment stage does (the params file's train
settings and patches, the seed's own patch draw and weights) and every `--every` epochs maps
the validation area with the weights of that epoch's end, and once more with the trained
model (the mean of the last epochs' weights under `train.patch.average`, else the last
weights), scoring every pixel at the real prevalence, as calibrate and register do (the map
the mean over `calibrate.symmetries`). Training is deterministic, so with the constant rate
the weights after epoch k are those `train.patch.epochs: k` ends with: the curve reads off
the number of epochs on the validation area alone. With `poly` the rate depends on
`--epochs`, so compare settings at the epochs they would run (`--every` equal to `--epochs`).
`--set` gives a setting of the params file (as YAML; repeatable). It prints one line per
point and a table of the means over seeds.

`--test` measures rules, never chooses: it also maps the test area, and prints whether
keeping the epoch of the best validation AUPRC (a choice made on validation alone) gives a
better test-area map than the trained model, paired by seed with a 95 % interval. `--pair`
reads two `--json` files of the same seeds (two settings) and prints the paired difference
of their trained models on each area mapped.
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
import pandas as pd

from landslide_ssgan.config import load_params
from landslide_ssgan.data.patches import load_patch_source
from landslide_ssgan.data.source import TrainingData
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.evaluation.budgets import paired_difference
from landslide_ssgan.models import learners
from landslide_ssgan.models.bundle import ModelBundle, with_symmetries
from landslide_ssgan.training.fit import train_network

Row = dict[str, Any]


class MapCurve(keras.callbacks.Callback):
    """Every `every` epochs: the areas' map AUPRC and the training seconds so far (the
    mapping's own time left out)."""

    def __init__(self, kind: str, source: Any, stack: str, ground: scoring.Ground, every: int,
                 seed: int, areas: tuple[str, ...], symmetries: int) -> None:
        super().__init__()
        self.kind, self.source, self.stack, self.ground = kind, source, stack, ground
        self.symmetries = symmetries
        self.every, self.seed, self.areas = every, seed, areas
        self.rows: list[Row] = []
        self.bundle: ModelBundle | None = None  # made once: it holds the model's variables
        self.trained_s = 0.0
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.trained_s += time.perf_counter() - self.started
        if not (epoch + 1) % self.every:
            self.point(epoch + 1)

    def point(self, epoch: int | str) -> None:
        """Map the areas with the model's weights now; `epoch` names the point."""
        row = {"seed": self.seed, "epoch": epoch, "seconds": round(self.trained_s, 1),
               **self._auprc()}
        print(json.dumps(row), flush=True)
        self.rows.append(row)

    def _auprc(self) -> dict[str, float]:
        """Each area's map AUPRC, every pixel at the real prevalence."""
        if self.bundle is None:
            self.bundle = with_symmetries(ModelBundle(
                self.source.normalisation, learners.learner(self.kind).predictor(self.model)),
                self.symmetries)
        probability = scoring.model_map(self.stack, self.bundle, self.ground, self.areas)
        return {f"{area}_map_auprc": round(float(map_metrics.pixel_scores(
            *map_metrics.scored_pixels(probability, self.ground.truth, self.ground.area(area),
                                       "all"), 0.5)["auprc"]), 5) for area in self.areas}


def curve(params: Path, overrides: dict[str, str], kind: str, epochs: int, every: int,
          seed: int, areas: tuple[str, ...]) -> list[Row]:
    cfg = load_params(params, overrides)
    data = TrainingData.of(cfg)
    learner = learners.learner(kind)
    if not learner.patches:
        raise SystemExit(f"--kind {kind}: not a segmenter (one of "
                         f"{', '.join(learners.of_stage('segment'))})")
    source = load_patch_source(data, cfg.features.set, cfg.train.patch, cfg.sample, seed)
    ground = scoring.read_ground(data.labels, data.inventory_ids, data.split)
    callback = MapCurve(kind, source, data.stack, ground, every, seed, areas,
                        cfg.calibrate.symmetries)
    with tempfile.TemporaryDirectory() as tmp:
        train_network(learner, cfg.train, source, seed, workdir=Path(tmp) / "backup",
                      epochs=epochs, callbacks=(callback,))
    callback.point("trained")  # the averaged weights, where they are averaged
    return callback.rows


def paired(a: list[float], b: list[float]) -> str:
    """Mean of a - b over seeds with its 95 % t interval (the study's paired_difference) and
    how many seeds are above."""
    runs = pd.DataFrame([{"split": "-", "budget": 0, "seed": seed, "model": model,
                          "auprc": value}
                         for model, values in (("a", a), ("b", b))
                         for seed, value in enumerate(values)])
    diff = paired_difference(runs, "auprc", "a", "b").iloc[0]
    above = int((np.array(a) > np.array(b)).sum())
    return (f"{diff['mean']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}], "
            f"{above} of {len(a)} seeds above")


def trained_rows(rows: list[Row]) -> dict[int, Row]:
    return {row["seed"]: row for row in rows if row["epoch"] == "trained"}


def print_table(rows: list[Row], label: str) -> None:
    print(f"\n{label}: validation-area map AUPRC, mean over seeds (min to max), training "
          "seconds")
    print(f"{'epoch':>7s} {'seconds':>8s}  validation AUPRC, mean (min to max)")
    for epoch in [*sorted({r["epoch"] for r in rows if r["epoch"] != "trained"}), "trained"]:
        at = [row for row in rows if row["epoch"] == epoch]
        auprc = np.array([row["val_map_auprc"] for row in at])
        seconds = np.mean([row["seconds"] for row in at])
        print(f"{epoch!s:>7s} {seconds:8.1f}  {auprc.mean():.4f} ({auprc.min():.4f} to "
              f"{auprc.max():.4f})")


def print_choice(rows: list[Row]) -> None:
    """Test-area AUPRC of each seed's trained model and of its epoch of best validation
    AUPRC, and their paired difference."""
    best, final = [], []
    for seed, trained in trained_rows(rows).items():
        points = [row for row in rows if row["seed"] == seed and row["epoch"] != "trained"]
        chosen = max(points, key=lambda row: row["val_map_auprc"])
        best.append(chosen["test_map_auprc"])
        final.append(trained["test_map_auprc"])
        print(f"seed {seed}: best validation at epoch {chosen['epoch']}; test AUPRC "
              f"{best[-1]:.4f} there, {final[-1]:.4f} for the trained model")
    print(f"test AUPRC, best-by-validation epoch {np.mean(best):.4f} ± "
          f"{np.std(best, ddof=1):.4f}, trained model {np.mean(final):.4f} ± "
          f"{np.std(final, ddof=1):.4f}; paired {paired(best, final)}")


def print_pair(a_path: Path, b_path: Path) -> None:
    """The trained models of two runs of the same seeds, paired by seed, area by area."""
    a, b = (trained_rows(json.loads(path.read_text())) for path in (a_path, b_path))
    seeds = sorted(set(a) & set(b))
    for key in [k for k in a[seeds[0]] if k.endswith("_map_auprc")]:
        first, second = [a[s][key] for s in seeds], [b[s][key] for s in seeds]
        print(f"{key}: {a_path.name} {np.mean(first):.4f} ± {np.std(first, ddof=1):.4f}, "
              f"{b_path.name} {np.mean(second):.4f} ± {np.std(second, ddof=1):.4f}; "
              f"paired {paired(first, second)}")


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
    parser.add_argument("--test", action="store_true",
                        help="also map the test area: trained model against best-by-validation")
    parser.add_argument("--pair", type=Path, nargs=2, metavar=("A", "B"),
                        help="pair the trained models of two --json files (no training)")
    args = parser.parse_args()
    if args.pair:
        print_pair(*args.pair)
        return
    overrides = dict(item.split("=", 1) for item in args.set)
    areas = ("val", "test") if args.test else ("val",)
    rows = [row for seed in args.seeds.split(",")
            for row in curve(args.params, overrides, args.kind, args.epochs, args.every,
                             int(seed), areas)]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print_table(rows, f"{args.kind}, {args.params}, seeds {args.seeds}")
    if args.test:
        print_choice(rows)


if __name__ == "__main__":
    main()
