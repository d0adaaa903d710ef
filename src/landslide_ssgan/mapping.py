"""Whole-raster inference: the discriminator re-expressed as a fully convolutional network.

Classifying every pixel by its own window one window at a time repeats almost all of the
convolution work (169 times for 13 x 13 windows). The dense twin runs over a whole block
instead and gives, at each pixel, exactly what the window model gives for that pixel's window:
convolutions before the pool are unchanged, the pool keeps its size with stride 1, every layer
after it is dilated by the pool's stride, and the dense layers become 1 x 1 convolutions.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers


def dense_discriminator(model: keras.Model) -> keras.Model:
    """A model that maps a block (rows, cols, C) to logits (rows - w + 1, cols - w + 1, K) and
    features, position (i, j) holding the window model's output for the window whose top-left
    pixel is (i, j). Dropout is left out: this is for inference only."""
    channels = model.input_shape[-1]
    inputs = keras.Input((None, None, channels), name="block")
    x, dilation, outputs = inputs, 1, {}
    for layer in model.layers[1:]:
        if isinstance(layer, layers.Conv2D):
            config = layer.get_config() | {"dilation_rate": dilation, "name": None}
            twin = layers.Conv2D.from_config(config)
            x = twin(x)
            twin.set_weights(layer.get_weights())
        elif isinstance(layer, layers.MaxPooling2D):
            x = layers.MaxPooling2D(pool_size=layer.pool_size, strides=1)(x)
            dilation *= layer.strides[0]
        elif isinstance(layer, layers.Dense):
            kernel, bias = layer.get_weights()
            twin = layers.Conv2D(kernel.shape[1], 1, name=f"dense_{layer.name}")
            x = twin(x)
            twin.set_weights([kernel[None, None], bias])
            outputs[layer.name] = x
        elif isinstance(layer, layers.Flatten | layers.Dropout):
            continue  # the map is 1 x 1 per window here; dropout is off at inference
        else:  # batch normalisation, activations: per pixel, unchanged
            twin = layer.__class__.from_config(layer.get_config() | {"name": None})
            x = twin(x)
            if layer.weights:
                twin.set_weights(layer.get_weights())
    return keras.Model(inputs, [outputs["logits"], outputs["features"]], name="dense_" +
                       model.name)


def dense_logits(dense: keras.Model, image: np.ndarray) -> np.ndarray:
    """Logits for every window centre of a padded image block (rows + w - 1, cols + w - 1, C)."""
    return np.asarray(dense(image[None].astype("float32"), training=False)[0][0])
