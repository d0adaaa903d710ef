"""A trained model's folder, saved by train and opened by evaluate, map, serving and the pyfunc.

trained/<feature set>/<model>/ (the train and segment stages'), models/<feature set>/<model>/
(the calibrate stage's: the same, calibrated) and the artifacts of every logged MLflow model
hold:

- `discriminator.keras` (the window networks), `segmenter.keras` (the patch segmenters),
  `forest.joblib` (random forest) or `glm.joblib` (logistic regression): the classifier;
- `normalisation.json`: the bands it sees, their training mean and std, the window size (for
  a segmenter, the patch size: the context a map gives each tile on every side is half of it);
- `model.json`: the model's kind and the landslide share it was trained at (train); its map
  threshold and validation map scores, chosen on the validation area, and its prior (calibrate);
- `generator.keras` (the SSGANs) and `history.csv` (networks): for the realism check and plots;
- `run.json`: the MLflow run it was trained in, and (once calibrated) the model logged there.

This module is the only place that knows those names, so a model folder is written and read
in one way everywhere.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import keras
import numpy as np

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import atomic_path, file_digest, write_json
from landslide_ssgan.models import forest as forests
from landslide_ssgan.models.glm import CentreLogit
from landslide_ssgan.models.prior import Prior
from landslide_ssgan.models.ssgan import predict_probability
from landslide_ssgan.models.unet import Segmenter, centre_probability, segment

DISCRIMINATOR = "discriminator.keras"
SEGMENTER = "segmenter.keras"
FOREST = "forest.joblib"
GLM = "glm.joblib"
NORMALISATION = "normalisation.json"
INFO = "model.json"
COEFFICIENTS = "coefficients.csv"  # the GLM's estimates, standard errors and p-values
GENERATOR = "generator.keras"
HISTORY = "history.csv"
RUN = "run.json"
TUNED = "tuned"  # <set>/tuned: the tune stage's best trial, beside the kinds' folders
CLASSIFIERS = (DISCRIMINATOR, SEGMENTER, FOREST, GLM)
INFERENCE_FILES = (*CLASSIFIERS, NORMALISATION, INFO)  # what inference needs, where present


def model_dir(models: str | Path, feature_set: str, kind: str) -> Path:
    """models/<feature set>/<model>: every model of the feature-set experiment has a home."""
    return Path(models) / feature_set / kind


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model folder: a discriminator, a segmenter, a forest or a GLM, with its
    normalisation and what it knows about itself (model.json: kind, threshold and where it
    came from)."""

    normalisation: Normalisation
    discriminator: keras.Model | None = None
    segmenter: keras.Model | None = None
    forest: Any = None
    glm: CentreLogit | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        """The map threshold chosen on the validation area (None for models saved before)."""
        value = self.info.get("threshold")
        return None if value is None else float(value)

    @property
    def prior(self) -> Prior | None:
        """The trained and the area's landslide prior (None for models saved before)."""
        return _prior(self.info)

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
        if self.segmenter is not None:
            return centre_probability(self.segmenter, windows)
        if self.glm is not None:
            return self.glm.window_probability(windows)
        return np.asarray(forests.forest_probability(self.forest, windows))

    def raw_probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of windows in the stack's own units: normalised here, as in training
        (float32 statistics, as the served model has always used)."""
        return self.probability(self._normalised(windows))

    def raw_pixel_probability(self, patches: np.ndarray) -> np.ndarray:
        """A segmenter's P(landslide) of every pixel of patches in the stack's units."""
        if self.segmenter is None:
            raise InputError("only a segmenter labels every pixel of a patch")
        return segment(self.segmenter, self._normalised(patches))

    def _normalised(self, windows: np.ndarray) -> np.ndarray:
        mean = self.normalisation.mean.astype(np.float32)
        std = self.normalisation.std.astype(np.float32)
        return (np.asarray(windows, np.float32) - mean) / std


def save_trained(folder: str | Path, model: keras.Model, normalisation: Normalisation,
                 history: list[dict[str, float]] | None = None) -> None:
    """A trained network (training/fit.py's): the segmenter's U-Net, or the window network's
    discriminator and generator."""
    if isinstance(model, Segmenter):
        save_network(folder, model.network, normalisation, getattr(model, "generator", None),
                     history, name=SEGMENTER)
    else:
        save_network(folder, model.discriminator, normalisation,
                     getattr(model, "generator", None), history)


def save_network(folder: str | Path, discriminator: keras.Model, normalisation: Normalisation,
                 generator: keras.Model | None = None,
                 history: list[dict[str, float]] | None = None,
                 name: str = DISCRIMINATOR) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    discriminator.save(folder / name)
    if generator is not None:
        generator.save(folder / GENERATOR)
    normalisation.save(folder / NORMALISATION)
    if history is not None:
        write_history(folder / HISTORY, history)


def classifier_bundle(model: Any, normalisation: Normalisation) -> ModelBundle:
    """A fitted random forest or GLM (by its type) as a bundle, without a folder."""
    if isinstance(model, CentreLogit):
        return ModelBundle(normalisation, glm=model)
    return ModelBundle(normalisation, forest=model)


def save_classifier(folder: str | Path, model: Any, normalisation: Normalisation) -> None:
    """A random forest or a GLM (by its type), with its normalisation."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / (GLM if isinstance(model, CentreLogit) else FOREST)) as tmp:
        joblib.dump(model, tmp)
    normalisation.save(folder / NORMALISATION)


def save_info(folder: str | Path, info: dict[str, Any]) -> None:
    """model.json: kind, threshold and where the threshold came from."""
    write_json(Path(folder) / INFO, info)


def save_run(folder: str | Path, run_id: str, model_uri: str | None = None) -> None:
    """run.json: the run a model was trained in, and the model logged there once calibrated."""
    write_json(Path(folder) / RUN, {"run_id": run_id, "model_uri": model_uri})


def load_generator(folder: str | Path) -> keras.Model | None:
    """The generator an SSGAN was trained with (None where the folder holds none)."""
    path = Path(folder) / GENERATOR
    return keras.saving.load_model(path, compile=False) if path.is_file() else None


def read_info(folder: str | Path) -> dict[str, Any]:
    """model.json, or {} for a folder saved before models recorded their threshold."""
    path = Path(folder) / INFO
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def load_info_prior(folder: str | Path) -> Prior | None:
    """The prior in a model folder's model.json (None where it records none)."""
    return _prior(read_info(folder))


def _prior(info: dict[str, Any]) -> Prior | None:
    raw = info.get("prior")
    return None if raw is None else Prior.from_dict(raw)


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
                         f"{DISCRIMINATOR} or {FOREST} and {NORMALISATION} (run `dvc repro`, "
                         "or `landslide train` then `landslide calibrate`)")
    normalisation = Normalisation.load(folder / NORMALISATION)
    info = read_info(folder)
    if (folder / DISCRIMINATOR).is_file():
        return ModelBundle(normalisation, discriminator=keras.saving.load_model(
            folder / DISCRIMINATOR, compile=False), info=info)
    if (folder / SEGMENTER).is_file():
        return ModelBundle(normalisation, segmenter=keras.saving.load_model(
            folder / SEGMENTER, compile=False), info=info)
    if (folder / FOREST).is_file():
        return ModelBundle(normalisation, forest=joblib.load(folder / FOREST), info=info)
    if (folder / GLM).is_file():
        return ModelBundle(normalisation, glm=joblib.load(folder / GLM), info=info)
    raise InputError(f"{folder}: no trained model ({', '.join(CLASSIFIERS)}); run "
                     "`dvc repro`, or `landslide train` then `landslide calibrate`")


def _inference_files(folder: str | Path) -> list[Path]:
    return [Path(folder) / name for name in INFERENCE_FILES if (Path(folder) / name).is_file()]


def model_digest(folder: str | Path) -> str:
    """Identifies a model by its files: a different model never resumes another's map."""
    return "".join(file_digest(path) for path in _inference_files(folder))


def model_bytes(folder: str | Path) -> dict[str, bytes]:
    """The files inference needs, to send to a process without the folder."""
    return {path.name: path.read_bytes() for path in _inference_files(folder)}


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
