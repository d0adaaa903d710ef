"""MLflow: the tracking store, a Keras callback that logs each epoch, and the pyfunc model.

The core never imports this module; the CLI wires it in. Importing it sets nothing: the
tracking URI is chosen by `use_tracking_store`, called by the commands that log.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient
from mlflow.types.schema import Schema, TensorSpec

from landslide_ssgan.errors import LandslideError
from landslide_ssgan.files import file_digest
from landslide_ssgan.models.ssgan import landslide_probability

PACKAGE_DIR = Path(__file__).resolve().parent


class TrackingError(LandslideError):
    """The tracking store cannot be used (unreachable server, missing run)."""


def tracking_uri(default: str) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default


def use_tracking_store(default: str, experiment: str) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI or the project's SQLite file), after
    checking that a remote server answers, and select the experiment."""
    uri = tracking_uri(default)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(f"MLflow tracking server {uri} cannot be reached "
                                f"({getattr(exc, 'reason', exc)}); set MLFLOW_TRACKING_URI "
                                "to a running server or unset it for the local store") from None
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    return uri


def log_dataset_inputs(paths: dict[str, str]) -> dict[str, str]:
    """Each input file as an MLflow dataset input named by its role, digest = DVC hash."""
    digests = {}
    for name, path in paths.items():
        digest = file_digest(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(Path(path).resolve()))
        mlflow.log_input(MetaDataset(source, name=name, digest=digest[:8]),  # type: ignore[abstract]
                         context="training",
                         tags={"dvc_md5": digest})
        digests[name] = digest
    return digests


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every number in the epoch's logs to the run, and every `image_every` epochs the
    image `make_image(epoch)` (the generator's windows at fixed noise)."""

    def __init__(self, run_id: str, image_every: int,
                 make_image: Callable[[], np.ndarray] | None = None) -> None:
        super().__init__()
        self.client = MlflowClient()
        self.run_id, self.image_every, self.make_image = run_id, image_every, make_image

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch + 1
        stamp = int(1000 * time.time())
        metrics = [Metric(key, float(value), stamp, step) for key, value in (logs or {}).items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        if self.make_image is not None and (step % self.image_every == 0 or step == 1):
            self.client.log_image(self.run_id, self.make_image(),
                                  artifact_file=f"generator/epoch_{step:04d}.png")


# --- the model users load: raw windows in, landslide probability out --------------------


class WindowClassifier(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """Takes raw (un-normalised) windows (N, w, w, C) in the stack's units and returns
    P(landslide) per window; the normalisation travels with the model."""

    def load_context(self, context: Any) -> None:
        self.model = keras.saving.load_model(context.artifacts["discriminator"], compile=False)
        spec = json.loads(Path(context.artifacts["normalisation"]).read_text())
        self.bands = tuple(spec["bands"])
        self.mean = np.asarray(spec["mean"], np.float32)
        self.std = np.asarray(spec["std"], np.float32)
        self.window = int(spec["window"])

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        # (no type hints: MLflow would read them as a schema; the signature holds the schema)
        windows = np.asarray(model_input, dtype=np.float32)
        expected = (self.window, self.window, len(self.bands))
        if windows.ndim != 4 or windows.shape[1:] != expected:
            raise MlflowException(f"expected windows of shape (N, {', '.join(map(str, expected))})"
                                  f" with bands {list(self.bands)}, got {windows.shape}",
                                  error_code=INVALID_PARAMETER_VALUE)
        if not np.isfinite(windows).all():
            raise MlflowException("windows contain NaN or infinite values",
                                  error_code=INVALID_PARAMETER_VALUE)
        logits = self.model.predict((windows - self.mean) / self.std, verbose=0)[0]
        return np.asarray(landslide_probability(logits), dtype=np.float32)


def log_window_model(discriminator_path: Path, normalisation: dict[str, Any],
                     workdir: Path, pip_requirements: list[str]) -> str:
    """Log the discriminator as an MLflow pyfunc model `model` of the active run."""
    spec_path = workdir / "normalisation.json"
    spec_path.write_text(json.dumps(normalisation))
    window, channels = normalisation["window"], len(normalisation["bands"])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, window, window, channels))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]))
    info = mlflow.pyfunc.log_model(
        name="model", python_model=WindowClassifier(),
        artifacts={"discriminator": str(discriminator_path), "normalisation": str(spec_path)},
        code_paths=[str(PACKAGE_DIR)], signature=signature, pip_requirements=pip_requirements)
    return str(info.model_uri)


def pinned_requirements(names: tuple[str, ...] = ("mlflow", "tensorflow", "keras", "numpy",
                                                   "cloudpickle")) -> list[str]:
    """The packages a served model needs, at the versions installed here."""
    from importlib.metadata import version
    return [f"{name}=={version(name)}" for name in names]


# --- the model registry -----------------------------------------------------------------


def best_candidate(experiment: str, feature_set: str, data_digest: str) -> Any | None:
    """The SSGAN run with the best validation F1 (ties: validation kappa, then the earlier
    run) among runs of this feature set and data that logged a model; test metrics play no
    part."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=(f"tags.model = 'ssgan' AND tags.feature_set = '{feature_set}' AND "
                       f"tags.data_digest = '{data_digest}' AND tags.model_uri != ''"),
        order_by=["metrics.val_f1 DESC", "metrics.val_kappa DESC", "attributes.start_time ASC"],
        max_results=1)
    return runs[0] if runs else None


def registered_version(name: str, run_id: str, model_uri: str, tags: dict[str, str]) -> Any:
    """The registry version of this run's model, registering it the first time."""
    client = MlflowClient()
    try:
        existing = list(client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'"))
    except MlflowException:  # no such registered model yet
        existing = []
    if existing:
        return existing[0]
    return mlflow.register_model(model_uri, name, tags=tags)


def alias_version(name: str, alias: str) -> Any | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def window_model_folder(uri: str, workdir: Path) -> Path:
    """A folder with discriminator.keras and normalisation.json for a model URI (models:/...,
    runs:/..., any MLflow artifact URI) or a local model folder (models/joint/ssgan)."""
    if Path(uri).is_dir():
        return Path(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(workdir))
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"model {uri}: cannot be loaded ({first}); run `landslide "
                            "register` first or give --model-uri") from None
    folder = Path(local) / "artifacts"
    if not (folder / "discriminator.keras").is_file():
        raise TrackingError(f"model {uri}: not a landslide window model (no "
                            "artifacts/discriminator.keras)")
    return folder


def model_version_of(uri: str) -> dict[str, str]:
    """Registry version and run behind a models:/name@alias or models:/name/version URI."""
    if not uri.startswith("models:/"):
        return {"uri": uri}
    name, _, ref = uri[len("models:/"):].partition("@")
    client = MlflowClient()
    try:
        version = (client.get_model_version_by_alias(name, ref) if ref else
                   client.get_model_version(*name.split("/", 1)))
    except (MlflowException, TypeError):
        return {"uri": uri}
    return {"uri": uri, "version": str(version.version), "run_id": str(version.run_id)}
