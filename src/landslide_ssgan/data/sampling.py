"""Window centres for the three sample sets and their train / validation / test split.

Neighbouring 13 x 13 windows share most of their pixels, so a random split of windows leaks
test pixels into training. The spatial split assigns whole blocks (merged wherever one
landslide crosses a block edge, so a landslide is never cut in two) to one split, and keeps
only centres whose whole window lies inside blocks of their own split: windows of different
splits then share no pixel at all, by construction. The paper's random split is an option,
and the shared pixels it causes are counted, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from landslide_ssgan.config import SampleConfig, SplitConfig
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import atomic_path

SPLITS = ("train", "val", "test")
UNLABELLED = -1
COLUMNS = ("row", "col", "label", "split", "group")
DTYPES = {"row": "int32", "col": "int32", "label": "int8", "split": "object", "group": "int32"}


AREA_CODES = {"train": 1, "val": 2, "test": 3}  # the split raster; 0 = in no split's area


@dataclass(frozen=True)
class Samples:
    """Window centres: row, col, label (1, 0, or -1 = unlabelled), split, group; and, for
    the spatial split, the split of every pixel (AREA_CODES), so that whole maps can be
    scored on held-out ground."""

    table: pd.DataFrame
    areas: np.ndarray | None = None

    def of(self, split: str, labelled: bool = True) -> pd.DataFrame:
        rows = self.table[self.table.split == split]
        return rows[rows.label != UNLABELLED] if labelled else rows[rows.label == UNLABELLED]


def full_window_centres(valid: np.ndarray, window: int) -> np.ndarray:
    """Pixels whose whole window lies on valid data inside the grid."""
    return ndimage.binary_erosion(valid, structure=np.ones((window, window), bool),
                                  border_value=0)


def window_footprint(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                     window: int) -> np.ndarray:
    """Every pixel covered by at least one of the windows."""
    centres = np.zeros(shape, dtype=bool)
    centres[rows, cols] = True
    return ndimage.binary_dilation(centres, structure=np.ones((window, window), bool))


# --- spatial split ----------------------------------------------------------------------


def block_groups(shape: tuple[int, int], ids: np.ndarray, block: int) -> np.ndarray:
    """Group number per pixel: square blocks, merged where a landslide spans several."""
    rows, cols = np.indices(shape)
    n_cols = -(-shape[1] // block)
    blocks = (rows // block) * n_cols + cols // block
    n_blocks = int(blocks.max()) + 1
    slide = ids > 0
    # link each block that a landslide touches to the first block of that landslide
    pairs = pd.DataFrame({"id": ids[slide], "block": blocks[slide]}).drop_duplicates()
    first = pairs.groupby("id")["block"].transform("min").to_numpy()
    links = coo_matrix((np.ones(len(pairs)), (pairs.block.to_numpy(), first)),
                       shape=(n_blocks, n_blocks))
    _, group_of_block = connected_components(links, directed=False)
    return group_of_block[blocks]


def assign_groups(groups: np.ndarray, labels: np.ndarray, eligible: np.ndarray,
                  cfg: SplitConfig, window: int, rng: np.random.Generator,
                  tries: int = 16) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per group.

    Each try fills the splits greedily towards their target fractions (landslide, stable and
    usable pixel counts, landslides first) in a random order of the groups. The try kept is
    the one whose worst split, counting only centres whose window stays inside the split, has
    the most equal-sized landslide + stable sets for its target: no split is left without one
    of the classes when that can be avoided."""
    n = int(groups.max()) + 1
    counts = np.stack([
        np.bincount(groups[eligible & (labels == LANDSLIDE)], minlength=n),
        np.bincount(groups[eligible & (labels == STABLE)], minlength=n),
        np.bincount(groups[eligible], minlength=n),
    ], axis=1).astype(float)
    target = np.array([cfg.train, cfg.val, cfg.test])
    best, best_score = np.zeros(n, dtype=np.int8), -1.0
    for _ in range(tries):
        split_of_group = _greedy_fill(counts, target, rng.permutation(n))
        split_of_pixel = split_of_group[groups]
        score = np.inf
        for s in np.flatnonzero(target > 0):
            inside = full_window_centres(split_of_pixel == s, window) & eligible
            balanced = min((inside & (labels == LANDSLIDE)).sum(),
                           (inside & (labels == STABLE)).sum())
            score = min(score, balanced / target[s])
        if score > best_score:
            best, best_score = split_of_group, score
    return best


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


