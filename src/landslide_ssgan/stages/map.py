"""map: the whole study area with the champion (and the supervised baseline, to compare):
probability and class Cloud Optimized GeoTIFFs, landslide bodies as polygons, a summary."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from affine import Affine

from landslide_ssgan import __version__
from landslide_ssgan.config import MapConfig, Params, RegistryConfig
from landslide_ssgan.data.blocks import (
    Block,
    RasterMetadata,
    add_body_parts,
    blocks_of,
    polygons_of_parts,
    preview_image,
    read_decimated,
    read_region,
    stack_grid,
    wgs84_bounds,
    write_cog_from_blocks,
    write_geopackage,
)
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.data.layers import check_rgb
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.stack import read_single_band
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.files import Staging, staged_together, write_json
from landslide_ssgan.inference import bodies, mapping
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.models.prior import Prior
from landslide_ssgan.ops import pyfunc, tracking
from landslide_ssgan.reporting import plots, stac, styles

TWIN = learners.SUPERVISED_TWIN  # mapped beside the champion, to compare
PREFIX = {"champion": "landslide", TWIN: TWIN}  # file names of each model's map
TITLES = {TWIN: f"supervised twin ({TWIN})"}  # the champion's title names its kind
OnBlock = Callable[[str, Any, bool, int], None]  # model name, block, resumed, map pixels


def outputs(maps: Path, prefix: str) -> dict[str, Path]:
    """probability and class COGs, their QGIS styles and the GeoPackage of landslide bodies
    of one model."""
    polygons = "landslides.gpkg" if prefix == "landslide" else f"{prefix}_landslides.gpkg"
    return {"probability": maps / f"{prefix}_probability.tif",
            "class": maps / f"{prefix}_class.tif", "polygons": maps / polygons,
            "probability_style": maps / f"{prefix}_probability.qml",
            "class_style": maps / f"{prefix}_class.qml"}


def run(cfg: MapConfig, *, registry: RegistryConfig, feature_set: str, rgb: tuple[str, ...],
        stack: str, models: str, maps: str, reports: str, ground: scoring.Ground | None = None,
        model_uri: str | None = None, client: Any = None,
        on_block: OnBlock | None = None) -> dict[str, Any]:
    """Map with the model at `model_uri` (default: map.model_uri, else the registry's
    champion); write the maps, reports/map_summary.json and a preview; log an MLflow run.
    With `ground` (inventory and split areas), each map is also scored on the validation
    and test areas."""
    uri = model_uri or cfg.model_uri or f"models:/{registry.model_name}@{registry.alias}"
    summary: dict[str, Any] = {"threshold": cfg.threshold,
                               "prior_correction": cfg.prior_correction, "opening": cfg.opening,
                               "closing": cfg.closing, "min_area_m2": cfg.min_area_m2,
                               "connectivity": cfg.connectivity}
    with tempfile.TemporaryDirectory() as tmp, staged_together() as staging:
        chosen = {"champion": (pyfunc.window_model_folder(uri, Path(tmp)),
                               tracking.model_version_of(uri))}
        if cfg.compare_baseline:
            folder = bundle.model_dir(models, feature_set, TWIN)
            chosen[TWIN] = (folder, {"uri": str(folder)})
        for name, (folder, identity) in chosen.items():
            hook = (lambda block, resumed, total, n=name: on_block(n, block, resumed, total)) \
                if on_block else None
            summary[name] = {**identity, **_map_with(cfg, stack, folder, Path(maps),
                                                     PREFIX[name], client, hook, ground,
                                                     staging, identity)}
        _preview(cfg, stack, rgb, {n: staging.path(outputs(Path(maps), PREFIX[n])[
            "probability"]) for n in chosen}, {n: summary[n]["threshold"] for n in chosen},
            str(bundle.read_info(chosen["champion"][0]).get("kind", "unknown kind")),
            staging.path(Path(reports) / "map_preview.png"))
        write_json(staging.path(Path(reports) / "map_summary.json"), summary)
        _write_item(Path(maps), Path(reports), stack, chosen["champion"][0],
                    summary["champion"], staging)
    _log(summary, Path(reports))
    return summary


def _write_item(maps: Path, reports: Path, stack: str, folder: Path, row: dict[str, Any],
                staging: Staging) -> None:
    """The champion's map as a STAC item (maps/landslide.stac.json), beside its assets."""
    grid = stack_grid(stack)
    info = bundle.read_info(folder)
    files = {**outputs(maps, PREFIX["champion"]), "preview": reports / "map_preview.png",
             "summary": reports / "map_summary.json"}
    path = maps / f"{PREFIX['champion']}.stac.json"
    norm = Normalisation.load(folder / bundle.NORMALISATION)
    learner = learners.learner(str(info.get("kind")))
    model = {"kind": learner.name, "uri": row["uri"], "version": row.get("version"),
             "bands": norm.bands, "window": norm.window or 0, "segmenter": learner.patches,
             "framework": "TensorFlow" if learner.network else "scikit-learn",
             "threshold": row["threshold"], "scale": row["probabilities"]}
    item = stac.map_item(f"{PREFIX['champion']}-{Path(stack).stem}",
                         {k: v.resolve() for k, v in files.items()}, maps.resolve(),
                         bbox_wgs84=wgs84_bounds(grid), epsg=grid.crs.to_epsg(),
                         shape=grid.shape, transform=tuple(grid.transform)[:6],
                         created=_created(), model=model)
    write_json(staging.path(path), item)


