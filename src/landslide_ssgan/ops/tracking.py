"""MLflow: the tracking store, run records, a Keras callback that logs each epoch, the registry.

The core never imports this module; the CLI wires it in. Importing it sets nothing: the
tracking URI is chosen by `use_tracking_store`, called by the commands that log.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.errors import LandslideError
from landslide_ssgan.files import file_digest, process_alive


class TrackingError(LandslideError):
    """The tracking store cannot be used (unreachable server, missing run)."""


def tracking_uri(default: str) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default


# MLflow 3 opens new experiments on its GenAI overview unless they say they hold training runs
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def use_tracking_store(default: str, experiment: str) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI or the project's SQLite file), after
    checking that a remote server answers, and select the experiment (created as a training
    experiment); returns the experiment's name. Under `mlflow run` (MLFLOW_RUN_ID set) the
    store and experiment are those of the run it opened: the first run a stage starts is that
    run, and the others go to its experiment."""
    uri = tracking_uri(default)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(f"MLflow tracking server {uri} cannot be reached "
                                f"({getattr(exc, 'reason', exc)}); set MLFLOW_TRACKING_URI "
                                "to a running server or unset it for the local store") from None
    if uri.startswith("sqlite:///"):
        relocate_local_store(_checked_sqlite_file(uri))
    mlflow.set_tracking_uri(uri)
    launched = os.environ.get("MLFLOW_RUN_ID")
    if launched:
        client = MlflowClient()
        found = client.get_experiment(client.get_run(launched).info.experiment_id)
        os.environ["MLFLOW_EXPERIMENT_ID"] = found.experiment_id
        return str(found.name)
    if mlflow.get_experiment_by_name(experiment) is None:
        MlflowClient().create_experiment(experiment, tags=EXPERIMENT_KIND)
    close_orphaned_runs(mlflow.set_experiment(experiment).experiment_id)
    return experiment


# --- runs whose process was killed ------------------------------------------------------

OWNER = "landslide.process"  # tag: host:pid of the process that last opened the run


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def start_run(run_id: str | None = None, **kwargs: Any) -> Any:
    """mlflow.start_run (a new run, or `run_id` reopened), tagged with this process as its
    owner each time, so that if this process is killed the next command to open the store
    can close the run (close_orphaned_runs). Every stage opens its runs through this."""
    with mlflow.start_run(run_id=run_id, **kwargs) as run:
        mlflow.set_tag(OWNER, owner())
        yield run


def close_orphaned_runs(experiment_id: str) -> list[str]:
    """End as KILLED every run still RUNNING whose owner was a process of this machine that
    no longer exists (a killed `landslide train`), so the MLflow UI does not show it running
    for ever; a resumed training reopens it. Runs of live processes, of other machines and
    without an owner tag are left alone."""
    host = socket.gethostname()
    client = MlflowClient()
    runs = client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and "
                              f"tags.`{OWNER}` LIKE '{host}:%'", max_results=1000)
    closed = []
    for run in runs:
        pid = run.data.tags[OWNER].rpartition(":")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    return closed


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


# --- metric names: MLflow's chart view makes a section of each name's first "/" segment --

# the project's flat names (val_map_auprc, d_labelled_loss) are logged under their group
# (val_map/auprc); longer groups first, so val_map_f1 is val_map/f1, not val/map_f1
METRIC_GROUPS = ("val_map", "test_map", "train", "val", "test", "prior", "coef", "importance",
                 "vif", "best", "map")


def metric_key(name: str) -> str:
    """The MLflow key of a flat metric name: `val_map_auprc` -> `val_map/auprc`,
    `map_champion_count` -> `map/champion_count`; a name of no group is kept."""
    for group in METRIC_GROUPS:
        if name.startswith(f"{group}_"):
            return f"{group}/{name[len(group) + 1:]}"
    return name


def log_metrics(metrics: dict[str, float]) -> None:
    """mlflow.log_metrics into the active run, under the grouped keys (metric_key)."""
    mlflow.log_metrics({metric_key(name): float(value) for name, value in metrics.items()})


def metric(name: str, value: float, timestamp: int = 0, step: int = 0) -> Metric:
    """One metric for MlflowClient.log_batch, under its grouped key (metric_key)."""
    return Metric(metric_key(name), float(value), timestamp, step)


def epoch_key(name: str) -> str:
    """An epoch log's key: validation scores under val/, the losses and the training
    batches' figures under train/ (train/d_labelled_loss, train/pseudo_label_share)."""
    return metric_key(name if name.startswith("val_") else f"train_{name}")


# --- runs: every run of the same data and settings is comparable ------------------------


def model_params(train: TrainConfig, seed: int, feature_set: str, window: int,
                 split_method: str) -> dict[str, Any]:
    """The settings that shape a model, flattened for MLflow's params table
    (train.loss_weights.unlabelled, ...)."""
    return {**train_params(train), "seed": seed, "features.set": feature_set,
            "sample.window": window,
            "sample.split.method": split_method}


def train_params(train: TrainConfig) -> dict[str, Any]:
    """train.* settings with dotted names, as MLflow params; those a kind does not read
    (None in Learner.settings) are left out."""
    return {f"train.{k}": v for k, v in _flattened(asdict(train)).items() if v is not None}


