"""factors: collinearity (VIF, tolerance) and importance of the influencing factors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow

from landslide_ssgan.config import FactorsConfig, Params
from landslide_ssgan.data.sampling import read_samples
from landslide_ssgan.data.stack import band_indices, read_stack_info, stack_parts, values_at
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import factors
from landslide_ssgan.files import write_json
from landslide_ssgan.ops import tracking
from landslide_ssgan.reporting import plots


def run(cfg: FactorsConfig, *, seed: int, stack: str, samples: str,
        reports: str) -> dict[str, Any]:
    """VIF / tolerance and random-forest importance of the factor bands at the labelled
    training centres (and VIF at the unlabelled ones, reported separately): training pixels
    only, so the analysis can steer factor choices without looking at test data. Writes
    reports/factors.json and two charts, and logs them to an MLflow run."""
    _, infos = read_stack_info(stack)
    drawn = read_samples(samples)
    bands = band_indices(infos, "factors")
    if not bands:
        raise InputError(f"{stack}: has no factor bands")

    def table_at(rows: Any) -> factors.FactorTable:
        values = values_at(stack_parts(stack, bands=bands), rows.row.to_numpy(),
                           rows.col.to_numpy())
        return factors.factor_table(values, [infos[i].name for i in bands],
                                    [infos[i].layer for i in bands],
                                    [infos[i].categorical for i in bands])

    labelled = drawn.of("train")
    table = table_at(labelled)
    vif = factors.vif_table(table)
    importance, oob_score = factors.forest_importance(
        table, labelled.label.to_numpy(), cfg.trees, seed)
    unlabelled = drawn.unlabelled()
    vif_unlabelled = factors.vif_table(table_at(unlabelled)) if len(unlabelled) > 20 else None
    summary = {
        "pixels": {"labelled": int(len(labelled)), "unlabelled": int(len(unlabelled))},
        "vif_labelled": vif.to_dict(orient="index"),
        "vif_unlabelled": None if vif_unlabelled is None else vif_unlabelled.to_dict(
            orient="index"),
        "collinear": sorted(vif.index[vif.collinear]),
        "importance": importance.to_dict(orient="index"),
        "ranking": list(importance.index),
        "oob_score": oob_score,
    }
    folder = Path(reports)
    write_json(folder / "factors.json", summary)
    plots.factor_charts(importance, vif, folder / "factor_importance.png",
                        folder / "factor_vif.png", factors.COLLINEAR_VIF)
    _log(summary, importance, vif, cfg.trees, seed, folder)
    return summary


def _log(summary: dict[str, Any], importance: Any, vif: Any, trees: int, seed: int,
         reports: Path) -> None:
    with tracking.start_run(run_name="factors"):
        mlflow.set_tags({"stage": "factors", "mlflow.source.git.commit": tracking.git_commit()})
        mlflow.log_params({"factors.trees": trees, "seed": seed})
        tracking.log_metrics({"oob_score": summary["oob_score"]})
        for factor, row in importance.iterrows():
            tracking.log_metrics({f"importance_{factor}": row["oob_permutation"]})
        for factor, row in vif.iterrows():
            tracking.log_metrics({f"vif_{factor}": row["vif"]})
        for name in ("factors.json", "factor_importance.png", "factor_vif.png"):
            mlflow.log_artifact(str(reports / name))


def main(cfg: Params) -> dict[str, Any]:
    """The stage as `landslide factors` and dvc.yaml run it: params.yaml's settings."""
    return run(cfg.factors, seed=cfg.seed, stack=cfg.paths.stack, samples=cfg.paths.samples,
               reports=cfg.paths.reports)
