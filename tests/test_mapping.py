"""Dense inference is exact: every pixel gets what its own window gets."""

from __future__ import annotations

import keras
import numpy as np

from landslide_ssgan.data.stack import Stack
from landslide_ssgan.data.windows import cut_windows, normalised_image
from landslide_ssgan.mapping import dense_discriminator, dense_logits
from landslide_ssgan.models.discriminator import build_discriminator


def _trained_like(channels: int) -> keras.Model:
    """Random weights and non-trivial batch-norm statistics, as after training."""
    keras.utils.set_random_seed(7)
    model = build_discriminator(13, channels, (8, 16), 16, 0.3, 0.2, outputs=3)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def test_dense_equals_per_window_on_a_real_block_with_edges(crop_stack: Stack) -> None:
    data = crop_stack.data
    mean = np.nanmean(data, axis=(1, 2))
    std = np.nanstd(data, axis=(1, 2)) + 1e-6
    bands = list(range(data.shape[0]))
    image = normalised_image(data, bands, mean, std, 13)  # zero-padded: the edges are real
    block = image[:40 + 12, -(50 + 12):]  # the top-right corner of the crop, 40 x 50 centres
    model = _trained_like(len(bands))
    dense = dense_logits(dense_discriminator(model), block)
    assert dense.shape == (40, 50, 3)
    rows, cols = np.meshgrid(np.arange(40), np.arange(50), indexing="ij")
    windows = cut_windows(block, rows.ravel(), cols.ravel(), 13)
    per_window = model.predict(windows, verbose=0)[0].reshape(40, 50, 3)
    assert np.abs(dense - per_window).max() < 1e-4
