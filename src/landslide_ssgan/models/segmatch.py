"""A consistency-regularised segmenter (FixMatch carried to patches; Sohn et al. 2020, with
UniMatch's strong views, Yang et al. 2023).

Labelled patches train the U-Net through their targets, as the supervised segmenter does.
Every unlabelled patch is seen twice under one of the square's symmetries: the weak view goes
to a teacher (the network itself, or an exponential moving average of its weights), whose
confident pixels (P >= threshold or <= 1 - threshold) become pseudo-labels; the strong view is
the same view perturbed without moving a pixel (noise on the continuous bands, a cut-out
square, dropped bands) and then CutMix-ed with another patch of the batch (a box of the
other patch's pixels, with its pseudo-labels), and the student learns the pseudo-labels from
it. With `feature_dropout` above 0, UniMatch's second stream perturbs features rather than
images: the weak view's encoder features (every level of the U-Net) lose that share of their
channels, patch by patch, and the decoder's answer from them learns the same pseudo-labels;
the unlabelled loss is then the mean of the two streams. Settings: `train.consistency`
(weight, threshold, teacher, strong view, feature_dropout), as FixMatch's.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from landslide_ssgan.models.augment import Bands, perturbed, pseudo_labels, weak_view
from landslide_ssgan.models.consistency import ConsistencySettings, ConsistencyTerm
from landslide_ssgan.models.discriminator import REAL_CLASSES
from landslide_ssgan.models.unet import Segmenter, augmented, pixel_loss, split_unet

CUTMIX_SHARE = 0.5  # side of the CutMix box, as a share of the patch's side


def cutmix(images: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor
           ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Each patch gets a box of the next patch of the batch (its pixels, pseudo-labels and
    confidence mask), at a random place."""
    side = tf.shape(images)[1]
    box = tf.cast(tf.cast(side, tf.float32) * CUTMIX_SHARE, tf.int32)
    n = tf.shape(images)[0]
    corner = tf.random.stateless_uniform([n, 2], seed, 0, side - box + 1, dtype=tf.int32)
    rows = tf.range(side)[None, :, None]
    cols = tf.range(side)[None, None, :]
    inside = ((rows >= corner[:, 0, None, None]) & (rows < corner[:, 0, None, None] + box)
              & (cols >= corner[:, 1, None, None]) & (cols < corner[:, 1, None, None] + box))

    def mixed(x: tf.Tensor) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        where = inside if x.shape.rank == 3 else inside[..., None]
        return tf.where(where, tf.roll(x, shift=1, axis=0), x)

    return mixed(images), mixed(labels), mixed(mask)


