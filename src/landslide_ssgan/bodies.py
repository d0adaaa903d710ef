"""From a probability map to landslide bodies: threshold, morphological smoothing, connected
components, a minimum area (METHOD.md, "Mapping": landslide pixels clustered and smoothed into
landslides whose number and areas are reported).

Pure numpy / scipy.ndimage; ids are given in raster scan order of each body's first pixel, so
the same map always gives the same ids. A map too large to hold is done block by block
(`block_pieces`, then `SeamJoin`): each block with the halo the smoothing reaches into, its
components joined across the seams, with the same bodies and ids as the whole map at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from landslide_ssgan.config import MapConfig
from landslide_ssgan.data.blocks import Block

CLASS_NODATA = 255


@dataclass(frozen=True)
class Bodies:
    labels: np.ndarray           # int32, 0 = no landslide, 1..n = body id
    areas_m2: np.ndarray         # per id, in id order
    mean_probability: np.ndarray

    @property
    def count(self) -> int:
        return len(self.areas_m2)

    def summary(self) -> dict[str, float | int | None]:
        return area_summary(self.areas_m2)


def area_summary(areas: np.ndarray) -> dict[str, float | int | None]:
    count = len(areas)
    return {"count": count,
            "total_area_km2": float(areas.sum() / 1e6),
            "smallest_m2": float(areas.min()) if count else None,
            "largest_m2": float(areas.max()) if count else None,
            "median_m2": float(np.median(areas)) if count else None}


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2


def smoothed_mask(probability: np.ndarray, cfg: MapConfig,
                  edges: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Landslide pixels after an opening (removes specks narrower than the disk) and a closing
    (fills gaps narrower than it). The mask is padded by repeating its edge, so a body cut by
    the raster's edge is treated as continuing past it rather than eroded there; the result
    never reaches pixels without data. `edges` (top, bottom, left, right) says how many rows
    or columns of that padding a block of the raster gets (`block_pieces`); the whole raster
    gets `max(opening, closing)` on every side."""
    valid = np.isfinite(probability)
    mask = valid & (np.nan_to_num(probability, nan=0.0) >= cfg.threshold)
    pad = max(cfg.opening, cfg.closing)
    top, bottom, left, right = edges if edges is not None else (pad,) * 4
    mask = np.pad(mask, ((top, bottom), (left, right)), mode="edge")
    if cfg.opening:
        mask = ndimage.binary_opening(mask, _disk(cfg.opening))
    if cfg.closing:
        mask = ndimage.binary_closing(mask, _disk(cfg.closing))
    return mask[top:mask.shape[0] - bottom, left:mask.shape[1] - right] & valid


def _structure(connectivity: int) -> np.ndarray | None:
    return np.ones((3, 3), bool) if connectivity == 8 else None


