"""Patches for the segmenters: P x P pieces of the normalised stack with a target per pixel.

Segmenters learn from whole patches rather than 13 x 13 windows, so that a network sees a
scar's shape, its source and its run-out. The patches come from the same spatial split as the
windows, with the same labels:

- a pixel's target is landslide (the inventory), not landslide (the ground the window sampler
  draws its negatives from: stable polygons and, with `sample.negatives: outside`, ground beyond
  `sample.negative_buffer_m` of every landslide) or unknown (a landslide's unmapped fringe,
  nodata): unknown pixels are ignored by every supervised loss and never counted as negatives;
- a patch belongs to one split's area: its pixels outside that area are unknown and their
  bands are set to the training mean (0 after normalisation), as nodata is, so no training
  patch sees a pixel of the validation or test areas, not even as unlabelled context;
- labelled patches are those that hold a landslide pixel, plus patches without one at
  `negative_ratio` per landslide patch; the unlabelled pool is every other patch of the
  training area (its targets withheld; every patch of it where none is left over). At most
  `train.patch.max_labelled` patches are labelled: on an area with scars everywhere the
  landslide patches beyond their share join the unlabelled pool, so an epoch stays bounded.

The patches are cut from a window source (models train on its normalised image, in memory or
in a temporary file), so memory holds the targets (one byte a pixel), not the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from landslide_ssgan.config import PatchConfig, SampleConfig
from landslide_ssgan.data.inventory import LANDSLIDE as LANDSLIDE_LABEL
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import AREA_CODES, negative_ground
from landslide_ssgan.data.source import TrainingData, WindowSource
from landslide_ssgan.data.stack import read_single_band, stack_parts, valid_mask
from landslide_ssgan.errors import InputError

NEGATIVE, LANDSLIDE, UNKNOWN, OUTSIDE = 0, 1, 2, 3  # a pixel's target
IGNORED = 255  # the target a loss skips (unknown, outside), as the networks receive it


def pixel_targets(labels: np.ndarray, negatives: np.ndarray, areas: np.ndarray,
                  valid: np.ndarray, area: str) -> np.ndarray:
    """(rows, cols) uint8 targets of one split's area: NEGATIVE, LANDSLIDE, UNKNOWN inside it,
    OUTSIDE beyond it. `negatives` is where non-landslide samples may come from
    (sampling.negative_ground); `valid` is where every band has data."""
    inside = areas == AREA_CODES[area]
    target = np.full(labels.shape, OUTSIDE, np.uint8)
    target[inside] = UNKNOWN
    target[inside & valid & negatives] = NEGATIVE
    target[inside & valid & (labels == LANDSLIDE_LABEL)] = LANDSLIDE
    return target


def box_sums(mask: np.ndarray, size: int) -> np.ndarray:
    """For every pixel (r, c), the count of `mask` in the patch whose rows are
    r - size // 2 .. r - size // 2 + size - 1 (and the same for columns): the patch a window
    source cuts around (r, c). Outside the grid counts as False."""
    half = size // 2
    padded = np.pad(mask.astype(np.int32), ((half, size - half), (half, size - half)))
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), np.int64)
    table[1:, 1:] = padded.cumsum(0).cumsum(1)
    rows, cols = mask.shape
    return (table[size:size + rows, size:size + cols] - table[:rows, size:size + cols]
            - table[size:size + rows, :cols] + table[:rows, :cols])


@dataclass(frozen=True)
class PatchCentres:
    """Centres of one area's patches (row, col on the grid) and their parts."""

    rows: np.ndarray
    cols: np.ndarray
    landslide: np.ndarray  # holds a landslide pixel
    labelled: np.ndarray   # trained on with its targets (else in the unlabelled pool)

    def part(self, labelled: bool) -> tuple[np.ndarray, np.ndarray]:
        """The labelled patches, or the unlabelled pool: the patches left over, or every
        patch of the area (its targets withheld) where none is left over, as on an area so
        dense with scars that every patch holds one (a semi-supervised segmenter would
        otherwise train on nothing)."""
        keep = self.labelled == labelled
        if not labelled and not keep.any():
            return self.rows, self.cols
        return self.rows[keep], self.cols[keep]

    def summary(self, batch_size: int) -> str:
        """How many patches of each part, and the steps an epoch takes: what a user needs to
        foresee the training time (it grows with the labelled patches)."""
        labelled = int(self.labelled.sum())
        return (f"{labelled} labelled patches ({int((self.labelled & self.landslide).sum())} "
                f"with a landslide), {len(self.part(False)[0])} in the unlabelled pool; "
                f"{-(-labelled // batch_size)} steps an epoch")


