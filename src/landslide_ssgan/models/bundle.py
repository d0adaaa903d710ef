"""A trained model's folder, saved by train and opened by evaluate, map, serving and the pyfunc.

models/<feature set>/<model>/ (and the artifacts of every logged MLflow model) hold:

- `discriminator.keras` (SSGAN, baseline) or `forest.joblib` (random forest): the classifier;
- `normalisation.json`: the bands it sees, their training mean and std, the window size;
- `generator.weights.h5` (SSGAN) and `history.csv` (networks): for inspection and plots;
- `run.json`: the MLflow run and logged model it came from.

This module is the only place that knows those names, so a model folder is written and read
in one way everywhere.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import keras
import numpy as np

from landslide_ssgan import forest as forests
from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import atomic_path, file_digest, write_json
from landslide_ssgan.models.ssgan import predict_probability

DISCRIMINATOR = "discriminator.keras"
FOREST = "forest.joblib"
NORMALISATION = "normalisation.json"
GENERATOR = "generator.weights.h5"
HISTORY = "history.csv"
RUN = "run.json"
NETWORK_FILES = (DISCRIMINATOR, NORMALISATION)  # what inference with a network needs


def model_dir(models: str | Path, feature_set: str, kind: str) -> Path:
    """models/<feature set>/<model>: every model of the feature-set experiment has a home."""
    return Path(models) / feature_set / kind


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model folder: a discriminator or a forest, with its normalisation."""

    normalisation: Normalisation
    discriminator: keras.Model | None = None
    forest: Any = None

    @property
    def bands(self) -> tuple[str, ...]:
        return self.normalisation.bands

    @property
    def window(self) -> int:
        if self.discriminator is not None:
            return int(self.discriminator.input_shape[1])
        if self.normalisation.window is None:
            raise InputError("the model's normalisation.json does not say its window size")
        return self.normalisation.window

    def probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of normalised windows (N, w, w, C)."""
        if self.discriminator is not None:
            return predict_probability(self.discriminator, windows)
        return np.asarray(forests.forest_probability(self.forest, windows))

    def raw_probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of windows in the stack's own units: normalised here, as in training
        (float32 statistics, as the served model has always used)."""
        mean = self.normalisation.mean.astype(np.float32)
        std = self.normalisation.std.astype(np.float32)
        return self.probability((np.asarray(windows, np.float32) - mean) / std)


def save_network(folder: str | Path, discriminator: keras.Model, normalisation: Normalisation,
                 generator: keras.Model | None = None,
                 history: list[dict[str, float]] | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    discriminator.save(folder / DISCRIMINATOR)
    if generator is not None:
        generator.save_weights(folder / GENERATOR)
    normalisation.save(folder / NORMALISATION)
    if history is not None:
        write_history(folder / HISTORY, history)


def save_forest(folder: str | Path, model: Any, normalisation: Normalisation) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FOREST) as tmp:
        joblib.dump(model, tmp)
    normalisation.save(folder / NORMALISATION)


def save_run(folder: str | Path, run_id: str, model_uri: str) -> None:
    write_json(Path(folder) / RUN, {"run_id": run_id, "model_uri": model_uri})


def read_run(folder: str | Path) -> dict[str, str]:
    path = Path(folder) / RUN
    if not path.is_file():
        raise InputError(f"{path}: file not found (train the model first)")
    return dict(json.loads(path.read_text()))


def load_bundle(folder: str | Path) -> ModelBundle:
    """Whatever model the folder holds; a one-line error when it holds none."""
    folder = Path(folder)
    if not (folder / NORMALISATION).is_file():
        raise InputError(f"{folder / NORMALISATION}: not found; a model folder holds "
                         f"{DISCRIMINATOR} or {FOREST} and {NORMALISATION} (run `dvc repro` "
                         "or `landslide train`)")
    normalisation = Normalisation.load(folder / NORMALISATION)
    if (folder / DISCRIMINATOR).is_file():
        return ModelBundle(normalisation, discriminator=keras.saving.load_model(
            folder / DISCRIMINATOR, compile=False))
    if (folder / FOREST).is_file():
        return ModelBundle(normalisation, forest=joblib.load(folder / FOREST))
    raise InputError(f"{folder}: no trained model ({DISCRIMINATOR} or {FOREST}); run "
                     "`dvc repro` or `landslide train`")


def network_digest(folder: str | Path) -> str:
    """Identifies a network by its files: a different model never resumes another's map."""
    return "".join(file_digest(Path(folder) / name) for name in NETWORK_FILES)


def network_bytes(folder: str | Path) -> dict[str, bytes]:
    """The files a network needs for inference, to send to a process without the folder."""
    return {name: (Path(folder) / name).read_bytes() for name in NETWORK_FILES}


def bundle_from_bytes(files: dict[str, bytes]) -> ModelBundle:
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        return load_bundle(tmp)


def write_history(path: str | Path, history: list[dict[str, float]]) -> None:
    columns = sorted({key for row in history for key in row} - {"epoch"})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", *columns])
        writer.writeheader()
        writer.writerows(history)


def read_history(folder: str | Path) -> list[dict[str, float]]:
    path = Path(folder) / HISTORY
    if not path.is_file():
        raise InputError(f"{path}: file not found (train the model first)")
    with open(path) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
