"""A trained model's folder, saved by train and opened by evaluate, map, serving and the pyfunc.

trained/<feature set>/<model>/ (the train and segment stages'), models/<feature set>/<model>/
(the calibrate stage's: the same, calibrated) and the artifacts of every logged MLflow model
hold:

- `discriminator.keras` (the window networks), `segmenter.keras` (the patch segmenters),
  `forest.joblib` (random forest) or `glm.joblib` (logistic regression): the classifier;
- `normalisation.json`: the bands it sees, their training mean and std, the window size (for
  a segmenter, the patch size: the context a map gives each tile on every side is half of it);
- `model.json`: the model's kind and the landslide share it was trained at (train); its map
  threshold and validation map scores, chosen on the validation area, its prior and, for a
  segmenter, the symmetries its answers are the mean over (calibrate);
- `generator.keras` (the SSGANs) and `history.csv` (networks): for the realism check and plots;
- `run.json`: the MLflow run it was trained in, and (once calibrated) the model logged there.

This module is the only place that knows those names, so a model folder is written and read
in one way everywhere.
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.errors import InputError
from landslide_ssgan.files import atomic_path, file_digest, write_json
from landslide_ssgan.models.predictors import (
    FILES,
    Forest,
    Glm,
    PatchNetwork,
    Predictor,
    WindowNetwork,
    family_of,
)
from landslide_ssgan.models.prior import Prior

if TYPE_CHECKING:  # loaded where a generator is: a classifier's stage never loads TensorFlow
    import keras

DISCRIMINATOR, SEGMENTER = WindowNetwork.file, PatchNetwork.file
FOREST, GLM = Forest.file, Glm.file
NORMALISATION = "normalisation.json"
INFO = "model.json"
COEFFICIENTS = "coefficients.csv"  # the GLM's estimates, standard errors and p-values
GENERATOR = "generator.keras"
HISTORY = "history.csv"
RUN = "run.json"
TUNED = "tuned"  # <set>/tuned: the tune stage's best trial, beside the kinds' folders
CLASSIFIERS = FILES  # one per family of predictors.py
INFERENCE_FILES = (*CLASSIFIERS, NORMALISATION, INFO)  # what inference needs, where present


def model_dir(models: str | Path, feature_set: str, kind: str) -> Path:
    """models/<feature set>/<model>: every model of the feature-set experiment has a home."""
    return Path(models) / feature_set / kind


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model folder: the model's predictor (predictors.py), its normalisation and
    what it knows about itself (model.json: kind, threshold and where it came from)."""

    normalisation: Normalisation
    predictor: Predictor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        """The map threshold chosen on the validation area (None before calibration)."""
        value = self.info.get("threshold")
        return None if value is None else float(value)

    @property
    def prior(self) -> Prior | None:
        """The trained and the area's landslide prior (None before calibration)."""
        return _prior(self.info)

    @property
    def bands(self) -> tuple[str, ...]:
        return self.normalisation.bands

    @property
    def window(self) -> int:
        window = self.predictor.window or self.normalisation.window
        if window is None:
            raise InputError("the model's normalisation.json does not say its window size")
        return window

    @property
    def per_pixel(self) -> bool:
        """A segmenter: it answers every pixel of a patch."""
        return self.predictor.per_pixel

    def probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of normalised windows (N, w, w, C)."""
        return self.predictor.probability(windows)

    def raw_probability(self, windows: np.ndarray) -> np.ndarray:
        """P(landslide) of windows in the stack's own units: normalised here, as in training
        (float32 statistics, as the served model has always used)."""
        return self.probability(self._normalised(windows))

    def raw_pixel_probability(self, patches: np.ndarray) -> np.ndarray:
        """A segmenter's P(landslide) of every pixel of patches in the stack's units."""
        if not isinstance(self.predictor, PatchNetwork):
            raise InputError("only a segmenter labels every pixel of a patch")
        return self.predictor.pixel_probability(self._normalised(patches))

    def _normalised(self, windows: np.ndarray) -> np.ndarray:
        mean = self.normalisation.mean.astype(np.float32)
        std = self.normalisation.std.astype(np.float32)
        return (np.asarray(windows, np.float32) - mean) / std


def save_model(folder: str | Path, predictor: Predictor, normalisation: Normalisation,
               history: list[dict[str, float]] | None = None,
               generator: keras.Model | None = None) -> None:
    """A trained model (the learner's predictor of it), its normalisation and, for networks,
    the per-epoch history and the generator it was trained with."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    predictor.save(folder)
    if generator is not None:
        generator.save(folder / GENERATOR)
    normalisation.save(folder / NORMALISATION)
    if history is not None:
        write_history(folder / HISTORY, history)


def save_info(folder: str | Path, info: dict[str, Any]) -> None:
    """model.json: kind, threshold and where the threshold came from."""
    write_json(Path(folder) / INFO, info)


def save_run(folder: str | Path, run_id: str, model_uri: str | None = None) -> None:
    """run.json: the run a model was trained in, and the model logged there once calibrated."""
    write_json(Path(folder) / RUN, {"run_id": run_id, "model_uri": model_uri})


def load_generator(folder: str | Path) -> keras.Model | None:
    """The generator an SSGAN was trained with (None where the folder holds none)."""
    path = Path(folder) / GENERATOR
    if not path.is_file():
        return None
    import keras

    return keras.saving.load_model(path, compile=False)


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
                         f"{' or '.join(CLASSIFIERS)} and {NORMALISATION} (run `dvc repro`, "
                         "or `landslide train` then `landslide calibrate`)")
    family = family_of(folder)
    if family is None:
        raise InputError(f"{folder}: no trained model ({', '.join(CLASSIFIERS)}); run "
                         "`dvc repro`, or `landslide train` then `landslide calibrate`")
    info = read_info(folder)
    loaded = ModelBundle(Normalisation.load(folder / NORMALISATION), family.load(folder), info)
    return with_symmetries(loaded, int(info.get("symmetries", 1)))


def with_symmetries(model: ModelBundle, symmetries: int) -> ModelBundle:
    """The model whose segmenter answers with the mean over the square's 8 symmetries
    (`symmetries` 8, calibrate.symmetries; recorded in its model.json so every map, served
    answer and threshold of it is made alike), or in one pass (1). A window model as it is:
    it maps once."""
    if not isinstance(model.predictor, PatchNetwork):
        return model
    views = None
    if symmetries > 1:
        from landslide_ssgan.models.augment import Bands  # TensorFlow: only for a segmenter

        norm = model.normalisation
        views = Bands.of_map(norm.bands, norm.mean, norm.std)
    return replace(model, predictor=replace(model.predictor, views=views),
                   info={**model.info, "symmetries": symmetries})


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
