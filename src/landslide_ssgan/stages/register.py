"""register: the best SSGAN run's model into the MLflow registry; the champion alias moves
only to a model that beats the current champion on the current validation windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from landslide_ssgan import tracking
from landslide_ssgan.config import RegistryConfig
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import write_json
from landslide_ssgan.metrics import evaluate_probabilities
from landslide_ssgan.training import load_window_source


def run(cfg: RegistryConfig, *, feature_set: str, threshold: float, window: int,
        experiment: str, stack: str, samples: str, norm: str, reports: str) -> dict[str, Any]:
    """Register the candidate, promote it if it is better, write reports/champion.json."""
    digest = tracking.data_digest(samples, stack)
    run = tracking.best_candidate(experiment, feature_set, digest)
    if run is None:
        raise InputError(f"no SSGAN run on the {feature_set} features of this data "
                         f"(digest {digest}) has a logged model: run `dvc repro` or "
                         "`landslide tune` first")
    source = load_window_source(stack, samples, norm, feature_set, window)
    val_windows, val_labels = source.windows("val")
    raw_windows = (val_windows * source.std + source.mean).astype(np.float32)

    def validation_f1(model_uri: str) -> float:
        probability = mlflow.pyfunc.load_model(model_uri).predict(raw_windows)
        return evaluate_probabilities(val_labels, probability, threshold)[0]["f1"]

    candidate_f1 = validation_f1(run.data.tags["model_uri"])
    version = tracking.registered_version(cfg.model_name, run.info.run_id,
                                          run.data.tags["model_uri"], {
        "feature_set": feature_set, "data_digest": digest, "val_f1": f"{candidate_f1:.6f}",
        "stage": run.data.tags.get("stage", "")})
    current = tracking.alias_version(cfg.model_name, cfg.alias)
    current_f1 = validation_f1(f"models:/{cfg.model_name}/{current.version}") if current else None
    promoted = current is None or (str(current.version) != str(version.version)
                                   and candidate_f1 > (current_f1 or 0.0))
    if promoted:
        MlflowClient().set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
    champion: Any = version if promoted else current
    summary = {"name": cfg.model_name, "alias": cfg.alias, "version": str(champion.version),
               "run_id": champion.run_id, "promoted": promoted,
               "candidate": {"version": str(version.version), "run_id": run.info.run_id,
                             "val_f1": candidate_f1},
               "previous_champion_val_f1": current_f1, "data_digest": digest}
    write_json(Path(reports) / "champion.json", summary)
    return summary
