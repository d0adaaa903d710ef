"""The discriminator: a feed-forward CNN over one window, with N + 1 or N outputs.

Two valid 3 x 3 convolutions (13 -> 9), a 3 x 3 max-pool with stride 3 (9 -> 3), a valid
convolution over what is left (3 x 3 -> 1 for a 13 window) and a fully connected head: the
receptive field is exactly the window, centred on its centre pixel, and every layer has a
dense equivalent (the pool with stride 1 and the next convolution dilated by 3, the head as
1 x 1 convolutions), so the same weights can classify every pixel of a raster block exactly
as they classify that pixel's own window.
"""

from __future__ import annotations

import keras
from keras import layers, ops

REAL_CLASSES = 2  # non-landslide (0), landslide (1); output 2 of the SSGAN head is "fake"


def landslide_probability(logits: keras.KerasTensor) -> keras.KerasTensor:
    """P(landslide | real): softmax over the real-class logits only (any head: 2 or 3)."""
    return ops.softmax(logits[:, :REAL_CLASSES], axis=-1)[:, 1]


def build_discriminator(window: int, channels: int, widths: tuple[int, int],
                        hidden: int, dropout: float, leaky_slope: float,
                        outputs: int, name: str = "discriminator") -> keras.Model:
    """Logits for `outputs` classes: 3 for the SSGAN (N + 1), 2 for the supervised baseline.
    The hidden layer is the feature layer used by feature matching."""
    if window < 7 or (window - 4) % 3:
        raise ValueError(f"window {window}: the discriminator needs 7, 13, 19, 25, ... pixels")
    inputs = keras.Input((window, window, channels), name="windows")
    x = inputs
    for width in (widths[0], widths[0]):
        x = layers.Conv2D(width, 3, padding="valid", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(widths[1], (window - 4) // 3, padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    features = layers.Dense(hidden, name="features")(x)
    x = layers.LeakyReLU(leaky_slope)(features)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(outputs, name="logits")(x)
    return keras.Model(inputs, [logits, features], name=name)
