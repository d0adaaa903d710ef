"""Quickstart: the registered champion, loaded as any MLflow user loads a model, answers the
windows around a few pixels of the stack, read with rasterio. Runs offline, after `dvc repro`:

    .venv/bin/python scripts/quickstart.py                 # five pixels, chosen at random
    .venv/bin/python scripts/quickstart.py --row 500 --col 300

It prints each pixel's P(landslide) as trained and at the area's prevalence (the scale of
`landslide map`), and the model's threshold on that scale (the model card says the same:
reports/model_card.md). `landslide map` does this for every pixel, fast.
"""

from __future__ import annotations

import argparse
import os
import sys

import mlflow
import numpy as np
import rasterio
from rasterio.windows import Window


def windows_around(stack: str, pixels: list[tuple[int, int]], size: int) -> np.ndarray:
    """(N, size, size, bands) float32 windows centred on the pixels, in the stack's units."""
    half = size // 2
    with rasterio.open(stack) as src:
        return np.stack([np.moveaxis(src.read(window=Window(col - half, row - half, size, size),
                                              boundless=True, fill_value=np.nan), 0, -1)
                         for row, col in pixels]).astype(np.float32)


def pixels_with_data(stack: str, count: int, step: int = 16) -> list[tuple[int, int]]:
    """`count` pixels drawn where the stack's first band has data (read every `step`-th pixel:
    a whole tile's band need not fit in memory)."""
    with rasterio.open(stack) as src:
        rows, cols = -(-src.height // step), -(-src.width // step)
        coarse = src.read(1, out_shape=(rows, cols), masked=True)
    found = np.argwhere(~np.ma.getmaskarray(coarse) & np.isfinite(coarse.filled(np.nan)))
    chosen = found[np.random.default_rng(0).choice(len(found), min(count, len(found)),
                                                   replace=False)]
    return [(int(r) * step, int(c) * step) for r, c in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/landslide-ssgan@champion")
    parser.add_argument("--stack", default="data/prepared/stack.tif")
    parser.add_argument("--row", type=int)
    parser.add_argument("--col", type=int)
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    model = mlflow.pyfunc.load_model(args.model_uri)
    size = model.metadata.get_input_schema().inputs[0].shape[1]
    if args.row is not None and args.col is not None:
        pixels = [(args.row, args.col)]
    else:
        pixels = pixels_with_data(args.stack, 5)
    windows = windows_around(args.stack, pixels, size)
    known = np.isfinite(windows).all(axis=(1, 2, 3))  # the model takes whole windows only
    if not known.any():
        print("every window holds nodata: pick pixels inside the mapped area (--row, --col)")
        return 1
    trained = model.predict(windows[known], params={"prior_correction": False})
    area = model.predict(windows[known])  # by default at the area's prevalence, as the maps
    loaded = model.unwrap_python_model().model  # the model folder: model.json, normalisation
    threshold = loaded.prior.correct_threshold(loaded.threshold)
    print(f"{args.model_uri}: {loaded.info.get('kind')} on windows of {size} x {size} pixels; "
          f"a landslide at P >= {threshold:.4g} on the area's scale")
    for (row, col), p_trained, p_area in zip(np.array(pixels)[known], trained, area,
                                             strict=True):
        print(f"pixel ({row}, {col}): P(landslide) {p_trained:.3g} as trained, "
              f"{p_area:.3g} at the area's prevalence")
    return 0


if __name__ == "__main__":
    sys.exit(main())