def patch_centres(target: np.ndarray, size: int, stride: int, min_inside: float,
                  negative_ratio: float, seed: int, max_labelled: int | None = None
                  ) -> PatchCentres:
    """Centres on a `stride` grid whose patch lies at least `min_inside` in the area; every
    patch with a landslide pixel is labelled, and patches without one at `negative_ratio` per
    landslide patch (drawn with `seed`), as long as they hold a known pixel. With
    `max_labelled`, at most that many are labelled: the landslide patches beyond their share
    are drawn out at random and join the unlabelled pool, so an epoch of an area with scars
    everywhere stays minutes long (below the cap, the same patches as without it)."""
    inside = box_sums(target != OUTSIDE, size) >= min_inside * size * size
    slides = box_sums(target == LANDSLIDE, size) > 0
    known = box_sums(target == NEGATIVE, size) > 0
    grid = np.zeros_like(inside)
    grid[stride // 2::stride, stride // 2::stride] = True
    rows, cols = np.nonzero(grid & inside)
    landslide = slides[rows, cols]
    rng = np.random.default_rng(seed)
    labelled = (landslide.copy() if max_labelled is None else
                _capped(landslide, max(1, int(max_labelled / (1.0 + negative_ratio))), rng))
    quiet = np.flatnonzero(~landslide & known[rows, cols])
    take = min(len(quiet), int(round(negative_ratio * labelled.sum())))
    labelled[rng.choice(quiet, size=take, replace=False)] = True
    return PatchCentres(rows.astype(np.int32), cols.astype(np.int32), landslide, labelled)


def _capped(landslide: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """The landslide patches, `cap` of them drawn at random where there are more (the draw
    happens only then, so below the cap `rng` is left as it was)."""
    chosen = landslide.copy()
    slides = np.flatnonzero(landslide)
    if len(slides) > cap:
        chosen[:] = False
        chosen[rng.choice(slides, size=cap, replace=False)] = True
    return chosen


@dataclass(frozen=True)
class PatchSource:
    """The training area's patches: cut from a window source whose window is the patch
    (`source.window`), with the targets of the training area on the same padded grid."""

    source: WindowSource
    targets: np.ndarray  # (rows + 2 h, cols + 2 h) uint8, padded with OUTSIDE like the image
    centres: PatchCentres

    @classmethod
    def of(cls, source: WindowSource, target: np.ndarray, centres: PatchCentres
           ) -> PatchSource:
        half = source.window // 2
        padded = np.pad(target, ((half, half), (half, half)), constant_values=OUTSIDE)
        return cls(source, padded, centres)

    @property
    def size(self) -> int:
        return self.source.window

    @property
    def window(self) -> int:
        """The patch's side: what a model trained here records as its window."""
        return self.source.window

    @property
    def channels(self) -> int:
        return self.source.channels

    @property
    def bands(self) -> tuple[str, ...]:
        return self.source.bands

    @property
    def normalisation(self) -> Normalisation:
        return self.source.normalisation

    def windows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Patch-sized windows centred on a split's labelled window samples and their labels:
        the window protocol, answered from a patch's context (validation scores)."""
        return self.source.windows(split)

    def value_range(self, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Per-band lowest and highest value of the training area's patches (labelled and
        unlabelled; 0 where they are blanked): the range a generator of patches draws in."""
        low = np.full(self.channels, np.inf, np.float32)
        high = np.full(self.channels, -np.inf, np.float32)
        for start in range(0, len(self.centres.rows), chunk):
            cut = self.source.pixels.cut(self.centres.rows[start:start + chunk],
                                         self.centres.cols[start:start + chunk])
            low = np.minimum(low, cut.min(axis=(0, 1, 2)))
            high = np.maximum(high, cut.max(axis=(0, 1, 2)))
        return low, high

    def training_labels(self) -> np.ndarray:
        """The known targets (0, 1) of the labelled patches' pixels: the share a segmenter
        learns at, and its class weights."""
        targets = self.labelled_targets()
        return targets[(targets == NEGATIVE) | (targets == LANDSLIDE)].astype(np.int8)

    def dataset(self, batch_size: int, seed: int, labelled: bool = True) -> tf.data.Dataset:
        """(patches, targets) batches of the labelled patches (targets IGNORED where unknown
        or outside, bands 0 outside the area), or, with `labelled=False`, patches of the
        unlabelled pool alone, repeated. Shuffled anew every pass."""
        rows, cols = self.centres.part(labelled)
        index = np.arange(len(rows), dtype=np.int32)
        batches = self.source.pixels.dataset(rows, cols, index, batch_size, shuffle=True,
                                             seed=seed)
        targets = tf.constant(self.targets)
        centres = tf.constant(np.stack([rows, cols], axis=1).astype(np.int32))
        size = self.size

        def with_targets(patches: tf.Tensor, which: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            corners = tf.gather(centres, which)
            cut = tf.map_fn(lambda rc: tf.slice(targets, rc, [size, size]), corners,
                            fn_output_signature=tf.uint8)
            inside = tf.cast(cut != OUTSIDE, patches.dtype)[..., None]
            known = (cut == NEGATIVE) | (cut == LANDSLIDE)
            return patches * inside, tf.where(known, cut, tf.constant(IGNORED, tf.uint8))

        data = batches.map(with_targets, num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)
        return data if labelled else data.map(lambda x, _: x).repeat()

    def labelled_targets(self) -> np.ndarray:
        """Every labelled patch's targets, for class weights and the trained prior."""
        rows, cols = self.centres.part(True)
        size = self.size
        cut = [self.targets[r:r + size, c:c + size] for r, c in zip(rows, cols, strict=True)]
        return np.stack(cut) if cut else np.zeros((0, size, size), np.uint8)


def load_patch_source(data: TrainingData, feature_set: str, patch: PatchConfig,
                      sample: SampleConfig, seed: int) -> PatchSource:
    """The training area's patches of the prepare and sample stages' outputs: targets from
    the labels, the split raster and the sample stage's negative ground; the image of a window
    source whose window is the patch."""
    labels, grid = read_single_band(data.labels)
    areas, _ = read_single_band(data.split)
    if areas.shape != labels.shape:
        raise InputError(f"{data.split}: its grid differs from {data.labels}'s (re-run the "
                         "sample stage)")
    negatives = negative_ground(labels, sample, grid.resolution)
    valid = valid_mask(stack_parts(data.stack), labels.shape)
    target = pixel_targets(labels, negatives, areas, valid, "train")
    centres = patch_centres(target, patch.size, patch.stride, patch.min_inside,
                            patch.negative_ratio, seed, patch.max_labelled)
    if not centres.labelled.any():
        raise InputError(f"{data.split}: the training area holds no patch of "
                         f"train.patch.size {patch.size} with a landslide pixel (lower "
                         "train.patch.size or train.patch.min_inside)")
    return PatchSource.of(data.window_source(feature_set, patch.size), target, centres)
