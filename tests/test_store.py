"""The local MLflow store moves with the project, and a store that cannot be one is refused
in one line before MLflow touches it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from landslide_ssgan.ops import tracking


def _default(root: Path) -> str:
    """tracking.default_uri of params.yaml (sqlite:///mlflow.db) as a command run in `root`
    reads it; spelt absolute because MLflow keeps one engine per URI in a process, and a
    command is a process of its own."""
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _own_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default store of a project folder (no MLFLOW_TRACKING_URI), given back after."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)


def _open(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a command run in `root` does first (mlflow.set_tracking_uri also exports
    MLFLOW_TRACKING_URI, which a new command would not inherit)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.use_tracking_store(_default(root), "landslide-ssgan")


def _project_with_a_run(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root.mkdir()
    monkeypatch.chdir(root)
    _open(root, monkeypatch)
    with mlflow.start_run() as run:
        mlflow.log_text("first", "note.txt")
    return str(run.info.run_id)


def test_a_moved_project_reads_and_writes_its_own_store(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _project_with_a_run(tmp_path / "old", monkeypatch)
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    shutil.rmtree(tmp_path / "old")
    monkeypatch.chdir(tmp_path / "new")
    _open(tmp_path / "new", monkeypatch)
    client = MlflowClient()
    assert client.get_run(run_id).info.artifact_uri.startswith(str(tmp_path / "new" / "mlruns"))
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/note.txt") == "first"
    with mlflow.start_run() as run:
        mlflow.log_text("second", "note.txt")
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "second"
    assert not (tmp_path / "old").exists()  # nothing was written to the old folder


@pytest.mark.slow  # starts a fresh Python process
def test_a_copied_project_leaves_the_original_store_alone(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = _project_with_a_run(tmp_path / "old", monkeypatch)
    before = sorted(p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*"))
    shutil.copytree(tmp_path / "old", tmp_path / "copy")
    # a command of its own in the copy (in this process MLflow caches each run's artifact
    # folder): it logs into the old run, which the copy's store now places in the copy
    script = ("import mlflow, sys; from landslide_ssgan.ops import tracking; "
              "tracking.use_tracking_store(sys.argv[1], 'landslide-ssgan'); "
              "run = mlflow.start_run(run_id=sys.argv[2]); "
              "mlflow.log_text('from the copy', 'copy.txt'); mlflow.end_run()")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, "-c", script, _default(tmp_path / "copy"), run_id],
                   cwd=tmp_path / "copy", env=env, check=True, capture_output=True)
    assert any((tmp_path / "copy" / "mlruns").rglob("copy.txt"))
    assert sorted(p.relative_to(tmp_path / "old")
                  for p in (tmp_path / "old").rglob("*")) == before
    monkeypatch.chdir(tmp_path / "old")  # and the original still reads its own
    _open(tmp_path / "old", monkeypatch)
    assert MlflowClient().get_run(run_id).info.artifact_uri.startswith(
        str(tmp_path / "old" / "mlruns"))


def test_a_file_that_is_not_a_store_is_one_line(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").write_bytes(b"\0not a database" * 64)
    with pytest.raises(tracking.TrackingError, match=r"mlflow.db: not an SQLite database"):
        tracking.use_tracking_store("sqlite:///mlflow.db", "landslide-ssgan")


def test_a_store_in_a_missing_folder_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}")
    with pytest.raises(tracking.TrackingError, match=r"MLFLOW_TRACKING_URI: .* does not exist"):
        tracking.use_tracking_store("sqlite:///mlflow.db", "landslide-ssgan")
    assert not (tmp_path / "nowhere").exists()


def test_a_killed_processs_run_is_closed_by_the_next_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed `landslide train` leaves its run RUNNING; the next command that opens the
    store ends it KILLED. Runs of live processes, of other machines and without an owner are
    left running."""
    monkeypatch.chdir(tmp_path)
    _open(tmp_path, monkeypatch)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = tracking.owner().rpartition(":")[0]
    owners = {"killed": f"{host}:{dead}", "alive": tracking.owner(),
              "elsewhere": f"another-host:{dead}", "unowned": None}
    client = MlflowClient()
    experiment = client.get_experiment_by_name("landslide-ssgan").experiment_id
    runs = {}
    for name, who in owners.items():
        run = client.create_run(experiment, tags={tracking.OWNER: who} if who else {})
        runs[name] = run.info.run_id
    _open(tmp_path, monkeypatch)
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING",
                      "unowned": "RUNNING"}
    with tracking.start_run(runs["killed"]):  # a resumed training takes its run back
        assert client.get_run(runs["killed"]).info.status == "RUNNING"
    assert client.get_run(runs["killed"]).info.status == "FINISHED"


def test_metric_names_are_grouped_for_mlflows_chart_sections(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """MLflow's chart view makes a section of each key's first "/" segment: the flat names
    are logged under their group, the longest group first, and read back by the same key."""
    assert tracking.metric_key("val_map_auprc") == "val_map/auprc"
    assert tracking.metric_key("val_f1") == "val/f1"
    assert tracking.metric_key("map_champion_test_map_f1") == "map/champion_test_map_f1"
    assert tracking.metric_key("oob_score") == "oob_score"  # no group
    assert tracking.epoch_key("d_labelled_loss") == "train/d_labelled_loss"
    assert tracking.epoch_key("val_kappa") == "val/kappa"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run() as run:
        tracking.log_metrics({"val_map_auprc": 0.25, "coef_slope": 1.5})
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged == {"val_map/auprc": 0.25, "coef/slope": 1.5}