def _created() -> datetime:
    """Now, or SOURCE_DATE_EPOCH's time where that is set (a bit-for-bit rebuild)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)


def model_threshold(setting: float | str, folder: Path) -> tuple[float, str]:
    """map.threshold, or with `auto` the model's own (model.json), and where it came from."""
    if setting != "auto":
        return float(setting), "map.threshold in params.yaml"
    info = bundle.read_info(folder)
    if info.get("threshold") is None:
        return 0.5, "0.5: the model records no threshold (not calibrated: `landslide calibrate`)"
    return float(info["threshold"]), f"the model's own: {info['threshold_source']}"


def model_prior(correction: bool, folder: Path) -> Prior | None:
    """The prior that moves the model's probabilities to the area's prevalence, when
    map.prior_correction asks for it."""
    if not correction:
        return None
    prior = bundle.load_info_prior(folder)
    if prior is None:
        raise InputError(f"{folder}: the model records no prior (not calibrated); run "
                         "`landslide calibrate` or set map.prior_correction: false")
    return prior


def _map_with(cfg: MapConfig, stack: str, folder: Path, maps: Path, prefix: str, client: Any,
              on_block: Callable[[Any, bool, int], None] | None,
              ground: scoring.Ground | None, staging: Staging,
              identity: dict[str, str]) -> dict[str, Any]:
    threshold, source = model_threshold(cfg.threshold, folder)
    prior = model_prior(cfg.prior_correction, folder)
    if prior is not None and cfg.threshold == "auto":  # the model's threshold, moved with it
        threshold = prior.correct_threshold(threshold)
    cfg = replace(cfg, threshold=threshold)
    run, store, blocks = mapping.map_probability(stack, folder, maps / f".{prefix}.blocks",
                                                 cfg.block_size, client, on_block)
    finals = outputs(maps, prefix)
    paths = {kind: staging.path(path) for kind, path in finals.items()}
    correct = prior.correct if prior is not None else (lambda values: values)
    scale = ("as trained (map.prior_correction: false)" if prior is None
             else f"at the area's prevalence {prior.area:.4g} ({prior.source}); trained at "
             f"{prior.trained:.4g}")
    tags = map_tags(cfg, folder, identity, threshold, source, scale)
    write_cog_from_blocks(paths["probability"], run.grid,
                          ((b, correct(store.load(b))) for b in blocks),
                          "float32", float("nan"), "landslide_probability",
                          RasterMetadata(tags, "probability (0 to 1)"))
    found, counts = bodies_by_blocks(paths, run.grid, cfg, tags)
    paths["probability_style"].write_text(styles.probability_qml(threshold))
    paths["class_style"].write_text(styles.class_qml())
    store.clear()
    scores = {}
    if ground is not None and cfg.score_areas:  # the one step with the whole map in memory
        probability, _ = read_single_band(paths["probability"])
        scores = scoring.score_areas(probability, ground, threshold, cfg)
    return {"threshold": threshold, "threshold_source": source,
            "probabilities": scale,
            **found.summary(),
            "flagged_share": counts["flagged"] / max(counts["mapped"], 1),
            "areas": {area: map_metrics.headline(result) for area, result in scores.items()},
            "dense_inference": run.dense,
            "mapped_pixels": counts["mapped"],
            "computed_pixels": run.computed_pixels, "resumed_blocks": run.resumed_blocks,
            "seconds": round(run.seconds, 2),
            "pixels_per_second": round(run.pixels_per_second),
            "outputs": {k: str(v) for k, v in finals.items()}}


