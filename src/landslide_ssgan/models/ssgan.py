"""The semi-supervised GAN and its supervised twin, each a keras.Model with its own train_step.

The discriminator's N + 1 logits l_0, l_1 (real classes) and l_f (fake) give
P(real) = Z / (Z + 1) with Z = sum_k exp(l_k - l_f) (Salimans et al. 2016); in logit form
that is logsumexp(l_0, l_1) - l_f, so every real/fake loss is a stable softplus of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from landslide_ssgan.models.averaging import AveragedWeights
from landslide_ssgan.models.consistency import ConsistencyTerm
from landslide_ssgan.models.discriminator import REAL_CLASSES, landslide_probability


def real_logit(logits: tf.Tensor) -> tf.Tensor:
    """log(Z) = logit of P(real) from N + 1 logits."""
    return ops.logsumexp(logits[:, :REAL_CLASSES], axis=-1) - logits[:, REAL_CLASSES]


def predict_probability(discriminator: keras.Model, windows: np.ndarray,
                        batch_size: int = 1024) -> np.ndarray:
    """P(landslide) of normalised windows (N, w, w, C), a batch at a time through Keras'
    compiled predict function: the numbers `predict` gives, without the 0.1 to 0.2 s it
    spends building a dataset on every call (every epoch's validation scores call this)."""
    if len(windows) == 0:
        return np.zeros(0)
    logits = np.concatenate([discriminator.predict_on_batch(windows[i:i + batch_size])[0]
                             for i in range(0, len(windows), batch_size)])
    return np.asarray(landslide_probability(logits), dtype=np.float64)


@dataclass(frozen=True)
class LossWeights:
    labelled: float = 1.0
    unlabelled: float = 1.0
    generated: float = 1.0
    feature_matching: bool = False
    gradient_penalty: float = 0.0
    class_weights: tuple[float, float] = (1.0, 1.0)  # stable, landslide: for imbalanced labels
    ema: float = 0.0  # momentum of the averaged discriminator weights used after training


def judged_generated(network: keras.Model, fake: tf.Tensor) -> tf.Tensor:
    """The discriminator on generated inputs, in training mode, but without letting them into
    its batch-normalisation moving statistics: those serve inference on real inputs, and
    generated ones would skew them."""
    moving = [v for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)
              for v in (layer.moving_mean, layer.moving_variance)]
    saved = [tf.identity(v) for v in moving]
    judged = network(fake, training=True)
    for variable, value in zip(moving, saved, strict=True):
        variable.assign(value)
    return judged


def class_loss(labels: tf.Tensor, logits: tf.Tensor,
                weights: tuple[float, float] = (1.0, 1.0)) -> tf.Tensor:
    """Cross-entropy over the real classes, each window weighted by its class's weight."""
    per_window = keras.losses.sparse_categorical_crossentropy(
        labels, logits[:, :REAL_CLASSES], from_logits=True)
    weight = ops.take(ops.convert_to_tensor(weights, "float32"), ops.cast(labels, "int32"))
    return ops.sum(weight * per_window) / ops.sum(weight)


def accuracy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    predicted = ops.argmax(logits[:, :REAL_CLASSES], axis=-1)
    return ops.mean(ops.cast(ops.equal(ops.cast(predicted, "int32"), ops.cast(labels, "int32")),
                             "float32"))


