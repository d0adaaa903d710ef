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
from scipy import ndimage

from landslide_ssgan.config import MapConfig
from landslide_ssgan.data.blocks import Block
from landslide_ssgan.data.seams import Pieces, SeamJoin

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
