"""Inference as one TensorFlow graph per model, traced once for any batch and image size.

Called eagerly, a Keras model runs each layer as its own pass over the image: a convolution,
then its bias, then its activation. Inside a graph TensorFlow's optimiser fuses a convolution
with the bias and activation that follow it into one oneDNN kernel, so a map computes the
same values (to float rounding) in fewer passes over memory: 1.4 to 1.5 times the pixels per
second of the dense twin on AVX2 and AVX-512 (benchmarks/mapping_speed.py). The graph reads
the model's variables, so a model still being trained is run with its current weights.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf

_GRAPHS: weakref.WeakKeyDictionary[keras.Model, Any] = weakref.WeakKeyDictionary()


def run_graph(model: keras.Model, images: np.ndarray, output: int | None = None) -> np.ndarray:
    """model(images, training=False) as a graph (traced at the first call, for images of any
    count, height and width), or its `output`-th output where it has several."""
    key = (output,)
    graphs = _GRAPHS.setdefault(model, {})
    if key not in graphs:
        graphs[key] = _traced(model, output)
    return np.asarray(graphs[key](tf.convert_to_tensor(images, tf.float32)))


def _traced(model: keras.Model, output: int | None) -> Any:
    channels = model.input_shape[-1]
    single = model if output is None else keras.Model(model.input, model.outputs[output])

    def infer(images: tf.Tensor) -> tf.Tensor:
        return single(images, training=False)

    return tf.function(infer, input_signature=[
        tf.TensorSpec((None, None, None, channels), tf.float32)])