class DiscriminatorTrainer(keras.Model):
    """What the SSGAN and its supervised twin share: the discriminator they train (its logits
    are the model's output), its optimizer, loss trackers, and the optional average of its
    weights that becomes the model after training."""

    def __init__(self, discriminator: keras.Model, tracked: tuple[str, ...], ema: float,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.averaged = AveragedWeights(discriminator, ema) if ema else None
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}

    def compile(self, d_optimizer: keras.optimizers.Optimizer) -> None:  # type: ignore[override]
        super().compile(optimizer=d_optimizer)
        self.d_optimizer = d_optimizer

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, windows: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.discriminator(windows, training=training)[0]

    def window_probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of normalised windows (validation scores)."""
        return predict_probability(self.discriminator, windows)

    def _step_discriminator(self, tape: tf.GradientTape, loss: tf.Tensor) -> None:
        """Apply the discriminator's gradients, then update the averaged weights."""
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables,
                                             strict=True))
        if self.averaged is not None:
            self.averaged.update()

    def _track(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


class SSGAN(DiscriminatorTrainer):
    """Trained on ((labelled windows, labels), unlabelled windows) batches."""

    def __init__(self, discriminator: keras.Model, generator: keras.Model, latent_dim: int,
                 weights: LossWeights, seed: int = 0,
                 consistency: ConsistencyTerm | None = None, **kwargs: object) -> None:
        """With `consistency`, FixMatch's term on the unlabelled windows joins the
        discriminator's loss, weighted by its settings' unlabelled_weight."""
        super().__init__(discriminator, ("d_labelled_loss", "d_unlabelled_loss",
                                         "d_generated_loss", "g_loss", "d_gradient_penalty",
                                         "labelled_accuracy",
                                         *(("d_consistency_loss", "pseudo_label_share")
                                           if consistency is not None else ())),
                         weights.ema, **kwargs)
        self.generator = generator
        self.latent_dim = latent_dim
        self.loss_weights_ = weights
        self.noise = keras.random.SeedGenerator(seed)
        self.consistency = consistency
        if consistency is not None:  # held here so a checkpoint keeps them
            self.view_step, self.teacher = consistency.step, consistency.teacher

    def compile(self, d_optimizer: keras.optimizers.Optimizer,  # type: ignore[override]
                g_optimizer: keras.optimizers.Optimizer) -> None:
        super().compile(d_optimizer)
        self.g_optimizer = g_optimizer

    def _judge_generated(self, fake: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, features = judged_generated(self.discriminator, fake)
        return logits, features

    def _noise(self, batch: int) -> tf.Tensor:
        return keras.random.normal((batch, self.latent_dim), seed=self.noise)

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        (labelled, labels), unlabelled = data
        batch = ops.shape(unlabelled)[0]
        w = self.loss_weights_
        fake = self.generator(self._noise(batch), training=True)
        extra: dict[str, tf.Tensor] = {}
        if self.consistency is not None:
            _, seed_w, seed_s = self.consistency.seeds()
            pseudo, mask = self.consistency.targets(unlabelled, seed_w)
            strong = self.consistency.strong(unlabelled, seed_s)
        with tf.GradientTape() as tape:
            logits_l, _ = self.discriminator(labelled, training=True)
            logits_u, _ = self.discriminator(unlabelled, training=True)
            logits_g, _ = self._judge_generated(fake)
            labelled_loss = class_loss(labels, logits_l, w.class_weights)
            unlabelled_loss = ops.mean(ops.softplus(-real_logit(logits_u)))
            generated_loss = ops.mean(ops.softplus(real_logit(logits_g)))
            penalty = (self._gradient_penalty(unlabelled, fake) if w.gradient_penalty > 0
                       else ops.zeros(()))
            d_loss = (w.labelled * labelled_loss + w.unlabelled * unlabelled_loss
                      + w.generated * generated_loss + w.gradient_penalty * penalty)
            if self.consistency is not None:
                logits_s, _ = self.discriminator(strong, training=True)
                extra = {"d_consistency_loss": self.consistency.loss(logits_s, pseudo, mask),
                         "pseudo_label_share": ops.mean(mask)}
                d_loss += (self.consistency.settings.unlabelled_weight
                           * extra["d_consistency_loss"])
        self._step_discriminator(tape, d_loss)
        if self.consistency is not None:
            self.consistency.update_teacher()

        with tf.GradientTape() as tape:
            fake = self.generator(self._noise(batch), training=True)
            logits_g, features_g = self._judge_generated(fake)
            if w.feature_matching:
                _, features_u = self.discriminator(unlabelled, training=True)
                g_loss = ops.mean(ops.square(ops.mean(features_u, axis=0)
                                             - ops.mean(features_g, axis=0)))
            else:
                g_loss = ops.mean(ops.softplus(-real_logit(logits_g)))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars,
                                             strict=True))

        return self._track({"d_labelled_loss": labelled_loss,
                            "d_unlabelled_loss": unlabelled_loss,
                            "d_generated_loss": generated_loss, "g_loss": g_loss,
                            "d_gradient_penalty": penalty,
                            "labelled_accuracy": accuracy(labels, logits_l), **extra})

    def _gradient_penalty(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        """(|| d real_logit / d x || - 1)^2 on points between real and generated windows."""
        alpha = keras.random.uniform((ops.shape(real)[0], 1, 1, 1), seed=self.noise)
        mixed = alpha * real + (1 - alpha) * fake
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logit = real_logit(self._judge_generated(mixed)[0])
        grads = tape.gradient(logit, mixed)
        norm = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
        return ops.mean(ops.square(norm - 1.0))


class Supervised(DiscriminatorTrainer):
    """The paper's "model a": the same discriminator with two outputs, labels only."""

    def __init__(self, discriminator: keras.Model, class_weights: tuple[float, float] = (1.0, 1.0),
                 ema: float = 0.0, **kwargs: object) -> None:
        super().__init__(discriminator, ("d_labelled_loss", "labelled_accuracy"), ema, **kwargs)
        self.class_weights = class_weights

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        labelled, labels = data
        with tf.GradientTape() as tape:
            logits, _ = self.discriminator(labelled, training=True)
            loss = class_loss(labels, logits, self.class_weights)
        self._step_discriminator(tape, loss)
        return self._track({"d_labelled_loss": loss,
                            "labelled_accuracy": accuracy(labels, logits)})
