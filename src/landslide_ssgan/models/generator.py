"""The generator: noise -> dense -> reshape -> transposed convolutions -> a window.

Its output lies in the value range of the normalised training windows, band by band: a tanh
mapped onto [low, high] of each band, so one-hot bands and z-scored bands are both reachable.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def build_generator(latent_dim: int, window: int, channels: int, width: int,
                    leaky_slope: float, low: np.ndarray, high: np.ndarray) -> keras.Model:
    """4 x 4 seed map, a stride-2 transposed convolution to 9 x 9, then one to the window."""
    if window < 10:
        raise ValueError(f"window {window} is too small for the generator (needs >= 10)")
    noise = keras.Input((latent_dim,), name="noise")
    x = layers.Dense(4 * 4 * width, use_bias=False)(noise)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Reshape((4, 4, width))(x)
    x = layers.Conv2DTranspose(width // 2, 3, strides=2, padding="valid", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(leaky_slope)(x)
    x = layers.Conv2DTranspose(channels, window - 8, padding="valid", activation="tanh")(x)
    centre = ((high + low) / 2).astype("float32")
    half_range = ((high - low) / 2).astype("float32")
    x = layers.Rescaling(scale=half_range, offset=centre, name="to_window_range")(x)
    return keras.Model(noise, x, name="generator")