def channel_dropout(features: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Each patch's feature map with `rate` of its channels set to 0 and the rest scaled by
    1 / (1 - rate) (UniMatch's Dropout2d), drawn from `seed`."""
    shape = tf.shape(features)
    keep = tf.random.stateless_uniform([shape[0], 1, 1, shape[3]], seed) >= rate
    return features * tf.cast(keep, features.dtype) / (1.0 - rate)


def pseudo_loss(pseudo: tf.Tensor, mask: tf.Tensor, logits: tf.Tensor,
                classes: str = "both") -> tf.Tensor:
    """The cross-entropy of the confident pixels' pseudo-labels, over every pixel (the
    others count 0). On an area of a few per cent landslides almost every confident pixel
    says "not landslide", and learning that again may teach the student to miss the scars
    the teacher was unsure of. `classes`: `both` (FixMatch), `balanced` (each class's
    confident pixels carry half of their total weight, however few they are), `landslide`
    (only the confident landslide pixels teach: where the stable ground is labelled
    everywhere, as when only landslides go unmapped, the others add little)."""
    per_pixel = keras.losses.sparse_categorical_crossentropy(
        pseudo, logits[..., :REAL_CLASSES], from_logits=True)
    if classes == "both":
        return ops.mean(mask * per_pixel)
    positive = ops.cast(pseudo, mask.dtype) * mask
    if classes == "landslide":
        return ops.mean(positive * per_pixel)
    negative = mask - positive
    share = ops.sum(mask) / tf.cast(tf.size(mask), mask.dtype)  # as unbalanced, in total

    def class_mean(which: tf.Tensor) -> tf.Tensor:
        return ops.sum(which * per_pixel) / ops.maximum(ops.sum(which), 1.0)

    present = ops.cast(ops.sum(positive) > 0, mask.dtype) + ops.cast(ops.sum(negative) > 0,
                                                                      mask.dtype)
    return share * (class_mean(positive) + class_mean(negative)) / ops.maximum(present, 1.0)


def ramp(step: tf.Tensor, steps: int) -> tf.Tensor:
    """The unlabelled weight's share at `step`: exp(-5 (1 - t)^2) for t = step / steps up to
    1 (Laine & Aila 2017), so early pseudo-labels, from a network that knows little, count
    little; 1 throughout with `steps` 0."""
    if steps <= 0:
        return tf.constant(1.0)
    t = tf.minimum(tf.cast(step, tf.float32) / float(steps), 1.0)
    return tf.exp(-5.0 * tf.square(1.0 - t))


class SegMatch(Segmenter):
    """Trained on ((patches, targets), unlabelled patches) batches."""

    halves: tuple[keras.Model, keras.Model] | None  # the U-Net's encoder and decoder

    def __init__(self, network: keras.Model, bands: Bands, settings: ConsistencySettings,
                 loss: str = "cross_entropy", class_weights: tuple[float, float] = (1.0, 1.0),
                 augment: bool = True, seed: int = 0, average: bool = False,
                 **kwargs: object) -> None:
        super().__init__(network, loss, class_weights, bands if augment else None, seed,
                         average, **kwargs)
        self.view_bands, self.settings = bands, settings
        self.term = ConsistencyTerm(network, bands, settings, seed)  # seeds, teacher
        self.view_step, self.teacher = self.term.step, self.term.teacher  # in checkpoints
        self.trackers |= {name: keras.metrics.Mean(name=name)
                          for name in ("consistency_loss", "pseudo_label_share")}
        # set past Keras's tracking: they share the network's weights, which checkpoints
        # already hold through `network`
        object.__setattr__(self, "halves", split_unet(network)
                           if settings.feature_dropout > 0 else None)
        if self.halves is not None:
            self.trackers["feature_consistency_loss"] = keras.metrics.Mean(
                name="feature_consistency_loss")

    def _pseudo(self, weak: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        teacher = self.teacher if self.teacher is not None else self.network
        logits = teacher(weak, training=False)[..., :REAL_CLASSES]
        probability = ops.stop_gradient(ops.softmax(logits, axis=-1)[..., 1])
        return pseudo_labels(probability, self.settings.threshold)

    def _perturbed_features(self, features: list[tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        """The decoder's logits from the weak view's encoder features, each level's channels
        dropped (UniMatch's feature perturbation)."""
        assert self.halves is not None
        rate = self.settings.feature_dropout
        return self.halves[1]([channel_dropout(f, rate, seed + [0, level])
                               for level, f in enumerate(features)], training=True)

    def _forward(self, patches: tf.Tensor, weak: tf.Tensor
                 ) -> tuple[tf.Tensor, list[tf.Tensor] | None, tuple[tf.Tensor, tf.Tensor]]:
        """The labelled patches' logits, the weak views' encoder features from the same pass
        (None: none yet) and the weak views' pseudo-labels. With `pseudo_from: batch` the labelled
        patches and the weak views go through the network in one training pass, as UniMatch
        does: the pseudo-labels then come from batch statistics rather than the moving ones,
        which a network a few hundred steps old has not yet settled (Keras's momentum 0.99)."""
        encoder = self.halves[0] if self.halves is not None else None
        if self.settings.pseudo_from == "batch":
            n = tf.shape(patches)[0]
            both = tf.concat([patches, weak], axis=0)
            if encoder is None:
                logits, weak_features = self.network(both, training=True), None
            else:
                features = encoder(both, training=True)
                logits = self.halves[1](features, training=True)  # type: ignore[index]
                weak_features = [f[n:] for f in features]
            probability = ops.stop_gradient(
                ops.softmax(logits[n:, ..., :REAL_CLASSES], axis=-1)[..., 1])
            return (logits[:n], weak_features,
                    pseudo_labels(probability, self.settings.threshold))
        pseudo = self._pseudo(weak)
        return self.network(patches, training=True), None, pseudo

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        (patches, targets), unlabelled = data
        seed_l, seed_u, seed_s = self.term.seeds()
        if self.bands is not None:
            patches, targets = augmented(patches, targets, self.bands, seed_l)
        weak = weak_view(unlabelled, self.view_bands, seed_u)
        streams = {}
        with tf.GradientTape() as tape:
            logits, weak_features, (weak_pseudo, weak_mask) = self._forward(patches, weak)
            supervised = pixel_loss(targets, logits, self.loss_kind, self.class_weights)
            strong = perturbed(weak, self.view_bands, self.settings.strong, seed_s)
            strong, pseudo, mask = cutmix(strong, weak_pseudo, weak_mask, seed_s + [0, 5])
            classes = self.settings.pseudo_classes
            consistency = pseudo_loss(pseudo, mask, self.network(strong, training=True),
                                      classes)
            if self.halves is not None:
                if weak_features is None:  # after the strong pass: the moving statistics
                    weak_features = self.halves[0](weak, training=True)  # take it last
                streams["feature_consistency_loss"] = pseudo_loss(
                    weak_pseudo, weak_mask,
                    self._perturbed_features(weak_features, seed_s + [0, 7]), classes)
                consistency = 0.5 * (consistency + streams["feature_consistency_loss"])
            weight = self.settings.unlabelled_weight * ramp(self.view_step.value,
                                                            self.settings.rampup)
            loss = supervised + weight * consistency
        variables = self.network.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables,
                                           strict=True))
        self.term.update_teacher()
        for name, value in (("segmentation_loss", supervised), ("consistency_loss", consistency),
                            ("pseudo_label_share", ops.mean(mask)), *streams.items()):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()
                if name != "pixel_accuracy"}
