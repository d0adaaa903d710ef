"""The consistency term of FixMatch (Sohn et al. 2020), for any learner on the discriminator.

Each step, every unlabelled window's weak view is classified by a teacher (the discriminator
itself, or an exponential moving average of its weights); where the teacher is confident its
answer becomes the label of a strong view of the same window. The FixMatch learner
(models/fixmatch.py) is labels plus this term; the SSGAN can add it to its discriminator loss
(`train.consistency.ssgan_weight`), so the paper's model can borrow what works.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf
from keras import ops

from landslide_ssgan.models.augment import Bands, Strong, pseudo_labels, strong_view, weak_view
from landslide_ssgan.models.discriminator import REAL_CLASSES, landslide_probability


@dataclass(frozen=True)
class ConsistencySettings:
    """The unlabelled loss's weight, the teacher's confidence a pseudo-label needs, the
    teacher's weight-average momentum (0: the model is its own teacher) and the strong view."""

    unlabelled_weight: float = 1.0
    threshold: float = 0.95
    teacher_ema: float = 0.0
    strong: Strong = Strong()
    feature_dropout: float = 0.0  # a segmenter's feature-perturbation stream (segmatch.py)
    rampup: int = 0  # steps over which a segmenter's unlabelled weight rises (segmatch.py)
    pseudo_classes: str = "both"  # which of a segmenter's pseudo-labels teach (segmatch.py)
    pseudo_from: str = "teacher"  # where a segmenter's pseudo-labels come from (segmatch.py)


class ConsistencyTerm:
    """The views, pseudo-labels and loss of one learner. Its state (the step counter that
    seeds the views, the teacher's weights) are Keras variables the host model must hold as
    attributes (`step` and `teacher`), so a checkpoint keeps them."""

    def __init__(self, discriminator: keras.Model, bands: Bands, settings: ConsistencySettings,
                 seed: int) -> None:
        self.discriminator, self.bands, self.settings = discriminator, bands, settings
        self.seed = seed
        self.step = keras.Variable(0, dtype="int32", trainable=False, name="view_step")
        self.teacher: keras.Model | None = None
        if settings.teacher_ema > 0:
            self.teacher = keras.models.clone_model(discriminator)
            self.teacher.set_weights(discriminator.get_weights())

    def seeds(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Stateless seeds for this step's three views (labelled weak, unlabelled weak and
        strong): the same run gives the same views, and a resumed run goes on where it was."""
        step = self.step.value
        self.step.assign_add(1)
        base = tf.stack([tf.constant(self.seed, tf.int32), step * 3])
        return base, base + [0, 1], base + [0, 2]

    def targets(self, unlabelled: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Pseudo-labels of the weak views and the mask of confident ones (no gradient)."""
        teacher = self.teacher if self.teacher is not None else self.discriminator
        weak = weak_view(unlabelled, self.bands, seed)
        confidence = ops.stop_gradient(landslide_probability(teacher(weak, training=False)[0]))
        return pseudo_labels(confidence, self.settings.threshold)

    def strong(self, unlabelled: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return strong_view(unlabelled, self.bands, self.settings.strong, seed)

    def weak(self, windows: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return weak_view(windows, self.bands, seed)

    @staticmethod
    def loss(logits_strong: tf.Tensor, pseudo: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """FixMatch's mean over every unlabelled window: few confident ones, small loss."""
        per_window = keras.losses.sparse_categorical_crossentropy(
            pseudo, logits_strong[:, :REAL_CLASSES], from_logits=True)
        return ops.mean(mask * per_window)

    def update_teacher(self) -> None:
        if self.teacher is None:
            return
        momentum = self.settings.teacher_ema
        for average, weight in zip(self.teacher.weights, self.discriminator.weights,
                                   strict=True):
            average.assign(momentum * average + (1.0 - momentum) * weight)
