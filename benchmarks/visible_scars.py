"""Window models against patch segmenters on an area where the scars can be seen.

    .venv/bin/python benchmarks/visible_scars.py [--size 320] [--seed 0]
        [--models forest,baseline,glm] [--segmenters unet] [--keep DIR] [--json]
    .venv/bin/python benchmarks/visible_scars.py --study unet,segmatch,segssgan,forest
        [--budgets 0.1,1.0] [--keep DIR] [--seeds 0,1,2] [-- --train.consistency.threshold 0.9]

Chattogram cannot answer whether segmenting patches finds landslides better than classifying
13 x 13 windows: its inventory marks are fixed-size circles and every model there reaches only
2 to 3 times a random map's AUPRC. This builds a synthetic area (`--size` pixels a side at
10 m) where scars are visible, then runs the real pipeline on it through the `landslide`
command (prepare, sample, train, fit, segment, calibrate, evaluate) and prints each model's
test-area map scores, every pixel at the real prevalence. With `--study KINDS` it runs the
label-efficiency study instead (`landslide study`: those kinds, `--budgets` of the labelled
training polygons, `--seeds`) and prints its paired answers; settings after `--` go to
`landslide study` as they are (a variant of a learner's settings). A kept folder whose area
is already prepared and sampled is reused, so variants are compared on the same samples.

The area: smooth hills (a DEM), vegetation in four Sentinel-2-like bands with texture, and
three kinds of bare ground with one and the same spectrum: landslide scars (tapered bodies
8 to 24 pixels long, 3 to 6 wide, running downslope, the inventory as a 0/1 mask), fields
(rectangles) and roads (2-pixel lines). A scar's pixel is told from a field's or a road's
only by its shape, its orientation and the slope around it: the question a window of 130 m
and a patch of 640 m answer differently. It is a sanity check of the method, not a
measurement of any real area: real scars are judged on real areas.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import yaml
from rasterio.transform import from_origin
from scipy import ndimage

from landslide_ssgan.evaluation.budgets import summary_table
from landslide_ssgan.models.learners import learner, of_stage

ROOT = Path(__file__).resolve().parents[1]
CRS = "EPSG:32646"
PIXEL = 10.0
VEGETATION = np.array([0.04, 0.06, 0.04, 0.30])  # B4, B3, B2, B8
BARE = np.array([0.14, 0.12, 0.10, 0.20])


def terrain(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth hills: a sum of Gaussian bumps, metres."""
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    dem = np.zeros((size, size))
    for _ in range(max(8, size // 25)):
        r, c = rng.uniform(0, size, 2)
        sigma, height = rng.uniform(size / 16, size / 5), rng.uniform(60, 300)
        dem += height * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * sigma ** 2))
    return dem


def scar(size: int, dem: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One tapered body running downslope from a steep pixel."""
    dy, dx = np.gradient(dem, PIXEL)
    steep = np.hypot(dy, dx)
    candidates = np.flatnonzero(steep > np.quantile(steep, 0.6))
    r0, c0 = np.unravel_index(rng.choice(candidates), dem.shape)
    direction = -np.array([dy[r0, c0], dx[r0, c0]]) / max(steep[r0, c0], 1e-9)
    length, width = rng.uniform(8, 24), rng.uniform(3, 6)
    rows, cols = np.mgrid[0:size, 0:size].astype(float)
    along = (rows - r0) * direction[0] + (cols - c0) * direction[1]
    across = -(rows - r0) * direction[1] + (cols - c0) * direction[0]
    taper = width / 2 * (1 - 0.6 * np.clip(along / length, 0, 1))  # wide head, narrow run-out
    return (along >= 0) & (along <= length) & (np.abs(across) <= taper)


def confounders(size: int, rng: np.random.Generator) -> np.ndarray:
    """Fields (rectangles) and roads (2-pixel lines) of bare ground, anywhere."""
    bare = np.zeros((size, size), bool)
    for _ in range(size * size // 2500):
        r, c = rng.integers(0, size - 12, 2)
        h, w = rng.integers(4, 12, 2)
        bare[r:r + h, c:c + w] = True
    rows, cols = np.mgrid[0:size, 0:size]
    for _ in range(max(2, size // 80)):
        angle, offset = rng.uniform(0, math.pi), rng.uniform(0, size)
        distance = np.abs(np.cos(angle) * rows + np.sin(angle) * cols - offset)
        bare |= distance < 1.0
    return bare


def build_area(folder: Path, size: int, seed: int) -> None:
    """optical.tif (B4, B3, B2, B8), dem.tif and mask.tif (1 scar, 0 not) in `folder`."""
    rng = np.random.default_rng(seed)
    dem = terrain(size, rng)
    scars = np.zeros((size, size), bool)
    for _ in range(size * size // 1500):
        scars |= scar(size, dem, rng)
    bare = confounders(size, rng) & ~ndimage.binary_dilation(scars, iterations=2)
    texture = ndimage.gaussian_filter(rng.normal(size=(4, size, size)), (0, 2, 2)) * 4
    optical = VEGETATION[:, None, None] * (1 + 0.15 * texture)
    soil = BARE[:, None, None] * (1 + 0.1 * rng.normal(size=(4, size, size)))
    optical = np.where(scars | bare, soil, optical)
    optical += 0.01 * rng.normal(size=optical.shape)
    transform = from_origin(400_000, 2_500_000 + size * PIXEL, PIXEL, PIXEL)
    folder.mkdir(parents=True, exist_ok=True)
    layers = (("optical.tif", optical, "float32"), ("dem.tif", dem[None], "float32"),
              ("mask.tif", scars[None].astype("uint8"), "uint8"))
    for name, data, dtype in layers:
        with rasterio.open(folder / name, "w", driver="GTiff", width=size, height=size,
                           count=len(data), dtype=dtype, crs=CRS, transform=transform) as dst:
            dst.write(data.astype(dtype))
            if name == "optical.tif":
                dst.descriptions = ("B4", "B3", "B2", "B8")


def area_params(folder: Path, models: list[str], segmenters: list[str]) -> Path:
    """The project's params.yaml pointed at the area, its outputs in `folder`."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["prepare"] = {
        "grid": {"crs": CRS, "resolution": PIXEL, "extent_layer": "optical"},
        "layers": {
            "optical": {"path": str(folder / "optical.tif"), "kind": "optical",
                        "role": "optical", "bands": ["B4", "B3", "B2", "B8"]},
            "elevation": {"path": str(folder / "dem.tif"), "kind": "continuous",
                          "role": "factor"},
            "slope": {"kind": "derived", "role": "factor", "derive": "slope",
                      "source": "elevation"},
            "aspect": {"kind": "derived", "role": "factor", "derive": "aspect",
                       "source": "elevation"},
            "ndvi": {"kind": "derived", "role": "factor", "derive": "ndvi",
                     "source": "optical", "red": "B4", "nir": "B8"}},
        "inventory": {"path": str(folder / "mask.tif"), "landslide": ["1"], "stable": ["0"]}}
    for key, value in raw["paths"].items():
        raw["paths"][key] = str(folder / "out" / value)
    networks = [m for m in models if m in of_stage("train")]
    raw["evaluate"].update({"feature_sets": ["joint"], "networks": networks,
                            "classifiers": [m for m in models if m not in networks],
                            "segmenters": segmenters})
    raw["registry"]["kinds"] = models + segmenters
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def landslide(*args: str, params: Path, env: dict[str, str]) -> None:
    command = [str(Path(sys.executable).with_name("landslide")), *args, "--params", str(params)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"landslide {' '.join(args)} failed: {done.stderr.strip()[-500:]}")


