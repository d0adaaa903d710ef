"""The MLflow epoch logger of a Keras training: a callback, so it lives apart from tracking.py,
which every stage imports, and only the stages that train a network load Keras for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from landslide_ssgan.ops.tracking import epoch_key


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every number in the epoch's logs to the run, and every `image_every` epochs the
    image `make_image(model)` of the model being trained (the generator's windows at fixed
    noise) as the image series `generator` (MLflow's image key, with the epoch as its
    step)."""

    def __init__(self, run_id: str, image_every: int,
                 make_image: Callable[[Any], np.ndarray] | None = None) -> None:
        super().__init__()
        self.client = MlflowClient()
        self.run_id, self.image_every, self.make_image = run_id, image_every, make_image

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch + 1
        stamp = int(1000 * time.time())
        metrics = [Metric(epoch_key(key), float(value), stamp, step)
                   for key, value in (logs or {}).items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        if self.make_image is not None and (step % self.image_every == 0 or step == 1):
            # an image series with a step: the UI's slider walks the generator's epochs
            self.client.log_image(self.run_id, self.make_image(self.model), key="generator",
                                  step=step, timestamp=stamp)