def landslide_bodies(probability: np.ndarray, cfg: MapConfig, pixel_area_m2: float) -> Bodies:
    mask = smoothed_mask(probability, cfg)
    labels, n = ndimage.label(mask, structure=_structure(cfg.connectivity))
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:] * pixel_area_m2
    kept = np.flatnonzero(areas >= cfg.min_area_m2) + 1  # old ids, still in scan order
    relabel = np.zeros(n + 1, np.int32)
    relabel[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    labels = relabel[labels]
    means = ndimage.mean(np.nan_to_num(probability), labels, np.arange(1, len(kept) + 1))
    return Bodies(labels, areas[kept - 1], np.asarray(means, np.float64).reshape(-1))


def class_raster(ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8: 1 inside a landslide body (`ids` > 0), 0 elsewhere, 255 where there is no
    data."""
    return np.where(valid, ids > 0, CLASS_NODATA).astype(np.uint8)


# --- block by block ---------------------------------------------------------------------


def halo(cfg: MapConfig) -> int:
    """How far the smoothing reaches: an opening then a closing, each an erosion and a
    dilation by its disk."""
    return 2 * (cfg.opening + cfg.closing)


@dataclass(frozen=True)
class Pieces:
    """The connected components of one block's smoothed mask (local ids 1..n, 0 none, -1 no
    data), before they are joined across the seams."""

    labels: np.ndarray  # int32 (height, width)
    pixels: np.ndarray  # per local id
    total: np.ndarray   # sum of P(landslide) per local id
    first: np.ndarray   # smallest raster-wide scan index (row * width + col) per local id


def block_pieces(region: np.ndarray, reach: tuple[int, int, int, int], cfg: MapConfig,
                 origin: tuple[int, int], raster_width: int) -> Pieces:
    """Components of the block inside `region`: the block's probabilities with `reach` (top,
    bottom, left, right) real pixels around it, fewer than `halo(cfg)` only where the raster
    ends. There the whole-raster edge padding is added, so the block's mask equals the whole
    raster's mask on the block."""
    h, pad = halo(cfg), max(cfg.opening, cfg.closing)
    edges = tuple(min(max(h - r, 0), pad) for r in reach)
    mask = smoothed_mask(region, cfg, edges)  # type: ignore[arg-type]
    top, bottom, left, right = reach
    inner = (slice(top, region.shape[0] - bottom), slice(left, region.shape[1] - right))
    labels, n = ndimage.label(mask[inner], structure=_structure(cfg.connectivity))
    probability = region[inner]
    ids = np.arange(1, n + 1)
    rows, cols = np.indices(labels.shape)
    scan = (rows + origin[0]) * raster_width + cols + origin[1]
    first = (ndimage.minimum(scan, labels, ids) if n else np.zeros(0))
    labels = np.where(np.isfinite(probability), labels, -1).astype(np.int32)
    return Pieces(labels, np.bincount(labels[labels > 0], minlength=n + 1)[1:],
                  np.asarray(ndimage.sum(np.nan_to_num(probability), labels, ids),
                             np.float64).reshape(-1),
                  np.asarray(first, np.int64).reshape(-1))


Reach = tuple[int, int, int, int]  # real pixels read around a block: top, bottom, left, right


def reach_of(block: Block, reach: int, shape: tuple[int, int]) -> Reach:
    """Up to `reach` pixels on each side of the block, fewer where the raster ends."""
    return (min(reach, block.row), min(reach, shape[0] - block.row - block.height),
            min(reach, block.col), min(reach, shape[1] - block.col - block.width))


