"""The FixMatch learner and the SSGAN variant: pseudo-labels from confident weak views teach
the strong views."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from landslide_ssgan.data.windows import cut_windows
from landslide_ssgan.models.augment import Bands, Strong
from landslide_ssgan.models.consistency import ConsistencySettings, ConsistencyTerm
from landslide_ssgan.models.dense import dense_logits, exact_dense_twin, probability_of
from landslide_ssgan.models.discriminator import build_discriminator
from landslide_ssgan.models.fixmatch import FixMatch
from landslide_ssgan.models.generator import build_generator
from landslide_ssgan.models.ssgan import SSGAN, LossWeights, predict_probability

WINDOW, CHANNELS = 13, 3


def _windows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise windows whose centre region is brighter on landslides."""
    windows = rng.normal(size=(len(labels), WINDOW, WINDOW, CHANNELS)).astype("float32")
    windows[labels == 1, 4:9, 4:9, :2] += 1.5
    return windows


def _learner(settings: ConsistencySettings, seed: int = 0) -> FixMatch:
    keras.utils.set_random_seed(seed)
    d = build_discriminator(WINDOW, CHANNELS, (8, 16), 16, 0.0, 0.2, outputs=3)
    bands = Bands(None, 0.0, 1.0, (False, False, True))
    learner = FixMatch(d, bands, settings, seed=seed)
    learner.compile(keras.optimizers.Adam(3e-3))
    return learner


def _data(rng: np.random.Generator) -> tuple[tf.data.Dataset, np.ndarray, np.ndarray]:
    labels = np.array([0, 1] * 4, "int32")
    labelled = _windows(labels, rng)
    truth = rng.integers(0, 2, 512).astype("int32")
    unlabelled = _windows(truth, rng)
    pairs = tf.data.Dataset.from_tensor_slices((labelled, labels)).repeat().batch(8)
    pool = tf.data.Dataset.from_tensor_slices(unlabelled).shuffle(512, seed=1).batch(64)
    return tf.data.Dataset.zip((pairs, pool)), unlabelled, truth


def test_confident_pseudo_labels_train_the_unlabelled_windows() -> None:
    """Eight labelled windows and a pool of 512: the learner becomes confident on the pool
    (pseudo-labels are used) and classifies the pool's windows as their hidden labels say."""
    rng = np.random.default_rng(0)
    data, unlabelled, truth = _data(rng)
    learner = _learner(ConsistencySettings(threshold=0.9, strong=Strong(0.1, 5, 0.1)))
    history = learner.fit(data, epochs=12, verbose=0).history
    assert history["pseudo_label_share"][-1] > 0.3
    assert history["pseudo_label_share"][-1] > history["pseudo_label_share"][0]
    accuracy = ((predict_probability(learner.discriminator, unlabelled) > 0.5) == truth).mean()
    assert accuracy > 0.85


def test_an_unreachable_threshold_trains_on_labels_only() -> None:
    rng = np.random.default_rng(1)
    data, _, _ = _data(rng)
    learner = _learner(ConsistencySettings(threshold=1.01))
    history = learner.fit(data, epochs=2, verbose=0).history
    assert max(history["pseudo_label_share"]) == 0.0
    assert max(history["d_unlabelled_loss"]) == 0.0


def test_the_teacher_follows_the_student_by_its_momentum() -> None:
    rng = np.random.default_rng(2)
    data, _, _ = _data(rng)
    learner = _learner(ConsistencySettings(teacher_ema=0.5, threshold=0.6))
    before = [w.copy() for w in learner.teacher.get_weights()]
    learner.fit(data.take(1), epochs=1, verbose=0)
    student = learner.discriminator.get_weights()
    for old, new, target in zip(before, learner.teacher.get_weights(), student, strict=True):
        np.testing.assert_allclose(new, 0.5 * old + 0.5 * target, rtol=1e-5, atol=1e-6)


def test_the_learners_dense_map_equals_its_per_window_predictions() -> None:
    """A trained FixMatch discriminator (batch-norm statistics moved by training) maps a block
    densely exactly as it classifies each window: the map path needs nothing new."""
    rng = np.random.default_rng(3)
    data, _, _ = _data(rng)
    learner = _learner(ConsistencySettings(threshold=0.8))
    learner.fit(data, epochs=2, verbose=0)
    block = rng.normal(size=(30 + WINDOW - 1, 40 + WINDOW - 1, CHANNELS)).astype("float32")
    twin = exact_dense_twin(learner.discriminator)
    assert twin is not None
    dense = probability_of(dense_logits(twin, block))
    rows, cols = np.meshgrid(np.arange(30), np.arange(40), indexing="ij")
    windows = cut_windows(block, rows.ravel(), cols.ravel(), WINDOW)
    per_window = predict_probability(learner.discriminator, windows).reshape(30, 40)
    assert np.abs(dense - per_window).max() < 1e-4


def _gan(consistency: ConsistencySettings | None) -> SSGAN:
    keras.utils.set_random_seed(0)
    d = build_discriminator(WINDOW, CHANNELS, (8, 16), 16, 0.0, 0.2, outputs=3)
    g = build_generator(8, WINDOW, CHANNELS, 8, 0.2, np.full(CHANNELS, -3.0),
                        np.full(CHANNELS, 3.0))
    bands = Bands(None, 0.0, 1.0, (False, False, True))
    term = None if consistency is None else ConsistencyTerm(d, bands, consistency, seed=0)
    gan = SSGAN(d, g, 8, LossWeights(), seed=0, consistency=term)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    return gan


@pytest.mark.slow  # trains for many steps: the slow tier
def test_the_ssgan_with_the_consistency_term_trains_on_pseudo_labels() -> None:
    """The SSGAN variant: at threshold 0.5 every unlabelled window gets a pseudo-label and the
    term's loss is in the discriminator's; the plain SSGAN is trained differently."""
    data, _, _ = _data(np.random.default_rng(4))
    with_term = _gan(ConsistencySettings(unlabelled_weight=1.0, threshold=0.5)).fit(
        data.take(3), epochs=1, verbose=0)
    history = with_term.history
    assert history["pseudo_label_share"][-1] == 1.0
    assert history["d_consistency_loss"][-1] > 0
    plain = _gan(None)
    plain.fit(data.take(3), epochs=1, verbose=0)
    assert "d_consistency_loss" not in plain.history.history
    assert not np.allclose(with_term.model.discriminator.get_weights()[0],
                           plain.discriminator.get_weights()[0])
