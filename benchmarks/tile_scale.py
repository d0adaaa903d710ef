"""prepare, sample, the training input and map at the size of a Sentinel-2 tile and a quarter.

    .venv/bin/python benchmarks/tile_scale.py [--size 10980] [--stages prepare,sample,map] [--json]
                                              [--keep DIR]

Stages: prepare, sample, windows, map, map-dask (the default: prepare, sample, map).

Run after `dvc repro` (it maps with the trained joint SSGAN of params.yaml). The inputs are
built from the real Chattogram rasters and vectors, mosaicked with their real values to
`--size` x `--size` pixels of 10 m (10,980 is a Sentinel-2 tile) and to half that side (a
quarter of the area):

- the Sentinel-2 image, the DEM and the land cover, each warped once onto Chattogram's 10 m
  UTM grid (as `landslide prepare` warps them) and repeated across the mosaic;
- the inventory, geology, faults and rivers copied with the same offsets.

`windows` is the training input at that size: the window source of the features.set bands
(`load_window_source` with params' `windows` section: past `in_memory_mib` a temporary
file) and one epoch of the SSGAN's batches, labelled and unlabelled, drawn from it; it
prints the windows a second it delivered. `map-dask` is `landslide map --dask` (a local
cluster of 2 workers, each reading its own blocks).

Each stage runs as `landslide <stage>` in its own process (so its peak memory is its own;
a stage that runs out of memory is reported as killed, not as a crash of the benchmark),
on temporary params that point at the mosaic and at a temporary folder, which is deleted
afterwards (with `--keep DIR`, the mosaics and every stage's outputs stay in DIR, and a
later run with the same DIR measures its stages on them without building them again). It
prints the time and peak memory of each stage at both sizes and the growth
of peak memory for 4x the area; with `--json` the last line is one JSON object holding them.
Goals (issue 16, 2 cores): every stage's peak at most 3 GiB at tile size, memory growth at
most 1.2x for 4x the area, the tile mapped in at most 4 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import geopandas as gpd  # noqa: E402
import pandas as pd  # noqa: E402
import rasterio  # noqa: E402
import yaml  # noqa: E402
from child import ChildFailed, child_json  # benchmarks/child.py: a measurement in a fresh process
from rasterio.enums import Resampling  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from landslide_ssgan.config import load_params  # noqa: E402
from landslide_ssgan.data.layers import read_raster_on_grid  # noqa: E402
from landslide_ssgan.data.stack import reference_grid  # noqa: E402

STAGES = ("prepare", "sample", "windows", "map", "map-dask")
DEFAULT = "prepare,sample,map"
RASTERS = {"sentinel2": Resampling.bilinear, "elevation": Resampling.bilinear,
           "landuse": Resampling.nearest}
VECTORS = ("lithology", "dist_faults", "dist_rivers")


def mosaic_inputs(params: dict[str, Any], side: int, out: Path) -> dict[str, Any]:
    """The raw layers as a side x side pixel mosaic of real values; the params that read it."""
    cfg = load_params("params.yaml")
    grid = reference_grid(cfg.prepare)
    layers = {layer.name: layer for layer in cfg.prepare.layers}
    raw = json.loads(json.dumps(params))
    repeats = [(r, c) for r in range(math.ceil(side / grid.height))
               for c in range(math.ceil(side / grid.width))]
    left, top = grid.transform.c, grid.transform.f
    transform = rasterio.Affine(grid.resolution, 0, left, 0, -grid.resolution, top)
    for name, resampling in RASTERS.items():
        data = read_raster_on_grid(layers[name].path or "", grid, resampling)
        path = out / f"{name}.tif"
        profile = {"driver": "GTiff", "width": side, "height": side, "count": len(data),
                   "dtype": "float32", "crs": grid.crs, "transform": transform,
                   "nodata": float("nan"), "tiled": True, "compress": "deflate",
                   "BIGTIFF": "YES"}
        with rasterio.open(path, "w", **profile) as dst:
            for r, c in repeats:
                height = min(grid.height, side - r * grid.height)
                width = min(grid.width, side - c * grid.width)
                dst.write(data[:, :height, :width], window=Window(
                    c * grid.width, r * grid.height, width, height))
            if layers[name].bands:
                dst.descriptions = tuple(layers[name].bands)
        raw["prepare"]["layers"][name]["path"] = str(path)
    offsets = [(c * grid.width * grid.resolution, -r * grid.height * grid.resolution)
               for r, c in repeats]
    for name in VECTORS:
        raw["prepare"]["layers"][name] |= {"layer": "layer", "path": _copies(
            layers[name].path or "", layers[name].layer, grid, offsets, side, out / f"{name}.gpkg")}
    inventory = cfg.prepare.inventory
    raw["prepare"]["inventory"] |= {"layer": "layer", "path": _copies(
        inventory.path, inventory.layer, grid, offsets, side, out / "inventory.gpkg")}
    return raw


def _copies(path: str, layer: str | None, grid: Any, offsets: list[tuple[float, float]],
            side: int, out: Path) -> str:
    """The vector layer repeated at every offset, clipped to the mosaic's extent."""
    frame = gpd.read_file(path, layer=layer).to_crs(grid.crs)
    copies = pd.concat([frame.set_geometry(frame.geometry.translate(dx, dy))
                        for dx, dy in offsets], ignore_index=True)
    left, top = grid.transform.c, grid.transform.f
    extent = (left, top - side * grid.resolution, left + side * grid.resolution, top)
    gpd.GeoDataFrame(copies, crs=grid.crs).clip(extent).to_file(out, layer="layer")
    return str(out)


