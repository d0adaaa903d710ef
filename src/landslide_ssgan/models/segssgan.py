"""The paper's SSGAN carried to patches (Souly, Spampinato and Shah, "Semi Supervised Semantic
Segmentation Using Generative Adversarial Network", ICCV 2017).

The discriminator is the U-Net with N + 1 outputs per pixel (not landslide, landslide,
fake); the generator makes whole patches from noise. Its loss has the window SSGAN's three
parts, each now a mean over pixels: the labelled pixels' class loss (the supervised
segmenter's masked loss over the two real classes), unlabelled patches judged real and
generated patches judged fake, with P(real) = Z / (Z + 1), Z = sum_k exp(l_k - l_fake), as a
stable softplus of logsumexp. The generator is trained to have its patches judged real.
Weights: `train.loss_weights`; the generator's Adam: `train.lr_g`, `train.beta1`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from landslide_ssgan.models.augment import Bands
from landslide_ssgan.models.discriminator import REAL_CLASSES
from landslide_ssgan.models.ssgan import LossWeights, judged_generated
from landslide_ssgan.models.unet import Segmenter, augmented, pixel_loss


def pixel_real_logit(logits: tf.Tensor) -> tf.Tensor:
    """log(Z): the logit of P(real) of every pixel, from its N + 1 logits."""
    return ops.logsumexp(logits[..., :REAL_CLASSES], axis=-1) - logits[..., REAL_CLASSES]


def build_patch_generator(latent_dim: int, size: int, channels: int, width: int,
                          halvings: int, leaky_slope: float, low: np.ndarray,
                          high: np.ndarray) -> keras.Model:
    """Noise -> a (size / 2 ** halvings)-pixel seed map -> `halvings` stride-2 transposed
    convolutions -> a patch in the value range of the training patches (a tanh mapped onto
    [low, high] of each band, as the window generator's)."""
    start = size // 2 ** halvings
    noise = keras.Input((latent_dim,), name="noise")
    x = layers.Dense(start * start * width, use_bias=False)(noise)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Reshape((start, start, width))(x)
    for level in range(halvings):
        x = layers.Conv2DTranspose(max(width // 2 ** (level + 1), 8), 4, strides=2,
                                   padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Conv2D(channels, 3, padding="same", activation="tanh")(x)
    centre = ((high + low) / 2).astype("float32")
    half_range = ((high - low) / 2).astype("float32")
    x = layers.Rescaling(scale=half_range, offset=centre, name="to_patch_range")(x)
    return keras.Model(noise, x, name="patch_generator")


class SegSSGAN(Segmenter):
    """Trained on ((patches, targets), unlabelled patches) batches."""

    def __init__(self, network: keras.Model, generator: keras.Model, latent_dim: int,
                 weights: LossWeights, loss: str = "cross_entropy", bands: Bands | None = None,
                 seed: int = 0, average: bool = False, **kwargs: object) -> None:
        super().__init__(network, loss, weights.class_weights, bands, seed, average, **kwargs)
        self.generator, self.latent_dim, self.weights_ = generator, latent_dim, weights
        self.noise = keras.random.SeedGenerator(seed + 1)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in (
            "d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss")}

    def compile(self, d_optimizer: keras.optimizers.Optimizer,  # type: ignore[override]
                g_optimizer: keras.optimizers.Optimizer) -> None:
        super().compile(optimizer=d_optimizer)
        self.g_optimizer = g_optimizer

    def _noise(self, batch: tf.Tensor) -> tf.Tensor:
        return keras.random.normal((batch, self.latent_dim), seed=self.noise)

    def _judge_generated(self, fake: tf.Tensor) -> tf.Tensor:
        return judged_generated(self.network, fake)

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        (patches, targets), unlabelled = data
        if self.bands is not None:
            seed = keras.random.randint((2,), 0, 2 ** 30, seed=self.views)
            patches, targets = augmented(patches, targets, self.bands, seed)
        w = self.weights_
        batch = ops.shape(unlabelled)[0]
        fake = self.generator(self._noise(batch), training=True)
        with tf.GradientTape() as tape:
            labelled = pixel_loss(targets, self.network(patches, training=True),
                                  self.loss_kind, self.class_weights)
            real = ops.mean(ops.softplus(-pixel_real_logit(
                self.network(unlabelled, training=True))))
            generated = ops.mean(ops.softplus(pixel_real_logit(self._judge_generated(fake))))
            d_loss = w.labelled * labelled + w.unlabelled * real + w.generated * generated
        variables = self.network.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables,
                                           strict=True))
        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch), training=True)
            g_loss = ops.mean(ops.softplus(-pixel_real_logit(self._judge_generated(fake))))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars, strict=True))
        for name, value in (("d_labelled_loss", labelled), ("d_unlabelled_loss", real),
                            ("d_generated_loss", generated), ("g_loss", g_loss)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
