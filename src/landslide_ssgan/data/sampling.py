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
from collections.abc import Iterable
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

    def expand(self, per_block: np.ndarray) -> np.ndarray:
        """A value per block (block rows, block columns) spread over the block's pixels."""
        rows = np.repeat(per_block, self.size, axis=0)[:self.shape[0]]
        return np.repeat(rows, self.size, axis=1)[:, :self.shape[1]]


def block_groups(shape: tuple[int, int], ids: np.ndarray, block: int) -> Blocks:
    """The blocks of `block` pixels a side, merged where a landslide spans several; groups are
    numbered in the smallest unsigned type that holds them."""
    grid = (-(-shape[0] // block), -(-shape[1] // block))
    rows, cols = np.nonzero(ids > 0)
    # link each block that a landslide touches to the first block of that landslide
    pairs = pd.DataFrame({"id": ids[rows, cols],
                          "block": (rows // block) * grid[1] + cols // block}).drop_duplicates()
    first = pairs.groupby("id")["block"].transform("min").to_numpy()
    n_blocks = grid[0] * grid[1]
    links = coo_matrix((np.ones(len(pairs)), (pairs.block.to_numpy(), first)),
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


def _disk(radius_m: float, pixel_size: float) -> np.ndarray:
    """The offsets closer than `radius_m` to a pixel: dilating the landslides with it marks
    every pixel whose distance to the nearest landslide pixel is under the buffer, as a
    Euclidean distance transform would, with booleans instead of float64 distances (the
    squares are compared, so no square root rounds a distance onto the buffer)."""
    reach = max(0, math.ceil(radius_m / pixel_size))
    dy, dx = np.indices((2 * reach + 1, 2 * reach + 1)) - reach
    return (dy * pixel_size) ** 2 + (dx * pixel_size) ** 2 < radius_m ** 2


def draw_samples(labels: np.ndarray, ids: np.ndarray, valid: np.ndarray, cfg: SampleConfig,
                 seed: int, *, pixel_size: float) -> Samples:
    """Window centres of every split; `pixel_size` (metres) turns the negative buffer into
    pixels. The landslide ids serve only to keep each landslide in one split's group, and are
    let go as soon as the groups are made: a caller that passes them without keeping them
    frees their 4 bytes a pixel for the rest of the drawing."""
    blocks = (block_groups(labels.shape, ids, cfg.split.block_size)
              if cfg.split.method == "spatial" else None)
    del ids
    rng = np.random.default_rng(seed)
    eligible = full_window_centres(valid, cfg.window)
    if not (eligible & (labels == LANDSLIDE)).any():
        raise InputError("no landslide pixel has a full window of valid data around it")
    negative = negative_ground(labels, cfg, pixel_size) & eligible
    areas = None
    if blocks is not None:
        table, split_of_pixel = _spatial(labels, blocks, eligible, negative, cfg, rng)
        areas = np.where(valid, split_of_pixel + 1, 0).astype(np.uint8)
    else:
        table = _random(labels, eligible, negative, cfg, rng)
    return Samples(table, areas)


@dataclass(frozen=True)
class _Candidates:
    """The centres one split may draw from: landslides, stable-polygon and other negatives."""

    slides: np.ndarray
    stables: np.ndarray
    others: np.ndarray

    def landslide_windows(self, ratio: float) -> int:
        """As many landslide windows as there are, unless the negatives run out first."""
        negatives = len(self.stables) + len(self.others)
        return int(min(len(self.slides), negatives // ratio))

    def negatives(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` negative centres. Stable polygons are always among them (up to half, so that
        ground outside the inventory makes up the rest when there is some)."""
        if not len(self.others):
            return _choose(self.stables, n, rng)
        from_stable = min(len(self.stables), n // 2)
        return np.concatenate([_choose(self.stables, from_stable, rng),
                               _choose(self.others, n - from_stable, rng)])


def _candidates(inside: np.ndarray, labels: np.ndarray, negative: np.ndarray) -> _Candidates:
    return _Candidates(_pixels(inside & (labels == LANDSLIDE)),
                       _pixels(inside & (labels == STABLE)),
                       _pixels(inside & negative & (labels != STABLE)))


def _pixels(mask: np.ndarray) -> np.ndarray:
    """Flat indices of the mask's pixels, as int32 where the grid allows (half of numpy's
    int64: the candidate lists of a large area hold tens of millions)."""
    found = np.flatnonzero(mask)
    return found.astype(np.int32) if mask.size < 2 ** 31 else found


def _spatial(labels: np.ndarray, blocks: Blocks, eligible: np.ndarray,
             negative: np.ndarray, cfg: SampleConfig, rng: np.random.Generator
             ) -> tuple[pd.DataFrame, np.ndarray]:
    zones = zone_counts(labels, eligible, blocks.size, cfg.window)
    split_of_pixel = blocks.expand(assign_groups(blocks, zones, cfg.split, rng)[blocks.group])
    inside = {name: full_window_centres(split_of_pixel == s, cfg.window) & eligible
              for s, name in enumerate(SPLITS)}
    candidates = {name: _candidates(inside[name], labels, negative) for name in SPLITS}
    counts = {name: c.landslide_windows(cfg.negative_ratio) for name, c in candidates.items()}
    scale = _scale_to_cap(sum(counts.values()), cfg.per_class)
    parts = []
    for name, found in candidates.items():
        n = int(round(counts[name] * scale))
        parts += [_pick(found.slides, n, LANDSLIDE, name, rng),
                  _Part(found.negatives(round(n * cfg.negative_ratio), rng), STABLE, name)]
    pool = inside["train"] if cfg.unlabelled_from == "train" else eligible
    n_unlabelled = round(round(counts["train"] * scale) * cfg.unlabelled_ratio)
    chosen = _choose(_pixels(pool), n_unlabelled, rng)
    del inside, candidates, found, pool  # whole-area masks and lists, not held to the end
    parts.append(_Part(chosen, UNLABELLED, split_of_pixel.ravel()[chosen]))
    return _table(parts, labels.shape, blocks), split_of_pixel


def _random(labels: np.ndarray, eligible: np.ndarray, negative: np.ndarray, cfg: SampleConfig,
            rng: np.random.Generator) -> pd.DataFrame:
    found = _candidates(eligible, labels, negative)
    n = found.landslide_windows(cfg.negative_ratio)
    n = int(round(n * _scale_to_cap(n, cfg.per_class)))
    parts = []
    fractions = np.array([cfg.split.train, cfg.split.val, cfg.split.test])
    held_out = []
    for pixels, label in ((rng.permutation(_choose(found.slides, n, rng)), LANDSLIDE),
                          (rng.permutation(found.negatives(round(n * cfg.negative_ratio), rng)),
                           STABLE)):
        cuts = np.round(np.cumsum(fractions)[:-1] * len(pixels)).astype(int)
        for name, part in zip(SPLITS, np.split(pixels, cuts), strict=True):
            parts.append(_Part(part, label, name))
            if name != "train":
                held_out.append(part)
    pool = np.flatnonzero(eligible)
    if cfg.unlabelled_from == "train":  # not at the centre of a validation or test window
        pool = np.setdiff1d(pool, np.concatenate(held_out))
    n_train = int(round(n * cfg.split.train))
    parts.append(_pick(pool, round(n_train * cfg.unlabelled_ratio), UNLABELLED, "train", rng))
    return _table(parts, labels.shape, None)


def _choose(pixels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `pixels` without replacement (all of them if there are no more)."""
    n = min(int(n), len(pixels))
    return rng.choice(pixels, size=n, replace=False) if n < len(pixels) else pixels


def _scale_to_cap(available: int, cap: int | None) -> float:
    return 1.0 if cap is None or available <= cap else cap / available


@dataclass(frozen=True)
class _Part:
    """Centres drawn with one label: flat pixel indices, and their split (a name, or for the
    unlabelled pool the split of each, as indices into SPLITS)."""

    pixels: np.ndarray
    label: int
    split: str | np.ndarray


def _pick(pixels: np.ndarray, n: int, label: int, split: str,
          rng: np.random.Generator) -> _Part:
    return _Part(_choose(pixels, n, rng), label, split)


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
    """Pixels that lie in some window of split `a` and in some window of split `b`."""
    cover = []
    for split in (a, b):
        part = samples.table[samples.table.split == split]
        cover.append(window_footprint(part.row.to_numpy(), part.col.to_numpy(), shape, window))
    return int((cover[0] & cover[1]).sum())


def training_cover(samples: Samples, shape: tuple[int, int], window: int) -> np.ndarray:
    """The pixels the normalisation is computed over: the training area (the spatial split),
    or the random split's training windows. Nothing about validation or test data leaks into
    the normalisation, and it does not change with how windows are drawn."""
    if samples.areas is not None:
        return samples.areas == AREA_CODES["train"]
    train = samples.table[samples.table.split == "train"]
    return window_footprint(train.row.to_numpy(), train.col.to_numpy(), shape, window)


def training_statistics(parts: Iterable[tuple[Part, np.ndarray]], cover: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (float64) of the stack's data under `cover`,
    accumulated part by part (Chan et al.'s pairwise update), so the stack is never held."""
    count = mean = m2 = np.zeros(0)
    for part, data in parts:
        if not count.size:
            count, mean, m2 = np.zeros(len(data)), np.zeros(len(data)), np.zeros(len(data))
        inside = cover[part.row:part.row + part.rows, part.col:part.col + part.cols]
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


def area_raster(samples: Samples, shape: tuple[int, int]) -> np.ndarray:
    """The split raster: AREA_CODES per pixel for the spatial split; for the random split,
    which has no held-out area, zeros."""
    if samples.areas is not None:
        return samples.areas
    return np.zeros(shape, np.uint8)
