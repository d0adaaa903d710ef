"""The consistency learner: pseudo-labels from confident weak views teach the strong views."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from landslide_ssgan.models.augment import Bands, Strong
from landslide_ssgan.models.consistency import Consistency, ConsistencySettings
from landslide_ssgan.models.discriminator import build_discriminator
from landslide_ssgan.models.ssgan import predict_probability

WINDOW, CHANNELS = 13, 3


def _windows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise windows whose centre region is brighter on landslides."""
    windows = rng.normal(size=(len(labels), WINDOW, WINDOW, CHANNELS)).astype("float32")
    windows[labels == 1, 4:9, 4:9, :2] += 1.5
    return windows


def _learner(settings: ConsistencySettings, seed: int = 0) -> Consistency:
    keras.utils.set_random_seed(seed)
    d = build_discriminator(WINDOW, CHANNELS, (8, 16), 16, 0.0, 0.2, outputs=3)
    bands = Bands(None, 0.0, 1.0, (False, False, True))
    learner = Consistency(d, bands, settings, seed=seed)
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
