"""The maps of every feature set's models, judged on held-out ground.

    .venv/bin/python scripts/feature_set_maps.py

`landslide evaluate` scores the maps of `features.set` only; this scores the trained models of
all three sets (models/<set>/<model>, after `dvc repro`) the same way, at each model's own
validation-chosen threshold: which bands make the best map, chosen on the validation area.
"""

from __future__ import annotations

from landslide_ssgan.config import load_params
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.models.bundle import load_bundle, model_dir
from landslide_ssgan.models.learners import KINDS

KEYS = ("auprc", "auroc", "f1", "flagged_share", "object_recall")


def main() -> None:
    params = load_params()
    paths = params.paths
    ground = scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)
    print("| set | model | " + " | ".join(f"val {k}" for k in KEYS) + " | "
          + " | ".join(f"test {k}" for k in KEYS) + " |")
    print("|" + "---|" * (2 + 2 * len(KEYS)))
    for feature_set in params.evaluate.feature_sets:
        for kind in KINDS:
            model = load_bundle(model_dir(paths.models, feature_set, kind))
            probability = scoring.model_map(paths.stack, model, ground, scoring.SCORED_AREAS)
            scores = scoring.score_areas(probability, ground, model.threshold or 0.5,
                                         params.map)
            cells = [f"{map_metrics.headline(scores[area])[k]:.4f}"
                     for area in ("val", "test") for k in KEYS]
            print(f"| {feature_set} | {kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
