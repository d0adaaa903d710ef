"""Averaged weights: a smoother model to map with than the last step's weights.

Two averages share one mechanism: an exponential moving average updated after every step
(`train.ema`, the window networks' discriminator, whose weights keep moving with the
generator) and the mean of the weights at the end of each of a segmenter's last epochs
(`train.patch.average`, stochastic weight averaging, Izmailov et al. 2018). training/fit.py
swaps the average in when training ends and checkpoints it with the model.
"""

from __future__ import annotations

import keras
import numpy as np


class AveragedWeights:
    """A running average of a network's trainable weights: each `update(share)` moves the
    average `share` of the way to the current weights (1 - momentum for a moving average,
    1 / n at the n-th epoch of a mean)."""

    def __init__(self, network: keras.Model, momentum: float = 0.0) -> None:
        self.momentum = momentum
        self.targets = list(network.trainable_variables)
        self.averages = [keras.Variable(np.array(v.numpy()), trainable=False, name=f"ema_{i}")
                         for i, v in enumerate(self.targets)]

    def update(self, share: float | None = None) -> None:
        share = 1.0 - self.momentum if share is None else share
        for average, target in zip(self.averages, self.targets, strict=True):
            average.assign((1.0 - share) * average + share * target)

    def swap_in(self) -> None:
        for average, target in zip(self.averages, self.targets, strict=True):
            target.assign(average)
