"""Render a map folder's outputs as QGIS draws them, headless, to check their styles by eye.

Runs with the system's PyQGIS, not the project's environment (QGIS is not a pip package):

    sudo apt-get install python3-qgis            # Debian 12: QGIS 3.22
    QT_QPA_PLATFORM=offscreen python3 scripts/render_in_qgis.py maps/ [--out maps_in_qgis.png]

Each layer is opened the way a user's drag-and-drop opens it, so the styles it shows are the
ones QGIS found on its own (the `.qml` beside each COG, the GeoPackage's `layer_styles`). Left:
the probability COG; right: the class COG under the landslide bodies. The renderer each layer
got is printed, and the script exits non-zero if a layer opens unstyled.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapLayer,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QImage, QPainter  # noqa: E402

EXPECTED = {"probability": "singlebandpseudocolor", "class": "paletted",
            "bodies": "SimpleFill #d7191c"}  # QGIS's own default is a random colour


def renderer_of(layer: QgsMapLayer) -> str:
    """The renderer QGIS chose for a layer: a raster's type, a polygon's fill symbol layer
    and its outline colour."""
    if isinstance(layer, QgsRasterLayer):
        return str(layer.renderer().type())
    symbol = layer.renderer().symbol() if hasattr(layer.renderer(), "symbol") else None
    if symbol is None:
        return "none"
    fill = symbol.symbolLayer(0)
    return f"{fill.layerType()} {fill.strokeColor().name()}"


def render(layers: list[QgsMapLayer], extent: object, side: int) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers(layers)  # the first is drawn on top
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(side, side))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a map folder (maps/ or map --out's)")
    parser.add_argument("--prefix", default="landslide", help="landslide or baseline")
    parser.add_argument("--out", type=Path, default=Path("maps_in_qgis.png"))
    parser.add_argument("--side", type=int, default=800, help="pixels per panel")
    args = parser.parse_args()
    polygons = "landslides.gpkg" if args.prefix == "landslide" else \
        f"{args.prefix}_landslides.gpkg"
    app = QgsApplication([], False)
    app.initQgis()
    layers = {
        "probability": QgsRasterLayer(str(args.folder / f"{args.prefix}_probability.tif"),
                                      "probability"),
        "class": QgsRasterLayer(str(args.folder / f"{args.prefix}_class.tif"), "class"),
        "bodies": QgsVectorLayer(f"{args.folder / polygons}|layername=landslides", "bodies",
                                 "ogr")}
    unstyled = []
    for name, layer in layers.items():
        if not layer.isValid():
            print(f"{name}: QGIS cannot open it", file=sys.stderr)
            return 2
        got = renderer_of(layer)
        print(f"{name:12s} {got}")
        unstyled += [name] if got != EXPECTED[name] else []
    extent = layers["probability"].extent()
    left = render([layers["probability"]], extent, args.side)
    right = render([layers["bodies"], layers["class"]], extent, args.side)
    image = QImage(2 * args.side, args.side, QImage.Format_ARGB32)
    painter = QPainter(image)
    painter.drawImage(0, 0, left)
    painter.drawImage(args.side, 0, right)
    painter.end()
    image.save(str(args.out))
    print(f"-> {args.out}")
    app.exitQgis()
    if unstyled:
        print(f"opened without their style: {', '.join(unstyled)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
