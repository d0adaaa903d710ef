"""The map stage on the pipeline's champion: COGs, polygons, styles, tags and STAC, new
imagery, prior correction, failures, and a local Dask cluster."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from landslide_ssgan.cli import app
from tests.conftest import write_params
from tests.pipeline.conftest import runner


def test_map_writes_cogs_polygons_summary_and_preview(pipeline: dict[str, Any]) -> None:
    import geopandas as gpd
    import rasterio

    from landslide_ssgan.config import load_params
    from landslide_ssgan.data.blocks import body_polygons, is_cog, stack_grid
    from landslide_ssgan.inference.bodies import landslide_bodies

    raw = pipeline["raw"]
    maps, reports = Path(raw["paths"]["maps"]), Path(raw["paths"]["reports"])
    summary = json.loads((reports / "map_summary.json").read_text())
    assert summary["champion"]["uri"] == "models:/landslide-ssgan@champion"
    assert summary["champion"]["version"].isdigit()  # the registry version that was mapped
    assert summary["champion"]["dense_inference"] is True
    for prefix, polygons in (("landslide", "landslides.gpkg"),
                             ("baseline", "baseline_landslides.gpkg")):
        probability, classes = maps / f"{prefix}_probability.tif", maps / f"{prefix}_class.tif"
        assert is_cog(probability) and is_cog(classes)
        with rasterio.open(probability) as src, rasterio.open(classes) as cls:
            values, labels = src.read(1), cls.read(1)
            assert src.crs.to_epsg() == 32646
        valid = np.isfinite(values)
        assert np.array_equal(labels == 255, ~valid)
        assert ((values[valid] >= 0) & (values[valid] <= 1)).all()
        bodies = gpd.read_file(maps / polygons, layer="landslides")
        row = summary["champion" if prefix == "landslide" else "baseline"]
        assert len(bodies) == row["count"]
        assert list(bodies["id"]) == list(range(1, len(bodies) + 1))
        np.testing.assert_allclose(bodies.geometry.area, bodies["area_m2"])
        assert bodies.geometry.is_valid.all()
        assert (bodies["area_m2"] >= raw["map"]["min_area_m2"]).all()
        assert bodies["area_m2"].sum() / 1e6 == pytest.approx(row["total_area_km2"])
        assert (labels == 1).sum() * 100.0 == pytest.approx(bodies["area_m2"].sum())
        # found block by block (map.block_size 100: bodies cross the seams), as the whole
        # map at once finds them
        cfg = dataclasses.replace(load_params(pipeline["root"] / "params.yaml").map,
                                  threshold=row["threshold"])
        whole = landslide_bodies(values, cfg, 100.0)
        np.testing.assert_array_equal(labels == 1, whole.labels > 0)
        np.testing.assert_array_equal(bodies["area_m2"], whole.areas_m2)
        np.testing.assert_allclose(bodies["mean_probability"], whole.mean_probability,
                                   rtol=1e-12)
        expected = body_polygons(whole.labels, stack_grid(probability))
        assert all(bodies.geometry.geom_equals(expected.geometry))
    assert (reports / "map_preview.png").stat().st_size > 10_000
    assert not list(maps.glob(".*"))  # no block store or staging file left behind


def test_maps_carry_their_making_and_open_styled_in_qgis(pipeline: dict[str, Any]) -> None:
    """Tags (model, version, threshold, scale, date, attribution), units, a colour table and
    class names, QGIS styles beside the rasters and in the GeoPackage (version 1.2)."""
    import sqlite3
    import xml.etree.ElementTree as ET

    import pystac
    import rasterio

    raw = pipeline["raw"]
    maps, reports = Path(raw["paths"]["maps"]), Path(raw["paths"]["reports"])
    champion = json.loads((reports / "map_summary.json").read_text())["champion"]
    with rasterio.open(maps / "landslide_probability.tif") as src:
        tags = src.tags()
        assert src.units == ("probability (0 to 1)",)
    assert tags["MODEL_URI"] == "models:/landslide-ssgan@champion"
    assert tags["MODEL_VERSION"] == champion["version"]
    assert float(tags["THRESHOLD"]) == pytest.approx(champion["threshold"], rel=1e-5)
    assert tags["PROBABILITY_SCALE"] == champion["probabilities"]
    assert tags["MODEL_BANDS"].split(",")[0] and tags["CREATED"].startswith("20")
    assert tags["ATTRIBUTION"] == raw["map"]["attribution"]
    with rasterio.open(maps / "landslide_class.tif") as src:
        assert src.tags()["MODEL_URI"] == tags["MODEL_URI"]
        assert src.tags(1) == {"CLASS_0": "not landslide", "CLASS_1": "landslide"}
        assert src.colormap(1)[1] == (215, 25, 28, 255)  # TIFF palettes hold no alpha: QML does
    ramp = ET.parse(maps / "landslide_probability.qml").getroot().findall(".//item")
    values = [float(item.get("value", "nan")) for item in ramp]
    assert values == sorted(values) and champion["threshold"] in [pytest.approx(v) for v in
                                                                 values]
    palette = ET.parse(maps / "landslide_class.qml").getroot().findall(".//paletteEntry")
    assert [entry.get("label") for entry in palette] == ["not landslide", "landslide"]
    with sqlite3.connect(maps / "landslides.gpkg") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (10200,)  # GeoPackage 1.2
        name, default, qml = db.execute("SELECT f_table_name, useAsDefault, styleQML "
                                        "FROM layer_styles").fetchone()
    assert (name, default) == ("landslides", 1)
    assert ET.fromstring(qml.split("\n", 1)[1]).find(".//layer").get("class") == "SimpleFill"
    item = pystac.Item.from_file(str(maps / "landslide.stac.json"))  # the map's STAC item
    assert {"probability", "class", "polygons", "preview", "summary"} <= set(item.assets)
    assert all((maps / asset.href).resolve().is_file() for asset in item.assets.values())
    assert item.assets["class"].extra_fields["classification:classes"][1]["name"] == "landslide"
    west, south, east, north = item.bbox
    assert 91.75 < west < east < 91.87 and 22.30 < south < north < 22.50  # in Chattogram
    assert item.properties["mlm:input"][0]["bands"] == tags["MODEL_BANDS"].split(",")
    assert item.properties["landslide:model_uri"] == tags["MODEL_URI"]
    assert item.properties["proj:code"] == "EPSG:32646"


def test_map_of_new_imagery_goes_to_its_own_folder(pipeline: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """`landslide map --stack FILE --out DIR`: the champion maps another stack, unscored;
    a stack without the model's bands, or an --out that holds the stack, is one line."""
    import rasterio

    raw = pipeline["raw"]
    stack = tmp_path / "other" / "stack.tif"
    stack.parent.mkdir()
    shutil.copy(raw["paths"]["stack"], stack)
    args = ["map", "--params", str(pipeline["root"] / "params.yaml"), "--stack", str(stack)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 0, (result.output, repr(result.exception))
        summary = json.loads((tmp_path / "out" / "map_summary.json").read_text())
        assert set(summary) & {"champion", "baseline"} == {"champion"}
        assert summary["champion"]["areas"] == {}
        assert (tmp_path / "out" / "landslides.gpkg").is_file()
        assert (tmp_path / "out" / "landslide_class.qml").is_file()
        assert (tmp_path / "out" / "landslide.stac.json").is_file()
        with rasterio.open(raw["paths"]["stack"]) as src, rasterio.open(
                tmp_path / "out" / "landslide_probability.tif") as new, rasterio.open(
                Path(raw["paths"]["maps"]) / "landslide_probability.tif") as old:
            assert new.shape == src.shape
            np.testing.assert_allclose(new.read(1), old.read(1), rtol=1e-5)
        with rasterio.open(stack) as src:
            profile, first = src.profile | {"count": 1}, src.read(1)
            name = src.descriptions[0]
        one_band = tmp_path / "one_band.tif"
        with rasterio.open(one_band, "w", **profile) as dst:
            dst.write(first, 1)
            dst.set_band_description(1, name)
        bad = runner.invoke(app, [*args[:-1], str(one_band), "--out", str(tmp_path / "x")])
        stack.rename(stack.with_name("landslide_probability.tif"))
        onto = runner.invoke(app, [*args[:-1], str(stack.with_name("landslide_probability.tif")),
                                   "--out", str(stack.parent)])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.output
    assert "one_band.tif: the model needs bands" in bad.stderr
    assert not (tmp_path / "x" / "landslide_probability.tif").exists()
    assert onto.exit_code == 2 and "would overwrite its own input" in onto.stderr


def test_prior_correction_moves_probabilities_not_the_class_map(pipeline: dict[str, Any],
                                                               tmp_path: Path) -> None:
    import rasterio

    raw = json.loads(json.dumps(pipeline["raw"]))
    assert raw["map"]["prior_correction"] is True  # the pipeline's map is corrected
    raw["paths"]["maps"], raw["paths"]["reports"] = str(tmp_path / "maps"), str(tmp_path)
    raw["map"].update({"prior_correction": False, "compare_baseline": False})
    params = write_params(raw, tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        result = runner.invoke(app, ["map", "--params", str(params)])
    assert result.exit_code == 0, result.output

    def read(folder: str, name: str) -> np.ndarray:
        with rasterio.open(Path(folder) / name) as src:
            return src.read(1)

    ours = pipeline["raw"]["paths"]["maps"]
    np.testing.assert_array_equal(read(ours, "landslide_class.tif"),
                                  read(raw["paths"]["maps"], "landslide_class.tif"))
    raw_p, corrected = (read(raw["paths"]["maps"], "landslide_probability.tif"),
                        read(ours, "landslide_probability.tif"))
    summary = json.loads((Path(pipeline["raw"]["paths"]["reports"]) / "map_summary.json")
                         .read_text())
    assert "prevalence" in summary["champion"]["probabilities"]
    valid = np.isfinite(raw_p)
    assert np.nanmean(corrected) < np.nanmean(raw_p)
    np.testing.assert_array_equal(np.isfinite(corrected), valid)


def test_a_map_that_fails_at_the_end_leaves_the_previous_outputs_whole(
        pipeline: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview is drawn last; if it fails, no new map sits beside the old summary."""
    from landslide_ssgan.reporting import plots

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["maps"], raw["paths"]["reports"] = str(tmp_path / "maps"), str(tmp_path / "r")
    raw["map"].update({"compare_baseline": False, "score_areas": False})
    params = write_params(raw, tmp_path / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    assert runner.invoke(app, ["map", "--params", str(params)]).exit_code == 0
    summary = json.loads((tmp_path / "r" / "map_summary.json").read_text())
    assert summary["champion"]["areas"] == {} and summary["champion"]["count"] > 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
              and p.name != "params.yaml"}

    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(plots, "map_preview", broken)
    raw["map"]["threshold"] = 0.99  # a different map, so a half-finished run would show
    params = write_params(raw, tmp_path / "params.yaml")
    result = runner.invoke(app, ["map", "--params", str(params)])
    assert result.exit_code != 0
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
             and p.name != "params.yaml"}
    assert after == before  # the old maps, polygons, summary and preview, no staged leftovers


def test_map_with_a_model_that_does_not_exist_is_one_line(pipeline: dict[str, Any],
                                                          tmp_path: Path) -> None:
    params = write_params(pipeline["raw"], tmp_path / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        result = runner.invoke(app, ["map", "--params", str(params), "--model-uri",
                                     "models:/no-such-model@champion"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: model models:/no-such-model@champion")
    assert len(result.output.strip().splitlines()) == 1


def test_map_on_a_local_dask_cluster_writes_the_same_rasters(pipeline: dict[str, Any],
                                                             tmp_path: Path) -> None:
    import rasterio

    folder = Path(pipeline["raw"]["paths"]["models"]) / "joint" / "ssgan"
    outputs = {}
    for name, extra in (("single", []), ("dask", ["--dask", "--workers", "2"])):
        raw = json.loads(json.dumps(pipeline["raw"]))
        raw["paths"]["maps"] = str(tmp_path / name / "maps")
        raw["paths"]["reports"] = str(tmp_path / name / "reports")
        params = write_params(raw, tmp_path / f"{name}.yaml")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
            result = runner.invoke(app, ["map", "--params", str(params), "--model-uri",
                                         str(folder), *extra])
        assert result.exit_code == 0, (result.output, repr(result.exception))
        with rasterio.open(tmp_path / name / "maps" / "landslide_probability.tif") as src:
            outputs[name] = src.read(1)
    np.testing.assert_array_equal(outputs["dask"], outputs["single"])


def test_a_real_command_prints_only_the_projects_lines(pipeline: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """Library noise is filtered where it starts (quiet.py): a `landslide map` process, which
    imports TensorFlow, downloads the champion from MLflow and maps, prints its progress
    bar and its result, and nothing of TensorFlow's native logs, MLflow's download bars or
    Python's warnings."""
    import re
    import subprocess
    import sys

    stack = tmp_path / "other" / "stack.tif"
    stack.parent.mkdir()
    shutil.copy(pipeline["raw"]["paths"]["stack"], stack)
    done = subprocess.run(
        [sys.executable, "-m", "landslide_ssgan.cli", "map", "--params",
         str(pipeline["root"] / "params.yaml"), "--stack", str(stack), "--out",
         str(tmp_path / "out")], cwd=pipeline["root"], capture_output=True, text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]}, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    own = re.compile(r"map champion .*\d+%.*px/s.*|champion +\d+ landslides, .* px/s -> \S+")
    assert len(lines) == 2 and all(own.fullmatch(line.strip()) for line in lines), lines
