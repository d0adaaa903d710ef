"""How far the test figures move with the training seed alone: the yardstick for any other
difference (another machine, another library build).

    .venv/bin/python scripts/seed_spread.py [--seeds 1 2] [--models ssgan baseline]

After `dvc repro`: trains each model of `features.set` again with each extra seed (through
`landslide train`, into a temporary folder and a temporary MLflow store; the pipeline's models
and store are not touched), and prints, per model and seed, the balanced-window test F1 (the
paper's protocol, reports/metrics.json) and the test area's map AUPRC (every pixel,
reports/map_evaluation.json), the pipeline's own model (params.yaml's seed) first, then the
range over all seeds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from landslide_ssgan.config import load_params
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.source import window_source
from landslide_ssgan.data.stack import read_stack
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.models.bundle import load_bundle, model_dir
from landslide_ssgan.models.learners import learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["ssgan", "baseline"])
    args = parser.parse_args()
    params = load_params()
    paths, feature_set = params.paths, params.features.set
    source = window_source(read_stack(paths.stack), read_samples(paths.samples),
                           Normalisation.load(paths.norm), feature_set, params.sample.window)
    windows, labels = source.windows("test")
    ground = scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)

    def scores(folder: Path) -> tuple[float, float]:
        model = load_bundle(folder)
        f1 = evaluate_probabilities(labels, model.probability(windows),
                                    params.train.threshold)[0]["f1"]
        probability = scoring.model_map(paths.stack, model, ground, ("test",))
        test = map_metrics.pixel_scores(*map_metrics.scored_pixels(
            probability, ground.truth, ground.area("test"), "all"), 0.5)
        return f1, test["auprc"]

    print("| model | seed | balanced test F1 | test map AUPRC |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        for kind in args.models:
            rows = [(params.seed, *scores(model_dir(paths.models, feature_set, kind)))]
            for seed in args.seeds:
                folders = ["--paths.trained", f"{tmp}/{seed}/trained",
                           "--paths.models", f"{tmp}/{seed}"]
                for command in ([learner(kind).stage, kind, "--seed", str(seed)],
                                ["calibrate", kind]):
                    subprocess.run(["landslide", *command, *folders], check=True, env=env,
                                   stdout=subprocess.DEVNULL)
                rows.append((seed, *scores(model_dir(f"{tmp}/{seed}", feature_set, kind))))
            for seed, f1, auprc in rows:
                print(f"| {kind} | {seed} | {f1:.4f} | {auprc:.4f} |", flush=True)
            f1s, auprcs = [r[1] for r in rows], [r[2] for r in rows]
            print(f"| {kind} | range | {max(f1s) - min(f1s):.4f} | "
                  f"{max(auprcs) - min(auprcs):.4f} |", flush=True)


if __name__ == "__main__":
    main()
