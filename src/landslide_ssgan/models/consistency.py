"""A consistency-regularised learner (FixMatch, Sohn et al. 2020) on the SSGAN's discriminator.

Each step: the labelled windows' weak views are trained on their labels; each unlabelled
window's weak view is classified by a teacher (the model itself, or an exponential moving
average of its weights), and where the teacher is confident its answer becomes the label of a
strong view of the same window. The network is the same discriminator as the SSGAN's and its
twin's, with its two real-class logits used (the third is never trained), so everything built
for them applies unchanged: exact dense mapping, the window bundle, the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import ops

from landslide_ssgan.models.augment import Bands, Strong, pseudo_labels, strong_view, weak_view
from landslide_ssgan.models.discriminator import REAL_CLASSES
from landslide_ssgan.models.ssgan import (
    DiscriminatorTrainer,
    _accuracy,
    _class_loss,
    landslide_probability,
)


@dataclass(frozen=True)
class ConsistencySettings:
    """The unlabelled loss's weight, the teacher's confidence a pseudo-label needs, the
    teacher's weight-average momentum (0: the model is its own teacher) and the strong view."""

    unlabelled_weight: float = 1.0
    threshold: float = 0.95
    teacher_ema: float = 0.0
    strong: Strong = Strong()


class Consistency(DiscriminatorTrainer):
    """Trained on ((labelled windows, labels), unlabelled windows) batches, like the SSGAN."""

    def __init__(self, discriminator: keras.Model, bands: Bands,
                 settings: ConsistencySettings, class_weights: tuple[float, float] = (1.0, 1.0),
                 seed: int = 0, **kwargs: object) -> None:
        super().__init__(discriminator, ("d_labelled_loss", "d_unlabelled_loss",
                                         "pseudo_label_share", "labelled_accuracy"), 0.0,
                         **kwargs)
        self.bands, self.settings, self.class_weights = bands, settings, class_weights
        self.base_seed = seed
        self.steps = keras.Variable(0, dtype="int32", trainable=False, name="view_steps")
        self.teacher = None
        if settings.teacher_ema > 0:
            self.teacher = keras.models.clone_model(discriminator)
            self.teacher.set_weights(discriminator.get_weights())

    def _seeds(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Stateless seeds for this step's three views (labelled weak, unlabelled weak and
        strong): the same run gives the same views."""
        step = self.steps.value
        self.steps.assign_add(1)
        base = tf.stack([tf.constant(self.base_seed, tf.int32), step * 3])
        return base, base + [0, 1], base + [0, 2]

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        (labelled, labels), unlabelled = data
        seed_l, seed_w, seed_s = self._seeds()
        weak_l = weak_view(labelled, self.bands, seed_l)
        weak_u = weak_view(unlabelled, self.bands, seed_w)
        strong_u = strong_view(unlabelled, self.bands, self.settings.strong, seed_s)
        teacher = self.teacher if self.teacher is not None else self.discriminator
        confidence = ops.stop_gradient(landslide_probability(teacher(weak_u, training=False)[0]))
        pseudo, mask = pseudo_labels(confidence, self.settings.threshold)
        with tf.GradientTape() as tape:
            logits_l, _ = self.discriminator(weak_l, training=True)
            logits_s, _ = self.discriminator(strong_u, training=True)
            class_loss = _class_loss(labels, logits_l, self.class_weights)
            per_window = keras.losses.sparse_categorical_crossentropy(
                pseudo, logits_s[:, :REAL_CLASSES], from_logits=True)
            # FixMatch's mean over every unlabelled window: few confident ones, small loss
            unlabelled_loss = ops.mean(mask * per_window)
            loss = class_loss + self.settings.unlabelled_weight * unlabelled_loss
        self._step_discriminator(tape, loss)
        self._update_teacher()
        return self._track({"d_labelled_loss": class_loss,
                            "d_unlabelled_loss": unlabelled_loss,
                            "pseudo_label_share": ops.mean(mask),
                            "labelled_accuracy": _accuracy(labels, logits_l)})

    def _update_teacher(self) -> None:
        if self.teacher is None:
            return
        momentum = self.settings.teacher_ema
        for average, weight in zip(self.teacher.weights, self.discriminator.weights,
                                   strict=True):
            average.assign(momentum * average + (1.0 - momentum) * weight)

