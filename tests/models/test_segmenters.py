"""The semi-supervised segmenters' parts: CutMix, pseudo-labels of patches, the per-pixel
N + 1 discriminator and the patch generator.

Fast: tiny networks on synthetic patches.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from landslide_ssgan.models.augment import Bands, Strong
from landslide_ssgan.models.consistency import ConsistencySettings
from landslide_ssgan.models.segmatch import SegMatch, channel_dropout, cutmix, pseudo_loss, ramp
from landslide_ssgan.models.segssgan import SegSSGAN, build_patch_generator, pixel_real_logit
from landslide_ssgan.models.ssgan import LossWeights
from landslide_ssgan.models.unet import build_unet, split_unet
from landslide_ssgan.training.fit import seed_everything

BANDS = Bands(None, 0.0, 1.0, (False, False))


def test_cutmix_moves_the_same_box_of_pixels_labels_and_confidence() -> None:
    images = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 8, 8, 2))
    labels = np.arange(3, dtype=np.int32)[:, None, None] * np.ones((3, 8, 8), np.int32)
    mask = labels.astype(np.float32)
    mixed, mixed_labels, mixed_mask = (np.asarray(t) for t in cutmix(
        images.astype(np.float32), labels, mask, np.array([1, 2], np.int32)))
    for i in range(3):
        moved = mixed[i, ..., 0] != i
        assert moved.sum() == 16  # a 4 x 4 box: half of each side
        assert (mixed[i, ..., 0][moved] == (i - 1) % 3).all()
        assert np.array_equal(mixed_labels[i], mixed[i, ..., 0].astype(np.int32))
        assert np.array_equal(mixed_mask[i], mixed[i, ..., 0])


def _batch(rng: np.random.Generator) -> tuple:
    patches = rng.normal(size=(4, 16, 16, 2)).astype(np.float32)
    targets = rng.integers(0, 2, size=(4, 16, 16)).astype(np.uint8)
    return (patches, targets), rng.normal(size=(4, 16, 16, 2)).astype(np.float32)


def _fit_once(model: keras.Model, batch: tuple) -> dict[str, float]:
    """One training step, run eagerly (tracing a graph for one step costs seconds)."""
    model.run_eagerly = True
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    return {name: values[-1] for name, values in history.items()}


@pytest.mark.parametrize(("threshold", "share"), [(0.5, 1.0), (1.0, 0.0)])
def test_segmatch_trains_on_its_confident_pixels_only(threshold: float, share: float) -> None:
    seed_everything(0)
    settings = ConsistencySettings(1.0, threshold, 0.0, Strong(0.1, 3, 0.1))
    model = SegMatch(build_unet(2, depth=2, width=4), BANDS, settings, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = _fit_once(model, _batch(np.random.default_rng(1)))
    assert logs["pseudo_label_share"] == pytest.approx(share)
    assert (logs["consistency_loss"] > 0) == (share > 0)


def test_the_unet_splits_into_an_encoder_and_a_decoder_of_its_own_weights() -> None:
    network = build_unet(2, depth=2, width=4)
    encoder, decoder = split_unet(network)
    patches = np.random.default_rng(4).normal(size=(2, 16, 16, 2)).astype(np.float32)
    features = encoder(patches)
    assert [tuple(f.shape[1:]) for f in features] == [(16, 16, 4), (8, 8, 8), (4, 4, 16)]
    assert np.array_equal(np.asarray(decoder(features)), np.asarray(network(patches)))
    shared = {id(v) for v in network.weights}
    assert {id(v) for v in encoder.weights + decoder.weights} == shared


def test_channel_dropout_drops_whole_channels_per_patch_and_keeps_the_mean() -> None:
    features = tf.ones((64, 3, 3, 32))
    dropped = np.asarray(channel_dropout(features, 0.5, tf.constant([1, 2])))
    per_channel = dropped.reshape(64, 9, 32)
    assert set(np.unique(per_channel)) == {0.0, 2.0}
    assert (per_channel.min(axis=1) == per_channel.max(axis=1)).all()  # whole channels
    assert dropped.mean() == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_segmatch_adds_unimatchs_feature_stream_when_asked(rate: float) -> None:
    seed_everything(0)
    settings = ConsistencySettings(1.0, 0.5, 0.0, Strong(0.1, 3, 0.1), feature_dropout=rate)
    network = build_unet(2, depth=2, width=4)
    model = SegMatch(network, BANDS, settings, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = _fit_once(model, _batch(np.random.default_rng(1)))
    assert ("feature_consistency_loss" in logs) == (rate > 0)
    if rate:
        assert logs["feature_consistency_loss"] > 0
        plain = SegMatch(build_unet(2, depth=2, width=4), BANDS,
                         ConsistencySettings(1.0, 0.5, 0.0, Strong(0.1, 3, 0.1)), seed=0)
        assert len(model.weights) == len(plain.weights)  # the halves hold no weights


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_segmatch_takes_pseudo_labels_from_the_training_pass_when_asked(rate: float) -> None:
    # moving statistics far from any batch's: the network at inference is sure of every
    # pixel; in the training pass (batch statistics) a fresh network is sure of none
    shares = {}
    for source in ("teacher", "batch"):
        seed_everything(0)
        network = build_unet(2, depth=2, width=4)
        for norm in (layer for layer in network.layers
                     if isinstance(layer, layers.BatchNormalization)):
            norm.moving_mean.assign(np.full(norm.moving_mean.shape, -50.0, np.float32))
            norm.moving_variance.assign(np.full(norm.moving_variance.shape, 1e-4, np.float32))
        settings = ConsistencySettings(1.0, 0.99, 0.0, Strong(0.1, 3, 0.1),
                                       feature_dropout=rate, pseudo_from=source)
        model = SegMatch(network, BANDS, settings, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        logs = _fit_once(model, _batch(np.random.default_rng(1)))
        assert ("feature_consistency_loss" in logs) == (rate > 0)
        shares[source] = logs["pseudo_label_share"]
    assert shares["teacher"] > 0.9 and shares["batch"] < 0.1


def test_pseudo_labels_teach_by_class_as_asked() -> None:
    """Two confident landslide pixels, and 62 confident others: unbalanced, the few count
    1/32 of the loss; balanced, half of it, the total weight unchanged; landslide only, all
    of it."""
    pseudo = np.zeros((1, 8, 8), np.int32)
    pseudo[0, 0, :2] = 1
    mask = np.ones((1, 8, 8), np.float32)
    logits = np.zeros((1, 8, 8, 3), np.float32)
    logits[..., 0] = np.where(pseudo == 1, 4.0, -4.0)  # every pixel badly wrong ...
    logits[0, 0, :2, 0] = 0.0  # ... but the landslide pixels only mildly
    wrong, mild = np.log1p(np.exp(4.0)), np.log(2.0)  # their cross-entropies
    plain = float(pseudo_loss(pseudo, mask, logits))
    balanced = float(pseudo_loss(pseudo, mask, logits, "balanced"))
    landslide = float(pseudo_loss(pseudo, mask, logits, "landslide"))
    assert plain == pytest.approx((62 * wrong + 2 * mild) / 64, rel=1e-5)
    assert balanced == pytest.approx((wrong + mild) / 2, rel=1e-5)
    assert landslide == pytest.approx(2 * mild / 64, rel=1e-5)
    half = mask.copy()
    half[0, 4:] = 0.0  # unconfident pixels count nothing, and the total scales with them
    assert float(pseudo_loss(pseudo, half, logits, "balanced")) == pytest.approx(
        0.5 * (wrong + mild) / 2, rel=1e-5)


def test_the_unlabelled_weight_ramps_up_from_almost_nothing() -> None:
    shares = [float(ramp(tf.constant(step), 100)) for step in (0, 50, 100, 1000)]
    assert shares[0] < 0.01 and shares[0] < shares[1] < shares[2] == shares[3] == 1.0
    assert float(ramp(tf.constant(0), 0)) == 1.0  # no ramp: full weight from the start


def test_the_patch_ssgan_keeps_generated_patches_out_of_the_moving_statistics() -> None:
    seed_everything(2)
    rng = np.random.default_rng(2)
    low, high = -np.ones(2), np.ones(2) * 3
    generator = build_patch_generator(8, 16, 2, 16, 3, 0.2, low, high)
    patches = np.asarray(generator(rng.normal(size=(5, 8)).astype(np.float32)))
    assert patches.shape == (5, 16, 16, 2)
    assert (patches >= -1 - 1e-5).all() and (patches <= 3 + 1e-5).all()
    network = build_unet(2, depth=2, width=4, outputs=3)
    model = SegSSGAN(network, generator, 8, LossWeights(), seed=0)
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    norms = [layer for layer in network.layers if isinstance(layer, layers.BatchNormalization)]
    before = [np.asarray(n.moving_mean).copy() for n in norms]
    model._judge_generated(patches)
    assert all(np.array_equal(b, np.asarray(n.moving_mean)) for b, n in zip(before, norms,
                                                                            strict=True))
    logs = _fit_once(model, _batch(rng))
    assert {"d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss"} <= set(logs)


def test_the_real_logit_of_a_pixel_is_log_z() -> None:
    logits = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype(np.float32)
    z = np.exp(logits[..., 0] - logits[..., 2]) + np.exp(logits[..., 1] - logits[..., 2])
    assert np.allclose(np.asarray(pixel_real_logit(logits)), np.log(z), atol=1e-5)
