"""Dense inference is exact: every pixel gets what its own window gets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from landslide_ssgan.data.blocks import Block
from landslide_ssgan.data.stack import Stack, write_stack
from landslide_ssgan.data.windows import cut_windows, normalised_image
from landslide_ssgan.inference.mapping import WindowModel, map_probability, probability_map
from landslide_ssgan.models.dense import (
    dense_discriminator,
    dense_logits,
    exact_dense_twin,
    probability_of,
)
from landslide_ssgan.models.discriminator import build_discriminator


def _trained_like(channels: int) -> keras.Model:
    """Random weights and non-trivial batch-norm statistics, as after training."""
    keras.utils.set_random_seed(7)
    model = build_discriminator(13, channels, (8, 16), 16, 0.3, 0.2, outputs=3)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def test_dense_equals_per_window_on_a_real_block_with_edges(crop_stack: Stack) -> None:
    data = crop_stack.data
    mean = np.nanmean(data, axis=(1, 2))
    std = np.nanstd(data, axis=(1, 2)) + 1e-6
    bands = list(range(data.shape[0]))
    image = normalised_image(data, bands, mean, std, 13)  # zero-padded: the edges are real
    block = image[:40 + 12, -(50 + 12):]  # the top-right corner of the crop, 40 x 50 centres
    model = _trained_like(len(bands))
    twin = dense_discriminator(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in twin.layers)
    dense = dense_logits(twin, block)  # every normalisation folded into its convolution
    assert dense.shape == (40, 50, 3)
    rows, cols = np.meshgrid(np.arange(40), np.arange(50), indexing="ij")
    windows = cut_windows(block, rows.ravel(), cols.ravel(), 13)
    per_window = model.predict(windows, verbose=0)[0].reshape(40, 50, 3)
    assert np.abs(dense - per_window).max() < 1e-4


# --- whole maps: blocks, seams, nodata, resumption, Dask ----------------------------------

WINDOW = 13


@pytest.fixture(scope="module")
def map_inputs(crop_stack: Stack, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, Any]:
    """The real crop written as a stack with a hole of nodata, and a model folder as the
    train stage writes it (discriminator.keras + normalisation.json)."""
    root = tmp_path_factory.mktemp("map_inputs")
    data = crop_stack.data.copy()
    data[:, 100:112, 30:45] = np.nan  # a nodata hole inside the crop: centres there get none
    stack = Stack(data, crop_stack.grid, crop_stack.bands)
    write_stack(stack, root / "stack.tif")
    mean = np.nanmean(data, axis=(1, 2))
    std = np.nanstd(data, axis=(1, 2)) + 1e-6
    folder = root / "model"
    folder.mkdir()
    _trained_like(data.shape[0]).save(folder / "discriminator.keras")
    (folder / "normalisation.json").write_text(json.dumps({
        "bands": list(crop_stack.grid.band_names), "mean": mean.tolist(),
        "std": std.tolist(), "window": WINDOW}))
    image = normalised_image(data, list(range(data.shape[0])), mean, std, WINDOW)
    return {"root": root, "stack": root / "stack.tif", "model": folder, "image": image,
            "valid": np.isfinite(data).all(axis=0)}


def _assembled(store: Any, blocks: list[Block], shape: tuple[int, int]) -> np.ndarray:
    out = np.full(shape, -1.0, np.float32)
    for block in blocks:
        out[block.row:block.row + block.height,
            block.col:block.col + block.width] = store.load(block)
    return out


def _per_window_reference(map_inputs: dict[str, Any]) -> np.ndarray:
    """What training-time code gives every pixel: its window cut from the zero-padded,
    normalised stack and classified alone."""
    model = keras.saving.load_model(map_inputs["model"] / "discriminator.keras", compile=False)
    rows, cols = np.nonzero(map_inputs["valid"])
    windows = cut_windows(map_inputs["image"], rows, cols, WINDOW)
    expected = np.full(map_inputs["valid"].shape, np.nan, np.float32)
    expected[rows, cols] = probability_of(model.predict(windows, verbose=0)[0])
    return expected


def test_block_map_equals_per_window_across_seams_edges_and_nodata(
        map_inputs: dict[str, Any], tmp_path: Path) -> None:
    run, store, blocks = map_probability(map_inputs["stack"], map_inputs["model"],
                                         tmp_path / "store", block_size=64)
    assert run.dense and run.blocks == 16 and run.resumed_blocks == 0
    got = _assembled(store, blocks, map_inputs["valid"].shape)
    expected = _per_window_reference(map_inputs)
    assert np.array_equal(np.isnan(got), ~map_inputs["valid"])  # nodata stays nodata
    assert np.nanmax(np.abs(got - expected)) < 1e-5


def test_an_area_map_computes_only_the_area_rows_and_columns_with_the_same_values(
        map_inputs: dict[str, Any]) -> None:
    """Scoring maps only the validation or test area: a window model's blocks shrink to the
    area's rows and columns, and its pixels keep the values of the whole map."""
    valid = map_inputs["valid"]
    area = np.zeros_like(valid)
    area[10:20, 5:15] = area[40:44, 50:60] = area[100:110, 20:40] = True  # one across the hole
    model = WindowModel.load(map_inputs["model"])
    got, _ = probability_map(map_inputs["stack"], model, block_size=64, only=area)
    expected = _per_window_reference(map_inputs)
    assert np.nanmax(np.abs(got[area] - expected[area])) < 1e-5
    assert np.array_equal(np.isnan(got[area]), ~valid[area])  # the hole stays nodata
    # the first block computes rows 10 to 43, columns 5 to 59; the second 100 to 109, 20 to 39
    assert np.isnan(got[:10]).all() and np.isnan(got[44:100]).all() and np.isnan(got[110:]).all()
    assert np.isfinite(got).sum() <= 34 * 55 + 10 * 20 < 2 * 64 * 64