def join_blocks(blocks: list[Block], shape: tuple[int, int], cfg: MapConfig,
                pixel_area_m2: float, read: Callable[[Block, Reach], np.ndarray],
                keep: Callable[[Block, np.ndarray], None]) -> BlockBodies:
    """The bodies of a raster read block by block (`read` gives a block with the reach it is
    asked for; `keep` stores each block's local labels for the second pass): memory holds
    one block and the seams, whatever the raster's size."""
    size = max(max(b.height, b.width) for b in blocks)
    position = {b.index: (b.row // size, b.col // size) for b in blocks}
    rows, cols = max(p[0] for p in position.values()) + 1, max(p[1] for p in position.values()) + 1
    join = SeamJoin(rows, cols, cfg.connectivity)
    for block in blocks:
        reach = reach_of(block, halo(cfg), shape)
        pieces = block_pieces(read(block, reach), reach, cfg, (block.row, block.col), shape[1])
        join.add(position[block.index], pieces)
        keep(block, pieces.labels)
    final, areas, means = join.bodies(cfg.min_area_m2, pixel_area_m2)
    return BlockBodies(join, final, position, areas, means)


@dataclass(frozen=True)
class BlockBodies:
    """Bodies found block by block: their areas and mean probabilities, and the way from a
    block's local labels to body ids."""

    join: SeamJoin
    final: np.ndarray
    position: dict[int, tuple[int, int]]
    areas_m2: np.ndarray
    mean_probability: np.ndarray

    def ids(self, block: Block, labels: np.ndarray) -> np.ndarray:
        """Body ids (0 none) of a block's local labels."""
        return self.join.lookup(self.position[block.index], self.final, labels)

    def summary(self) -> dict[str, float | int | None]:
        return area_summary(self.areas_m2)


class SeamJoin:
    """Components of blocks joined into bodies across the seams between blocks (4 or 8
    neighbours, like `ndimage.label`), kept by area and numbered in scan order of each body's
    first pixel: the same bodies and ids as `landslide_bodies` on the whole raster. Holds only
    each block's border rows and columns and per-component sums."""

    def __init__(self, block_rows: int, block_cols: int, connectivity: int) -> None:
        self.shape, self.connectivity = (block_rows, block_cols), connectivity
        self.offsets: dict[tuple[int, int], int] = {}
        self.borders: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self.pixels: list[np.ndarray] = []
        self.total: list[np.ndarray] = []
        self.first: list[np.ndarray] = []
        self.size = 1  # provisional id 0 is "none"

    def add(self, position: tuple[int, int], pieces: Pieces) -> None:
        """The pieces of the block at (block row, block column)."""
        self.offsets[position] = self.size
        labels = np.where(pieces.labels > 0, pieces.labels + self.size - 1, 0)
        self.borders[position] = (labels[0], labels[-1], labels[:, 0], labels[:, -1])
        self.pixels.append(pieces.pixels)
        self.total.append(pieces.total)
        self.first.append(pieces.first)
        self.size += len(pieces.pixels)

    def lookup(self, position: tuple[int, int], final: np.ndarray,
               labels: np.ndarray) -> np.ndarray:
        """A block's local labels as final body ids (0 none)."""
        provisional = np.where(labels > 0, labels + self.offsets[position] - 1, 0)
        return final[provisional]

    def bodies(self, min_area_m2: float, pixel_area_m2: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(final id per provisional id, areas in m2, mean P(landslide)) of the kept bodies."""
        pairs = self._touching()
        graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                                  shape=(self.size, self.size))
        _, roots = csgraph.connected_components(graph, directed=False)
        pixels = np.zeros(self.size, np.int64)
        total = np.zeros(self.size, np.float64)
        first = np.full(self.size, np.iinfo(np.int64).max, np.int64)
        ids = roots[1:]
        np.add.at(pixels, ids, np.concatenate(self.pixels))
        np.add.at(total, ids, np.concatenate(self.total))
        np.minimum.at(first, ids, np.concatenate(self.first))
        kept = np.flatnonzero((pixels * pixel_area_m2 >= min_area_m2) & (pixels > 0))
        kept = kept[np.argsort(first[kept], kind="stable")]
        numbered = np.zeros(self.size, np.int32)
        numbered[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
        return (numbered[roots], pixels[kept] * pixel_area_m2,
                total[kept] / np.maximum(pixels[kept], 1))

    def _touching(self) -> np.ndarray:
        """Pairs of provisional ids whose pixels touch across a seam."""
        pairs: list[np.ndarray] = []
        shifts = (-1, 0, 1) if self.connectivity == 8 else (0,)
        rows, cols = self.shape
        for r in range(rows):
            for c in range(cols):
                top, bottom, left, right = self.borders[(r, c)]
                if c + 1 < cols:  # the seam to the right
                    pairs += _across(right, self.borders[(r, c + 1)][2], shifts)
                if r + 1 < rows:  # the seam below
                    pairs += _across(bottom, self.borders[(r + 1, c)][0], shifts)
                if self.connectivity == 8 and r + 1 < rows:  # corners
                    if c + 1 < cols:
                        pairs.append(np.array([[bottom[-1], self.borders[(r + 1, c + 1)][0][0]]]))
                    if c > 0:
                        pairs.append(np.array([[bottom[0], self.borders[(r + 1, c - 1)][0][-1]]]))
        joined = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
        return joined[(joined > 0).all(axis=1)].astype(np.int64)


def _across(a: np.ndarray, b: np.ndarray, shifts: tuple[int, ...]) -> list[np.ndarray]:
    """Pairs (a[i], b[i + s]) for each shift s along one seam."""
    out = []
    for s in shifts:
        lo, hi = max(0, -s), min(len(a), len(b) - s)
        if hi > lo:
            out.append(np.stack([a[lo:hi], b[lo + s:hi + s]], axis=1))
    return out
