"""Whole-area rasters worked a strip of rows at a time, for the sample stage.

The sample stage needs the label raster, the valid mask and masks derived from them
(eligible centres, negative ground, the split's areas) over the whole area. Held whole they
cost about 9 bytes a pixel, a gigabyte for a Sentinel-2 tile. Each derived mask is a
neighbourhood operation of bounded reach (a window's half, the negative buffer), so a strip
of rows read with that many rows more above and below gives exactly the whole-area result on
the strip; the masks that are needed again are kept as bits (1/8 byte a pixel).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from landslide_ssgan.data.grid import Part
from landslide_ssgan.data.squares import square_dilation

STRIP_PIXELS = 1 << 22  # about the pixels in a strip: 4 M, some 40 MB of masks while worked


class Layers(Protocol):
    """The rasters that samples are drawn from, read by rows."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def labels(self, top: int, bottom: int) -> np.ndarray:
        """uint8 labels of rows [top, bottom): 1 landslide, 0 stable, 255 unknown."""
        ...

    def ids(self, top: int, bottom: int) -> np.ndarray:
        """Landslide ids of rows [top, bottom) (0: none)."""
        ...

    def valid(self, top: int, bottom: int) -> np.ndarray:
        """Where every band of the stack has data, rows [top, bottom)."""
        ...


@dataclass(frozen=True)
class ArrayLayers:
    """Layers held in memory (the study, the tests, small areas)."""

    label_raster: np.ndarray
    id_raster: np.ndarray
    valid_mask: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.label_raster.shape  # type: ignore[return-value]

    def labels(self, top: int, bottom: int) -> np.ndarray:
        return self.label_raster[top:bottom]

    def ids(self, top: int, bottom: int) -> np.ndarray:
        return self.id_raster[top:bottom]

    def valid(self, top: int, bottom: int) -> np.ndarray:
        return self.valid_mask[top:bottom]


class PackedMask:
    """A boolean mask of the whole grid held as bits, written and read by rows."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.bits = np.zeros((shape[0], math.ceil(shape[1] / 8)), np.uint8)

    @classmethod
    def of(cls, mask: np.ndarray) -> PackedMask:
        packed = cls(mask.shape)  # type: ignore[arg-type]
        packed.put(0, mask)
        return packed

    def put(self, top: int, rows: np.ndarray) -> None:
        self.bits[top:top + len(rows)] = np.packbits(rows, axis=1)

    def put_part(self, part: Part, mask: np.ndarray) -> None:
        """Writes a part whose first column is a multiple of 8 (the stack's parts are)."""
        if part.col % 8:
            raise ValueError(f"part at column {part.col}: not on a byte of the bits")
        first = part.col // 8
        self.bits[part.row:part.row + part.rows,
                  first:first + math.ceil(part.cols / 8)] = np.packbits(mask, axis=1)

    def part(self, part: Part) -> np.ndarray:
        """The mask over `part`; only the bytes that hold its columns are unpacked."""
        first, last = part.col // 8, math.ceil((part.col + part.cols) / 8)
        bits = np.unpackbits(self.bits[part.row:part.row + part.rows, first:last], axis=1)
        offset = part.col - 8 * first
        return bits[:, offset:offset + part.cols].view(bool)

    def sampled(self, step: int) -> np.ndarray:
        """Every `step`-th row and column: a preview of the mask without the whole of it."""
        return np.unpackbits(self.bits[::step], axis=1,
                             count=self.shape[1])[:, ::step].view(bool)

    def rows(self, top: int, bottom: int) -> np.ndarray:
        top, bottom = max(top, 0), min(bottom, self.shape[0])
        return np.unpackbits(self.bits[top:bottom], axis=1,
                             count=self.shape[1]).view(bool)

    def whole(self) -> np.ndarray:
        return self.rows(0, self.shape[0])


@dataclass(frozen=True)
class Strip:
    """Rows [top, bottom) of a grid `height` rows high, and how they are read with a halo."""

    top: int
    bottom: int
    height: int

    def grown(self, halo: int) -> tuple[int, int, slice]:
        """Rows [start, stop) that hold the strip and up to `halo` rows on each side, and the
        slice that cuts the strip back out of them."""
        start, stop = max(self.top - halo, 0), min(self.bottom + halo, self.height)
        return start, stop, slice(self.top - start, self.bottom - start)


def strips(shape: tuple[int, int], multiple: int = 1,
           pixels: int = STRIP_PIXELS) -> list[Strip]:
    """Strips of about `pixels` pixels, each a whole number of `multiple` rows high (the
    spatial split's blocks), the last one what is left."""
    rows = multiple * max(1, pixels // (shape[1] * multiple))
    return [Strip(top, min(top + rows, shape[0]), shape[0])
            for top in range(0, shape[0], rows)]


def rows_of(strip: Strip, width: int) -> Part:
    """The strip as a part of the grid: every column."""
    return Part(strip.top, 0, strip.bottom - strip.top, width)


class Centres:
    """Window centres sorted by row, so that the ones near a part of the grid are found
    without scanning them all."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray) -> None:
        order = np.argsort(rows, kind="stable")
        self.rows, self.cols = rows[order], cols[order]

    def footprint(self, part: Part, shape: tuple[int, int], window: int) -> np.ndarray:
        """The pixels of `part` that some window covers (a square dilation of the centres:
        only centres within half a window of the part reach it)."""
        grown, cut = part.grown(window // 2, shape)
        lo, hi = np.searchsorted(self.rows, [grown.row, grown.row + grown.rows])
        rows, cols = self.rows[lo:hi], self.cols[lo:hi]
        near = (cols >= grown.col) & (cols < grown.col + grown.cols)
        centres = np.zeros(grown.shape, dtype=bool)
        centres[rows[near] - grown.row, cols[near] - grown.col] = True
        return square_dilation(centres, window)[cut]

    def values(self, read_rows: Callable[[int, int], np.ndarray], parts: list[Strip]
               ) -> np.ndarray:
        """The raster's value at each centre (in this object's row order), read a strip of
        rows at a time by `read_rows(top, bottom)`."""
        out: np.ndarray | None = None
        edges = np.searchsorted(self.rows, [s.top for s in parts] + [parts[-1].bottom])
        for k, strip in enumerate(parts):
            lo, hi = edges[k], edges[k + 1]
            if hi == lo:
                continue
            values = read_rows(strip.top, strip.bottom)
            if out is None:
                out = np.zeros(len(self.rows), values.dtype)
            out[lo:hi] = values[self.rows[lo:hi] - strip.top, self.cols[lo:hi]]
        return out if out is not None else np.zeros(len(self.rows))