def test_an_architecture_without_exact_dense_form_falls_back_with_a_warning(
        crop_stack: Stack) -> None:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((WINDOW, WINDOW, 4))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.MaxPooling2D(2)(x)  # 11 -> 5: the window's last row and column ignored
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, [logits, keras.layers.Dense(3, name="features")(x)])
    with pytest.warns(UserWarning, match="per-window"):
        assert exact_dense_twin(model) is None


def test_a_killed_map_resumes_where_it_stopped(map_inputs: dict[str, Any],
                                               tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from landslide_ssgan.inference.mapping import map_probability\n"
        "map_probability(sys.argv[1], sys.argv[2], Path(sys.argv[3]), 64,\n"
        "                on_block=lambda *a: time.sleep(0.3))\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(map_inputs["stack"]),
                              str(map_inputs["model"]), str(store_dir)],
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(store_dir.glob("block_*.npy"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = len(list(store_dir.glob("block_*.npy")))
    assert 3 <= finished < 16, "the child was not stopped half-way"
    run, store, blocks = map_probability(map_inputs["stack"], map_inputs["model"], store_dir,
                                         64)
    assert run.resumed_blocks == finished
    assert run.computed_pixels == sum(b.height * b.width for b in blocks[finished:])
    fresh, fresh_store, _ = map_probability(map_inputs["stack"], map_inputs["model"],
                                            tmp_path / "fresh", 64)
    shape = map_inputs["valid"].shape
    np.testing.assert_array_equal(_assembled(store, blocks, shape),
                                  _assembled(fresh_store, blocks, shape))


def test_a_store_of_other_inputs_is_not_resumed(map_inputs: dict[str, Any],
                                                tmp_path: Path) -> None:
    map_probability(map_inputs["stack"], map_inputs["model"], tmp_path / "store", 64)
    run, _, _ = map_probability(map_inputs["stack"], map_inputs["model"], tmp_path / "store", 80)
    assert run.resumed_blocks == 0  # another block size: every block computed again


def test_dask_cluster_gives_the_same_map(map_inputs: dict[str, Any], tmp_path: Path) -> None:
    from dask.distributed import Client, LocalCluster

    _, local_store, blocks = map_probability(map_inputs["stack"], map_inputs["model"],
                                             tmp_path / "local", 64)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        run, dask_store, _ = map_probability(map_inputs["stack"], map_inputs["model"],
                                             tmp_path / "dask", 64, client=client)
    assert run.blocks == 16 and run.resumed_blocks == 0
    shape = map_inputs["valid"].shape
    np.testing.assert_array_equal(_assembled(dask_store, blocks, shape),
                                  _assembled(local_store, blocks, shape))


def test_map_rasters_are_cloud_optimized_with_overviews(crop_stack: Stack,
                                                         tmp_path: Path) -> None:
    import rasterio
    from affine import Affine

    from landslide_ssgan.data.blocks import blocks_of, is_cog, write_cog_from_blocks
    from landslide_ssgan.data.grid import Grid

    grid = Grid(crop_stack.grid.crs, Affine(10, 0, 0, 0, -10, 0), 700, 600)
    values = np.random.default_rng(0).random((600, 700)).astype(np.float32)
    values[:50] = np.nan
    pieces = ((b, values[b.row:b.row + b.height, b.col:b.col + b.width])
              for b in blocks_of(grid, 256))
    path = tmp_path / "map.tif"
    write_cog_from_blocks(path, grid, pieces, "float32", float("nan"), "p")
    assert is_cog(path)
    with rasterio.open(path) as src:
        assert src.overviews(1) and src.block_shapes[0] == (256, 256)
        np.testing.assert_array_equal(src.read(1), values)
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]