def _flattened(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def log_model_info(info: dict[str, Any]) -> None:
    """A model's map threshold, validation map scores and (a segmenter) the symmetries its
    map is the mean over (model.json) into the active run."""
    log_metrics({"map_threshold": info["threshold"]})
    if info.get("prior"):
        log_metrics({"prior_trained": info["prior"]["trained"],
                     "prior_area": info["prior"]["area"]})
    if info.get("validation_map"):
        log_metrics({f"val_map_{k}": v for k, v in info["validation_map"].items() if v == v})
    if info.get("symmetries"):
        log_metrics({"map_symmetries": info["symmetries"]})


def digest_of(samples_md5: str, stack_md5: str) -> str:
    """Identifies the data a model saw from the DVC hashes of the samples and the stack."""
    return samples_md5[:8] + stack_md5[:8]


def _checked_sqlite_file(uri: str) -> Path:
    """The store's SQLite file: its folder must exist (MLflow would make a new, empty store
    anywhere a typo points) and an existing file must be an SQLite database."""
    path = Path(uri[len("sqlite:///"):])
    source = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else \
        "tracking.default_uri"
    if not path.parent.is_dir():
        raise TrackingError(f"{source}: {uri}: the folder {path.parent} does not exist; "
                            "create it or point the URI at an existing store")
    if path.is_file() and path.stat().st_size and not path.read_bytes()[:16].startswith(
            b"SQLite format 3"):
        raise TrackingError(f"{path}: not an SQLite database, so not an MLflow store; move "
                            "it aside (a new store is made in its place) or restore it")
    return path


def relocate_local_store(database: Path) -> None:
    """A local store that moved with its project: MLflow writes absolute artifact paths
    (runs, experiments, logged models, model versions), so a copied or moved project would
    keep reading and writing the old folder. The store's artifacts live in `mlruns/` beside
    the database (MLflow's default artifact root, `./mlruns`, of a command run in the
    database's folder); where the database records another folder, every path under it is
    rewritten to this one (once: afterwards they agree)."""
    import sqlite3

    # only a store whose artifacts MLflow puts beside it: run from the database's folder
    if not database.is_file() or database.resolve().parent != Path.cwd().resolve():
        return
    here = str(database.resolve().parent / "mlruns")
    with contextlib.closing(sqlite3.connect(database, timeout=60)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if "experiments" not in tables:
            return
        roots = {match.group(1) for (location,) in db.execute(
            "SELECT artifact_location FROM experiments") if (match := re.match(
                r"^(?:file://)?(/.*/mlruns)/\d+$", str(location)))}
        old = next(iter(roots - {here}), None) if len(roots) == 1 else None
        if old is None:
            return
        with db:
            for table in tables:
                for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')
                               if "CHAR" in r[2].upper() or "TEXT" in r[2].upper()]:
                    db.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                               f'WHERE "{column}" LIKE ?', (old, here, f"%{old}%"))


def data_digest(samples: str, stack: str) -> str:
    return digest_of(file_digest(samples), file_digest(stack))


def new_run(kind: str, feature_set: str, params: dict[str, Any], inputs: dict[str, str],
            stage: str = "train", nested: bool = False) -> str:
    """An MLflow run with the data hashes (`inputs` must name the stack and the samples),
    params and tags that make runs comparable."""
    with start_run(run_name=f"{kind}-{feature_set}", nested=nested) as run:
        digests = log_dataset_inputs(inputs)
        mlflow.log_params(params)
        mlflow.set_tags({
            "model": kind, "feature_set": feature_set, "stage": stage,
            "data_digest": digest_of(digests["samples"], digests["stack"]),
            "split_method": str(params.get("sample.split.method", "")),
            "mlflow.source.git.commit": git_commit(),
            "mlflow.note.content": f"{kind} on the {feature_set} feature set; compare with "
            "the other models of the same data_digest."})
        return str(run.info.run_id)


# --- the model registry -----------------------------------------------------------------


SCORE_METRICS = {  # registry.score -> the validation metrics candidates are ranked by
    "auprc": ("val_map_auprc", "val_f1"),
    "balanced_f1": ("val_f1", "val_kappa"),
}


def best_candidate(experiment: str, feature_set: str, data_digest: str,
                   score: str, kinds: tuple[str, ...]) -> Any | None:
    """The run of any of `kinds` with the best validation score (`score`: the validation
    area map's AUPRC, or F1 on balanced validation windows; ties: the other, then the
    earlier run) among runs of this feature set and data that logged a model; test metrics
    play no part."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    best = [run for kind in kinds for run in client.search_runs(
        [found.experiment_id],
        filter_string=(f"tags.model = '{kind}' AND tags.feature_set = '{feature_set}' AND "
                       f"tags.data_digest = '{data_digest}' AND tags.model_uri != ''"),
        order_by=[*(f"metrics.`{metric_key(m)}` DESC" for m in SCORE_METRICS[score]),
                  "attributes.start_time ASC"],
        max_results=1)]
    return min(best, key=lambda run: _ranking(run, score), default=None)


def _ranking(run: Any, score: str) -> tuple[float, float, int]:
    """SCORE_METRICS as a sort key: higher scores first, then the earlier run."""
    metrics = run.data.metrics
    first, second = SCORE_METRICS[score]
    return (-metrics.get(metric_key(first), float("-inf")),
            -metrics.get(metric_key(second), float("-inf")),
            run.info.start_time)


def registered_version(name: str, run_id: str, model_uri: str, tags: dict[str, str]) -> Any:
    """The registry version of this run's model, registering it the first time. MLflow's
    own "Successfully registered model" and "Created version" lines are not printed: the
    command that registers says what happened in its own words."""
    client = MlflowClient()
    try:
        existing = list(client.search_model_versions(f"name = '{name}' AND run_id = '{run_id}'"))
    except MlflowException:  # no such registered model yet
        existing = []
    if existing:
        return existing[0]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return mlflow.register_model(model_uri, name, tags=tags)


def alias_version(name: str, alias: str) -> Any | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


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
