"""Training mechanics on the real crop: same seed, same numbers; an interrupted run resumes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from landslide_ssgan.config import Params
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import draw_samples, training_cover, training_statistics
from landslide_ssgan.data.source import WindowSource, window_source
from landslide_ssgan.data.stack import Stack
from landslide_ssgan.models.learners import learner
from landslide_ssgan.models.ssgan import predict_probability
from landslide_ssgan.training.fit import TrainedNetwork, train_network


@pytest.fixture(scope="module")
def source(crop_params: Params, crop_stack: Stack, crop_labels: tuple) -> WindowSource:
    labels, ids = crop_labels
    samples = draw_samples(labels, ids, crop_stack.valid, crop_params.sample, seed=1,
                        pixel_size=10.0)
    mean, std = training_statistics(crop_stack.parts(),
                                    training_cover(samples, crop_stack.grid.shape, 13))
    norm = Normalisation(crop_stack.grid.band_names, mean, std)
    return window_source(crop_stack, samples, norm, "joint", 13)


@pytest.fixture(scope="module")
def tiny(crop_params: Params) -> Params:
    return replace(crop_params, train=replace(crop_params.train, epochs=3, batch_size=32,
                                              latent_dim=8, d_widths=(4, 8), d_hidden=8,
                                              g_width=8))


def _trained(kind: str, cfg: Params, source: WindowSource, backup: Path,
             extra: list | None = None, every_s: float = 0.0) -> TrainedNetwork:
    return train_network(learner(kind), cfg.train, source, cfg.seed, workdir=backup,
                         threshold=0.5, callbacks=tuple(extra or []), checkpoint_every_s=every_s)


def _probabilities(trained: TrainedNetwork, source: WindowSource) -> np.ndarray:
    windows, _ = source.windows("test")
    return predict_probability(trained.model.discriminator, windows)


def _train_once(kind: str, cfg: Params, source: WindowSource, backup: Path,
                extra: list | None = None, every_s: float = 0.0) -> tuple[np.ndarray, list]:
    trained = _trained(kind, cfg, source, backup, extra, every_s)
    return _probabilities(trained, source), trained.history


@pytest.mark.parametrize("kind", ["ssgan", "baseline"])
def test_same_seed_same_probabilities(kind: str, tiny: Params, source: WindowSource,
                                      tmp_path: Path) -> None:
    """Also: each training starts from a fresh Keras state (the second names its layers as
    the first did), and the first model, still held, predicts as before."""
    first = _trained(kind, tiny, source, tmp_path / "a")
    before = _probabilities(first, source)
    second = _trained(kind, tiny, source, tmp_path / "b")
    np.testing.assert_allclose(before, _probabilities(second, source), atol=1e-6)
    np.testing.assert_array_equal(_probabilities(first, source), before)
    assert [w.path for w in first.model.weights] == [w.path for w in second.model.weights]
    assert [row["epoch"] for row in first.history] == [1, 2, 3]
    assert "val_f1" in first.history[-1]


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after the second epoch")


class _Epochs(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.seen.append(epoch)


def test_interrupted_training_resumes_at_its_last_epoch(tiny: Params, source: WindowSource,
                                                        tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _train_once("ssgan", tiny, source, backup, [_Interrupt()])
    assert backup.exists()
    epochs = _Epochs()
    _train_once("ssgan", tiny, source, backup, [epochs])
    assert epochs.seen == [2]  # epochs 0 and 1 were done: only the third runs
    assert not backup.exists()  # the backup is removed once training completes


def test_a_checkpoint_is_written_once_its_interval_has_passed_not_every_epoch(
        tiny: Params, source: WindowSource, tmp_path: Path) -> None:
    """Killed before an hour of training had passed, a run left no checkpoint, so the next
    run trains every epoch again."""
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _train_once("ssgan", tiny, source, backup, [_Interrupt()], every_s=3600.0)
    assert not (backup / "training_metadata.json").exists()
    epochs = _Epochs()
    _train_once("ssgan", tiny, source, backup, [epochs], every_s=3600.0)
    assert epochs.seen == [0, 1, 2]


def test_the_ssgan_trains_on_a_fully_labelled_mask(tiny: Params, crop_stack: Stack,
                                                  crop_labels: tuple, tmp_path: Path) -> None:
    """A mask inventory (0 / 1, nothing unknown) still gives the SSGAN unlabelled windows: any
    valid pixel of the training area, labels withheld."""
    labels, ids = crop_labels
    mask = np.where(labels == 1, 1, 0).astype(np.uint8)
    cfg = replace(tiny.sample, unlabelled_ratio=50.0)
    samples = draw_samples(mask, ids, crop_stack.valid, cfg, seed=1, pixel_size=10.0)
    mean, std = training_statistics(crop_stack.parts(),
                                    training_cover(samples, crop_stack.grid.shape, 13))
    source = window_source(crop_stack, samples, Normalisation(crop_stack.grid.band_names, mean,
                                                              std), "joint", 13)
    assert len(samples.unlabelled()) > 10 * len(samples.of("train"))
    trained = train_network(learner("ssgan"), replace(tiny.train, epochs=1), source, 0,
                            workdir=tmp_path / "backup")
    assert np.isfinite(trained.model.discriminator.get_weights()[0]).all()


def _all_weights(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(v) for v in model.weights]


@pytest.mark.parametrize("kind", ["ssgan", "baseline"])
def test_a_resumed_training_ends_where_an_uninterrupted_one_does(
        kind: str, tiny: Params, source: WindowSource, tmp_path: Path) -> None:
    """Optimizer moments, noise stream and batch order all come back: killed after the second
    epoch and resumed, the weights equal those of a run straight through (same seed)."""
    cfg = replace(tiny, train=replace(tiny.train, ema=0.9))

    def train(backup: Path, extra: tuple = ()) -> keras.Model:
        return train_network(learner(kind), cfg.train, source, cfg.seed, workdir=backup,
                             threshold=0.5, callbacks=extra, checkpoint_every_s=0.0).model

    straight = _all_weights(train(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", (_Interrupt(),))
    resumed = _all_weights(train(tmp_path / "b"))
    assert len(straight) == len(resumed)
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
