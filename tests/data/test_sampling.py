"""Sample sets and splits: whole landslides per split, no shared pixels, training-only stats."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from landslide_ssgan.config import Params, SampleConfig
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN
from landslide_ssgan.data.sampling import (
    UNLABELLED,
    Samples,
    _inside_counts,
    block_groups,
    draw_samples,
    full_window_centres,
    read_samples,
    shared_pixels,
    training_cover,
    training_statistics,
    write_samples,
    zone_counts,
)
from landslide_ssgan.data.stack import Stack
from landslide_ssgan.errors import InputError


@pytest.fixture
def spatial(crop_params: Params, crop_stack: Stack, crop_labels: tuple):
    labels, ids = crop_labels
    return draw_samples(labels, ids, crop_stack.valid, crop_params.sample, seed=3,
                        pixel_size=10.0)


def test_three_sets_of_equal_size_with_full_valid_windows(spatial, crop_stack: Stack,
                                                          crop_labels: tuple,
                                                          crop_params: Params) -> None:
    labels, _ = crop_labels
    table = spatial.table
    eligible = full_window_centres(crop_stack.valid, 13)
    assert eligible[table.row, table.col].all()
    for split in ("train", "test"):
        part = table[table.split == split]
        assert (part.label == 1).sum() == (part.label == 0).sum() > 0
    train = table[table.split == "train"]
    ratio = crop_params.sample.unlabelled_ratio
    assert (train.label == UNLABELLED).sum() == round(ratio * (train.label == 1).sum())
    codes = labels[table.row, table.col]
    assert (codes[table.label == 1] == LANDSLIDE).all()
    assert (codes[table.label == 0] != LANDSLIDE).all()
    assert (codes[table.label == 0] == STABLE).any()  # stable polygons are among them
    unlabelled = table[table.label == UNLABELLED]
    assert (unlabelled.split == "train").all()
    assert (spatial.areas[unlabelled.row, unlabelled.col] == 1).all()  # the training area
    assert not table[table.label != UNLABELLED].duplicated(["row", "col"]).any()
    assert not unlabelled.duplicated(["row", "col"]).any()


def _drawn(crop_params: Params, crop_stack: Stack, crop_labels: tuple, seed: int = 3,
           labels: np.ndarray | None = None, strip_pixels: int = 1 << 22,
           **changes: object) -> Samples:
    raster, ids = crop_labels
    cfg = replace(crop_params.sample, **changes)
    return draw_samples(raster if labels is None else labels, ids, crop_stack.valid, cfg,
                        seed=seed, pixel_size=10.0, strip_pixels=strip_pixels)


@pytest.mark.parametrize("changes", [
    {},
    {"negatives": "inventory", "unlabelled_from": "area", "per_class": 30},
    {"split": "random"},
    {"split": "random", "unlabelled_from": "area", "negative_buffer_m": 120.0},
])
def test_samples_drawn_a_strip_of_rows_at_a_time_are_the_whole_areas(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple,
        changes: dict[str, object]) -> None:
    """The sample stage reads its rasters in strips, with halos for the window and the
    negative buffer, and draws ranks in lists it never makes: the samples and the split of
    every pixel must be those of one strip holding the whole area."""
    if changes.get("split") == "random":
        changes = changes | {"split": replace(crop_params.sample.split, method="random")}
    whole = _drawn(crop_params, crop_stack, crop_labels, strip_pixels=1 << 30, **changes)
    width = crop_stack.grid.width
    assert crop_stack.grid.height > 4 * 26
    for pixels in (1, 3 * 26 * width):  # one block row (one row: the random split), or three
        strips = _drawn(crop_params, crop_stack, crop_labels, strip_pixels=pixels, **changes)
        pd.testing.assert_frame_equal(strips.table, whole.table)
        if whole.areas is None:
            assert strips.areas is None
        else:
            np.testing.assert_array_equal(strips.areas, whole.areas)


def test_outside_negatives_keep_the_buffer_and_include_the_stable_polygons(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, _ = crop_labels
    samples = _drawn(crop_params, crop_stack, crop_labels, negatives="outside",
                     negative_buffer_m=50.0, negative_ratio=3.0)
    table = samples.table
    distance = ndimage.distance_transform_edt(labels != LANDSLIDE, sampling=10.0)
    negatives = table[table.label == 0]
    codes = labels[negatives.row, negatives.col]
    outside = codes != STABLE
    assert outside.sum() > 0 and (codes == STABLE).sum() > 0
    assert (distance[negatives.row[outside], negatives.col[outside]] >= 50.0).all()
    assert (codes[outside] == UNKNOWN).all()  # the crop's inventory leaves the rest unknown
    for split in ("train", "test"):
        part = table[table.split == split]
        assert (part.label == 0).sum() == 3 * (part.label == 1).sum()
    for a, b in (("test", "train"), ("val", "train")):
        assert shared_pixels(samples, a, b, labels.shape, 13) == 0


def test_the_paper_protocol_draws_from_any_ground_but_landslides(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, _ = crop_labels
    table = _drawn(crop_params, crop_stack, crop_labels, negatives="outside",
                   negative_buffer_m=0.0).table
    assert (labels[table.row[table.label == 0], table.col[table.label == 0]]
            != LANDSLIDE).all()


def test_a_fully_labelled_mask_still_gives_a_large_unlabelled_pool(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, _ = crop_labels
    mask = np.where(labels == LANDSLIDE, LANDSLIDE, STABLE).astype(np.uint8)  # no unknown
    samples = _drawn(crop_params, crop_stack, crop_labels, labels=mask, unlabelled_ratio=100.0)
    train = samples.table[samples.table.split == "train"]
    pool = full_window_centres(crop_stack.valid, 13) & full_window_centres(
        samples.areas == 1, 13)  # whole windows inside the training area
    slides = int((train.label == 1).sum())
    assert len(samples.unlabelled()) == min(100 * slides, int(pool.sum()))
    assert len(samples.unlabelled()) > 10 * slides


def test_the_unlabelled_pool_may_span_the_whole_area(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    samples = _drawn(crop_params, crop_stack, crop_labels, unlabelled_ratio=20.0,
                     unlabelled_from="area")
    unlabelled = samples.unlabelled()
    assert set(unlabelled.split) == {"train", "val", "test"}
    codes = {"train": 1, "val": 2, "test": 3}
    assert (samples.areas[unlabelled.row, unlabelled.col]
            == unlabelled.split.map(codes).to_numpy()).all()
    assert len(samples.of("test")) == len(_drawn(crop_params, crop_stack, crop_labels,
                                                 unlabelled_ratio=20.0).of("test"))


def test_spatial_split_shares_no_pixel_and_keeps_landslides_whole(
        spatial, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, ids = crop_labels
    for a, b in (("test", "train"), ("val", "train"), ("test", "val")):
        assert shared_pixels(spatial, a, b, labels.shape, 13) == 0
    table = spatial.table[spatial.table.label == 1]
    slide_ids = ids[table.row, table.col]
    splits_per_landslide = table.assign(id=slide_ids).groupby("id").split.nunique()
    assert (splits_per_landslide == 1).all()


def test_random_split_reproduces_the_paper_and_reports_its_leak(  # 30 % test, as the paper
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, ids = crop_labels
    cfg = replace(crop_params.sample, split=replace(crop_params.sample.split, method="random",
                                                    train=0.6, val=0.1, test=0.3))
    samples = draw_samples(labels, ids, crop_stack.valid, cfg, seed=3, pixel_size=10.0)
    slides = samples.table[samples.table.label == 1]
    assert abs((slides.split == "test").mean() - 0.3) < 0.02
    assert shared_pixels(samples, "test", "train", labels.shape, 13) > 0


def test_blocks_merge_where_a_landslide_crosses_an_edge() -> None:
    ids = np.zeros((8, 8), dtype=np.int32)
    ids[1, 3:6] = 7  # crosses the edge between block 0 and block 1 (block = 4)
    blocks = block_groups(ids.shape, ids, 4)
    group = blocks.group  # one per block: 2 x 2
    assert group[0, 0] == group[0, 1]
    assert group[0, 0] != group[1, 0] != group[1, 1]
    assert len(np.unique(group)) == 3
    assert group.dtype == np.uint8  # the smallest type that numbers them
    assert blocks.at(np.array([0, 7]), np.array([7, 0])).tolist() == [group[0, 1], group[1, 0]]
    assert (blocks.expand(group)[:4, 4:] == group[0, 1]).all()


def test_same_seed_same_samples(crop_params: Params, crop_stack: Stack,
                                crop_labels: tuple) -> None:
    labels, ids = crop_labels
    a = draw_samples(labels, ids, crop_stack.valid, crop_params.sample, seed=5,
                        pixel_size=10.0)
    b = draw_samples(labels, ids, crop_stack.valid, crop_params.sample, seed=5,
                        pixel_size=10.0)
    assert a.table.equals(b.table)


def test_inventory_negatives_come_from_the_stable_polygons_only(
        crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> None:
    labels, _ = crop_labels
    table = _drawn(crop_params, crop_stack, crop_labels, negatives="inventory").table
    negatives = table[table.label == 0]
    assert (labels[negatives.row, negatives.col] == STABLE).all()


def test_per_class_caps_the_counts(crop_params: Params, crop_stack: Stack,
                                   crop_labels: tuple) -> None:
    labels, ids = crop_labels
    cfg: SampleConfig = replace(crop_params.sample, per_class=20)
    table = draw_samples(labels, ids, crop_stack.valid, cfg, seed=1, pixel_size=10.0).table
    assert 18 <= (table.label == 1).sum() <= 22


def test_normalisation_uses_training_pixels_only(spatial, crop_stack: Stack) -> None:
    cover = training_cover(spatial, crop_stack.grid.shape, 13)
    mean, std = training_statistics(crop_stack.parts(), cover)
    data = crop_stack.data.copy()
    test = spatial.table[spatial.table.split == "test"]
    data[:, test.row, test.col] += 1000.0  # changing test pixels must not move the statistics
    mean2, std2 = training_statistics(replace(crop_stack, data=data).parts(), cover)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    assert (std > 0).all()


def test_normalisation_read_part_by_part_is_the_whole_areas(spatial, crop_stack: Stack) -> None:
    """The statistics are accumulated over the stack's parts (it is never held whole): any
    part size gives numpy's mean and standard deviation of all the training pixels (1 where a
    band is constant there, so that it does not divide by zero)."""
    cover = training_cover(spatial, crop_stack.grid.shape, 13)
    pixels = crop_stack.data[:, cover].astype(np.float64)
    for size in (7, 50, 1024):
        mean, std = training_statistics(crop_stack.parts(size), cover)
        np.testing.assert_allclose(mean, np.nanmean(pixels, axis=1), rtol=1e-12, atol=1e-12)
        spread = np.nanstd(pixels, axis=1)
        np.testing.assert_allclose(std, np.where(spread > 0, spread, 1.0), rtol=1e-10,
                                   atol=1e-12)


def test_index_file_round_trip(spatial, tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    write_samples(spatial, path)
    assert read_samples(path).table.equals(spatial.table)
    path.write_text("row,col\n1,2\n")
    with pytest.raises(InputError, match="missing columns"):
        read_samples(path)


def test_every_split_gets_a_landslide_group_when_there_are_three() -> None:
    """A small area: three landslide groups, the greedy fill gave all to training."""
    from landslide_ssgan.data.sampling import _landslides_everywhere

    target = np.array([0.7, 0.1, 0.2])
    has = np.array([True, True, True, False, False, False])
    fixed = _landslides_everywhere(np.array([0, 0, 0, 0, 1, 2]), has, target)
    assert set(fixed[has]) == {0, 1, 2}
    assert list(fixed[~has]) == [0, 1, 2]  # groups without landslides stay where they were
    two = np.array([True, True, False])
    assert list(_landslides_everywhere(np.array([0, 0, 1]), two, target)) == [0, 0, 1]


@pytest.mark.parametrize("buffer_m", [0.0, 10.0, 25.0, 50.0, 55.0, 70.7])
def test_negative_ground_keeps_the_buffer_a_distance_transform_gives(
        crop_params: Params, buffer_m: float) -> None:
    """Negatives lie at least `negative_buffer_m` from every landslide pixel. A dilation by
    the disk of the buffer marks what a Euclidean distance transform would (float64 a pixel,
    too much for a tile), down to distances exactly on the buffer."""
    from landslide_ssgan.data.sampling import negative_ground

    rng = np.random.default_rng(5)
    labels = np.full((120, 90), UNKNOWN, dtype=np.uint8)
    labels[rng.random(labels.shape) < 0.3] = STABLE
    labels[rng.random(labels.shape) < 0.004] = LANDSLIDE
    cfg = replace(crop_params.sample, negatives="outside", negative_buffer_m=buffer_m)
    distance = ndimage.distance_transform_edt(labels != LANDSLIDE, sampling=10.0)
    expected = (labels == STABLE) | ((labels != LANDSLIDE) & (distance >= buffer_m))
    found = negative_ground(labels, cfg, 10.0)
    np.testing.assert_array_equal(found, expected)
    assert (found & (labels == LANDSLIDE)).sum() == 0


@pytest.mark.parametrize(("shape", "block", "window"), [((90, 70), 26, 13), ((64, 100), 40, 19)])
def test_centres_inside_a_split_counted_per_block_zone_equal_the_pixels(
        shape: tuple[int, int], block: int, window: int) -> None:
    """The split's tries count, per block and zone, the centres whose window stays in one
    split; the count equals eroding the split's pixels, whatever the blocks' splits (partial
    blocks at the grid's edges included)."""
    rng = np.random.default_rng(4)
    labels = rng.choice([LANDSLIDE, STABLE, UNKNOWN], size=shape).astype(np.uint8)
    valid = np.ones(shape, bool)
    valid[10:20, 30:34] = False  # a hole of nodata
    eligible = full_window_centres(valid, window)
    blocks = block_groups(shape, np.zeros(shape, np.int32), block)
    zones = zone_counts(labels, eligible, block, window)
    for _ in range(5):
        split_of_block = rng.integers(0, 3, size=blocks.group.shape).astype(np.int8)
        split_of_pixel = blocks.expand(split_of_block)
        for split in range(3):
            inside = full_window_centres(split_of_pixel == split, window) & eligible
            expected = [(inside & (labels == LANDSLIDE)).sum(), (inside & (labels == STABLE)).sum()]
            assert _inside_counts(split_of_block, zones, split).tolist() == expected