def draw_samples(labels: np.ndarray, ids: np.ndarray, valid: np.ndarray, cfg: SampleConfig,
                 seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    eligible = full_window_centres(valid, cfg.window)
    if not (eligible & (labels == LANDSLIDE)).any():
        raise InputError("no landslide pixel has a full window of valid data around it")
    areas = None
    if cfg.split.method == "spatial":
        table, split_of_pixel = _spatial(labels, ids, eligible, cfg, rng)
        areas = (split_of_pixel + 1).astype(np.uint8)
    else:
        table = _random(labels, eligible, cfg, rng)
    table = table.sort_values(["split", "label", "row", "col"], kind="stable")
    return Samples(table.reset_index(drop=True), areas)


def _spatial(labels: np.ndarray, ids: np.ndarray, eligible: np.ndarray, cfg: SampleConfig,
             rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    groups = block_groups(labels.shape, ids, cfg.split.block_size)
    split_of_pixel = assign_groups(groups, labels, eligible, cfg.split, cfg.window,
                                   rng)[groups]
    parts = []
    per_split = {}
    for s, name in enumerate(SPLITS):
        inside = full_window_centres(split_of_pixel == s, cfg.window) & eligible
        slides, stables = (np.flatnonzero(inside & (labels == k)) for k in (LANDSLIDE, STABLE))
        per_split[name] = (inside, slides, stables, min(len(slides), len(stables)))
    scale = _scale_to_cap(sum(n for *_, n in per_split.values()), cfg.per_class)
    for name, (inside, slides, stables, n) in per_split.items():
        n = int(round(n * scale))
        parts += [_pick(slides, n, LANDSLIDE, name, rng), _pick(stables, n, STABLE, name, rng)]
        if name == "train":
            unknown = np.flatnonzero(inside & (labels == UNKNOWN))
            parts.append(_pick(unknown, round(n * cfg.unlabelled_ratio), UNLABELLED, name, rng))
    return _with_positions(pd.concat(parts), labels.shape, groups), split_of_pixel


def _random(labels: np.ndarray, eligible: np.ndarray, cfg: SampleConfig,
            rng: np.random.Generator) -> pd.DataFrame:
    slides, stables, unknown = (np.flatnonzero(eligible & (labels == k))
                                for k in (LANDSLIDE, STABLE, UNKNOWN))
    n = min(len(slides), len(stables))
    n = int(round(n * _scale_to_cap(n, cfg.per_class)))
    parts = []
    fractions = np.array([cfg.split.train, cfg.split.val, cfg.split.test])
    for pixels, label in ((slides, LANDSLIDE), (stables, STABLE)):
        chosen = rng.choice(pixels, size=n, replace=False)
        cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
        for name, part in zip(SPLITS, np.split(chosen, cuts), strict=True):
            parts.append(_pick(part, len(part), label, name, rng))
    n_train = int(round(n * cfg.split.train))
    parts.append(_pick(unknown, round(n_train * cfg.unlabelled_ratio), UNLABELLED, "train", rng))
    return _with_positions(pd.concat(parts), labels.shape, None)


def _scale_to_cap(available: int, cap: int | None) -> float:
    return 1.0 if cap is None or available <= cap else cap / available


def _pick(pixels: np.ndarray, n: int, label: int, split: str,
          rng: np.random.Generator) -> pd.DataFrame:
    n = min(int(n), len(pixels))
    chosen = rng.choice(pixels, size=n, replace=False) if n < len(pixels) else pixels
    return pd.DataFrame({"pixel": chosen, "label": label, "split": split})


def _with_positions(table: pd.DataFrame, shape: tuple[int, int],
                    groups: np.ndarray | None) -> pd.DataFrame:
    rows, cols = np.unravel_index(table.pixel.to_numpy(), shape)
    table = table.assign(row=rows, col=cols)
    table["group"] = groups[rows, cols] if groups is not None else -1
    return table[list(COLUMNS)].astype(DTYPES)


# --- checks and statistics --------------------------------------------------------------


def shared_pixels(samples: Samples, a: str, b: str, shape: tuple[int, int],
                  window: int) -> int:
    """Pixels that lie in some window of split `a` and in some window of split `b`."""
    cover = []
    for split in (a, b):
        part = samples.table[samples.table.split == split]
        cover.append(window_footprint(part.row.to_numpy(), part.col.to_numpy(), shape, window))
    return int((cover[0] & cover[1]).sum())


def training_statistics(data: np.ndarray, samples: Samples, window: int) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Per-band mean and standard deviation over the pixels of the training windows only,
    so nothing about validation or test data leaks into the normalisation."""
    train = samples.table[samples.table.split == "train"]
    cover = window_footprint(train.row.to_numpy(), train.col.to_numpy(), data.shape[1:], window)
    pixels = data[:, cover]
    mean = np.nanmean(pixels, axis=1)
    std = np.nanstd(pixels, axis=1)
    return mean.astype(np.float64), np.where(std > 0, std, 1.0).astype(np.float64)


# --- index files ------------------------------------------------------------------------



def write_samples(samples: Samples, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        samples.table.to_csv(tmp, index=False)


def read_samples(path: str | Path) -> Samples:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (run the sample stage first)")
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    unknown = set(table.split) - set(SPLITS)
    if unknown:
        raise InputError(f"{path}: unknown split names {sorted(unknown)}")
    return Samples(table[list(COLUMNS)].astype(DTYPES))


def area_raster(samples: Samples, shape: tuple[int, int]) -> np.ndarray:
    """The split raster: AREA_CODES per pixel for the spatial split; for the random split,
    which has no held-out area, zeros."""
    if samples.areas is not None:
        return samples.areas
    return np.zeros(shape, np.uint8)
