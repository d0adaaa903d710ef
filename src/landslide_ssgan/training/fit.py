"""The training recipe of the networks: seed, build (the learner's), validation scores,
dataset, fit, resumption.

`train_network` is the one recipe that the train, tune and study stages, the benchmark and the
tests all use; each caller adds only its own callbacks (the MLflow logger, the pruner). Pure
Keras: MLflow comes in only as a callback handed in by the stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.data.patches import PatchSource
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.errors import InputError
from landslide_ssgan.evaluation.metrics import evaluate_probabilities
from landslide_ssgan.models.learners import Learner
from landslide_ssgan.models.networks import Network
from landslide_ssgan.models.prior import balanced

Source = WindowSource | PatchSource  # windows for the window networks, patches for segmenters


def fresh_keras_state() -> None:
    """Forget the networks trained before in this process (Keras' layer names, its graph,
    TF's kernel cache) and collect them: the study trains 144 networks in one process and,
    without this, grew to 13.5 GiB; a model still held keeps working."""
    keras.utils.clear_session(free_memory=True)


def seed_everything(seed: int) -> None:
    """Same seed, same numbers on CPU: seeds Python, numpy and TF, and makes TF ops
    deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def training_dataset(learner: Learner, source: Source, batch_size: int,
                     seed: int) -> tf.data.Dataset:
    """Labelled batches; for a learner of unlabelled windows each is paired with an
    unlabelled batch of the same size, cycling the unlabelled set, so an epoch is one pass
    over the labelled windows (patches, for a segmenter)."""
    if isinstance(source, PatchSource):
        patches = source.dataset(batch_size, seed)
        if not learner.unlabelled:
            return patches
        return tf.data.Dataset.zip((patches, source.dataset(batch_size, seed + 1, False)))
    rows, cols, labels = source.part("train")
    labelled = source.pixels.dataset(rows, cols, labels, batch_size, shuffle=True, seed=seed)
    if not learner.unlabelled:
        return labelled
    rows, cols, labels = source.unlabelled_part()
    if len(rows) == 0:
        raise InputError(f"{learner.name} needs unlabelled windows: the samples have none")
    unlabelled = source.pixels.dataset(rows, cols, labels, batch_size, shuffle=True,
                                       seed=seed + 1).map(lambda x, _: x).repeat()
    return tf.data.Dataset.zip((labelled, unlabelled))


class ValidationScores(keras.callbacks.Callback):
    """Adds val_precision, val_recall, val_f1, val_kappa, val_miou, val_accuracy to the epoch's
    logs (callbacks after this one see them) and keeps the whole history."""

    def __init__(self, windows: np.ndarray, labels: np.ndarray, threshold: float,
                 history_path: Path | None = None, trained: float = 0.5) -> None:
        """`trained`: the landslide share the model learns at; its probabilities are scored
        at the balanced windows' one half (prior.balanced)."""
        super().__init__()
        self.windows, self.labels, self.threshold = windows, labels, threshold
        self.trained = trained
        self.history_path = history_path
        self.history: list[dict[str, float]] = []
        if history_path is not None and history_path.is_file():  # resuming
            self.history = json.loads(history_path.read_text())

    def on_train_begin(self, logs: dict | None = None) -> None:
        done = self.model._initial_epoch or 0  # type: ignore[attr-defined]
        self.history = [row for row in self.history if row["epoch"] <= done]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if len(self.labels):
            probability = self.model.window_probability(self.windows)  # type: ignore[attr-defined]
            scores, _ = evaluate_probabilities(
                self.labels, balanced(probability, self.trained), self.threshold)
            logs.update({f"val_{name}": value for name, value in scores.items()})
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        if self.history_path is not None:
            self.history_path.write_text(json.dumps(self.history))


CHECKPOINT_EVERY_S = 30.0  # at most this much training is lost to a kill


def fit(model: Network, data: tf.data.Dataset, epochs: int,
        callbacks: list[keras.callbacks.Callback], backup_dir: Path,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S, average_last: int = 0) -> None:
    """Train; an interrupted run resumes from the last checkpointed epoch in `backup_dir`
    (weights, optimizer moments, noise stream and epoch, written at the end of the first epoch
    that ends `checkpoint_every_s` after the last; removed when training completes). The
    batches of the finished epochs are drawn again, untrained on, so that each later epoch
    sees the very batches it would have seen without the interruption. With `average_last`,
    the model becomes the mean of its weights at the end of its last `average_last` epochs."""
    checkpoint = Checkpoint(backup_dir, checkpoint_every_s)
    # the mean takes each epoch's weights before the checkpoint saves it
    mean = [EpochMean(epochs, average_last)] if average_last else []
    # the dataset Keras would make (distributing rebuilds it, with a fresh shuffle state),
    # made here so that the replay advances the very shuffle state training goes on with
    batches = tf.distribute.get_strategy().experimental_distribute_dataset(data)
    for _ in range(finished_epochs(backup_dir)):
        for _ in batches:  # each iterator draws the next shuffle order
            pass
        iter(batches)  # Keras opens the next epoch's iterator as an epoch ends, then another
    model.fit(batches, epochs=epochs, callbacks=[*mean, checkpoint, *callbacks], verbose=0,
              shuffle=False)
    if model.averaged is not None:  # the averaged weights are the trained model
        model.averaged.swap_in()


class Checkpoint(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, written every `every_s` seconds of training rather than every
    epoch (a window network's 40 epochs wrote 40 of them), with what
    Keras' checkpoint leaves out: the random streams (the generator's noise, dropout), without
    which a resumed run would draw the noise of epoch 1 again, and the averaged weights. A
    state a kill left one epoch behind the weights is not restored. Epochs after the last
    checkpoint run again on a resume, and the epoch logger logs them again, same numbers."""

    def __init__(self, backup_dir: Path, every_s: float) -> None:
        super().__init__(str(backup_dir), delete_checkpoint=True)
        self.streams_path = backup_dir / "random_state.npz"
        self.every_s = every_s
        self.saved_at = time.monotonic()

    def _streams(self) -> list[keras.Variable]:
        averaged = self.model.averaged  # type: ignore[attr-defined]
        return [*(generator.state for layer in self.model._flatten_layers()  # type: ignore[attr-defined]
                  for generator in getattr(layer, "_seed_generators", [])),
                *(averaged.averages if averaged is not None else [])]

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self.saved_at = time.monotonic()
        if not self.streams_path.is_file():
            return
        with np.load(self.streams_path) as saved:
            if int(saved["epoch"]) != finished_epochs(self.streams_path.parent):
                return
            for i, stream in enumerate(self._streams()):
                stream.assign(saved[f"s{i}"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._current_epoch, self._last_batch_seen = epoch + 1, 0  # what Keras' own keeps
        if time.monotonic() - self.saved_at < self.every_s:
            return
        self._save_model()
        staging = self.streams_path.with_name(".random_state.tmp.npz")
        arrays: dict[str, Any] = {f"s{i}": np.asarray(stream)
                                  for i, stream in enumerate(self._streams())}
        np.savez(staging, epoch=np.asarray(epoch + 1), **arrays)
        staging.replace(self.streams_path)
        self.saved_at = time.monotonic()


def finished_epochs(backup_dir: Path) -> int:
    """Epochs an interrupted run finished, from the checkpoint Keras' BackupAndRestore keeps."""
    metadata = backup_dir / "training_metadata.json"
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


class EpochMean(keras.callbacks.Callback):
    """Folds the weights at the end of each of the last `last` of `epochs` epochs into the
    model's averaged weights as their running mean (the n-th with share 1 / n): stochastic
    weight averaging (Izmailov et al. 2018). A segmenter's map moves by up to a third
    between one epoch's weights and the next; their mean is steadier. The count comes from
    the epoch's number, so a resumed run goes on with the mean it had."""

    def __init__(self, epochs: int, last: int) -> None:
        super().__init__()
        self.first = epochs - last  # epochs (from 1) after this one are averaged

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        n = epoch + 1 - self.first
        if n >= 1:
            self.model.averaged.update(1.0 / n)  # type: ignore[attr-defined]


def averaged_epochs(share: float, epochs: int) -> int:
    """How many of the last epochs `train.patch.average` averages: at least one once it is
    above 0 (the last epoch alone is the last weights)."""
    return max(1, round(share * epochs)) if share > 0 else 0


POLY_POWER = 0.9  # DeepLab's and UniMatch's


def poly_decay(lr: float, epochs: int) -> keras.callbacks.Callback:
    """The learning rate of epoch e (from 0) of `epochs`: lr * (1 - e / epochs) ** 0.9, the
    'poly' schedule of segmentation training (DeepLab, UniMatch), set at each epoch's start
    from its number, so a resumed run goes on with the rate it would have had."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch, _: lr * (1.0 - epoch / epochs) ** POLY_POWER)


@dataclass(frozen=True)
class TrainedNetwork:
    model: Network
    history: list[dict[str, float]]  # per epoch: losses and, when validated, val_ scores


EpochHook = Callable[[int, int, dict[str, float]], None]  # epoch (from 1), epochs, logs


class EpochReport(keras.callbacks.Callback):
    """Hands each finished epoch's number and logs to `hook` (the command's progress line)."""

    def __init__(self, hook: EpochHook, epochs: int) -> None:
        super().__init__()
        self.hook, self.epochs = hook, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.hook(epoch + 1, self.epochs, {k: float(v) for k, v in (logs or {}).items()})


def train_network(learner: Learner, cfg: TrainConfig, source: Source, seed: int, *,
                  workdir: Path, epochs: int | None = None, threshold: float | None = None,
                  callbacks: tuple[keras.callbacks.Callback, ...] = (),
                  history_path: Path | None = None,
                  checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> TrainedNetwork:
    """Seed, build, train for `epochs` (default cfg.epochs) and return the trained network.

    With a `threshold`, validation scores at that threshold join each epoch's logs before the
    caller's `callbacks` see them (a pruner needs val_f1); `history_path` keeps them across an
    interruption. `workdir` holds the checkpoint an interrupted run resumes from, written every
    `checkpoint_every_s` seconds of training (0: every epoch). Seeding happens here, right
    before the weights are drawn: call this after anything (MLflow) that may draw from
    Python's random module.
    """
    fresh_keras_state()
    seed_everything(seed)
    if learner.build is None:
        raise ValueError(f"{learner.name} is not a network")
    cfg = learner.settings(cfg)  # the settings it reads, no others
    model = learner.build(cfg, source, seed)
    trained = learner.trained_prior(cfg, source.training_labels())
    scores = ([ValidationScores(*source.windows("val"), threshold, history_path=history_path,
                                trained=trained)] if threshold is not None else [])
    schedule = cfg.patch if learner.patches else cfg  # a segmenter's batches and epochs
    data = training_dataset(learner, source, schedule.batch_size, seed)
    epochs = epochs or schedule.epochs
    decay = ([poly_decay(cfg.patch.lr, epochs)]
             if learner.patches and cfg.patch.lr_schedule == "poly" else [])
    average = averaged_epochs(cfg.patch.average, epochs) if learner.patches else 0
    fit(model, data, epochs, [*decay, *scores, *callbacks], workdir, checkpoint_every_s,
        average)
    return TrainedNetwork(model, scores[0].history if scores else [])