def run_stage(stage: str, params: Path, model: str, env: dict[str, str]) -> dict[str, Any]:
    """One stage in its own process: seconds and peak memory (MiB), or how it died."""
    command = [sys.executable, __file__, "--child", stage, str(params), model]
    start = time.perf_counter()
    try:
        figures = child_json(command, env)
    except ChildFailed as failed:
        return {"seconds": round(time.perf_counter() - start, 1), "peak_mib": None,
                "failed": str(failed if failed.line else f"{failed}: killed")[:200]}
    return {"seconds": round(time.perf_counter() - start, 1), **figures}


def child(stage: str, params: str, model: str) -> None:
    """Runs `landslide <stage>` (or the training input) in this process and prints its peak
    memory."""
    from landslide_ssgan.cli import app

    if stage == "windows":
        print(json.dumps(training_input(params) | {"peak_mib": round(own_peak_mib())}))
        return
    arguments = [stage.removesuffix("-dask"), "--params", params] + (
        ["--model-uri", model] if stage.startswith("map") else []) + (
        ["--dask", "--workers", "2"] if stage == "map-dask" else [])
    code = app(arguments, standalone_mode=False)  # a refused input returns its exit code
    if code:
        sys.exit(code)
    workers = {}
    if stage == "map-dask":  # the largest worker's peak; an upper bound, as it may carry the
        # high-water mark of this process at the moment the worker was started
        workers = {"worker_peak_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    print(json.dumps({"peak_mib": round(own_peak_mib())} | workers))


def training_input(params: str) -> dict[str, Any]:
    """The window source training would make, its generator value range, and one epoch of
    SSGAN batches drawn from it: how many windows, how fast, from memory or from a file."""
    from landslide_ssgan.data.source import load_window_source
    from landslide_ssgan.data.windows import FileWindows
    from landslide_ssgan.models.learners import learner
    from landslide_ssgan.training.fit import training_dataset

    cfg = load_params(params)
    paths = cfg.paths
    start = time.perf_counter()
    source = load_window_source(paths.stack, paths.samples, paths.norm, cfg.features.set,
                                cfg.sample.window, cfg.windows)
    source.value_range()
    made = time.perf_counter() - start
    start, windows = time.perf_counter(), 0
    for labelled, unlabelled in training_dataset(learner("ssgan"), source, cfg.train.batch_size,
                                                 cfg.seed):
        windows += len(labelled[0]) + len(unlabelled)
    drawn = time.perf_counter() - start
    return {"source": "file" if isinstance(source.pixels, FileWindows) else "memory",
            "source_s": round(made, 1), "windows": windows,
            "windows_per_s": round(windows / drawn)}


def own_peak_mib() -> float:
    """This process's own peak resident memory. Not ru_maxrss: Linux carries the high-water
    mark of the image that execve replaced into it, and a child started by vfork (as Python's
    subprocess does) replaces the benchmark's own image, so ru_maxrss reported the larger of
    the stage's peak and the benchmark's (which had just written the mosaic through GDAL's
    cache). VmHWM belongs to the new address space alone."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(side: int, work: Path, model: str, stages: tuple[str, ...],
            keep: bool = False) -> dict[str, Any]:
    folder = work / str(side)
    params = folder / "params.yaml"
    if keep and params.is_file():  # the mosaic (and what earlier stages wrote) of a kept run
        return _run_stages(side, folder, params, model, stages, keep)
    base = yaml.safe_load(Path("params.yaml").read_text())
    folder.mkdir(parents=True, exist_ok=keep)
    raw = mosaic_inputs(base, side, folder)
    raw["paths"] = {k: str(folder / "out" / v) for k, v in {
        "stack": "stack.tif", "labels": "labels.tif", "inventory_ids": "ids.tif",
        "samples": "samples.csv", "norm": "norm.json", "split": "split.tif",
        "trained": "trained", "models": "models", "maps": "maps",
        "reports": "reports"}.items()}
    raw["map"].update({"compare_baseline": False, "score_areas": False})
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return _run_stages(side, folder, params, model, stages, keep)


def _run_stages(side: int, folder: Path, params: Path, model: str, stages: tuple[str, ...],
                keep: bool) -> dict[str, Any]:
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    results = {}
    for stage in stages:
        results[stage] = run_stage(stage, params, model, env)
        extra = {k: v for k, v in results[stage].items() if k not in ("seconds", "peak_mib")}
        print(f"{side:>6} x {side:<6} {stage:8s} {results[stage]['seconds']:8.1f} s  "
              f"peak {results[stage]['peak_mib'] or 0:8,} MiB  {extra or ''}", flush=True)
        if "failed" in results[stage]:
            break
    if not keep:
        shutil.rmtree(folder)
    return {"pixels": side * side, "stages": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="side of the large mosaic")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--stages", default=DEFAULT,
                        help=f"comma-separated, run in the order {', '.join(STAGES)} (sample "
                             "needs prepare, windows needs sample, map needs prepare)")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="build the mosaics in DIR and keep them, with every stage's "
                             "outputs; a later run with the same DIR reuses them (e.g. "
                             "--stages sample after a run with prepare)")
    args = parser.parse_args()
    stages = tuple(s for s in STAGES if s in args.stages.split(","))
    cfg = load_params("params.yaml")
    model = str(Path(cfg.paths.models) / cfg.features.set / "ssgan")
    with tempfile.TemporaryDirectory() as tmp:
        work, keep = (args.keep, True) if args.keep else (Path(tmp), False)
        quarter = measure(args.size // 2, work, model, stages, keep)
        full = measure(args.size, work, model, stages, keep)
    growth = {}
    for stage in stages:
        small, large = (quarter["stages"].get(stage, {}).get("peak_mib"),
                        full["stages"].get(stage, {}).get("peak_mib"))
        growth[stage] = round(large / small, 2) if small and large else None
        print(f"memory growth for 4x the area, {stage:8s}: "
              f"{growth[stage] if growth[stage] is not None else 'n/a'}")
    if args.json:
        print(json.dumps({
            "size": args.size, "quarter": quarter, "full": full,
            "peak_mib": {s: full["stages"].get(s, {}).get("peak_mib") for s in stages},
            "memory_growth": growth}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
