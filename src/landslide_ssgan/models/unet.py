"""The patch segmenter: a small U-Net and the Keras model that trains it on masked targets.

Every system that finds landslides in imagery segments whole patches with a fully
convolutional network: it sees a scar's shape, source and run-out, which a 13 x 13 window
cannot. The U-Net (Ronneberger et al., 2015) here is sized for 2 CPU cores: `depth` halvings,
`width` filters at full resolution, doubled at each level, two 3 x 3 convolutions with batch
normalisation per level, skip connections, and two logits per pixel (not landslide,
landslide) like the window networks' real classes, so the same softmax gives P(landslide).

Fully convolutional: it maps a block of any size whose sides are a multiple of 2 ** depth
(`segment` pads to one), so a map is the network run over overlapping tiles.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from landslide_ssgan.models.augment import (
    SYMMETRIES,
    Bands,
    symmetric_view,
    undo_symmetry,
    weak_view,
)
from landslide_ssgan.models.averaging import AveragedWeights
from landslide_ssgan.models.discriminator import REAL_CLASSES
from landslide_ssgan.models.graphs import run_graph

IGNORED = 255  # data.patches.IGNORED: a target the losses skip
LOSSES = ("cross_entropy", "focal", "dice")
FOCAL_GAMMA = 2.0


def build_unet(channels: int, depth: int, width: int, dropout: float = 0.0,
               outputs: int = REAL_CLASSES, name: str = "u_net") -> keras.Model:
    """Logits (batch, rows, cols, outputs) of patches (batch, rows, cols, channels)."""
    inputs = keras.Input((None, None, channels), name="patches")
    x, skips = inputs, []
    for level in range(depth):
        x = _convolutions(x, width * 2 ** level)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _convolutions(x, width * 2 ** depth)
    if dropout:
        x = layers.Dropout(dropout)(x)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(width * 2 ** level, 2, strides=2)(x)
        x = layers.Concatenate()([x, skips[level]])
        x = _convolutions(x, width * 2 ** level)
    logits = layers.Conv2D(outputs, 1, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def _convolutions(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    for _ in range(2):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x


def split_unet(network: keras.Model) -> tuple[keras.Model, keras.Model]:
    """The U-Net as its encoder (patches -> the features of every level: the skips and the
    bottom) and its decoder (those features -> logits), sharing the network's weights: the
    seam where UniMatch perturbs features (segmatch.py). decoder(encoder(x)) is network(x)."""
    skips = [layer.input for layer in network.layers
             if isinstance(layer, layers.MaxPooling2D)]
    bottom = next(layer.input for layer in network.layers
                  if isinstance(layer, layers.Conv2DTranspose))
    features = [*skips, bottom]
    return (keras.Model(network.input, features, name=f"{network.name}_encoder"),
            keras.Model(features, network.output, name=f"{network.name}_decoder"))


def tile_multiple(network: keras.Model) -> int:
    """The side every input must be a multiple of: 2 ** (the network's halvings)."""
    return 2 ** sum(isinstance(layer, layers.MaxPooling2D) for layer in network.layers)


def segment(network: keras.Model, image: np.ndarray, views: Bands | None = None) -> np.ndarray:
    """P(landslide) of every pixel of normalised images (N, rows, cols, C). With `views` (the
    images' bands), the mean over the image's eight symmetries, each map turned back: a
    network trained on turned and mirrored patches still answers a turned scar a little
    differently, and the mean of its answers is a steadier map (test-time augmentation)."""
    if views is None:
        return _segment_once(network, image)
    total = np.zeros(image.shape[:3], np.float64)
    for turns, mirrored in SYMMETRIES:
        answer = _segment_once(network, symmetric_view(image, views, turns, mirrored))
        total += undo_symmetry(answer, turns, mirrored)
    return (total / len(SYMMETRIES)).astype(np.float32)


def _segment_once(network: keras.Model, image: np.ndarray) -> np.ndarray:
    """P(landslide) of every pixel, one pass: zero-padded at the bottom and right to the
    network's tile multiple (nodata is 0 after normalisation too), run at inference, cropped
    back."""
    multiple = tile_multiple(network)
    rows, cols = image.shape[1:3]
    pad = ((0, 0), (0, -rows % multiple), (0, -cols % multiple), (0, 0))
    logits = run_graph(network, np.pad(image.astype(np.float32), pad))
    probability = ops.softmax(logits[..., :REAL_CLASSES], axis=-1)[..., 1]
    return np.asarray(probability, np.float32)[:, :rows, :cols]


def centre_probability(network: keras.Model, windows: np.ndarray, views: Bands | None = None,
                       batch_size: int = 256) -> np.ndarray:
    """P(landslide) at the centre pixel of each normalised window (N, w, w, C): how a
    segmenter answers the window protocol, from the context the window holds (`views`: as
    `segment`)."""
    half = windows.shape[1] // 2
    out = [segment(network, windows[i:i + batch_size], views)[:, half, half]
           for i in range(0, len(windows), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def pixel_loss(targets: tf.Tensor, logits: tf.Tensor, kind: str,
               weights: tuple[float, float] = (1.0, 1.0)) -> tf.Tensor:
    """The mean loss over the known pixels (targets 0 or 1; IGNORED pixels count nothing):
    class-weighted cross-entropy, its focal form ((1 - p_t) ** 2 times it, Lin et al. 2017),
    or cross-entropy plus the soft Dice loss of the landslide class (Milletari et al. 2016)."""
    known = ops.cast(ops.not_equal(targets, IGNORED), "float32")
    labels = ops.cast(ops.where(ops.equal(targets, IGNORED), 0, targets), "int32")
    real = logits[..., :REAL_CLASSES]
    per_pixel = keras.losses.sparse_categorical_crossentropy(labels, real, from_logits=True)
    weight = ops.take(ops.convert_to_tensor(weights, "float32"), labels) * known
    if kind == "focal":
        p_true = ops.exp(-per_pixel)
        per_pixel = ops.power(1.0 - p_true, FOCAL_GAMMA) * per_pixel
    loss = ops.sum(weight * per_pixel) / ops.maximum(ops.sum(weight), 1.0)
    if kind == "dice":
        probability = ops.softmax(real, axis=-1)[..., 1] * known
        truth = ops.cast(labels, "float32") * known
        overlap = ops.sum(probability * truth)
        loss = loss + 1.0 - (2.0 * overlap + 1.0) / (ops.sum(probability) + ops.sum(truth)
                                                     + 1.0)
    return loss


def augmented(patches: tf.Tensor, targets: tf.Tensor, bands: Bands,
              seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Patches and their targets under the same one of the square's eight symmetries, the
    aspect band turned with them (augment.weak_view)."""
    both = tf.concat([patches, tf.cast(targets, patches.dtype)[..., None]], axis=-1)
    viewed = weak_view(both, _with_target(bands), seed)
    return viewed[..., :-1], tf.cast(tf.round(viewed[..., -1]), targets.dtype)


def _with_target(bands: Bands) -> Bands:
    """The bands with the target as one more, categorical channel (turned, never changed)."""
    return Bands(bands.aspect, bands.aspect_mean, bands.aspect_std, (*bands.categorical, True))


class Segmenter(keras.Model):
    """The supervised segmenter: trained on (patches, targets) batches with a masked pixel
    loss, each batch under a random symmetry when `bands` is given. With `average`, it
    carries an average of the network's weights, which training/fit.py folds the last
    epochs' weights into and swaps in when training ends."""

    def __init__(self, network: keras.Model, loss: str = "cross_entropy",
                 class_weights: tuple[float, float] = (1.0, 1.0), bands: Bands | None = None,
                 seed: int = 0, average: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r}: expected one of {', '.join(LOSSES)}")
        self.network, self.loss_kind, self.class_weights = network, loss, class_weights
        self.bands = bands
        self.views = keras.random.SeedGenerator(seed)
        self.averaged = AveragedWeights(network) if average else None
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("segmentation_loss", "pixel_accuracy")}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, patches: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.network(patches, training=training)

    def window_probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) at the centre of each normalised window (validation scores)."""
        return centre_probability(self.network, windows)

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        patches, targets = data
        if self.bands is not None:
            seed = keras.random.randint((2,), 0, 2 ** 30, seed=self.views)
            patches, targets = augmented(patches, targets, self.bands, seed)
        with tf.GradientTape() as tape:
            logits = self.network(patches, training=True)
            loss = pixel_loss(targets, logits, self.loss_kind, self.class_weights)
        variables = self.network.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables,
                                           strict=True))
        known = ops.not_equal(targets, IGNORED)
        right = ops.equal(ops.cast(ops.argmax(logits[..., :REAL_CLASSES], axis=-1), "int32"),
                          ops.cast(targets, "int32"))
        accuracy = (ops.sum(ops.cast(right & known, "float32"))
                    / ops.maximum(ops.sum(ops.cast(known, "float32")), 1.0))
        for name, value in (("segmentation_loss", loss), ("pixel_accuracy", accuracy)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
