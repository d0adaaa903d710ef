"""QGIS styles for the map's outputs, so an analyst's first look is a map, not a grey square.

QGIS reads a `.qml` file beside a raster of the same name as that layer's default style, and a
GeoPackage's `layer_styles` table as its layers' default styles. The probability ramp is
anchored at the map's own threshold: below half of it a pixel is transparent, so the flagged
ground stands out over any basemap whatever the area's prevalence.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

QGIS_VERSION = "3.22"  # the oldest QGIS the styles are written for (Debian 12's)
LANDSLIDE_RGB = (215, 25, 28)
CLASS_NAMES = {0: "not landslide", 1: "landslide"}
CLASS_COLOURS = {0: (224, 224, 224, 0), 1: (*LANDSLIDE_RGB, 255)}  # 0 transparent


def _hex(rgb: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb[:3])


def _document(body: str, categories: str) -> str:
    return (f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            f"<qgis version=\"{QGIS_VERSION}\" styleCategories=\"{categories}\">\n"
            f"{body}</qgis>\n")


def _raster(renderer: str) -> str:
    return _document(
        "  <pipe>\n" + renderer +
        "    <brightnesscontrast brightness=\"0\" contrast=\"0\" gamma=\"1\"/>\n"
        "    <huesaturation saturation=\"0\" grayscaleMode=\"0\" colorizeOn=\"0\"/>\n"
        "    <rasterresampler maxOversampling=\"2\"/>\n"
        "  </pipe>\n  <blendMode>0</blendMode>\n", "AllStyleCategories")


def probability_ramp(threshold: float) -> list[tuple[float, tuple[int, int, int, int], str]]:
    """(value, RGBA, legend label) stops: transparent up to half the threshold, yellow to
    orange up to the threshold, orange to dark red above it."""
    t = min(max(float(threshold), 1e-6), 1.0)
    clear, low, high = (255, 255, 178, 0), (253, 141, 60, 255), (128, 0, 38, 255)
    if t == 1.0:
        return [(0.0, clear, "0"), (1.0, low, "1 (threshold)")]
    return [(0.0, clear, "0"), (t / 2, clear, f"{t / 2:.3g} (half the threshold)"),
            (t, low, f"{t:.3g} (threshold: landslide above)"), (1.0, high, "1")]


def probability_qml(threshold: float) -> str:
    """A pseudocolour ramp for the probability COG, anchored at the map's threshold."""
    items = "".join(
        f"          <item value=\"{value:.9g}\" color=\"{_hex(rgba)}\" alpha=\"{rgba[3]}\" "
        f"label={quoteattr(label)}/>\n" for value, rgba, label in probability_ramp(threshold))
    renderer = (
        "    <rasterrenderer type=\"singlebandpseudocolor\" band=\"1\" opacity=\"1\" "
        "alphaBand=\"-1\" classificationMin=\"0\" classificationMax=\"1\" nodataColor=\"\">\n"
        "      <rasterTransparency/>\n"
        "      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>"
        "<statAccuracy>Estimated</statAccuracy><cumulativeCutLower>0.02</cumulativeCutLower>"
        "<cumulativeCutUpper>0.98</cumulativeCutUpper><stdDevFactor>2</stdDevFactor>"
        "</minMaxOrigin>\n"
        "      <rastershader>\n"
        "        <colorrampshader colorRampType=\"INTERPOLATED\" classificationMode=\"1\" "
        "clip=\"0\" minimumValue=\"0\" maximumValue=\"1\" labelPrecision=\"3\">\n"
        f"{items}"
        "        </colorrampshader>\n      </rastershader>\n    </rasterrenderer>\n")
    return _raster(renderer)


def class_qml() -> str:
    """A paletted style for the class COG: landslide in red, the rest transparent."""
    entries = "".join(
        f"        <paletteEntry value=\"{value}\" color=\"{_hex(CLASS_COLOURS[value])}\" "
        f"alpha=\"{CLASS_COLOURS[value][3]}\" label={quoteattr(name)}/>\n"
        for value, name in CLASS_NAMES.items())
    renderer = (
        "    <rasterrenderer type=\"paletted\" band=\"1\" opacity=\"1\" alphaBand=\"-1\" "
        "nodataColor=\"\">\n      <rasterTransparency/>\n"
        f"      <colorPalette>\n{entries}      </colorPalette>\n    </rasterrenderer>\n")
    return _raster(renderer)


def polygons_qml() -> str:
    """Landslide bodies as a red outline over a light red fill, so the ground shows through."""
    r, g, b = LANDSLIDE_RGB
    props = {"color": f"{r},{g},{b},64", "style": "solid", "outline_color": f"{r},{g},{b},255",
             "outline_style": "solid", "outline_width": "0.5", "outline_width_unit": "MM",
             "joinstyle": "miter"}
    layer = "".join(f"          <prop k=\"{k}\" v=\"{v}\"/>\n" for k, v in props.items())
    body = ("  <renderer-v2 type=\"singleSymbol\" symbollevels=\"0\" enableorderby=\"0\" "
            "forceraster=\"0\">\n    <symbols>\n"
            "      <symbol type=\"fill\" name=\"0\" alpha=\"1\" clip_to_extent=\"1\" "
            "force_rhr=\"0\">\n"
            "        <layer class=\"SimpleFill\" enabled=\"1\" locked=\"0\" pass=\"0\">\n"
            f"{layer}        </layer>\n      </symbol>\n    </symbols>\n"
            "    <rotation/>\n    <sizescale/>\n  </renderer-v2>\n"
            "  <layerGeometryType>2</layerGeometryType>\n")
    return _document(body, "Symbology")
