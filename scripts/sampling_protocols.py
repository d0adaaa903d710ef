"""Which negatives and how large an unlabelled pool: every model trained under each sampling
protocol and judged by its map (validation area to choose, test area to report).

    .venv/bin/python scripts/sampling_protocols.py [--out reports/sampling_protocols.md]

Needs the prepare stage's outputs (`dvc repro prepare`). Each protocol draws its samples
from params.yaml's sample section with the protocol's changes; the split areas do not depend
on them (same seed), so every protocol is scored on the same ground. One seed per protocol:
the differences this script is for are larger than the seed-to-seed spread it does not
measure (see the label-efficiency study for intervals).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landslide_ssgan.config import load_params, override
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import draw_samples, training_statistics
from landslide_ssgan.data.source import window_source
from landslide_ssgan.data.stack import read_single_band, read_stack
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.models.bundle import ModelBundle
from landslide_ssgan.models.learners import learner
from landslide_ssgan.training.fit import train_network

PROTOCOLS: dict[str, dict[str, Any]] = {
    "inventory negatives, pool 1x": {"negatives": "inventory", "unlabelled_ratio": 1.0},
    "outside 50 m, pool 1x": {"negatives": "outside", "negative_buffer_m": 50.0,
                              "unlabelled_ratio": 1.0},
    "outside 50 m, 5 negatives per landslide, pool 1x": {
        "negatives": "outside", "negative_buffer_m": 50.0, "negative_ratio": 5.0,
        "unlabelled_ratio": 1.0},
    "outside 50 m, pool 100x": {"negatives": "outside", "negative_buffer_m": 50.0,
                                "unlabelled_ratio": 100.0},
    # how far more negatives take the cheap models (the networks would train 50 x longer)
    "outside 50 m, 50 negatives per landslide (forest, GLM)": {
        "negatives": "outside", "negative_buffer_m": 50.0, "negative_ratio": 50.0,
        "unlabelled_ratio": 1.0, "models": ("forest", "glm")},
}
MODELS = ("ssgan", "baseline", "forest", "glm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/sampling_protocols.md")
    parser.add_argument("--only", nargs="*", help="protocol names to run (default: all)")
    parser.add_argument("--append", action="store_true",
                        help="add the rows to those already in --out's CSV twin")
    args = parser.parse_args()
    params = load_params()
    paths = params.paths
    image = read_stack(paths.stack)
    labels, _ = read_single_band(paths.labels)
    ids, _ = read_single_band(paths.inventory_ids)
    rows = []
    for name, changes in PROTOCOLS.items():
        if args.only and name not in args.only:
            continue
        changes = dict(changes)
        models = changes.pop("models", MODELS)
        cfg = override(params.sample, changes, "protocol")
        drawn = draw_samples(labels, ids, image.valid, cfg, params.seed,
                             pixel_size=image.grid.resolution)
        mean, std = training_statistics(image.data, drawn, cfg.window)
        norm = Normalisation(image.grid.band_names, mean, std, cfg.window)
        source = window_source(image, drawn, norm, params.features.set, cfg.window)
        assert drawn.areas is not None, "sample.split.method must be spatial"
        ground = scoring.Ground(map_metrics.Truth(labels, ids), drawn.areas,
                                image.grid.resolution ** 2)
        for kind in models:
            started = time.perf_counter()
            model = _trained(kind, params, source)
            rows.append({"protocol": name, "model": kind, **_scores(model, paths.stack, ground,
                                                                    params),
                         "seconds": round(time.perf_counter() - started)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    csv = Path(args.out).with_suffix(".csv")
    if args.append and csv.is_file():
        table = pd.concat([pd.read_csv(csv), table], ignore_index=True)
    table.to_csv(csv, index=False)
    Path(args.out).write_text(_report(table))
    print(f"wrote {args.out}")


def _trained(kind: str, params: Any, source: Any) -> ModelBundle:
    chosen = learner(kind)
    if chosen.fit is not None:
        fitted = chosen.fit(params.train, source, params.seed)
        return ModelBundle(source.normalisation, chosen.predictor(fitted))
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_network(chosen, params.train, source, params.seed,
                                workdir=Path(tmp) / "backup")
    return ModelBundle(source.normalisation, chosen.predictor(trained.model))


def _scores(model: ModelBundle, stack: str, ground: scoring.Ground,
            params: Any) -> dict[str, float]:
    probability = scoring.model_map(stack, model, ground, scoring.SCORED_AREAS)
    threshold, _ = scoring.validation_threshold(probability, ground, None)
    result = scoring.score_areas(probability, ground, threshold, params.map)
    out = {}
    for area in ("val", "test"):
        headline = map_metrics.headline(result[area])
        for key in ("auprc", "f1", "flagged_share", "object_recall"):
            out[f"{area}_{key}"] = round(float(headline[key]), 4)
    return out


def _report(table: pd.DataFrame) -> str:
    lines = ["# Sampling protocols judged by the map", "",
             "`.venv/bin/python scripts/sampling_protocols.py`: each protocol's samples, the "
             "four models trained with params.yaml's train settings (one seed), each map's "
             "threshold chosen on the validation area (best F1). Choose by the validation "
             "columns; the test columns are the report.", ""]
    columns = [c for c in table.columns if c not in ("protocol", "model")]
    lines.append("| protocol | model | " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 2))
    for _, row in table.iterrows():
        lines.append(f"| {row.protocol} | {row.model} | "
                     + " | ".join(f"{row[c]:g}" for c in columns) + " |")
    best = table.groupby("protocol").val_auprc.mean().sort_values(ascending=False)
    lines += ["", "Mean validation AUPRC over the models each protocol trained: "
              + "; ".join(f"{p}: {v:.4f}" for p, v in best.items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
