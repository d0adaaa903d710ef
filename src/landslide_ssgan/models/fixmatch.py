"""A consistency-regularised learner (FixMatch, Sohn et al. 2020) on the SSGAN's discriminator.

Labelled windows are trained on their labels through their weak views; unlabelled windows
through the consistency term (models/consistency.py). The network is the same discriminator
as the SSGAN's and its twin's, with its two real-class logits used (the third is never
trained), so everything built for them applies unchanged: exact dense mapping, the model
folder, the registry.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from landslide_ssgan.models.augment import Bands
from landslide_ssgan.models.consistency import ConsistencySettings, ConsistencyTerm
from landslide_ssgan.models.ssgan import DiscriminatorTrainer, accuracy, class_loss


class FixMatch(DiscriminatorTrainer):
    """Trained on ((labelled windows, labels), unlabelled windows) batches, like the SSGAN."""

    def __init__(self, discriminator: keras.Model, bands: Bands,
                 settings: ConsistencySettings, class_weights: tuple[float, float] = (1.0, 1.0),
                 ema: float = 0.0, seed: int = 0, **kwargs: object) -> None:
        super().__init__(discriminator, ("d_labelled_loss", "d_unlabelled_loss",
                                         "pseudo_label_share", "labelled_accuracy"), ema,
                         **kwargs)
        self.class_weights = class_weights
        self.consistency = ConsistencyTerm(discriminator, bands, settings, seed)
        self.view_step, self.teacher = self.consistency.step, self.consistency.teacher

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        (labelled, labels), unlabelled = data
        term = self.consistency
        seed_l, seed_w, seed_s = term.seeds()
        weak_l = term.weak(labelled, seed_l)
        pseudo, mask = term.targets(unlabelled, seed_w)
        strong_u = term.strong(unlabelled, seed_s)
        with tf.GradientTape() as tape:
            logits_l, _ = self.discriminator(weak_l, training=True)
            logits_s, _ = self.discriminator(strong_u, training=True)
            labelled_loss = class_loss(labels, logits_l, self.class_weights)
            unlabelled_loss = term.loss(logits_s, pseudo, mask)
            loss = labelled_loss + term.settings.unlabelled_weight * unlabelled_loss
        self._step_discriminator(tape, loss)
        term.update_teacher()
        return self._track({"d_labelled_loss": labelled_loss,
                            "d_unlabelled_loss": unlabelled_loss,
                            "pseudo_label_share": tf.reduce_mean(mask),
                            "labelled_accuracy": accuracy(labels, logits_l)})
