"""The exact dense twin of a window network: every pixel of a block classified by its own
window in one pass.

Classifying every pixel by its own window one window at a time repeats almost all of the
convolution work (169 times for 13 x 13 windows). The dense twin runs over a whole block
instead and gives, at each pixel, exactly what the window model gives for that pixel's window:
convolutions before the pool are unchanged, the pool keeps its size with stride 1, every layer
after it is dilated by the pool's stride, and the dense layers become 1 x 1 convolutions.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from keras import layers

from landslide_ssgan.models.discriminator import landslide_probability
from landslide_ssgan.models.graphs import run_graph

EXACT = 1e-4  # dense and per-window logits must agree to this (float32 summation order)


def dense_discriminator(model: keras.Model, fold: bool = True) -> keras.Model:
    """A model that maps a block (rows, cols, C) to logits (rows - w + 1, cols - w + 1, K) and
    features, position (i, j) holding the window model's output for the window whose top-left
    pixel is (i, j). Dropout is left out: this is for inference only. Each batch
    normalisation that follows a convolution is folded into that convolution's kernel and
    bias: one pass over the block fewer per layer, the same values to float rounding
    (`fold=False` keeps them apart, for benchmarks/mapping_speed.py to compare)."""
    channels = model.input_shape[-1]
    inputs = keras.Input((None, None, channels), name="block")
    x, dilation, outputs = inputs, 1, {}
    chain = model.layers[1:]
    folded: set[int] = set()
    for i, layer in enumerate(chain):
        if i in folded:
            continue
        if isinstance(layer, layers.Conv2D):
            follows = chain[i + 1] if i + 1 < len(chain) else None
            norm = (follows if fold and isinstance(follows, layers.BatchNormalization)
                    else None)
            if norm is not None:
                folded.add(i + 1)
            config = layer.get_config() | {"dilation_rate": dilation, "name": None,
                                           "use_bias": True}
            twin = layers.Conv2D.from_config(config)
            x = twin(x)
            twin.set_weights(list(folded_conv(layer, norm)))
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
        else:  # batch normalisation not after a convolution, activations: per pixel
            twin = layer.__class__.from_config(layer.get_config() | {"name": None})
            x = twin(x)
            if layer.weights:
                twin.set_weights(layer.get_weights())
    return keras.Model(inputs, [outputs["logits"], outputs["features"]], name="dense_" +
                       model.name)


def folded_conv(conv: layers.Conv2D, norm: layers.BatchNormalization | None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of `conv` followed by inference-mode `norm` (gamma (x - mean) /
    sqrt(var + eps) + beta per output channel), computed in float64."""
    weights = conv.get_weights()
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    if norm is None:
        return kernel.astype(np.float32), bias.astype(np.float32)
    if norm.axis not in (-1, [-1], 3, [3]):
        raise ValueError(f"{norm.name}: batch normalisation over axis {norm.axis}, not the "
                         "channels")
    mean = np.asarray(norm.moving_mean, np.float64)
    variance = np.asarray(norm.moving_variance, np.float64)
    gamma = np.asarray(norm.gamma, np.float64) if norm.scale else np.ones_like(mean)
    beta = np.asarray(norm.beta, np.float64) if norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + norm.epsilon)
    return ((kernel * scale).astype(np.float32),
            ((bias - mean) * scale + beta).astype(np.float32))


def dense_logits(dense: keras.Model, image: np.ndarray) -> np.ndarray:
    """Logits for every window centre of a padded image block (rows + w - 1, cols + w - 1, C),
    computed as one graph (models/graphs.py)."""
    return run_graph(dense, image[None], output=0)[0]


def per_window_logits(model: keras.Model, image: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The slow, always-correct path: every window cut out and classified on its own."""
    window = model.input_shape[1]
    views = np.lib.stride_tricks.sliding_window_view(image, (window, window), axis=(0, 1))
    rows, cols = views.shape[:2]
    flat = views.reshape(rows * cols, *views.shape[2:])  # (N, C, w, w)
    out = [np.asarray(model(np.moveaxis(flat[i:i + batch], 1, -1), training=False)[0])
           for i in range(0, len(flat), batch)]
    return np.concatenate(out).reshape(rows, cols, -1)


def exact_dense_twin(model: keras.Model, seed: int = 0) -> keras.Model | None:
    """The dense twin if it reproduces the window model on a random block, else None with a
    warning (an architecture this module does not know, e.g. a layer mixing positions)."""
    try:
        dense = dense_discriminator(model)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"model {model.name} has no exact dense form ({exc}); mapping falls "
                      "back to per-window inference, which is much slower", stacklevel=2)
        return None
    window, channels = model.input_shape[1], model.input_shape[-1]
    probe = np.random.default_rng(seed).normal(size=(window + 7, window + 9, channels))
    probe = probe.astype(np.float32)
    gap = np.abs(dense_logits(dense, probe) - per_window_logits(model, probe)).max()
    if not gap < EXACT:
        warnings.warn(f"model {model.name}: dense inference differs from per-window inference "
                      f"by {gap:.2g}; mapping falls back to per-window inference", stacklevel=2)
        return None
    return dense


def probability_of(logits: np.ndarray) -> np.ndarray:
    """P(landslide | real) from logits of any leading shape (..., K): the model's own
    `landslide_probability`, applied to a map of logits."""
    flat = logits.reshape(-1, logits.shape[-1])
    return np.asarray(landslide_probability(flat), np.float32).reshape(logits.shape[:-1])
