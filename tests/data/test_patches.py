"""Patches for the segmenters: targets per pixel, patch centres, and the batches they make.

Fast: synthetic grids made here, no `dvc pull`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import pandas as pd
import pytest

from landslide_ssgan.config import load_params
from landslide_ssgan.data import patches
from landslide_ssgan.data.inventory import LANDSLIDE, STABLE, UNKNOWN
from landslide_ssgan.data.sampling import AREA_CODES, Samples
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.data.windows import ImageWindows, normalised_image
from landslide_ssgan.models import bundle, learners
from landslide_ssgan.training.fit import train_network


@pytest.mark.parametrize("size", [4, 5, 8])
def test_box_sums_count_the_patch_a_window_source_cuts(size: int) -> None:
    mask = np.random.default_rng(size).random((13, 17)) < 0.3
    half = size // 2
    padded = np.pad(mask, size)
    expected = np.array([[padded[r - half + size:r - half + 2 * size,
                                 c - half + size:c - half + 2 * size].sum()
                          for c in range(17)] for r in range(13)])
    assert np.array_equal(patches.box_sums(mask, size), expected)


def test_pixel_targets_know_landslide_negative_unknown_and_outside() -> None:
    labels = np.full((4, 4), UNKNOWN, np.uint8)
    labels[0, 0], labels[0, 1] = LANDSLIDE, STABLE
    negatives = labels == STABLE
    negatives[3, 3] = True
    areas = np.full((4, 4), AREA_CODES["train"], np.uint8)
    areas[:, 2] = AREA_CODES["test"]
    valid = np.ones((4, 4), bool)
    valid[3, 3] = False  # nodata is never a negative
    target = patches.pixel_targets(labels, negatives, areas, valid, "train")
    assert target[0, 0] == patches.LANDSLIDE and target[0, 1] == patches.NEGATIVE
    assert target[1, 1] == patches.UNKNOWN and target[3, 3] == patches.UNKNOWN
    assert (target[:, 2] == patches.OUTSIDE).all()


def _target(seed: int = 0) -> np.ndarray:
    """A 40 x 40 training area (the right quarter outside it) with a few landslides."""
    rng = np.random.default_rng(seed)
    target = np.full((40, 40), patches.NEGATIVE, np.uint8)
    target[:, 30:] = patches.OUTSIDE
    for r, c in rng.integers(2, 26, size=(3, 2)):
        target[r:r + 3, c:c + 3] = patches.LANDSLIDE
    target[rng.random((40, 40)) < 0.1] = patches.UNKNOWN
    target[:, 30:] = patches.OUTSIDE
    return target


def test_patch_centres_keep_the_area_and_balance_the_labelled_patches() -> None:
    target = _target()
    centres = patches.patch_centres(target, 8, 4, min_inside=0.75, negative_ratio=1.0, seed=1)
    inside = patches.box_sums(target != patches.OUTSIDE, 8)[centres.rows, centres.cols]
    assert (inside >= 0.75 * 64).all()
    slides = patches.box_sums(target == patches.LANDSLIDE, 8)[centres.rows, centres.cols]
    assert np.array_equal(centres.landslide, slides > 0)
    quiet_labelled = centres.labelled & ~centres.landslide
    assert quiet_labelled.sum() == min(centres.landslide.sum(), (~centres.landslide).sum())
    again = patches.patch_centres(target, 8, 4, 0.75, 1.0, seed=1)
    assert np.array_equal(again.labelled, centres.labelled)  # seeded


def test_at_most_max_labelled_patches_are_labelled_the_rest_join_the_pool() -> None:
    target = np.full((120, 120), patches.NEGATIVE, np.uint8)
    target[::6, ::6] = patches.LANDSLIDE  # scars everywhere: every patch holds one
    free = patches.patch_centres(target, 8, 4, 0.5, 1.0, seed=3)
    assert free.landslide.sum() > 100
    capped = patches.patch_centres(target, 8, 4, 0.5, 1.0, seed=3, max_labelled=40)
    assert np.array_equal(capped.rows, free.rows) and np.array_equal(capped.cols, free.cols)
    assert (capped.labelled & capped.landslide).sum() == 20  # half of 40: negative_ratio 1
    pool_rows, _ = capped.part(labelled=False)
    assert len(pool_rows) == len(free.rows) - capped.labelled.sum()  # the rest: unlabelled
    pool = len(free.rows) - 20  # no patch without a scar to add as a negative
    assert capped.summary(16) == (f"20 labelled patches (20 with a landslide), {pool} in the "
                                  "unlabelled pool; 2 steps an epoch")  # 20 / 16, rounded up
    again = patches.patch_centres(target, 8, 4, 0.5, 1.0, seed=3, max_labelled=40)
    assert np.array_equal(again.labelled, capped.labelled)  # seeded
    # below the cap: the very patches drawn without one
    sparse = _target()
    for cap in (None, 10_000):
        below = patches.patch_centres(sparse, 8, 4, 0.5, 1.0, seed=1, max_labelled=cap)
        assert np.array_equal(below.labelled, patches.patch_centres(
            sparse, 8, 4, 0.5, 1.0, seed=1).labelled)


def _source(target: np.ndarray, size: int) -> patches.PatchSource:
    """Band 0 is the target itself (so a batch can be checked against its targets), band 1
    is ones."""
    data = np.stack([target.astype(np.float32), np.ones(target.shape, np.float32)])
    mean, std = np.zeros(2), np.ones(2)
    image = normalised_image(data, [0, 1], mean, std, size)
    samples = Samples(pd.DataFrame({"row": [5], "col": [5], "label": [1], "split": ["val"],
                                    "group": [0]}).astype({"split": "category"}))
    source = WindowSource(ImageWindows(image, size), samples, size, ("t", "one"), mean, std,
                          (False, False))
    centres = patches.patch_centres(target, size, 4, 0.5, 1.0, seed=0)
    return patches.PatchSource.of(source, target, centres)


def test_batches_carry_their_targets_and_blank_what_lies_outside_the_area() -> None:
    target = _target()
    source = _source(target, 8)
    x, y = next(iter(source.dataset(batch_size=64, seed=0)))
    x, y = np.asarray(x), np.asarray(y)
    assert len(x) == source.centres.labelled.sum()
    outside = x[..., 1] == 0  # band 1 is ones inside the area (and the grid)
    assert (y[outside] == patches.IGNORED).all()
    known = y != patches.IGNORED
    assert np.array_equal(x[..., 0][known], y[known].astype(np.float32))
    assert set(np.unique(y)) <= {patches.NEGATIVE, patches.LANDSLIDE, patches.IGNORED}
    unlabelled = next(iter(source.dataset(batch_size=4, seed=0, labelled=False)))
    assert unlabelled.shape == (4, 8, 8, 2)


def test_an_area_where_every_patch_is_labelled_lends_them_all_to_the_unlabelled_pool() -> None:
    """Scars so dense that every patch holds one: the semi-supervised segmenters still get an
    unlabelled pool (every patch, targets withheld) rather than none, on which they trained
    nothing (their zipped batches were empty)."""
    target = np.full((24, 24), patches.LANDSLIDE, np.uint8)
    target[::2] = patches.NEGATIVE
    centres = patches.patch_centres(target, 8, 4, 0.5, 1.0, seed=0)
    assert centres.labelled.all()
    rows, cols = centres.part(False)
    assert np.array_equal(rows, centres.rows) and np.array_equal(cols, centres.cols)
    source = _source(target, 8)
    assert len(list(source.dataset(4, 0, labelled=False).take(3))) == 3


def test_training_labels_are_the_known_pixels_of_the_labelled_patches() -> None:
    source = _source(_target(), 8)
    labels = source.training_labels()
    assert set(np.unique(labels)) == {0, 1}
    assert len(labels) == sum(((t == 0) | (t == 1)).sum() for t in source.labelled_targets())


@pytest.mark.slow  # three graph-traced trainings (16 s): the long training tests are slow
@pytest.mark.parametrize("kind", [k for k in learners.KINDS if learners.learner(k).patches])
def test_each_segmenter_trains_on_patches_through_the_networks_recipe(
        kind: str, tmp_path: Path) -> None:
    """Every segmenter of the learner table, built and fitted by training/fit.py like every
    network: its batches are patches (paired with unlabelled ones where it learns from them),
    its validation scores the centre pixels of patch-sized windows; its folder reloads to the
    same probabilities."""
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    small = replace(params.train.patch, size=8, depth=2, width=4, epochs=2, batch_size=8)
    source = _source(_target(), 8)
    trained = train_network(learners.learner(kind),
                            replace(params.train, patch=small, latent_dim=8, g_width=8),
                            source, 0, workdir=tmp_path / "keras", threshold=0.5)
    assert [row["epoch"] for row in trained.history] == [1, 2]
    assert "val_f1" in trained.history[-1]
    assert all(np.isfinite(v) for v in trained.history[-1].values())
    bundle.save_model(tmp_path / "model", learners.learner(kind).predictor(trained.model),
                      source.normalisation)
    windows, _ = source.windows("val")
    assert np.allclose(bundle.load_bundle(tmp_path / "model").probability(windows),
                       trained.model.window_probability(windows), atol=1e-6)


@pytest.mark.parametrize(("schedule", "factors"), [("constant", [1.0, 1.0, 1.0]),
                                                   ("poly", [1.0, (2 / 3) ** 0.9,
                                                             (1 / 3) ** 0.9])])
def test_a_segmenter_learns_at_the_rate_its_schedule_gives_each_epoch(
        schedule: Literal["constant", "poly"], factors: list[float], tmp_path: Path) -> None:
    """poly: lr * (1 - epoch / epochs) ** 0.9 from each epoch's start, read back from the
    optimizer the step uses."""
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    small = replace(params.train.patch, size=8, depth=2, width=4, epochs=3, batch_size=8,
                    lr=0.01, lr_schedule=schedule)
    rates: list[float] = []

    class Rates(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            rates.append(float(np.asarray(self.model.optimizer.learning_rate)))

    train_network(learners.learner("unet"), replace(params.train, patch=small),
                  _source(_target(), 8), 0, workdir=tmp_path / "keras", callbacks=(Rates(),))
    assert rates == pytest.approx([0.01 * f for f in factors])


def _averaged_unet(epochs: int, workdir: Path,
                   callbacks: tuple[keras.callbacks.Callback, ...] = ()) -> keras.Model:
    """A small U-Net trained for `epochs` with train.patch.average 0.5: the mean of the
    weights at the end of its last half of the epochs."""
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    small = replace(params.train.patch, size=8, depth=2, width=4, epochs=epochs, batch_size=8,
                    lr=0.01, average=0.5)
    return train_network(learners.learner("unet"), replace(params.train, patch=small),
                         _source(_target(), 8), 0, workdir=workdir, callbacks=callbacks,
                         checkpoint_every_s=0.0).model.network


def test_a_segmenter_becomes_the_mean_of_its_last_epochs_weights(tmp_path: Path) -> None:
    """average 0.5 of 4 epochs: the model is the mean of the weights at the end of epochs 3
    and 4, not the last weights."""
    ends: list[list[np.ndarray]] = []

    class Ends(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            ends.append([np.asarray(v) for v in self.model.network.trainable_variables])

    final = [np.asarray(v) for v in _averaged_unet(4, tmp_path / "keras",
                                                   (Ends(),)).trainable_variables]
    assert len(ends) == 4
    for weight, third, fourth in zip(final, ends[2], ends[3], strict=True):
        np.testing.assert_allclose(weight, (third + fourth) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(final[0], ends[3][0])


def test_a_segmenter_killed_while_averaging_resumes_to_the_same_mean(tmp_path: Path) -> None:
    """Killed after epoch 3 of 4 (the mean holds one epoch) and resumed from its checkpoint,
    it ends with the weights of a run straight through."""

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    straight = [np.asarray(v) for v in _averaged_unet(4, tmp_path / "a").weights]
    with pytest.raises(KeyboardInterrupt):
        _averaged_unet(4, tmp_path / "b", (Kill(),))
    resumed = [np.asarray(v) for v in _averaged_unet(4, tmp_path / "b").weights]
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