def study(args: argparse.Namespace) -> None:
    """The label-efficiency study on the area; its answer lines and map table."""
    folder = args.keep or Path(tempfile.mkdtemp(prefix="visible-scars-"))
    try:
        params = folder / "params.yaml"
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
        if not (folder / "out" / "data" / "samples").exists():
            build_area(folder, args.size, args.seed)
            params = area_params(folder, ["forest"], [])  # evaluate's lists: unused here
            landslide("prepare", params=params, env=env)
            landslide("sample", params=params, env=env)
        landslide("study", "--study.models", f"[{args.study}]", "--study.budgets",
                  f"[{args.budgets}]", "--study.seeds", f"[{args.seeds}]",
                  "--study.variants", "{}", *args.settings, params=params, env=env)
        report = (folder / "out" / "reports" / "label_efficiency.md").read_text()
        runs = pd.read_csv(folder / "out" / "reports" / "label_efficiency.csv")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"visible scars, {args.size} x {args.size} pixels, seed {args.seed}: label efficiency")
    for section in report.split("\n## ")[1:]:
        if section.startswith(("The answer", "The map")):
            print("## " + section.strip() + "\n")
    print("Validation-area AUPRC over seeds (what to compare settings by):")
    print(summary_table(runs[runs.split == "spatial"], ["val_map_auprc"]).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="forest,baseline,glm")
    parser.add_argument("--segmenters", default="unet")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--study", help="kinds of a label-efficiency study to run instead")
    parser.add_argument("--budgets", default="0.1,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("settings", nargs="*", help="after --: settings for landslide study")
    args = parser.parse_args()
    if args.study:
        study(args)
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="visible-scars-"))
    models = [m for m in args.models.split(",") if m]
    segmenters = [m for m in args.segmenters.split(",") if m]
    try:
        build_area(folder, args.size, args.seed)
        params = area_params(folder, models, segmenters)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
        landslide("prepare", params=params, env=env)
        landslide("sample", params=params, env=env)
        for kind in (*models, *segmenters):
            landslide(learner(kind).stage, kind, params=params, env=env)
        landslide("calibrate", params=params, env=env)
        landslide("evaluate", params=params, env=env)
        scores = json.loads((folder / "out" / "reports" / "map_evaluation_details.json")
                            .read_text())
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    rows = {kind: {k: result["test"]["all"][k] for k in ("auprc", "auroc", "f1", "iou",
                                                         "prevalence")}
            for kind, result in scores.items()}
    print(f"visible scars, {args.size} x {args.size} pixels, seed {args.seed}: test area, "
          "every pixel")
    print(f"{'model':10s} {'AUPRC':>7s} {'AUROC':>7s} {'F1':>7s} {'IoU':>7s}")
    for kind, row in rows.items():
        print(f"{kind:10s} {row['auprc']:7.3f} {row['auroc']:7.3f} {row['f1']:7.3f} "
              f"{row['iou']:7.3f}")
    best_window = max(rows[k]["auprc"] for k in models) if models else float("nan")
    for kind in segmenters:
        print(f"{kind} / best window model, AUPRC: {rows[kind]['auprc'] / best_window:.2f}")
    if args.json:
        print(json.dumps({"size": args.size, "seed": args.seed, "scores": rows}))


if __name__ == "__main__":
    main()