def map_tags(cfg: MapConfig, folder: Path, identity: dict[str, str], threshold: float,
             source: str, scale: str) -> dict[str, str]:
    """What a GIS user sees of a map raster's making: the model and its version, the
    threshold and probability scale, a segmenter's symmetries (its map the mean over them),
    the date, the software and the data's attribution.
    The date is SOURCE_DATE_EPOCH's where that is set, so a rebuild can be bit for bit."""
    info = bundle.read_info(folder)
    when = _created()
    tags = {"MODEL_URI": identity.get("uri", str(folder)),
            "MODEL_VERSION": identity.get("version", ""),
            "MODEL_RUN_ID": identity.get("run_id", ""),
            "MODEL_KIND": str(info.get("kind", "")),
            "MODEL_BANDS": ",".join(Normalisation.load(folder / bundle.NORMALISATION).bands),
            "THRESHOLD": f"{threshold:.6g}", "THRESHOLD_SOURCE": source,
            "PROBABILITY_SCALE": scale, "MAP_SYMMETRIES": str(info.get("symmetries", "")),
            "CREATED": when.isoformat(timespec="seconds"),
            "SOFTWARE": f"landslide-ssgan {__version__}", "ATTRIBUTION": cfg.attribution}
    return {k: v for k, v in tags.items() if v}


