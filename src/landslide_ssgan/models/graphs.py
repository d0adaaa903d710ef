"""Inference as one TensorFlow graph per model, traced once for any batch and image size.

Called eagerly, a Keras model runs each layer as its own pass over the image: a convolution,
then its bias, then its activation. Inside a graph TensorFlow's optimiser fuses a convolution
with the bias and activation that follow it into one oneDNN kernel, so a map computes the
same values (to float rounding) in fewer passes over memory: about 1.4 times the pixels per
second of the dense twin on AVX2 and AVX-512 (benchmarks/mapping_speed.py). The graph reads
the model's variables, so a model still being trained is run with its current weights.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

ATTRIBUTE = "_inference_graphs"  # on the model: the graphs live and die with it


def run_graph(model: keras.Model, images: np.ndarray, output: int | None = None) -> np.ndarray:
    """model(images, training=False) as a graph (traced at the first call, for images of any
    count, height and width), or its `output`-th output where it has several."""
    graphs = getattr(model, ATTRIBUTE, None)
    if graphs is None:
        graphs = {}
        # past Keras's attribute tracking: a graph is no layer, weight or saved state
        object.__setattr__(model, ATTRIBUTE, graphs)
    if output not in graphs:
        graphs[output] = _traced(model, output)
    return np.asarray(graphs[output](tf.convert_to_tensor(images, tf.float32)))


def _traced(model: keras.Model, output: int | None) -> Any:
    channels = model.input_shape[-1]
    single = model if output is None else keras.Model(model.input, model.outputs[output])

    def infer(images: tf.Tensor) -> tf.Tensor:
        return single(images, training=False)

    return tf.function(infer, input_signature=[
        tf.TensorSpec((None, None, None, channels), tf.float32)])
