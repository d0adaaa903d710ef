"""register: the best run's model (of any kind in registry.kinds) into the MLflow registry;
the champion alias moves only to a model that beats the current champion on the current
validation data.

The score (registry.score) is the AUPRC of the model's map over the validation area, every
pixel at the real prevalence (default), or F1 on the balanced validation windows (the paper's
protocol). Both models are re-scored here on the same data: logged numbers are not trusted."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from landslide_ssgan.config import Params, RegistryConfig, WindowsConfig
from landslide_ssgan.data.source import load_window_source
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.files import write_json, write_text
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.models.prior import Prior
from landslide_ssgan.ops import pyfunc, tracking
from landslide_ssgan.reporting.cards import model_card


def run(cfg: RegistryConfig, *, feature_set: str, threshold: float, window: int,
        experiment: str, stack: str, samples: str, norm: str, ground: scoring.Ground,
        reports: str, windows: WindowsConfig | None = None,
        on_score: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Register the candidate, promote it if it is better, write reports/champion.json.
    `on_score` hears of each model scored on the validation data (the candidate, then the
    champion it must beat), as it is scored: each is a map of the validation area."""
    learners.check_kinds(cfg.kinds, "registry.kinds")
    digest = tracking.data_digest(samples, stack)
    run = tracking.best_candidate(experiment, feature_set, digest, cfg.score, cfg.kinds)
    if run is None:
        raise InputError(f"no run of {', '.join(cfg.kinds)} on the {feature_set} features of "
                         f"this data "
                         f"(digest {digest}) has a logged model: run `dvc repro` or "
                         "`landslide tune` first")
    source = load_window_source(stack, samples, norm, feature_set, window, windows)
    val_windows, val_labels = source.windows("val")
    raw_windows = (val_windows * source.std + source.mean).astype(np.float32)

    def validation_score(model_uri: str) -> float:
        if cfg.score == "auprc":
            return _validation_auprc(model_uri, stack, ground)
        probability = mlflow.pyfunc.load_model(model_uri).predict(  # the threshold's scale
            raw_windows, params={"prior_correction": False})
        return evaluate_probabilities(val_labels, probability, threshold)[0]["f1"]

    candidate_score = validation_score(run.data.tags["model_uri"])
    if on_score is not None:
        on_score(f"candidate {run.data.tags.get('model', '')} (run {run.info.run_id[:8]})",
                 candidate_score)
    version = tracking.registered_version(cfg.model_name, run.info.run_id,
                                          run.data.tags["model_uri"], {
        "kind": run.data.tags.get("model", ""), "feature_set": feature_set,
        "data_digest": digest, f"val_{cfg.score}": f"{candidate_score:.6f}",
        "stage": run.data.tags.get("stage", ""), **_thresholds(run.data.metrics)})
    card = _card(run, feature_set, digest)
    MlflowClient().update_model_version(cfg.model_name, version.version, description=card)
    current = tracking.alias_version(cfg.model_name, cfg.alias)
    current_score = (validation_score(f"models:/{cfg.model_name}/{current.version}")
                     if current else None)
    if on_score is not None and current is not None and current_score is not None:
        on_score(f"champion version {current.version} ({_kind(current)})", current_score)
    promoted = current is None or (str(current.version) != str(version.version)
                                   and candidate_score > (current_score or 0.0))
    if promoted:
        MlflowClient().set_registered_model_alias(cfg.model_name, cfg.alias, version.version)
    champion: Any = version if promoted else current
    summary = {"name": cfg.model_name, "alias": cfg.alias, "version": str(champion.version),
               "kind": _kind(champion), "run_id": champion.run_id, "promoted": promoted,
               "score": _SCORES[cfg.score],
               "candidate": {"version": str(version.version), "run_id": run.info.run_id,
                             "kind": _kind(version), "score": candidate_score},
               "previous_champion_score": current_score, "data_digest": digest}
    write_json(Path(reports) / "champion.json", summary)
    write_text(Path(reports) / "model_card.md",  # the champion's, as the registry holds it
               (current.description if current is not None and not promoted else None) or card)
    return summary


def _card(run: Any, feature_set: str, digest: str) -> str:
    """The candidate's model card (reporting/cards.py), from its logged model's files."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = pyfunc.window_model_folder(run.data.tags["model_uri"], Path(tmp))
        model = bundle.load_bundle(folder)
    kind = str(model.info.get("kind") or run.data.tags.get("model", "unknown kind"))
    learner = learners.LEARNERS.get(kind)
    return model_card({"kind": kind, **model.info}, model.bands, model.window,
                      title=learner.title if learner else kind,
                      summary=learner.summary if learner else "a landslide model",
                      feature_set=feature_set, data_digest=digest, run_id=run.info.run_id)


def _kind(version: Any) -> str:
    """The model kind of a registry version: its tag, or its run's (versions registered
    before the tag existed)."""
    kind = (version.tags or {}).get("kind")
    return str(kind or MlflowClient().get_run(version.run_id).data.tags.get("model", "unknown"))


def _thresholds(metrics: dict[str, float]) -> dict[str, str]:
    """The map threshold as version tags: `map_threshold` on the scale the model answers by
    default (the area's prevalence, where the run records one), `map_threshold_trained` on
    the trained scale."""
    raw = metrics.get(tracking.metric_key("map_threshold"))
    trained, area = (metrics.get(tracking.metric_key(f"prior_{k}")) for k in ("trained", "area"))
    if raw is None:
        return {}
    served = raw if trained is None or area is None else Prior(
        trained, area, "").correct_threshold(raw)
    return {"map_threshold": f"{served:.6g}", "map_threshold_trained": f"{raw:.6g}"}


_SCORES = {"auprc": "AUPRC of the map over the validation area (every pixel)",
           "balanced_f1": "F1 on the balanced validation windows"}


def _validation_auprc(model_uri: str, stack: str, ground: scoring.Ground) -> float:
    if not ground.has_areas:
        raise InputError("registry.score: auprc needs the validation area of the spatial "
                         "split (sample.split.method: spatial); use balanced_f1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = pyfunc.window_model_folder(model_uri, Path(tmp))
        probability = scoring.model_map(stack, bundle.load_bundle(folder), ground, ("val",))
    return float(map_metrics.pixel_scores(*map_metrics.scored_pixels(
        probability, ground.truth, ground.area("val"), "all"), 0.5)["auprc"])


def main(cfg: Params, on_score: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """The stage as `landslide register` and dvc.yaml run it: params.yaml's settings."""
    paths = cfg.paths
    ground = scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)
    return run(cfg.registry, feature_set=cfg.features.set, threshold=cfg.train.threshold,
               window=cfg.sample.window, experiment=cfg.tracking.experiment, stack=paths.stack,
               samples=paths.samples, norm=paths.norm, ground=ground, reports=paths.reports,
               windows=cfg.windows, on_score=on_score)