def bodies_by_blocks(paths: dict[str, Path], grid: Grid, cfg: MapConfig,
                     tags: dict[str, str] | None = None
                     ) -> tuple[bodies.BlockBodies, dict[str, int]]:
    """Landslide bodies of the probability COG, block by block (the same bodies and ids as
    the whole map at once): the class COG and the polygons, and the counts of mapped and
    flagged pixels. Memory holds one block, the seams and the polygons."""
    blocks = blocks_of(grid, cfg.block_size)
    counts = {"mapped": 0, "flagged": 0}
    parts: dict[int, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        found = bodies.join_blocks(
            blocks, (grid.height, grid.width), cfg, grid.resolution ** 2,
            lambda block, reach: read_region(paths["probability"], block, reach),
            lambda block, labels: np.save(Path(tmp) / f"{block.index}.npy", labels))

        def classes() -> Iterator[tuple[Block, np.ndarray]]:
            for block in blocks:
                local = np.load(Path(tmp) / f"{block.index}.npy")
                ids = found.ids(block, local)
                counts["mapped"] += int((local >= 0).sum())
                counts["flagged"] += int((ids > 0).sum())
                add_body_parts(parts, ids, grid.transform @ Affine.translation(block.col,
                                                                               block.row))
                yield block, bodies.class_raster(ids, local >= 0)

        write_cog_from_blocks(paths["class"], grid, classes(), "uint8", bodies.CLASS_NODATA,
                              "landslide_class", RasterMetadata(
                                  tags or {}, "class", {f"CLASS_{value}": name for value, name
                                                        in styles.CLASS_NAMES.items()},
                                  styles.CLASS_COLOURS))
    polygons = polygons_of_parts(parts, grid.crs)
    polygons["area_m2"] = found.areas_m2
    polygons["mean_probability"] = found.mean_probability
    write_geopackage(polygons, paths["polygons"], "landslides", styles.polygons_qml())
    return found, counts


def _preview(cfg: MapConfig, stack: str, rgb: tuple[str, ...], maps: dict[str, Path],
             thresholds: dict[str, float], kind: str, path: Path) -> None:
    size = cfg.preview_size
    image = preview_image(stack, size, rgb)
    probabilities = {name: read_decimated(maps[name], size, resampling="nearest")[0]
                     for name in thresholds}
    titles = {**TITLES, "champion": f"champion ({kind})"}
    plots.map_preview(image, probabilities, thresholds, titles, path)


def _log(summary: dict[str, Any], reports: Path) -> None:
    with tracking.start_run(run_name="map", tags={"stage": "map",
                                                  "model_uri": summary["champion"]["uri"]}):
        mlflow.log_params({f"map.{k}": summary[k] for k in (
            "threshold", "prior_correction", "opening", "closing", "min_area_m2",
            "connectivity")})
        for name in PREFIX:
            if name in summary:
                row = summary[name]
                tracking.log_metrics({f"map_{name}_{k}": row[k] for k in (
                    "count", "total_area_km2", "pixels_per_second", "threshold",
                    "flagged_share")})
                for area, scores in row["areas"].items():
                    tracking.log_metrics({f"map_{name}_{area}_map_{k}": v
                                          for k, v in scores.items() if v == v})
        mlflow.log_artifact(str(reports / "map_summary.json"))
        mlflow.log_artifact(str(reports / "map_preview.png"))


def main(cfg: Params, model_uri: str | None = None, client: Any = None,
         on_block: OnBlock | None = None, stack: Path | None = None,
         out: Path | None = None) -> dict[str, Any]:
    """The stage as `landslide map` and dvc.yaml run it: params.yaml's settings. With
    `stack` (new imagery: a stack `landslide prepare` built from other layers), the map of
    that stack alone goes to `out` (default maps/<the stack's name>/): no area to score, no
    baseline beside it."""
    paths = cfg.paths
    if stack is not None:
        return _map_new_stack(cfg, stack, out or Path(paths.maps) / stack.stem, model_uri,
                              client, on_block)
    check_rgb(cfg.features.rgb, paths.stack)
    ground = (scoring.read_ground(paths.labels, paths.inventory_ids, paths.split)
              if cfg.map.score_areas else None)
    return run(cfg.map, registry=cfg.registry, feature_set=cfg.features.set,
               rgb=cfg.features.rgb, stack=paths.stack, models=paths.models, maps=paths.maps,
               reports=paths.reports, ground=ground, model_uri=model_uri, client=client,
               on_block=on_block)


def _map_new_stack(cfg: Params, stack: Path, out: Path, model_uri: str | None, client: Any,
                   on_block: OnBlock | None) -> dict[str, Any]:
    if not stack.is_file():
        raise InputError(f"{stack}: file not found; --stack takes a stack GeoTIFF built by "
                         "`landslide prepare` from your own layers (paths.stack)")
    written = [*outputs(out, PREFIX["champion"]).values(), out / "map_summary.json",
               out / "map_preview.png", out / f"{PREFIX['champion']}.stac.json"]
    if any(path.resolve() == stack.resolve() for path in written):
        raise InputError(f"--out {out}: the map would overwrite its own input {stack}; "
                         "choose another folder")
    settings = replace(cfg.map, score_areas=False, compare_baseline=False)
    return run(settings, registry=cfg.registry, feature_set=cfg.features.set,
               rgb=cfg.features.rgb, stack=str(stack), models=cfg.paths.models, maps=str(out),
               reports=str(out), model_uri=model_uri, client=client, on_block=on_block)
