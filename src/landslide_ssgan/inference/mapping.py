"""Whole-raster inference: every pixel classified by its own window, block by block.

(A segmenter maps the same way: its "window" is its patch, so each block is read with half a
patch of context on every side, segmented as one overlapping tile, and only the block kept:
every pixel comes from the one tile in which it lies at least half a patch from an edge.)

Classifying every pixel by its own window one window at a time repeats almost all of the
convolution work (169 times for 13 x 13 windows). The dense twin runs over a whole block
instead and gives, at each pixel, exactly what the window model gives for that pixel's window:
convolutions before the pool are unchanged, the pool keeps its size with stride 1, every layer
after it is dilated by the pool's stride, and the dense layers become 1 x 1 convolutions.

A map is computed block by block (a block of output pixels plus the half-window halo its
windows reach into), each finished block saved on its own, so memory does not grow with the
area and an interrupted run resumes at the first block it had not saved. Blocks can be
spread over a Dask cluster; the result is the same because each block is computed by the same
function from the same inputs.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from landslide_ssgan.data.blocks import Block, blocks_of, read_block, stack_grid
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.errors import InputError
from landslide_ssgan.models.bundle import (
    ModelBundle,
    bundle_from_bytes,
    load_bundle,
    model_bytes,
    model_digest,
)
from landslide_ssgan.models.discriminator import landslide_probability
from landslide_ssgan.models.forest import dense_window_features, probability_of_features
from landslide_ssgan.models.unet import segment

EXACT = 1e-4  # dense and per-window logits must agree to this (float32 summation order)


def dense_discriminator(model: keras.Model, fold: bool = True) -> keras.Model:
    """A model that maps a block (rows, cols, C) to logits (rows - w + 1, cols - w + 1, K) and
    features, position (i, j) holding the window model's output for the window whose top-left
    pixel is (i, j). Dropout is left out: this is for inference only. Each batch
    normalisation that follows a convolution is folded into that convolution's kernel and
    bias: one pass over the block fewer per layer, the same values to float rounding
    (`fold=False` keeps them apart, for benchmarks/mapping_speed.py to compare)."""
    channels = model.input_shape[-1]
    inputs = keras.Input((None, None, channels), name="block")
    x, dilation, outputs = inputs, 1, {}
    chain = model.layers[1:]
    folded: set[int] = set()
    for i, layer in enumerate(chain):
        if i in folded:
            continue
        if isinstance(layer, layers.Conv2D):
            follows = chain[i + 1] if i + 1 < len(chain) else None
            norm = (follows if fold and isinstance(follows, layers.BatchNormalization)
                    else None)
            if norm is not None:
                folded.add(i + 1)
            config = layer.get_config() | {"dilation_rate": dilation, "name": None,
                                           "use_bias": True}
            twin = layers.Conv2D.from_config(config)
            x = twin(x)
            twin.set_weights(list(folded_conv(layer, norm)))
        elif isinstance(layer, layers.MaxPooling2D):
            x = layers.MaxPooling2D(pool_size=layer.pool_size, strides=1)(x)
            dilation *= layer.strides[0]
        elif isinstance(layer, layers.Dense):
            kernel, bias = layer.get_weights()
            twin = layers.Conv2D(kernel.shape[1], 1, name=f"dense_{layer.name}")
            x = twin(x)
            twin.set_weights([kernel[None, None], bias])
            outputs[layer.name] = x
        elif isinstance(layer, layers.Flatten | layers.Dropout):
            continue  # the map is 1 x 1 per window here; dropout is off at inference
        else:  # batch normalisation not after a convolution, activations: per pixel
            twin = layer.__class__.from_config(layer.get_config() | {"name": None})
            x = twin(x)
            if layer.weights:
                twin.set_weights(layer.get_weights())
    return keras.Model(inputs, [outputs["logits"], outputs["features"]], name="dense_" +
                       model.name)


def folded_conv(conv: layers.Conv2D, norm: layers.BatchNormalization | None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of `conv` followed by inference-mode `norm` (gamma (x - mean) /
    sqrt(var + eps) + beta per output channel), computed in float64."""
    weights = conv.get_weights()
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    if norm is None:
        return kernel.astype(np.float32), bias.astype(np.float32)
    if norm.axis not in (-1, [-1], 3, [3]):
        raise ValueError(f"{norm.name}: batch normalisation over axis {norm.axis}, not the "
                         "channels")
    mean = np.asarray(norm.moving_mean, np.float64)
    variance = np.asarray(norm.moving_variance, np.float64)
    gamma = np.asarray(norm.gamma, np.float64) if norm.scale else np.ones_like(mean)
    beta = np.asarray(norm.beta, np.float64) if norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return ((kernel * scale).astype(np.float32),
            ((bias - mean) * scale + beta).astype(np.float32))


