"""The SSGAN: stable P(real), one train_step lowers every loss term, the baseline's twin."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from landslide_ssgan.models.discriminator import build_discriminator, landslide_probability
from landslide_ssgan.models.generator import build_generator
from landslide_ssgan.models.ssgan import (
    SSGAN,
    LossWeights,
    Supervised,
    predict_probability,
    real_logit,
)

WINDOW, CHANNELS, LATENT = 13, 3, 8


def test_p_real_matches_a_direct_softmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(50, 3)).astype("float32")
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_real = 1 / (1 + np.exp(-np.asarray(real_logit(logits))))
    np.testing.assert_allclose(p_real, softmax[:, 0] + softmax[:, 1], rtol=1e-5)
    p_slide = np.asarray(landslide_probability(logits))
    np.testing.assert_allclose(p_slide, softmax[:, 1] / (softmax[:, 0] + softmax[:, 1]),
                               rtol=1e-5)


def test_p_real_is_stable_for_huge_logits() -> None:
    logits = np.array([[500.0, 480.0, -500.0], [-500.0, -520.0, 500.0]], "float32")
    logit = np.asarray(real_logit(logits))
    assert np.isfinite(logit).all() and logit[0] > 900 and logit[1] < -900


def test_window_probabilities_are_those_of_keras_predict_to_the_bit() -> None:
    """A batch at a time through the compiled predict function: the same numbers as Keras'
    `predict`, over whole batches and a remainder, and none for no windows."""
    discriminator = _tiny_gan().discriminator
    windows = np.random.default_rng(2).normal(size=(19, WINDOW, WINDOW, CHANNELS))
    expected = landslide_probability(discriminator.predict(windows, batch_size=8, verbose=0)[0])
    np.testing.assert_array_equal(predict_probability(discriminator, windows, batch_size=8),
                                  np.asarray(expected, np.float64))
    assert predict_probability(discriminator, windows[:0]).shape == (0,)


def _tiny_gan(seed: int = 0, **weights: float | bool) -> SSGAN:
    keras.utils.set_random_seed(seed)
    d = build_discriminator(WINDOW, CHANNELS, (4, 8), 8, 0.0, 0.2, outputs=3)
    g = build_generator(LATENT, WINDOW, CHANNELS, 8, 0.2, np.full(CHANNELS, -2.0),
                        np.full(CHANNELS, 2.0))
    gan = SSGAN(d, g, LATENT, LossWeights(**weights), seed=seed)  # type: ignore[arg-type]
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))
    return gan


def _tiny_batch() -> tuple:
    rng = np.random.default_rng(1)
    labels = np.array([0, 1] * 8, "int32")
    labelled = rng.normal(size=(16, WINDOW, WINDOW, CHANNELS)).astype("float32")
    labelled[labels == 1] += 1.0
    # real windows are smooth (one value per window): easy to tell from generated noise
    unlabelled = np.repeat(rng.normal(size=(16, 1, 1, CHANNELS)), WINDOW, axis=1)
    unlabelled = np.repeat(unlabelled, WINDOW, axis=2).astype("float32")
    return (tf.constant(labelled), tf.constant(labels)), tf.constant(unlabelled)


def _losses(gan: SSGAN, batch: tuple, noise: tf.Tensor) -> dict[str, float]:
    """The three loss terms as the train step sees them (batch statistics), measured
    without touching the moving statistics."""
    (labelled, labels), unlabelled = batch
    fake = gan.generator(noise, training=True)
    logits_l = gan._judge_generated(labelled)[0]
    logits_u = gan._judge_generated(unlabelled)[0]
    logits_g = gan._judge_generated(fake)[0]
    sce = keras.losses.sparse_categorical_crossentropy(labels, logits_l[:, :2], from_logits=True)
    return {
        "labelled": float(np.mean(sce)),
        "unlabelled": float(np.mean(np.logaddexp(0, -np.asarray(real_logit(logits_u))))),
        "generated": float(np.mean(np.logaddexp(0, np.asarray(real_logit(logits_g))))),
    }


@pytest.mark.slow  # trains for many steps: the slow tier
def test_train_steps_lower_each_discriminator_loss_term() -> None:
    gan = _tiny_gan()
    batch = _tiny_batch()
    noise = gan._noise(16)
    before = _losses(gan, batch, noise)
    gan.g_optimizer.learning_rate.assign(0.0)  # a fixed generator: D's terms must all fall
    step = tf.function(gan.train_step)  # traced once: 80 eager steps took 16 to 25 s
    for _ in range(80):
        logs = step(batch)
    after = _losses(gan, batch, noise)
    for term in ("labelled", "unlabelled", "generated"):
        assert after[term] < before[term], (term, before, after)
    assert set(logs) >= {"d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss"}


def test_generator_steps_lower_the_generator_loss() -> None:
    gan = _tiny_gan()
    batch = _tiny_batch()
    noise = gan._noise(64)

    def g_loss() -> float:
        # as the train step sees it: both networks with batch statistics, nothing updated
        logits = gan._judge_generated(gan.generator(noise, training=True))[0]
        return float(np.mean(np.logaddexp(0, -np.asarray(real_logit(logits)))))

    before = g_loss()
    d_weights = [w.numpy() for w in gan.discriminator.weights]
    gan.d_optimizer.learning_rate.assign(0.0)  # isolate the generator's update
    for _ in range(5):
        gan.train_step(batch)
    for w, old in zip(gan.discriminator.weights, d_weights, strict=True):
        if "moving" not in w.path:
            np.testing.assert_allclose(w.numpy(), old)
    assert g_loss() < before


def test_generated_windows_do_not_move_batch_norm_statistics() -> None:
    gan = _tiny_gan()
    moving = [w for w in gan.discriminator.weights if "moving" in w.path]
    before = [w.numpy().copy() for w in moving]
    gan._judge_generated(tf.random.normal((16, WINDOW, WINDOW, CHANNELS)) * 50)
    for w, old in zip(moving, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), old)


@pytest.mark.parametrize("options", [{"feature_matching": True}, {"gradient_penalty": 10.0}])
def test_options_train(options: dict) -> None:
    gan = _tiny_gan(**options)
    logs = gan.train_step(_tiny_batch())
    assert all(np.isfinite(float(v)) for v in logs.values())
    if "gradient_penalty" in options:
        assert float(logs["d_gradient_penalty"]) > 0


def test_generator_output_shape_and_range() -> None:
    g = build_generator(LATENT, WINDOW, CHANNELS, 8, 0.2, np.array([-1.0, 0.0, -3.0]),
                        np.array([1.0, 1.0, 2.0]))
    out = np.asarray(g(np.random.default_rng(0).normal(size=(32, LATENT)) * 10))
    assert out.shape == (32, WINDOW, WINDOW, CHANNELS)
    assert (out.min(axis=(0, 1, 2)) >= [-1, 0, -3]).all()
    assert (out.max(axis=(0, 1, 2)) <= [1, 1, 2]).all()


def test_baseline_learns_a_separable_set() -> None:
    keras.utils.set_random_seed(0)
    model = Supervised(build_discriminator(WINDOW, CHANNELS, (4, 8), 8, 0.0, 0.2, outputs=2))
    model.compile(keras.optimizers.Adam(1e-3))
    (labelled, labels), _ = _tiny_batch()
    for _ in range(30):
        for tracker in model.metrics:
            tracker.reset_state()
        logs = model.train_step((labelled, labels))
    assert float(logs["labelled_accuracy"]) > 0.9


def test_class_weights_weigh_each_window_by_its_class() -> None:
    from landslide_ssgan.models.ssgan import class_loss

    labels = tf.constant([0, 0, 0, 1])
    logits = tf.constant([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.3, 0.1, 0.0]])
    per_window = keras.losses.sparse_categorical_crossentropy(labels, logits[:, :2],
                                                              from_logits=True).numpy()
    weighted = float(class_loss(labels, logits, (2 / 3, 2.0)))
    expected = (per_window[:3].sum() * 2 / 3 + per_window[3] * 2.0) / (3 * 2 / 3 + 2.0)
    assert weighted == pytest.approx(expected, rel=1e-6)
    assert float(class_loss(labels, logits)) == pytest.approx(per_window.mean(), rel=1e-6)


def test_averaged_weights_follow_the_steps_and_become_the_model() -> None:
    keras.utils.set_random_seed(1)
    d = build_discriminator(WINDOW, CHANNELS, (4, 8), 8, 0.0, 0.2, outputs=2)
    model = Supervised(d, ema=0.5)
    model.compile(keras.optimizers.Adam(1e-2))
    start = [v.numpy().copy() for v in d.trainable_variables]
    windows = np.random.default_rng(0).normal(size=(16, WINDOW, WINDOW, CHANNELS))
    labels = np.arange(16) % 2
    model.fit(windows.astype("float32"), labels, batch_size=16, epochs=2, verbose=0)
    after_two = [v.numpy().copy() for v in d.trainable_variables]
    averages = [a.numpy() for a in model.averaged.averages]
    # two updates with momentum 0.5 from the start: 0.25 start + 0.25 w1 + 0.5 w2
    assert not np.allclose(averages[0], after_two[0])
    assert not np.allclose(averages[0], start[0])
    model.averaged.swap_in()
    np.testing.assert_allclose(d.trainable_variables[0].numpy(), averages[0])
