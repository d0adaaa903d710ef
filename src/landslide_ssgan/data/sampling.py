"""Window centres for the three sample sets and their train / validation / test split.

Neighbouring 13 x 13 windows share most of their pixels, so a random split of windows leaks
test pixels into training. The spatial split assigns whole blocks (merged wherever one
landslide crosses a block edge, so a landslide is never cut in two) to one split, and keeps
only centres whose whole window lies inside blocks of their own split: windows of different
splits then share no pixel at all, by construction. The paper's random split is an option,
and the shared pixels it causes are counted, not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from landslide_ssgan.config import SampleConfig, SplitConfig
from landslide_ssgan.data.grid import Part
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE
from landslide_ssgan.data.squares import square_dilation, square_erosion
from landslide_ssgan.data.strips import (
    STRIP_PIXELS,
    ArrayLayers,
    Centres,
    Layers,
    PackedMask,
    Strip,
    rows_of,
    strips,
)
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import atomic_path

SPLITS = ("train", "val", "test")
UNLABELLED = -1
COLUMNS = ("row", "col", "label", "split", "group")
# the split as a category: one byte a row, not a Python string (a tile's millions of rows)
DTYPES = {"row": "int32", "col": "int32", "label": "int8", "split": "category", "group": "int32"}


AREA_CODES = {"train": 1, "val": 2, "test": 3}  # the split raster; 0 = in no split's area


@dataclass(frozen=True)
class Samples:
    """Window centres: row, col, label (1, 0, or -1 = unlabelled), split, group; and, for
    the spatial split, the split of every pixel (AREA_CODES), so that whole maps can be
    scored on held-out ground."""

    table: pd.DataFrame
    areas: np.ndarray | None = None

    def of(self, split: str) -> pd.DataFrame:
        """The labelled windows of one split."""
        rows = self.table[self.table.split == split]
        return rows[rows.label != UNLABELLED]

    def unlabelled(self) -> pd.DataFrame:
        """The SSGAN's unlabelled windows: from the training area, or with
        `unlabelled_from: area` from anywhere in the mapped area (their `split` then says
        where each lies; none of them carries a label)."""
        return self.table[self.table.label == UNLABELLED]


def full_window_centres(valid: np.ndarray, window: int) -> np.ndarray:
    """Pixels whose whole window lies on valid data inside the grid."""
    return square_erosion(valid, window)


def window_footprint(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                     window: int) -> np.ndarray:
    """Every pixel covered by at least one of the windows."""
    centres = np.zeros(shape, dtype=bool)
    centres[rows, cols] = True
    return square_dilation(centres, window)


# --- spatial split ----------------------------------------------------------------------


@dataclass(frozen=True)
class Blocks:
    """The spatial split's square blocks and the group of each (blocks merged where a
    landslide spans several). A pixel's block follows from its row and column, so nothing
    the size of the area is held: a whole Sentinel-2 tile in 64-pixel blocks has 29,584."""

    shape: tuple[int, int]  # the grid's, in pixels
    size: int  # pixels a side
    group: np.ndarray  # (block rows, block columns): the group of each block

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The group of each pixel (rows, cols)."""
        return self.group[rows // self.size, cols // self.size]

    def expand(self, per_block: np.ndarray, part: Part | None = None) -> np.ndarray:
        """A value per block (block rows, block columns) spread over the block's pixels, of
        the whole grid or of one part of it."""
        part = part or Part(0, 0, *self.shape)
        rows = np.arange(part.row, part.row + part.rows) // self.size
        cols = np.arange(part.col, part.col + part.cols) // self.size
        return per_block[rows[:, None], cols[None, :]]


def block_groups(shape: tuple[int, int], ids: np.ndarray, block: int) -> Blocks:
    """The blocks of `block` pixels a side, merged where a landslide spans several; groups are
    numbered in the smallest unsigned type that holds them."""
    return groups_of_blocks(shape, block, [landslide_blocks(ids, 0, block, shape)])


def landslide_blocks(ids: np.ndarray, top: int, block: int,
                     shape: tuple[int, int]) -> pd.DataFrame:
    """The (landslide id, block number) pairs of rows [top, top + len(ids)) of the id raster:
    `groups_of_blocks` joins them, so the ids can be read a strip at a time."""
    columns = -(-shape[1] // block)
    rows, cols = np.nonzero(ids > 0)
    return pd.DataFrame({"id": ids[rows, cols],
                         "block": ((rows + top) // block) * columns + cols // block}
                        ).drop_duplicates()


def groups_of_blocks(shape: tuple[int, int], block: int, pairs: list[pd.DataFrame]) -> Blocks:
    """Each block that a landslide touches linked to the first block of that landslide; the
    connected blocks are one group."""
    grid = (-(-shape[0] // block), -(-shape[1] // block))
    links_of = pd.concat(pairs).drop_duplicates()
    first = links_of.groupby("id")["block"].transform("min").to_numpy()
    n_blocks = grid[0] * grid[1]
    links = coo_matrix((np.ones(len(links_of)), (links_of.block.to_numpy(), first)),
                       shape=(n_blocks, n_blocks))
    count, group_of_block = connected_components(links, directed=False)
    return Blocks(shape, block, group_of_block.astype(np.min_scalar_type(max(count - 1, 0)))
                  .reshape(grid))


def zone_counts(labels: np.ndarray, eligible: np.ndarray, block: int,
                window: int) -> np.ndarray:
    """Eligible centres per block, per zone of the block and per class: (block rows, block
    columns, 3, 3, 3), the last axis landslide, stable, any. A centre's zone says which
    neighbouring blocks its window reaches (row zone 0: the block above, 1: none, 2: the
    block below; the same for columns): blocks are at least two windows wide, so a window
    lies inside one split exactly when the blocks its zone names all belong to it. Counted a
    strip of blocks at a time."""
    half, (height, width) = window // 2, labels.shape
    offsets = np.arange(block)
    zone = np.where(offsets < half, 0, np.where(offsets >= block - half, 2, 1))
    columns = -(-width // block)
    col_code = (np.arange(width) // block) * 9 + zone[np.arange(width) % block]
    out = np.zeros((-(-height // block), columns, 3, 3, 3), np.int64)
    for strip, top in enumerate(range(0, height, block)):
        bottom = min(top + block, height)
        code = zone[:bottom - top, None] * 3 + col_code[None, :]
        usable = eligible[top:bottom]
        strip_labels = labels[top:bottom]
        for k, mask in enumerate((usable & (strip_labels == LANDSLIDE),
                                  usable & (strip_labels == STABLE), usable)):
            counted = np.bincount(code[mask], minlength=columns * 9)
            out[strip, :, :, :, k] = counted.reshape(columns, 3, 3)
    return out


def _inside_counts(split_of_block: np.ndarray, zones: np.ndarray, split: int) -> np.ndarray:
    """Landslide and stable centres whose whole window lies in blocks of `split`."""
    mine = np.pad(split_of_block == split, 1)  # outside the grid: no split's
    rows, cols = split_of_block.shape
    total = np.zeros(2, np.int64)
    for zr in range(3):
        for zc in range(3):
            inside = mine[1:rows + 1, 1:cols + 1].copy()
            for dr, dc in ((zr - 1, 0), (0, zc - 1), (zr - 1, zc - 1)):
                inside &= mine[1 + dr:rows + 1 + dr, 1 + dc:cols + 1 + dc]
            total += zones[:, :, zr, zc, :2][inside].sum(axis=0)
    return total


def assign_groups(blocks: Blocks, zones: np.ndarray, cfg: SplitConfig,
                  rng: np.random.Generator, tries: int = 16) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per group, from the eligible centres counted per
    block and zone (`zone_counts`).

    Each try fills the splits greedily towards their target fractions (landslide, stable and
    usable pixel counts, landslides first) in a random order of the groups. The try kept is
    the one whose worst split, counting only centres whose window stays inside the split, has
    the most equal-sized landslide + stable sets for its target: no split is left without one
    of the classes when that can be avoided."""
    n = int(blocks.group.max()) + 1
    per_block = zones.sum(axis=(2, 3))
    counts = np.stack([np.bincount(blocks.group.ravel(), per_block[..., k].ravel(), minlength=n)
                       for k in range(3)], axis=1).astype(float)
    target = np.array([cfg.train, cfg.val, cfg.test])
    best, best_score = np.zeros(n, dtype=np.int8), -1.0
    for _ in range(tries):
        split_of_group = _greedy_fill(counts, target, rng.permutation(n))
        split_of_block = split_of_group[blocks.group]
        score = np.inf
        for s in np.flatnonzero(target > 0):
            slides, stables = _inside_counts(split_of_block, zones, int(s))
            score = min(score, min(slides, stables) / target[s])
        if score > best_score:
            best, best_score = split_of_group, score
    return _landslides_everywhere(best, counts[:, 0] > 0, target)


def _landslides_everywhere(split_of_group: np.ndarray, has_landslides: np.ndarray,
                           target: np.ndarray) -> np.ndarray:
    """With at least one landslide group per split available, no split is left without: a
    split that got none takes the smallest landslide group of the split holding the most (a
    small area, a few landslide patches, can otherwise leave validation empty)."""
    out = split_of_group.copy()
    slides = np.flatnonzero(has_landslides)
    if len(slides) < int((target > 0).sum()):
        return out
    for s in np.flatnonzero(target > 0):
        if (out[slides] == s).any():
            continue
        donor = int(np.argmax(np.bincount(out[slides], minlength=3)))
        movable = slides[out[slides] == donor]
        out[movable[-1]] = s  # the last of the donor's landslide groups
    return out


def _greedy_fill(counts: np.ndarray, target: np.ndarray, order: np.ndarray) -> np.ndarray:
    weights = counts / np.maximum(counts.sum(axis=0), 1)
    priority = np.array([4.0, 2.0, 1.0])  # landslides are scarcest: balance them first
    filled = np.zeros((3, 3))
    order = order[np.argsort(-weights[order, :2].sum(axis=1), kind="stable")]
    split_of_group = np.zeros(len(counts), dtype=np.int8)
    for g in order:
        deficit = target[:, None] - filled
        score = deficit @ (priority * weights[g]) if weights[g].any() else deficit[:, 2]
        best = int(np.argmax(np.where(target > 0, score, -np.inf)))
        split_of_group[g] = best
        filled[best] += weights[g]
    return split_of_group


# --- drawing the samples ----------------------------------------------------------------


def negative_ground(labels: np.ndarray, cfg: SampleConfig, pixel_size: float) -> np.ndarray:
    """Where non-landslide windows may be centred: the inventory's stable polygons, and with
    `negatives: outside` also any other ground at least `negative_buffer_m` from every
    landslide (the paper's protocol: non-landslide samples come from outside the inventory's
    landslides; the buffer keeps unmapped fringes of a landslide out of the negatives)."""
    stable = labels == STABLE
    if cfg.negatives == "inventory":
        return stable
    near = ndimage.binary_dilation(labels == LANDSLIDE,
                                   structure=_disk(cfg.negative_buffer_m, pixel_size))
    return stable | (~near & (labels != LANDSLIDE))


def _reach(cfg: SampleConfig, pixel_size: float) -> int:
    """Rows of labels beyond a strip that its negative ground depends on."""
    return 0 if cfg.negatives == "inventory" else len(_disk(cfg.negative_buffer_m,
                                                             pixel_size)) // 2


def _disk(radius_m: float, pixel_size: float) -> np.ndarray:
    """The offsets closer than `radius_m` to a pixel: dilating the landslides with it marks
    every pixel whose distance to the nearest landslide pixel is under the buffer, as a
    Euclidean distance transform would, with booleans instead of float64 distances (the
    squares are compared, so no square root rounds a distance onto the buffer)."""
    reach = max(0, math.ceil(radius_m / pixel_size))
    dy, dx = np.indices((2 * reach + 1, 2 * reach + 1)) - reach
    return (dy * pixel_size) ** 2 + (dx * pixel_size) ** 2 < radius_m ** 2


@dataclass(frozen=True)
class SplitAreas:
    """The split of every pixel (AREA_CODES; 0 where the stack has no data), made on demand
    for any part of the grid from the blocks' splits and the valid mask's bits: nothing the
    size of the area is held."""

    blocks: Blocks
    split_of_block: np.ndarray  # (block rows, block columns), int8: 0 train, 1 val, 2 test
    valid: PackedMask

    def split(self, part: Part) -> np.ndarray:
        """The split index (0 train, 1 val, 2 test) of every pixel of `part`, data or not."""
        return self.blocks.expand(self.split_of_block, part)

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The split index of each pixel (rows, cols)."""
        size = self.blocks.size
        return self.split_of_block[rows // size, cols // size]

    def codes(self, part: Part) -> np.ndarray:
        """AREA_CODES of `part`."""
        return np.where(self.valid.part(part), self.split(part) + 1, 0).astype(np.uint8)

    def whole(self) -> np.ndarray:
        return self.codes(Part(0, 0, *self.blocks.shape))


@dataclass(frozen=True)
class Drawn:
    """The samples table and, for the spatial split, the split of every pixel."""

    table: pd.DataFrame
    areas: SplitAreas | None

    def area_codes(self, part: Part) -> np.ndarray:
        """The split raster over `part` (AREA_CODES); the random split has no held-out area,
        so zeros."""
        return (self.areas.codes(part) if self.areas is not None
                else np.zeros(part.shape, np.uint8))

    def samples(self) -> Samples:
        """As `Samples`, with the split raster made whole (an in-memory area)."""
        return Samples(self.table, None if self.areas is None else self.areas.whole())


def draw_samples(labels: np.ndarray, ids: np.ndarray, valid: np.ndarray, cfg: SampleConfig,
                 seed: int, *, pixel_size: float, strip_pixels: int = STRIP_PIXELS) -> Samples:
    """Window centres of every split, from rasters held in memory; `pixel_size` (metres)
    turns the negative buffer into pixels."""
    return draw(ArrayLayers(labels, ids, valid), cfg, seed, pixel_size=pixel_size,
                strip_pixels=strip_pixels).samples()


def draw(layers: Layers, cfg: SampleConfig, seed: int, *, pixel_size: float,
         strip_pixels: int = STRIP_PIXELS) -> Drawn:
    """Window centres of every split, with the rasters read a strip of rows at a time.

    Every candidate list (landslide, stable and other centres of each split, the unlabelled
    pool) is counted strip by strip, the draw picks ranks in those lists (`rng.choice` of a
    count draws the same positions, from the same random stream, as of a list that long),
    and a second pass turns the ranks into pixels. The samples are those of drawing from
    whole-area lists, without the lists or the masks they come from."""
    spatial = cfg.split.method == "spatial"
    parts = strips(layers.shape, cfg.split.block_size if spatial else 1, strip_pixels)
    ground = _ground(layers, cfg, pixel_size, parts)
    rng = np.random.default_rng(seed)
    if ground.blocks is not None and ground.zones is not None:
        return _spatial(layers, ground, ground.blocks, ground.zones, parts, cfg, rng)
    return Drawn(_random(layers, ground, parts, cfg, rng), None)


@dataclass(frozen=True)
class _Ground:
    """What the first pass over the strips finds: the valid, eligible and negative masks as
    bits and, for the spatial split, the blocks' groups and the centres per block and zone."""

    valid: PackedMask
    eligible: PackedMask
    negative: PackedMask
    blocks: Blocks | None
    zones: np.ndarray | None


def _ground(layers: Layers, cfg: SampleConfig, pixel_size: float, parts: list[Strip]) -> _Ground:
    shape, half = layers.shape, cfg.window // 2
    valid, eligible, negative = PackedMask(shape), PackedMask(shape), PackedMask(shape)
    spatial, reach = cfg.split.method == "spatial", _reach(cfg, pixel_size)
    zones, pairs, any_slide = [], [], False
    for strip in parts:
        start, stop, cut = strip.grown(half)
        grown_valid = layers.valid(start, stop)
        usable = full_window_centres(grown_valid, cfg.window)[cut]
        start, stop, near = strip.grown(reach)
        grown_labels = layers.labels(start, stop)
        labels = grown_labels[near]
        valid.put(strip.top, grown_valid[cut])
        eligible.put(strip.top, usable)
        negative.put(strip.top, negative_ground(grown_labels, cfg, pixel_size)[near] & usable)
        any_slide = any_slide or bool((usable & (labels == LANDSLIDE)).any())
        if spatial:
            zones.append(zone_counts(labels, usable, cfg.split.block_size, cfg.window))
            pairs.append(landslide_blocks(layers.ids(strip.top, strip.bottom), strip.top,
                                          cfg.split.block_size, shape))
    if not any_slide:
        raise InputError("no landslide pixel has a full window of valid data around it")
    if not spatial:
        return _Ground(valid, eligible, negative, None, None)
    return _Ground(valid, eligible, negative,
                   groups_of_blocks(shape, cfg.split.block_size, pairs),
                   np.concatenate(zones))


Masks = Callable[[Strip], dict[str, np.ndarray]]


def _count(parts: list[Strip], masks_of: Masks) -> dict[str, np.ndarray]:
    """Pixels of each mask per strip."""
    counts: dict[str, list[int]] = {}
    for strip in parts:
        for key, mask in masks_of(strip).items():
            counts.setdefault(key, []).append(int(np.count_nonzero(mask)))
    return {key: np.array(found, np.int64) for key, found in counts.items()}


def _locate(parts: list[Strip], masks_of: Masks, counts: dict[str, np.ndarray],
            ranks: dict[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    """The flat pixel index of every rank (a position in the mask's pixels in row-major
    order), in the order of the ranks."""
    order = {key: np.argsort(r, kind="stable") for key, r in ranks.items()}
    ordered = {key: r[order[key]] for key, r in ranks.items()}
    starts = {key: np.concatenate([[0], np.cumsum(counts[key])]) for key in ranks}
    found: dict[str, list[np.ndarray]] = {key: [] for key in ranks}
    for k, strip in enumerate(parts):
        spans = {key: np.searchsorted(ordered[key], starts[key][k:k + 2]) for key in ranks}
        wanted = [key for key, (lo, hi) in spans.items() if hi > lo]
        if not wanted:
            continue
        masks = masks_of(strip)
        for key in wanted:
            lo, hi = spans[key]
            inside = np.flatnonzero(masks[key])[ordered[key][lo:hi] - starts[key][k]]
            found[key].append(inside + strip.top * width)
    out = {}
    for key in ranks:
        pixels = np.concatenate(found[key]) if found[key] else np.zeros(0, np.int64)
        out[key] = np.empty_like(pixels)
        out[key][order[key]] = pixels
    return out


def _choose(count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Ranks of `n` of `count` candidates without replacement (all of them if there are no
    more): the positions `rng.choice` draws from a list of `count`."""
    n = min(int(n), int(count))
    return rng.choice(count, size=n, replace=False) if n < count else np.arange(count)


def _landslide_windows(total: dict[str, int], split: str, ratio: float) -> int:
    """As many landslide windows as there are, unless the negatives run out first."""
    negatives = total[f"{split}/stables"] + total[f"{split}/others"]
    return int(min(total[f"{split}/slides"], negatives // ratio))


def _negatives(total: dict[str, int], split: str, n: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Ranks of `n` negative centres. Stable polygons are always among them (up to half, so
    that ground outside the inventory makes up the rest when there is some)."""
    stables, others = total[f"{split}/stables"], total[f"{split}/others"]
    if not others:
        return {f"{split}/stables": _choose(stables, n, rng),
                f"{split}/others": np.zeros(0, np.int64)}
    from_stable = min(stables, n // 2)
    return {f"{split}/stables": _choose(stables, from_stable, rng),
            f"{split}/others": _choose(others, n - from_stable, rng)}


def _candidate_masks(split: str, inside: np.ndarray, labels: np.ndarray,
                     negative: np.ndarray) -> dict[str, np.ndarray]:
    """The centres one split may draw from: landslides, stable-polygon and other negatives."""
    return {f"{split}/slides": inside & (labels == LANDSLIDE),
            f"{split}/stables": inside & (labels == STABLE),
            f"{split}/others": inside & negative & (labels != STABLE)}


def _spatial(layers: Layers, ground: _Ground, blocks: Blocks, zones: np.ndarray,
             parts: list[Strip], cfg: SampleConfig, rng: np.random.Generator) -> Drawn:
    areas = SplitAreas(blocks, assign_groups(blocks, zones, cfg.split, rng)[blocks.group],
                       ground.valid)
    width, half = layers.shape[1], cfg.window // 2

    def masks_of(strip: Strip) -> dict[str, np.ndarray]:
        start, stop, cut = strip.grown(half)
        split = areas.split(Part(start, 0, stop - start, width))
        eligible = ground.eligible.rows(strip.top, strip.bottom)
        negative = ground.negative.rows(strip.top, strip.bottom)
        labels = layers.labels(strip.top, strip.bottom)
        masks = {"pool": eligible}
        for s, name in enumerate(SPLITS):
            inside = full_window_centres(split == s, cfg.window)[cut] & eligible
            masks |= _candidate_masks(name, inside, labels, negative)
            if name == "train" and cfg.unlabelled_from == "train":
                masks["pool"] = inside
        return masks

    counts = _count(parts, masks_of)
    total = {key: int(c.sum()) for key, c in counts.items()}
    available = {name: _landslide_windows(total, name, cfg.negative_ratio) for name in SPLITS}
    scale = _scale_to_cap(sum(available.values()), cfg.per_class)
    ranks = {}
    for name in SPLITS:
        n = int(round(available[name] * scale))
        ranks[f"{name}/slides"] = _choose(total[f"{name}/slides"], n, rng)
        ranks |= _negatives(total, name, round(n * cfg.negative_ratio), rng)
    n_unlabelled = round(round(available["train"] * scale) * cfg.unlabelled_ratio)
    ranks["pool"] = _choose(total["pool"], n_unlabelled, rng)
    pixels = _locate(parts, masks_of, counts, ranks, width)
    table_parts = []
    for name in SPLITS:
        table_parts += [_Part(pixels[f"{name}/slides"], LANDSLIDE, name),
                        _Part(np.concatenate([pixels[f"{name}/stables"],
                                              pixels[f"{name}/others"]]), STABLE, name)]
    pool = pixels["pool"]
    table_parts.append(_Part(pool, UNLABELLED, areas.at(*np.divmod(pool, width))))
    return Drawn(_table(table_parts, layers.shape, blocks), areas)


def _random(layers: Layers, ground: _Ground, parts: list[Strip], cfg: SampleConfig,
            rng: np.random.Generator) -> pd.DataFrame:
    width = layers.shape[1]

    def masks_of(strip: Strip) -> dict[str, np.ndarray]:
        eligible = ground.eligible.rows(strip.top, strip.bottom)
        return _candidate_masks("all", eligible, layers.labels(strip.top, strip.bottom),
                                ground.negative.rows(strip.top, strip.bottom))

    counts = _count(parts, masks_of)
    total = {key: int(c.sum()) for key, c in counts.items()}
    n = _landslide_windows(total, "all", cfg.negative_ratio)
    n = int(round(n * _scale_to_cap(n, cfg.per_class)))
    ranks = {"all/slides": _choose(total["all/slides"], n, rng)}
    slide_order = rng.permutation(len(ranks["all/slides"]))
    ranks |= _negatives(total, "all", round(n * cfg.negative_ratio), rng)
    negative_order = rng.permutation(len(ranks["all/stables"]) + len(ranks["all/others"]))
    pixels = _locate(parts, masks_of, counts, ranks, width)
    negatives = np.concatenate([pixels["all/stables"], pixels["all/others"]])
    table_parts, held_out = [], []
    fractions = np.array([cfg.split.train, cfg.split.val, cfg.split.test])
    for drawn, label in ((pixels["all/slides"][slide_order], LANDSLIDE),
                         (negatives[negative_order], STABLE)):
        cuts = np.round(np.cumsum(fractions)[:-1] * len(drawn)).astype(int)
        for name, part in zip(SPLITS, np.split(drawn, cuts), strict=True):
            table_parts.append(_Part(part, label, name))
            if name != "train":
                held_out.append(part)
    # the pool: every eligible centre, but with `unlabelled_from: train` not the centre of a
    # validation or test window
    excluded = np.concatenate(held_out) if cfg.unlabelled_from == "train" else np.zeros(0, int)

    def pool_of(strip: Strip) -> dict[str, np.ndarray]:
        pool = ground.eligible.rows(strip.top, strip.bottom)
        here = excluded[(excluded >= strip.top * width) & (excluded < strip.bottom * width)]
        pool.ravel()[here - strip.top * width] = False
        return {"pool": pool}

    pool_counts = _count(parts, pool_of)
    n_train = int(round(n * cfg.split.train))
    chosen = _choose(int(pool_counts["pool"].sum()), round(n_train * cfg.unlabelled_ratio), rng)
    pool = _locate(parts, pool_of, pool_counts, {"pool": chosen}, width)["pool"]
    table_parts.append(_Part(pool, UNLABELLED, "train"))
    return _table(table_parts, layers.shape, None)


def _scale_to_cap(available: int, cap: int | None) -> float:
    return 1.0 if cap is None or available <= cap else cap / available


@dataclass(frozen=True)
class _Part:
    """Centres drawn with one label: flat pixel indices, and their split (a name, or for the
    unlabelled pool the split of each, as indices into SPLITS)."""

    pixels: np.ndarray
    label: int
    split: str | np.ndarray


def _table(parts: list[_Part], shape: tuple[int, int], blocks: Blocks | None) -> pd.DataFrame:
    """The samples table, built once in its final types and sorted by split name, label, row
    and column: a tile's 5.3 M windows pass through int32 and int8 arrays, not through
    columns of Python strings and int64 positions copied at every step."""
    pixels = np.concatenate([part.pixels for part in parts])
    label = np.concatenate([np.full(len(part.pixels), part.label, np.int8) for part in parts])
    split = np.concatenate([
        np.full(len(part.pixels), SPLITS.index(part.split), np.int8)
        if isinstance(part.split, str) else part.split.astype(np.int8) for part in parts])
    rows, cols = np.divmod(pixels, shape[1])
    names = sorted(SPLITS)  # the table is sorted by the split's name
    rank = np.array([names.index(name) for name in SPLITS], np.int8)[split]
    order = np.lexsort((cols, rows, label, rank))
    rows, cols = rows[order].astype(np.int32), cols[order].astype(np.int32)
    group = blocks.at(rows, cols) if blocks is not None else np.full(len(rows), -1)
    return pd.DataFrame({
        "row": rows, "col": cols, "label": label[order],
        "split": pd.Categorical.from_codes(rank[order], names).remove_unused_categories(),
        "group": group.astype(np.int32)})


# --- checks and statistics --------------------------------------------------------------


def shared_pixels(samples: Samples, a: str, b: str, shape: tuple[int, int],
                  window: int) -> int:
    """Pixels that lie in some window of split `a` and in some window of split `b`, counted
    a strip of rows at a time."""
    table = samples.table
    first, second = (Centres(table.row[table.split == s].to_numpy(),
                             table.col[table.split == s].to_numpy()) for s in (a, b))
    shared = 0
    for strip in strips(shape):
        part = rows_of(strip, shape[1])
        shared += int(np.count_nonzero(first.footprint(part, shape, window)
                                       & second.footprint(part, shape, window)))
    return shared


def training_cover(samples: Samples, shape: tuple[int, int], window: int) -> np.ndarray:
    """The pixels the normalisation is computed over: the training area (the spatial split),
    or the random split's training windows. Nothing about validation or test data leaks into
    the normalisation, and it does not change with how windows are drawn."""
    if samples.areas is not None:
        return samples.areas == AREA_CODES["train"]
    train = samples.table[samples.table.split == "train"]
    return window_footprint(train.row.to_numpy(), train.col.to_numpy(), shape, window)


def training_cover_of(drawn: Drawn, shape: tuple[int, int], window: int
                      ) -> Callable[[Part], np.ndarray]:
    """`training_cover` one part at a time: nothing the size of the area is held."""
    areas = drawn.areas
    if areas is not None:
        return lambda part: areas.codes(part) == AREA_CODES["train"]
    train = drawn.table[drawn.table.split == "train"]
    centres = Centres(train.row.to_numpy(), train.col.to_numpy())
    return lambda part: centres.footprint(part, shape, window)


def training_statistics(parts: Iterable[tuple[Part, np.ndarray]],
                        cover: np.ndarray | Callable[[Part], np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (float64) of the stack's data under `cover` (a
    mask of the grid, or of each part), accumulated part by part (Chan et al.'s pairwise
    update), so the stack is never held."""
    count = mean = m2 = np.zeros(0)
    for part, data in parts:
        if not count.size:
            count, mean, m2 = np.zeros(len(data)), np.zeros(len(data)), np.zeros(len(data))
        inside = (cover(part) if callable(cover) else
                  cover[part.row:part.row + part.rows, part.col:part.col + part.cols])
        values = data[:, inside].astype(np.float64)
        finite = np.isfinite(values)
        n = finite.sum(axis=1)
        if not n.any():
            continue
        part_mean = np.where(finite, values, 0).sum(axis=1) / np.maximum(n, 1)
        part_m2 = (np.where(finite, values - part_mean[:, None], 0) ** 2).sum(axis=1)
        total = count + n
        delta = part_mean - mean
        mean = mean + delta * n / np.maximum(total, 1)
        m2 = m2 + part_m2 + delta ** 2 * count * n / np.maximum(total, 1)
        count = total
    std = np.sqrt(m2 / np.maximum(count, 1))
    # a constant band (rounding leaves it a spread of ~1e-17) is not divided by its spread
    spread = std > 1e-9 * np.maximum(np.abs(mean), 1.0)
    return np.where(count > 0, mean, np.nan), np.where(spread, std, 1.0)


# --- index files ------------------------------------------------------------------------



def write_samples(samples: Samples, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        samples.table.to_csv(tmp, index=False)


def read_samples(path: str | Path) -> Samples:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (run the sample stage first)")
    try:  # parsed straight into the compact types: no int64 or string copy of the table
        table = pd.read_csv(path, dtype=DTYPES)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a samples table ({str(exc).splitlines()[0]})") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: a value is not of its column's type ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    unknown = set(table.split) - set(SPLITS)
    if unknown:
        raise InputError(f"{path}: unknown split names {sorted(unknown)}")
    return Samples(table[list(COLUMNS)])
