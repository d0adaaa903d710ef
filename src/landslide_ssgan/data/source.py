"""Window sources: the normalised, padded image of a feature set's bands (in memory, or in a
temporary file for areas too large for memory) plus the samples that index it.

Every learner trains on a window source, and evaluation, tuning and the study cut their
windows from one; the same windows either way, so the same models.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landslide_ssgan.config import Params, WindowsConfig
from landslide_ssgan.data.layers import check_rgb
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.data.sampling import UNLABELLED, Samples, read_samples
from landslide_ssgan.data.stack import (
    BandInfo,
    Stack,
    band_indices,
    read_stack,
    read_stack_info,
    stack_parts,
)
from landslide_ssgan.data.windows import ImageWindows, Windows, file_windows, normalised_image
from landslide_ssgan.errors import InputError


@dataclass(frozen=True)
class WindowSource:
    """The normalised, padded image of the chosen bands (in memory or in a temporary file)
    plus the samples that index it."""

    pixels: Windows
    samples: Samples
    window: int
    bands: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    categorical: tuple[bool, ...]  # per band: a class (one-hot or ordinal), not a measurement

    @property
    def channels(self) -> int:
        return self.pixels.channels

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres and labels of one split's labelled windows."""
        rows = self.samples.of(split)
        return rows.row.to_numpy(), rows.col.to_numpy(), rows.label.to_numpy()

    def unlabelled_part(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.samples.unlabelled()
        return rows.row.to_numpy(), rows.col.to_numpy(), rows.label.to_numpy()

    def windows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        rows, cols, labels = self.part(split)
        return self.pixels.cut(rows, cols), labels

    def training_labels(self) -> np.ndarray:
        """The labels of the labelled training windows: the share a model learns at."""
        return self.part("train")[2]

    def value_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band min and max over every pixel of the training windows, labelled and
        unlabelled."""
        return self.pixels.value_range(*_training_centres(self.samples))

    @property
    def normalisation(self) -> Normalisation:
        """What a model trained on these windows saves beside itself."""
        return Normalisation(self.bands, self.mean, self.std, self.window)


def _training_centres(samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the windows the generator's value range comes from: the labelled training
    windows and the unlabelled pool."""
    train = samples.table[(samples.table.split == "train") | (samples.table.label == UNLABELLED)]
    return train.row.to_numpy(), train.col.to_numpy()


def window_source(stack: Stack, samples: Samples, norm: Normalisation, feature_set: str,
                  window: int) -> WindowSource:
    """The window source of an in-memory stack: its normalised image in memory."""
    bands = stack.indices(feature_set)
    _check_bands(norm, stack.grid.band_names)
    image = normalised_image(stack.data, bands, norm.mean, norm.std, window)
    return _source(ImageWindows(image, window), samples, norm, stack.bands, bands, window)


def _source(pixels: Windows, samples: Samples, norm: Normalisation,
            infos: tuple[BandInfo, ...], bands: list[int], window: int) -> WindowSource:
    return WindowSource(pixels, samples, window, tuple(infos[i].name for i in bands),
                        norm.mean[bands], norm.std[bands],
                        tuple(infos[i].categorical for i in bands))


def _check_bands(norm: Normalisation, names: tuple[str, ...], norm_path: str = "",
                 stack_path: str = "") -> None:
    if tuple(norm.bands) != names:
        where = f"{norm_path or 'the normalisation file'}: its {len(norm.bands)} bands differ "
        raise InputError(f"{where}from the {len(names)} of the stack "
                         f"{stack_path or '(paths.stack)'} ({', '.join(names)}); rerun "
                         "`landslide sample` on this stack (paths.norm, paths.stack)")


@dataclass(frozen=True)
class TrainingData:
    """The files a model is trained on (stack, samples, normalisation) and judged by on the
    map (labels, landslide ids, split raster): the prepare and sample stages' outputs; and
    where windows are cut from (`windows`)."""

    stack: str
    samples: str
    norm: str
    labels: str
    inventory_ids: str
    split: str
    windows: WindowsConfig = WindowsConfig()

    @classmethod
    def of(cls, cfg: Params) -> TrainingData:
        """The files params.yaml names (and features.rgb checked against the stack's bands)."""
        paths = cfg.paths
        check_rgb(cfg.features.rgb, paths.stack)
        return cls(paths.stack, paths.samples, paths.norm, paths.labels, paths.inventory_ids,
                   paths.split, cfg.windows)

    def window_source(self, feature_set: str, window: int) -> WindowSource:
        return load_window_source(self.stack, self.samples, self.norm, feature_set, window,
                                  self.windows)


def load_window_source(stack: str, samples: str, norm: str, feature_set: str, window: int,
                       where: WindowsConfig | None = None) -> WindowSource:
    """The window source of the sample stage's outputs, for one feature set."""
    return next(load_window_sources(stack, samples, norm, (feature_set,), window, where))


def load_window_sources(stack: str, samples: str, norm: str, feature_sets: Sequence[str],
                        window: int, where: WindowsConfig | None = None
                        ) -> Iterator[WindowSource]:
    """One window source per feature set, in turn: the normalised image in memory up to
    `where.in_memory_mib`, else written part by part to a temporary file (the same windows
    either way, so the same models). The samples, the normalisation and, for images held in
    memory, the stack are read once for all the sets."""
    where = where or WindowsConfig()
    if where.temp_dir is not None and not Path(where.temp_dir).is_dir():
        raise InputError(f"windows.temp_dir: {where.temp_dir} is not a folder; create it or "
                         "set null for the system's temporary folder")
    grid, infos = read_stack_info(stack)
    drawn, normalisation = read_samples(samples), Normalisation.load(norm)
    _check_bands(normalisation, grid.band_names, norm, stack)
    whole = functools.cache(lambda: read_stack(stack))
    half = window // 2
    for feature_set in feature_sets:
        bands = band_indices(infos, feature_set)
        size = (grid.height + 2 * half) * (grid.width + 2 * half) * len(bands) * 4
        if size <= where.in_memory_mib * 2**20:
            yield window_source(whole(), drawn, normalisation, feature_set, window)
            continue
        pixels = file_windows(stack_parts(stack, bands=bands), grid.shape,
                              normalisation.mean[bands], normalisation.std[bands], window,
                              _training_centres(drawn), where.temp_dir)
        yield _source(pixels, drawn, normalisation, infos, bands, window)
