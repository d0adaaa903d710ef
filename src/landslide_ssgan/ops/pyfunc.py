"""The model users load and serve: raw windows in, landslide probability out.

An MLflow pyfunc around a model folder (models/bundle.py): the discriminator and its
normalisation travel together, so a served model takes windows in the stack's own units.
"""

from __future__ import annotations

import contextlib
import io
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.errors import InputError, first_line
from landslide_ssgan.models import bundle

PACKAGE_DIR = Path(__file__).resolve().parent
SERVED = PACKAGE_DIR / "served.py"  # the code MLflow runs to load the model


# MLflow advises type hints on predict when the class is created, inside its own warning
# filter; the signature holds the schema (see predict), so the advice is only noise
with contextlib.redirect_stderr(io.StringIO()):
    class WindowClassifier(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """Takes raw (un-normalised) windows (N, w, w, C) in the stack's units and returns
        P(landslide) per window: at the area's prevalence recorded in model.json (prior.py),
        the scale `landslide map` writes, or with the parameter `prior_correction: false` as
        trained. A segmenter's windows are its patches; with the parameter `per_pixel: true`
        it returns P(landslide) of every pixel, (N, w, w)."""

        def load_context(self, context: Any) -> None:
            self.model = bundle.load_bundle(Path(next(iter(context.artifacts.values()))).parent)

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            # (no type hints: MLflow would read them as a schema; the signature holds the schema)
            windows = np.asarray(model_input, dtype=np.float32)
            expected = (self.model.window, self.model.window, len(self.model.bands))
            if windows.ndim != 4 or windows.shape[1:] != expected:
                shape = ", ".join(map(str, expected))
                raise MlflowException(f"expected windows of shape (N, {shape})"
                                      f" with bands {list(self.model.bands)}, got {windows.shape}",
                                      error_code=INVALID_PARAMETER_VALUE)
            if not np.isfinite(windows).all():
                raise MlflowException("windows contain NaN or infinite values",
                                      error_code=INVALID_PARAMETER_VALUE)
            if (params or {}).get("per_pixel"):
                if not self.model.per_pixel:
                    raise MlflowException("per_pixel: only a segmenter labels every pixel; this "
                                          "model classifies whole windows",
                                          error_code=INVALID_PARAMETER_VALUE)
                probability = self.model.raw_pixel_probability(windows)
            else:
                probability = np.asarray(self.model.raw_probability(windows), dtype=np.float32)
            if (params or {}).get("prior_correction"):
                prior = self.model.prior
                if prior is None:
                    raise MlflowException("prior_correction: this model records no prior",
                                          error_code=INVALID_PARAMETER_VALUE)
                probability = prior.correct(probability)
            return probability


def log_window_model(folder: Path, pip_requirements: list[str]) -> str:
    """Log a model folder (any kind, with its normalisation and model.json) as the MLflow
    pyfunc model `model` of the active run; returns its model URI. Its input example is the
    training mean's window (an average window of the area, in the stack's units), which MLflow
    checks the model answers. A model that records the area's prior (calibrate) answers on
    that scale unless asked otherwise, as the maps do; one that records none, as trained
    (MLflow fills a parameter a request leaves out with its default, so the default is the
    model's own)."""
    norm = Normalisation.load(folder / bundle.NORMALISATION)
    if norm.window is None:
        raise InputError(f"{folder / bundle.NORMALISATION}: does not say the window size")
    window, channels = norm.window, len(norm.bands)
    calibrated = bundle.load_info_prior(folder) is not None
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, window, window, channels))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
        params=ParamSchema([ParamSpec("prior_correction", "boolean", calibrated),
                            ParamSpec("per_pixel", "boolean", False)]))
    example = np.broadcast_to(norm.mean.astype(np.float32), (1, window, window, channels))
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(SERVED), input_example=example.copy(),
        artifacts={path.stem: str(path) for path in (folder / name for name in
                                                     bundle.INFERENCE_FILES) if path.is_file()},
        code_paths=[str(PACKAGE_DIR)], signature=signature, pip_requirements=pip_requirements,
        metadata=input_metadata(norm.bands, window, calibrated))
    return str(info.model_uri)


def input_metadata(bands: tuple[str, ...], window: int, calibrated: bool) -> dict[str, Any]:
    """What a caller must send and gets back, in the MLmodel file beside the signature (a
    tensor signature cannot name the bands of its last axis)."""
    return {"input": {"shape": ["N", window, window, len(bands)], "bands": list(bands),
                      "units": "the stack's own units (the model normalises them)"},
            "output": "P(landslide) per window (its centre pixel)",
            "probability_scale": "the area's prevalence (prior_correction: true)" if calibrated
            else "as trained (no area prevalence recorded)"}


def pinned_requirements(names: tuple[str, ...] = (
        "mlflow", "tensorflow", "keras", "numpy", "cloudpickle", "scikit-learn", "scipy",
        "pandas", "statsmodels")) -> list[str]:
    """The packages a served model needs, at the versions installed here."""
    return [f"{name}=={version(name)}" for name in names]


MODEL_SCHEMES = ("models:/", "runs:/")


def window_model_folder(uri: str, workdir: Path) -> Path:
    """A model folder (models/bundle.py) for a `models:/` or `runs:/` URI, or a local model
    folder (models/joint/ssgan). Anything else, a URI that climbs out of its run with `..`,
    or a folder that is not a model's, is refused before anything is read or downloaded."""
    if Path(uri).is_dir():
        return _model_folder(Path(uri), uri)
    if not uri.startswith(MODEL_SCHEMES):
        raise InputError(f"model {uri}: neither a model folder nor a models:/ or runs:/ URI "
                         "(for example models:/landslide-ssgan@champion)")
    if ".." in uri.split("/"):
        raise InputError(f"model {uri}: '..' is not allowed in a model URI; name the run's "
                         "model artifact (runs:/<run id>/model)")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(workdir))
    except (MlflowException, OSError) as exc:
        raise InputError(f"model {uri}: cannot be loaded ({first_line(exc)}); run `landslide "
                         "register` first or give --model-uri") from None
    return _model_folder(Path(local) / "artifacts", uri)


def _model_folder(folder: Path, uri: str) -> Path:
    """The folder, if it holds a landslide model (its classifier and normalisation file)."""
    if not any((folder / name).is_file() for name in bundle.CLASSIFIERS) or not (
            folder / bundle.NORMALISATION).is_file():
        raise InputError(f"model {uri}: not a landslide model (it holds no "
                         f"{' or '.join(bundle.CLASSIFIERS)} with {bundle.NORMALISATION})")
    return folder
