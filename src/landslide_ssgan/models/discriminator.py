"""The discriminator: a feed-forward CNN over one window, with N + 1 or N outputs.

Valid convolutions, one 2 x 2 max-pool and a fully connected head over the last 2 x 2 map:
every layer can be re-expressed densely (pooling with stride 1 and later layers dilated by 2,
the dense head as a dilated 2 x 2 convolution), so the same weights can later classify every
pixel of a raster block exactly as they classify that pixel's own window.
"""

from __future__ import annotations

import keras
from keras import layers

REAL_CLASSES = 2  # non-landslide (0), landslide (1); output 2 of the SSGAN head is "fake"


def build_discriminator(window: int, channels: int, widths: tuple[int, int],
                        hidden: int, dropout: float, leaky_slope: float,
                        outputs: int, name: str = "discriminator") -> keras.Model:
    """Logits for `outputs` classes: 3 for the SSGAN (N + 1), 2 for the supervised baseline.
    The hidden layer is the feature layer used by feature matching."""
    inputs = keras.Input((window, window, channels), name="windows")
    x = inputs
    for width in (widths[0], widths[0]):
        x = layers.Conv2D(width, 3, padding="valid", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(widths[1], 3, padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    features = layers.Dense(hidden, name="features")(x)
    x = layers.LeakyReLU(leaky_slope)(features)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(outputs, name="logits")(x)
    return keras.Model(inputs, [logits, features], name=name)
