"""Operations on the pipeline's models: tune (resumed, killed, two workers on PostgreSQL),
serve, the MLflow UI, `mlflow run` of an entry point, the quickstart script."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from landslide_ssgan.cli import app
from landslide_ssgan.config import parse_params
from tests.conftest import write_params
from tests.pipeline.conftest import (
    free_port,
    invoke,
    post,
    runner,
    stopped_cleanly,
    wait_until_up,
    window_source_of,
)


def test_tune_nests_trials_under_one_study_run_and_resumes(pipeline: dict[str, Any]) -> None:
    import optuna
    import yaml

    raw = pipeline["raw"]
    reports = Path(raw["paths"]["reports"])
    best = yaml.safe_load((reports / "best_params.yaml").read_text())
    assert set(best["train"]) == set(raw["tune"]["space"])
    summary = json.loads((reports / "tune.json").read_text())
    assert summary["objective"] == "val_map/auprc"  # registry.score: what register ranks by
    study_best = MlflowClient(pipeline["store"]).search_runs(
        [MlflowClient(pipeline["store"]).get_experiment_by_name(
            raw["tracking"]["experiment"]).experiment_id],
        f"tags.optuna_trial = '{best['trial']}' AND tags.optuna_study = '{summary['study']}'")[0]
    assert study_best.data.metrics["val_map/auprc"] == pytest.approx(summary["best_value"])
    tuned = Path(raw["paths"]["models"]) / "joint" / "tuned"  # the stage's DVC output
    assert (tuned / "discriminator.keras").is_file() and (tuned / "model.json").is_file()
    tuned_run = json.loads((tuned / "run.json").read_text())["run_id"]
    assert MlflowClient(pipeline["store"]).get_run(tuned_run).data.tags["optuna_trial"] == str(
        best["trial"])
    assert (reports / "tune_history.png").stat().st_size > 5000
    name = json.loads((reports / "tune.json").read_text())["study"]
    assert name.startswith(raw["tune"]["study"] + "-")  # tied to the data and settings
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert len(study.trials) == 3
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    parents = client.search_runs([experiment.experiment_id], "tags.stage = 'tune-study'")
    assert len(parents) == 1
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert len(children) == 3
    states = {run.data.tags["optuna_state"] for run in children}
    assert states <= {"complete", "pruned"}
    assert all("train/g_loss" in run.data.metrics for run in children)

    # a larger budget resumes the same study and the same parent run: one more trial
    raw = json.loads(json.dumps(raw))
    raw["tune"]["trials"] = 4
    params = write_params(raw, Path(pipeline["root"]) / "params_resume.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        result = runner.invoke(app, ["tune", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert re.search(r"^trial 3: ([0-9.e-]+|pruned after epoch \d) "
                     r"\(\d+ s\); 4 of 4 finished$", result.output, re.M), result.output
    assert json.loads((reports / "tune.json").read_text())["study"] == name
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == 4  # the resumed trial did not repeat trial 0
    assert len(client.search_runs([experiment.experiment_id], "tags.stage = 'tune-study'")) == 1
    assert len(client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")) == 4


def test_tune_tunes_fixmatch_on_its_consistency_settings(pipeline: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """tune.model: fixmatch; its trials are FixMatch runs (pseudo-label curves, kind tag) over
    a consistency setting, and register can take one."""
    import optuna
    import yaml

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["reports"] = str(tmp_path / "reports")
    raw["paths"]["trained"] = str(tmp_path / "trained")
    raw["tune"].update({"model": "fixmatch", "trials": 2, "study": "fm",
                        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
                        "space": {"consistency.threshold": {"low": 0.6, "high": 0.99}}})
    params = write_params(raw, tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(tmp_path)
        for command in (["tune"], ["register", "--kinds", "[fixmatch]"]):
            result = runner.invoke(app, [*command, "--params", str(params)])
            assert result.exit_code == 0, (command, result.output, repr(result.exception))
    reports = tmp_path / "reports"
    name = json.loads((reports / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=raw["tune"]["storage"])
    assert len(study.trials) == 2
    assert all(0.6 <= t.params["consistency.threshold"] <= 0.99 for t in study.trials)
    assert set(yaml.safe_load((reports / "best_params.yaml").read_text())["train"]) == {
        "consistency.threshold"}
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    trials = client.search_runs([experiment.experiment_id], "tags.stage = 'tune'")
    assert len(trials) == 2 and {run.data.tags["model"] for run in trials} == {"fixmatch"}
    assert all("train/pseudo_label_share" in run.data.metrics for run in trials)
    champion = json.loads((reports / "champion.json").read_text())
    assert champion["kind"] == "fixmatch" and champion["run_id"] in {
        run.info.run_id for run in trials}


def test_a_killed_tune_is_resumed_without_a_trial_left_running(pipeline: dict[str, Any]
                                                               ) -> None:
    """SIGKILL a `landslide tune` mid-trial, then run it again: the lost trial is failed (its
    MLflow run KILLED), the budget is met with finished trials, no parameters repeat."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    raw = json.loads(json.dumps(pipeline["raw"]))
    root = Path(pipeline["root"])
    raw["tune"].update({"study": "killed", "trials": 2, "epochs": 2, "heartbeat_s": 1,
                        "storage": f"sqlite:///{root / 'killed.db'}"})
    params = write_params(raw, root / "params_killed.yaml")
    env = {**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]}
    worker = subprocess.Popen([sys.executable, "-m", "landslide_ssgan.cli", "tune", "--params",
                               str(params)], cwd=root, env=env, stderr=subprocess.PIPE)
    storage = optuna.storages.RDBStorage(raw["tune"]["storage"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and worker.poll() is None:
        studies = optuna.get_all_study_summaries(storage)
        if studies and any(t.state == optuna.trial.TrialState.RUNNING for t in
                           optuna.load_study(study_name=studies[0].study_name,
                                             storage=storage).trials):
            break
        time.sleep(0.5)
    assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
    time.sleep(2)  # a heartbeat or two, mid-trial
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(4.5)  # three heartbeats: the trial is stale
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(root)
        result = runner.invoke(app, ["tune", "--params", str(params)])
    assert result.exit_code == 0, result.output
    name = json.loads((Path(raw["paths"]["reports"]) / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 2
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == len(drawn)
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    runs = {int(r.data.tags["optuna_trial"]): r.info.status for r in client.search_runs(
        [experiment.experiment_id], f"tags.optuna_study = '{name}' AND tags.stage = 'tune'")}
    assert runs[0] == "KILLED" and set(runs) == {0, 1, 2} and "RUNNING" not in runs.values()


def test_served_champion_answers_like_the_model_in_process(pipeline: dict[str, Any]) -> None:
    import os
    import subprocess
    import sys

    raw = pipeline["raw"]
    cfg = parse_params(raw)
    source = window_source_of(cfg)
    rows, cols, _ = source.part("test")
    windows = (source.pixels.cut(rows[:9], cols[:9]) * source.std
               + source.mean).astype(np.float32)
    expected = mlflow.pyfunc.load_model(f"models:/{cfg.registry.model_name}@champion"
                                        ).predict(windows[:8])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "landslide_ssgan.cli", "serve", "--port", str(port),
         "--max-windows", "8", "--params", str(Path(pipeline["root"]) / "params.yaml")],
        cwd=pipeline["root"], env={**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, "/ping", server)
        status, body = post(port, {"inputs": windows[:8].tolist()})
        assert status == 200
        np.testing.assert_allclose(np.asarray(json.loads(body)["predictions"]).ravel(),
                                   expected, atol=1e-5)
        status, body = post(port, {"inputs": windows[:8].tolist(),
                                    "params": {"prior_correction": False}})
        assert status == 200  # as trained (balanced): every probability moves up
        trained = np.asarray(json.loads(body)["predictions"]).ravel()
        assert (expected <= trained + 1e-7).all() and (expected < trained).any()
        status, body = post(port, {"inputs": windows.tolist()})  # one window too many
        assert status == 413 and "serve.max_windows" in json.loads(body)["message"]
        status, body = post(port, {"inputs": [windows.tolist()]})  # nested one level deeper
        assert status == 413 and "9 windows" in json.loads(body)["message"], body
        busy = invoke(pipeline, ["serve", "--port", str(port), "--params",  # a second one
                                  str(Path(pipeline["root"]) / "params.yaml")])
        assert busy.exit_code == 2 and busy.stdout == "", busy.output
        assert busy.stderr.count("\n") == 1 and "already in use" in busy.stderr, busy.stderr
        status, body = post(port, {"inputs": windows[:8, :, :, :3].tolist()})  # 3 bands
        assert 400 <= status < 500 and "shape" in json.loads(body)["message"].lower(), body
        assert len(body) < 400  # short: no echo of the input, no stack trace
        assert not re.search(r"\d+\.\d+, \d+\.\d+", body.decode()), body  # no numbers
        broken = windows[:8].copy()
        broken[0, 0, 0, 0] = np.nan
        status, body = post(port, {"inputs": np.where(np.isnan(broken), None, broken).tolist()})
        assert 400 <= status < 500 and len(body) < 400, body[:400]
        stopped_cleanly(server, port)
    finally:
        server.kill()


def test_serve_with_a_model_that_does_not_exist_is_one_line(pipeline: dict[str, Any]) -> None:
    result = invoke(pipeline, ["serve", "--model-uri", "models:/no-such-model@champion",
                                "--params", str(Path(pipeline["root"]) / "params.yaml")])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "models:/no-such-model@champion" in result.stderr and "Traceback" not in result.output


def test_the_ui_stops_with_every_process_it_started(pipeline: dict[str, Any]) -> None:
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "landslide_ssgan.cli", "ui", "--port", str(port), "--params",
         str(Path(pipeline["root"]) / "params.yaml")],
        cwd=pipeline["root"], env={**os.environ, "MLFLOW_TRACKING_URI": pipeline["store"]},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, "/health", ui)
        stopped_cleanly(ui, port, signal.SIGHUP)  # the terminal that started it closed
    finally:
        ui.kill()


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres() -> Any:
    """A real PostgreSQL server on 127.0.0.1 in a throw-away data directory."""
    import os
    import subprocess
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (Debian: apt-get install postgresql)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="pg-"))
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True)
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                        str(data / "server.log"), "-o",
                        f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", "start"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(pipeline: dict[str, Any], postgres: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["tune"].update({"study": "shared", "trials": 4, "epochs": 1})
    params = write_params(raw, Path(pipeline["root"]) / "params_pg.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    monkeypatch.chdir(pipeline["root"])
    result = runner.invoke(app, ["tune", "--params", str(params), "--storage", postgres,
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    name = json.loads((Path(raw["paths"]["reports"]) / "tune.json").read_text())["study"]
    study = optuna.load_study(study_name=name, storage=postgres)
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 4  # none lost, none beyond the budget
    others = [t for t in study.trials if t not in finished]  # a slot another worker took
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("beyond_budget")
               for t in others)
    assert sorted(t.number for t in finished) == [0, 1, 2, 3]
    drawn = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(drawn)) == 4  # the two workers did not draw the same parameters
    client = MlflowClient(pipeline["store"])
    experiment = client.get_experiment_by_name(raw["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.optuna_study = '{name}' AND tags.stage = 'tune'")
    assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2, 3]


def test_mlflow_run_of_an_entry_point_logs_into_the_run_it_opened(pipeline: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    """`mlflow run . -e train -P model=baseline -P epochs=1 --env-manager local`, as an MLflow
    user types it: the command trains in the run MLflow opened (same store and experiment),
    and -P epochs reaches train.epochs."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    raw = json.loads(json.dumps(pipeline["raw"]))
    raw["paths"]["trained"] = str(tmp_path / "trained")
    params = write_params(raw, tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "train", "-P", "model=baseline",
         "-P", f"params={params}", "-P", "epochs=1", "--env-manager", "local"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
             "MLFLOW_TRACKING_URI": store,  # a user's shell, with only the store chosen
             "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store)
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])]
    assert len(runs) == 1, [r.data.tags.get("mlflow.runName") for r in runs]
    run = runs[0]
    assert run.data.tags["mlflow.project.entryPoint"] == "train"  # the run mlflow run opened
    assert run.data.tags["model"] == "baseline" and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "1"
    assert len(client.get_metric_history(run.info.run_id, "val/f1")) == 1
    saved = json.loads((tmp_path / "trained" / "joint" / "baseline" / "run.json").read_text())
    assert saved["run_id"] == run.info.run_id


def test_the_quickstart_script_asks_the_champion_about_pixels(
        pipeline: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/quickstart.py, as the README's user runs it after `dvc repro`: the registered
    champion, loaded through MLflow, answers windows read with rasterio."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "scripts" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
    raw = pipeline["raw"]
    uri = f"models:/{raw['registry']['model_name']}@{raw['registry']['alias']}"
    assert quickstart.main(["--model-uri", uri, "--stack", raw["paths"]["stack"]]) == 0
    out = capsys.readouterr().out
    assert re.search(r"on windows of (\d+) x \1 pixels; a landslide at P >= ", out), out
    answers = [line for line in out.splitlines() if line.startswith("pixel (")]
    assert answers and all("as trained" in line for line in answers)
