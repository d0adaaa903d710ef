"""map: the whole study area with the champion (and the supervised baseline, to compare):
probability and class Cloud Optimized GeoTIFFs, landslide bodies as polygons, a summary."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from landslide_ssgan import bodies, mapping, plots, serving, tracking
from landslide_ssgan.config import MapConfig, RegistryConfig
from landslide_ssgan.data.blocks import (
    Block,
    body_polygons,
    read_decimated,
    write_cog_from_blocks,
    write_geopackage,
)
from landslide_ssgan.data.stack import read_single_band
from landslide_ssgan.files import write_json
from landslide_ssgan.models import bundle

PREFIX = {"champion": "landslide", "baseline": "baseline"}  # file names of each model's map
TITLES = {"champion": "SSGAN champion", "baseline": "supervised baseline"}
OnBlock = Callable[[str, Any, bool, int], None]  # model name, block, resumed, map pixels


def outputs(maps: Path, prefix: str) -> dict[str, Path]:
    """probability and class COGs and the GeoPackage of landslide bodies of one model."""
    polygons = "landslides.gpkg" if prefix == "landslide" else f"{prefix}_landslides.gpkg"
    return {"probability": maps / f"{prefix}_probability.tif",
            "class": maps / f"{prefix}_class.tif", "polygons": maps / polygons}


def run(cfg: MapConfig, *, registry: RegistryConfig, feature_set: str, rgb: tuple[str, ...],
        stack: str, models: str, maps: str, reports: str, model_uri: str | None = None,
        client: Any = None, on_block: OnBlock | None = None) -> dict[str, Any]:
    """Map with the model at `model_uri` (default: map.model_uri, else the registry's
    champion); write the maps, reports/map_summary.json and a preview; log an MLflow run."""
    uri = model_uri or cfg.model_uri or f"models:/{registry.model_name}@{registry.alias}"
    summary: dict[str, Any] = {"threshold": cfg.threshold, "opening": cfg.opening,
                               "closing": cfg.closing, "min_area_m2": cfg.min_area_m2,
                               "connectivity": cfg.connectivity}
    with tempfile.TemporaryDirectory() as tmp:
        chosen = {"champion": (serving.window_model_folder(uri, Path(tmp)),
                               tracking.model_version_of(uri))}
        if cfg.compare_baseline:
            folder = bundle.model_dir(models, feature_set, "baseline")
            chosen["baseline"] = (folder, {"uri": str(folder)})
        for name, (folder, identity) in chosen.items():
            hook = (lambda block, resumed, total, n=name: on_block(n, block, resumed, total)) \
                if on_block else None
            summary[name] = {**identity, **_map_with(cfg, stack, folder, Path(maps),
                                                     PREFIX[name], client, hook)}
    _preview(cfg, stack, rgb, Path(maps), list(chosen), Path(reports) / "map_preview.png")
    write_json(Path(reports) / "map_summary.json", summary)
    _log(summary, Path(reports))
    return summary


def _map_with(cfg: MapConfig, stack: str, folder: Path, maps: Path, prefix: str, client: Any,
              on_block: Callable[[Any, bool, int], None] | None) -> dict[str, Any]:
    run, store, blocks = mapping.map_probability(stack, folder, maps / f".{prefix}.blocks",
                                                 cfg.block_size, client, on_block)
    paths = outputs(maps, prefix)
    write_cog_from_blocks(paths["probability"], run.grid, ((b, store.load(b)) for b in blocks),
                          "float32", float("nan"), "landslide_probability")
    probability, grid = read_single_band(paths["probability"])
    found = bodies.landslide_bodies(probability, cfg, grid.resolution ** 2)
    whole = Block(0, 0, 0, grid.height, grid.width)
    write_cog_from_blocks(paths["class"], grid,
                          iter([(whole, bodies.class_raster(found, probability))]), "uint8",
                          bodies.CLASS_NODATA, "landslide_class")
    polygons = body_polygons(found.labels, grid)
    polygons["area_m2"] = found.areas_m2
    polygons["mean_probability"] = found.mean_probability
    write_geopackage(polygons, paths["polygons"], "landslides")
    store.clear()
    return {**found.summary(), "dense_inference": run.dense,
            "mapped_pixels": int(np.isfinite(probability).sum()),
            "computed_pixels": run.computed_pixels, "resumed_blocks": run.resumed_blocks,
            "seconds": round(run.seconds, 2),
            "pixels_per_second": round(run.pixels_per_second),
            "outputs": {k: str(v) for k, v in paths.items()}}


def _preview(cfg: MapConfig, stack: str, rgb: tuple[str, ...], maps: Path, names: list[str],
             path: Path) -> None:
    size = cfg.preview_size
    image = read_decimated(stack, size, rgb)
    probabilities = {name: read_decimated(outputs(maps, PREFIX[name])["probability"], size,
                                          resampling="nearest")[0] for name in names}
    plots.map_preview(image, probabilities, cfg.threshold, TITLES, path)


def _log(summary: dict[str, Any], reports: Path) -> None:
    with mlflow.start_run(run_name="map", tags={"stage": "map",
                                                "model_uri": summary["champion"]["uri"]}):
        mlflow.log_params({f"map.{k}": summary[k] for k in (
            "threshold", "opening", "closing", "min_area_m2", "connectivity")})
        for name in PREFIX:
            if name in summary:
                mlflow.log_metrics({f"{name}_{k}": float(summary[name][k]) for k in (
                    "count", "total_area_km2", "pixels_per_second")})
        mlflow.log_artifact(str(reports / "map_summary.json"))
        mlflow.log_artifact(str(reports / "map_preview.png"))
