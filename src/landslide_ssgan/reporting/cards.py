"""The model card: what a registered model is, reads, answers and was judged by, in Markdown.

It is the registry version's description (the MLflow UI shows it on the version's page) and
reports/model_card.md, so an engineer who finds the model in the registry needs no other file
to call it right.
"""

from __future__ import annotations

from typing import Any

from landslide_ssgan.models.prior import Prior


def _scale(prior: dict[str, Any]) -> str:
    """Which probability scale the model answers on, by default and on request."""
    if not prior:
        return ("The probabilities are as trained: the model records no area prevalence "
                "(run `landslide calibrate`), so `prior_correction` cannot be asked for.")
    return ("By default the probabilities are at the area's prevalence "
            f"({_number(prior.get('area'))}: {prior.get('source', 'not recorded')}), the scale "
            "`landslide map` writes; with the parameter `prior_correction: false` they are as "
            "trained, at the landslide share of its training data "
            f"({_number(prior.get('trained'))}).")


def model_card(info: dict[str, Any], bands: tuple[str, ...], window: int, *, title: str,
               summary: str, feature_set: str, data_digest: str, run_id: str) -> str:
    """Markdown from the model folder's model.json (`info`) and normalisation (`bands`,
    `window`), and the learner table's `title` and `summary` of its kind."""
    prior = info.get("prior") or {}
    lines = [
        f"# {title} ({info.get('kind', 'unknown kind')})",
        "",
        f"{summary[0].upper()}{summary[1:]}. Trained on the {feature_set} feature set of the "
        f"data with digest `{data_digest}` (MLflow run `{run_id}`).",
        "",
        "## Input",
        "",
        f"Windows of {window} x {window} pixels, float32, shape (N, {window}, {window}, "
        f"{len(bands)}), in the stack's own units (the model normalises them with its "
        "training statistics). Bands, in this order:",
        "",
        ", ".join(f"{i}: {band}" for i, band in enumerate(bands)),
        "",
        "## Output",
        "",
        "P(landslide) of each window's centre pixel (with the parameter `per_pixel: true`, a "
        "segmenter answers every pixel of the window). " + _scale(prior),
        "",
        "## Threshold",
        "",
        f"{_number(info.get('threshold'))} on the trained scale "
        f"({info.get('threshold_source', 'not recorded')})" + (
            f"; {_number(Prior.from_dict(prior).correct_threshold(info['threshold']))} at the "
            "area's prevalence" if prior and info.get("threshold") is not None else "") + ".",
        "",
        "## Validation area (every pixel, real prevalence; never the test area)",
        "",
        *_scores(info.get("validation_map") or {}),
        "",
        "## Limitations",
        "",
        "Judged on one study area's held-out validation blocks: scores on another area, "
        "sensor, season or resolution are unknown until measured there. The bands above must "
        "come in the same order and units; a window with no data is filled with the training "
        "mean. The test-area scores are in reports/map_evaluation.md.",
    ]
    if info.get("generator_realism_auroc") is not None:
        lines[-1:-1] = [f"Its generator's windows are told from real ones with AUROC "
                        f"{info['generator_realism_auroc']:.3f} (0.5: indistinguishable).", ""]
    return "\n".join(lines) + "\n"


def _scores(scores: dict[str, Any]) -> list[str]:
    if not scores:
        return ["Not recorded (no validation area: the random split)."]
    return [f"- {name}: {_number(value)}" for name, value in scores.items()]


def _number(value: Any) -> str:
    return "not recorded" if value is None else f"{float(value):.4g}"

