"""Whole-raster inference: every pixel classified by its own window, block by block.

(A segmenter maps the same way: its "window" is its patch, so each block is read with half a
patch of context on every side, segmented as one overlapping tile, and only the block kept:
every pixel comes from the one tile in which it lies at least half a patch from an edge.)

A window network maps through its exact dense twin (models/dense.py), which classifies every
pixel of a block by its own window in one pass; each model kind's predictor
(models/predictors.py) says how it answers a block.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from landslide_ssgan.data.blocks import Block, block_reader, blocks_of, read_block, stack_grid
from landslide_ssgan.data.grid import Grid
from landslide_ssgan.errors import InputError
from landslide_ssgan.models.bundle import (
    ModelBundle,
    bundle_from_bytes,
    load_bundle,
    model_bytes,
    model_digest,
)

# --- a trained model, ready to map ------------------------------------------------------


@dataclass(frozen=True)
class WindowModel:
    """A trained model ready to map: its predictor prepared for whole blocks (a window
    network's exact dense twin; models/predictors.py) and the normalisation it was trained
    with."""

    bundle: ModelBundle
    mean: np.ndarray
    std: np.ndarray

    @property
    def bands(self) -> tuple[str, ...]:
        return self.bundle.bands

    @property
    def window(self) -> int:
        return self.bundle.window

    @property
    def one_pass(self) -> bool:
        """Maps a block in one pass (see Predictor.one_pass)."""
        return self.bundle.predictor.one_pass

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, dense: bool = True) -> WindowModel:
        """`dense=False` keeps a window network one window at a time (for comparisons)."""
        norm = bundle.normalisation
        ready = replace(bundle, predictor=bundle.predictor.for_maps()) if dense else bundle
        return cls(ready, norm.mean.astype(np.float32), norm.std.astype(np.float32))

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
        # in place, float32 throughout: one new array rather than four (the same values)
        image = np.subtract(np.moveaxis(raw, 0, -1), self.mean, dtype=np.float32)
        np.divide(image, self.std, out=image)
        np.nan_to_num(image, copy=False, nan=0.0)
        probability = self.bundle.predictor.block_probability(image, valid, self.window)
        return np.where(valid, probability, np.float32(np.nan))


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
    """Each block's probabilities, in order. (Reading the next block in a thread while this
    one is classified was measured and dropped: on 2 cores inference already keeps both
    busy, and the map took the same time with 80 MiB more; docs/benchmarks.md.)"""
    halo = model.window // 2
    with block_reader(stack) as read:
        for block in blocks:
            yield block, model.block_probability(read(block, bands, halo))


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
               dask_blocks(client, model_payload(model_folder, model.one_pass),
                           stack, bands, todo))
    for block, values in results:
        store.save(block, values)
        if on_block:
            on_block(block, False, grid.width * grid.height)
    seconds = time.perf_counter() - started
    run = MapRun(grid, len(blocks), len(done), sum(b.height * b.width for b in todo), seconds,
                 model.one_pass)
    return run, store, blocks


def probability_map(stack: str | Path, model: WindowModel, block_size: int = 512,
                    only: np.ndarray | None = None) -> tuple[np.ndarray, Grid]:
    """The whole map in memory (float32, NaN without data): for scoring maps of areas that
    fit in memory, where no map files are wanted. With `only` (a mask on the grid), blocks
    without a pixel of it are skipped and stay NaN; a model that answers each pixel by its own
    window computes only the rows and columns of a block that hold a pixel of `only` (the
    scattered validation area: a fifth of its blocks' pixels), a segmenter the whole block, so
    that its pixels are those of a whole map."""
    grid = stack_grid(stack)
    out = np.full(grid.shape, np.nan, np.float32)
    blocks = [b for b in blocks_of(grid, block_size) if only is None or only[
        b.row:b.row + b.height, b.col:b.col + b.width].any()]
    if only is not None and not model.bundle.predictor.per_pixel:
        blocks = [cropped_to(block, only) for block in blocks]
    for block, values in local_blocks(model, stack, model.band_indices(grid, str(stack)),
                                      blocks):
        out[block.row:block.row + block.height, block.col:block.col + block.width] = values
    return out, grid


def cropped_to(block: Block, mask: np.ndarray) -> Block:
    """The block shrunk to the rows and columns that hold a pixel of `mask` (which it must
    hold): for a window model, the same values at those pixels for less work."""
    inside = mask[block.row:block.row + block.height, block.col:block.col + block.width]
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    return replace(block, row=block.row + int(rows[0]), col=block.col + int(cols[0]),
                   height=int(rows[-1] - rows[0] + 1), width=int(cols[-1] - cols[0] + 1))
