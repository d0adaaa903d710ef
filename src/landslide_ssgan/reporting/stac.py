"""A STAC item for each map run, so a catalogue (or QGIS's STAC browser) finds the maps,
knows what each file holds and which model made them.

The item describes the champion's map: its COGs, styles, polygons, preview and summary as
assets with relative links, the projection of the grid, the classes of the class raster
(classification extension), the class raster and the polygons as labels (label extension),
and the model that made them (the Machine Learning Model extension, MLM, which replaced the
older ml-model extension).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac

from landslide_ssgan.reporting.styles import CLASS_COLOURS, CLASS_NAMES

EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "mlm": "https://stac-extensions.github.io/mlm/v1.4.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA = {".tif": COG, ".gpkg": "application/geopackage+sqlite3", ".qml": "text/xml",
         ".png": "image/png", ".json": "application/json"}
ROLES = {"probability": ["data"], "class": ["data", "labels"], "polygons": ["data", "labels"],
         "probability_style": ["style"], "class_style": ["style"], "preview": ["overview"],
         "summary": ["metadata"]}


def _classes() -> list[dict[str, Any]]:
    return [{"value": value, "name": name.replace(" ", "-"), "description": name,
             "color_hint": "".join(f"{c:02X}" for c in CLASS_COLOURS[value][:3])}
            for value, name in CLASS_NAMES.items()]


def map_item(item_id: str, files: Mapping[str, Path], folder: Path, *,
             bbox_wgs84: tuple[float, float, float, float], epsg: int | None,
             shape: tuple[int, int], transform: tuple[float, ...], created: datetime,
             model: Mapping[str, Any]) -> dict[str, Any]:
    """The item as a dict, its asset links relative to `folder` (where it is written; an
    asset elsewhere, such as reports/map_preview.png, gets a `../` link).
    `model`: kind, uri, version, bands (in order), window (or patch) size, framework,
    threshold and probability scale."""
    west, south, east, north = bbox_wgs84
    footprint = {"type": "Polygon", "coordinates": [[[west, south], [east, south],
                                                     [east, north], [west, north],
                                                     [west, south]]]}
    item = pystac.Item(id=item_id, geometry=footprint, bbox=list(bbox_wgs84),
                       datetime=created, properties={
                           "proj:code": f"EPSG:{epsg}" if epsg else None,
                           "proj:shape": list(shape), "proj:transform": list(transform),
                           **_model_fields(model), **_label_fields(model)})
    item.stac_extensions = sorted(EXTENSIONS.values())
    for key, path in files.items():
        extra = {"classification:classes": _classes()} if key == "class" else {}
        item.add_asset(key, pystac.Asset(
            href=os.path.relpath(path, folder), media_type=MEDIA[Path(path).suffix],
            roles=ROLES[key], title=key.replace("_", " "), extra_fields=extra))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _model_fields(model: Mapping[str, Any]) -> dict[str, Any]:
    size = int(model["window"])
    bands = list(model["bands"])
    patch = model.get("segmenter", False)
    return {
        "mlm:name": f"landslide-{model['kind']}",
        "mlm:architecture": model["kind"],
        "mlm:tasks": ["semantic-segmentation" if patch else "classification"],
        "mlm:framework": model["framework"],
        "mlm:input": [{"name": f"{size} x {size} {'patches' if patch else 'windows'} of the "
                               "stack's bands", "bands": bands,
                       "input": {"shape": [-1, size, size, len(bands)],
                                 "dim_order": ["batch", "height", "width", "bands"],
                                 "data_type": "float32"}}],
        "mlm:output": [{"name": "landslide probability", "tasks": [
            "semantic-segmentation" if patch else "classification"],
            "result": {"shape": [-1, 1], "dim_order": ["batch", "class"],
                       "data_type": "float32"},
            "classification:classes": _classes()}],
        "landslide:model_uri": model["uri"],
        "landslide:model_version": model.get("version"),
        "landslide:threshold": model["threshold"],
        "landslide:probability_scale": model["scale"],
    }


def _label_fields(model: Mapping[str, Any]) -> dict[str, Any]:
    return {"label:description": f"landslide pixels and bodies mapped by the {model['kind']} "
                                 "model", "label:type": "raster",
            "label:properties": None, "label:tasks": ["segmentation"],
            "label:classes": [{"name": None, "classes": list(CLASS_NAMES)}]}
