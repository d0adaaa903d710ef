"""Connected components of a raster made block by block, joined across the seams.

A block's components are labelled on their own; `SeamJoin` keeps only each block's border rows
and columns and per-component sums, and joins the components whose pixels touch across a
seam, so that memory holds one block whatever the raster's size. Used for the landslide bodies
of a map and for the patches of a raster inventory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph


@dataclass(frozen=True)
class Pieces:
    """The connected components of one block's smoothed mask (local ids 1..n, 0 none, -1 no
    data), before they are joined across the seams."""

    labels: np.ndarray  # int32 (height, width)
    pixels: np.ndarray  # per local id
    total: np.ndarray   # sum of P(landslide) per local id
    first: np.ndarray   # smallest raster-wide scan index (row * width + col) per local id



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
        # copies: a row or column of `labels` is a view that would keep the whole block alive
        # (1 MB a 512 x 512 block, 460 MB for a Sentinel-2 tile's map)
        self.borders[position] = tuple(np.array(edge) for edge in (
            labels[0], labels[-1], labels[:, 0], labels[:, -1]))
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