def dense_logits(dense: keras.Model, image: np.ndarray) -> np.ndarray:
    """Logits for every window centre of a padded image block (rows + w - 1, cols + w - 1, C)."""
    return np.asarray(dense(image[None].astype("float32"), training=False)[0][0])


def per_window_logits(model: keras.Model, image: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The slow, always-correct path: every window cut out and classified on its own."""
    window = model.input_shape[1]
    views = np.lib.stride_tricks.sliding_window_view(image, (window, window), axis=(0, 1))
    rows, cols = views.shape[:2]
    flat = views.reshape(rows * cols, *views.shape[2:])  # (N, C, w, w)
    out = [np.asarray(model(np.moveaxis(flat[i:i + batch], 1, -1), training=False)[0])
           for i in range(0, len(flat), batch)]
    return np.concatenate(out).reshape(rows, cols, -1)


def exact_dense_twin(model: keras.Model, seed: int = 0) -> keras.Model | None:
    """The dense twin if it reproduces the window model on a random block, else None with a
    warning (an architecture this module does not know, e.g. a layer mixing positions)."""
    try:
        dense = dense_discriminator(model)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"model {model.name} has no exact dense form ({exc}); mapping falls "
                      "back to per-window inference, which is much slower", stacklevel=2)
        return None
    window, channels = model.input_shape[1], model.input_shape[-1]
    probe = np.random.default_rng(seed).normal(size=(window + 7, window + 9, channels))
    probe = probe.astype(np.float32)
    gap = np.abs(dense_logits(dense, probe) - per_window_logits(model, probe)).max()
    if not gap < EXACT:
        warnings.warn(f"model {model.name}: dense inference differs from per-window inference "
                      f"by {gap:.2g}; mapping falls back to per-window inference", stacklevel=2)
        return None
    return dense


def probability_of(logits: np.ndarray) -> np.ndarray:
    """P(landslide | real) from logits of any leading shape (..., K): the model's own
    `landslide_probability`, applied to a map of logits."""
    flat = logits.reshape(-1, logits.shape[-1])
    return np.asarray(landslide_probability(flat), np.float32).reshape(logits.shape[:-1])


# --- a trained model, ready to map ------------------------------------------------------


@dataclass
class WindowModel:
    """A trained model with the normalisation it was trained with and, for a network, its
    exact dense twin. A forest or GLM maps densely by itself: its window features (centre
    pixel, window mean and standard deviation) are box filters of the block."""

    bundle: ModelBundle
    mean: np.ndarray
    std: np.ndarray
    dense: keras.Model | None

    @property
    def discriminator(self) -> keras.Model | None:
        return self.bundle.discriminator

    @property
    def bands(self) -> tuple[str, ...]:
        return self.bundle.bands

    @property
    def window(self) -> int:
        return self.bundle.window

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, dense: bool = True) -> WindowModel:
        norm = bundle.normalisation
        twin = (exact_dense_twin(bundle.discriminator)
                if dense and bundle.discriminator is not None else None)
        return cls(bundle, norm.mean.astype(np.float32), norm.std.astype(np.float32), twin)

    @classmethod
    def load(cls, folder: str | Path, dense: bool = True) -> WindowModel:
        """From a model folder (models/<set>/<kind> or a logged model's artifacts)."""
        return cls.from_bundle(load_bundle(folder), dense)

    def band_indices(self, grid: Grid, source: str) -> list[int]:
        missing = [b for b in self.bands if b not in grid.band_names]
        if missing:
            raise InputError(f"{source}: the model needs bands {missing}, which the stack "
                             f"does not have ({', '.join(grid.band_names)})")
        return [grid.band_names.index(b) for b in self.bands]

    def block_probability(self, raw: np.ndarray) -> np.ndarray:
        """P(landslide) for the centre pixels of a raw block (C, h + w - 1, w' + w - 1) read
        with its halo; NaN where the centre pixel has no data. Nodata inside a window is the
        training mean (0 after normalisation), exactly as in training."""
        half = self.window // 2
        centre = raw[:, half:raw.shape[1] - half, half:raw.shape[2] - half]
        valid = np.isfinite(centre).all(axis=0)
        if not valid.any():  # e.g. sea or outside the scene: nothing to classify
            return np.full(valid.shape, np.nan, np.float32)
        image = (np.moveaxis(raw, 0, -1) - self.mean) / self.std
        image = np.nan_to_num(image, nan=0.0).astype(np.float32)
        if self.bundle.segmenter is not None:
            rows, cols = valid.shape
            probability = segment(self.bundle.segmenter, image[None])[0][
                half:half + rows, half:half + cols]
        elif self.discriminator is None:
            probability = self._feature_probability(image, valid)
        else:
            logits = (dense_logits(self.dense, image) if self.dense is not None
                      else per_window_logits(self.discriminator, image))
            probability = probability_of(logits)
        return np.where(valid, probability, np.float32(np.nan))

    def _feature_probability(self, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """A forest or GLM on the valid centres of the block only (they cost per pixel)."""
        half = self.window // 2
        out = np.full(valid.shape, np.nan, np.float32)
        if self.bundle.glm is not None:
            centres = image[half:image.shape[0] - half, half:image.shape[1] - half]
            out[valid] = self.bundle.glm.probability(centres[valid])
        else:
            features = dense_window_features(image, self.window)
            out[valid] = probability_of_features(self.bundle.forest, features[valid])
        return out


# --- block store: finished blocks on disk, for resumption -------------------------------


class BlockStore:
    """Finished blocks of one map run, one .npy file each, written atomically. A store made
    for other inputs (model, stack, block size) is wiped rather than resumed."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any]) -> None:
        self.folder = folder
        manifest = folder / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()) != fingerprint:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            manifest.write_text(json.dumps(fingerprint))

    def _path(self, block: Block) -> Path:
        return self.folder / f"block_{block.index:06d}.npy"

    def has(self, block: Block) -> bool:
        return self._path(block).is_file()

    def save(self, block: Block, values: np.ndarray) -> None:
        path = self._path(block)
        tmp = path.with_suffix(f".tmp-{os.getpid()}.npy")
        np.save(tmp, values)
        os.replace(tmp, path)

    def load(self, block: Block) -> np.ndarray:
        return np.load(self._path(block))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stack_fingerprint(stack: str | Path, model_folder: str | Path, block_size: int) -> dict:
    info = Path(stack).stat()
    return {"stack": str(Path(stack).resolve()), "stack_size": info.st_size,
            "stack_mtime_ns": info.st_mtime_ns, "model": model_digest(model_folder),
            "block_size": block_size}


# --- computing blocks: here, or on a Dask cluster ----------------------------------------

BlockResult = tuple[Block, np.ndarray]


def local_blocks(model: WindowModel, stack: str | Path, bands: list[int],
                 blocks: list[Block]) -> Iterator[BlockResult]:
    halo = model.window // 2
    for block in blocks:
        yield block, model.block_probability(read_block(stack, block, bands, halo))


_WORKER_MODELS: dict[str, WindowModel] = {}


def _model_from_payload(payload: dict[str, Any]) -> WindowModel:
    """A worker's copy of the model, loaded once per process from the bytes sent to it (no
    shared file system needed for the model; the stack path must be readable by workers)."""
    key = payload["digest"]
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = WindowModel.from_bundle(bundle_from_bytes(payload["files"]),
                                                      dense=payload["dense"])
    return _WORKER_MODELS[key]


def _block_task(payload: dict[str, Any], stack: str, bands: list[int],
                block: Block) -> np.ndarray:
    model = _model_from_payload(payload)
    return model.block_probability(read_block(stack, block, bands, model.window // 2))


def model_payload(folder: str | Path, dense: bool) -> dict[str, Any]:
    return {"digest": model_digest(folder), "dense": dense, "files": model_bytes(folder)}


def dask_blocks(client: Any, payload: dict[str, Any], stack: str | Path, bands: list[int],
                blocks: list[Block]) -> Iterator[BlockResult]:
    """Blocks computed by the cluster's workers, a few per worker in flight at a time so that
    memory on this side stays bounded; yielded as they finish."""
    from dask.distributed import as_completed

    in_flight = 2 * max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    pending = iter(blocks)
    payload_future = client.scatter(payload, broadcast=True)

    def submit(block: Block) -> Any:
        future = client.submit(_block_task, payload_future, str(Path(stack).resolve()),
                               bands, block, key=f"landslide-block-{payload['digest'][:8]}-"
                               f"{block.index}", pure=False)
        future.block = block
        return future

    queue = as_completed([submit(b) for b in itertools.islice(pending, in_flight)])
    for future in queue:
        yield future.block, future.result()
        nxt = next(pending, None)
        if nxt is not None:
            queue.add(submit(nxt))


# --- a whole map ------------------------------------------------------------------------


@dataclass(frozen=True)
class MapRun:
    grid: Grid
    blocks: int
    resumed_blocks: int
    computed_pixels: int
    seconds: float
    dense: bool

    @property
    def pixels_per_second(self) -> float:
        return self.computed_pixels / self.seconds if self.seconds else 0.0


def map_probability(stack: str | Path, model_folder: str | Path, store_folder: Path,
                    block_size: int, client: Any = None,
                    on_block: Callable[[Block, bool, int], None] | None = None
                    ) -> tuple[MapRun, BlockStore, list[Block]]:
    """Compute (or resume) the probability of every block into a block store. `on_block`
    hears of each block as it is saved (True when it came from an earlier, interrupted run),
    with the map's pixel count."""
    grid = stack_grid(stack)
    model = WindowModel.load(model_folder)
    bands = model.band_indices(grid, str(stack))
    blocks = blocks_of(grid, block_size)
    store = BlockStore(store_folder, stack_fingerprint(stack, model_folder, block_size))
    done = [b for b in blocks if store.has(b)]
    todo = [b for b in blocks if not store.has(b)]
    for block in done:
        if on_block:
            on_block(block, True, grid.width * grid.height)
    started = time.perf_counter()
    results = (local_blocks(model, stack, bands, todo) if client is None else
               dask_blocks(client, model_payload(model_folder, model.dense is not None),
                           stack, bands, todo))
    for block, values in results:
        store.save(block, values)
        if on_block:
            on_block(block, False, grid.width * grid.height)
    seconds = time.perf_counter() - started
    run = MapRun(grid, len(blocks), len(done), sum(b.height * b.width for b in todo), seconds,
                 model.dense is not None or model.discriminator is None)
    return run, store, blocks


def probability_map(stack: str | Path, model: WindowModel, block_size: int = 512,
                    only: np.ndarray | None = None) -> tuple[np.ndarray, Grid]:
    """The whole map in memory (float32, NaN without data): for scoring maps of areas that
    fit in memory, where no map files are wanted. With `only` (a mask on the grid), blocks
    without a pixel of it are skipped and stay NaN."""
    grid = stack_grid(stack)
    out = np.full(grid.shape, np.nan, np.float32)
    blocks = [b for b in blocks_of(grid, block_size) if only is None or only[
        b.row:b.row + b.height, b.col:b.col + b.width].any()]
    for block, values in local_blocks(model, stack, model.band_indices(grid, str(stack)),
                                      blocks):
        out[block.row:block.row + block.height, block.col:block.col + block.width] = values
    return out, grid
