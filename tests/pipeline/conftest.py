"""The pipeline on the real crop, run once for the tests of this folder: prepare -> sample ->
factors -> train, fit, segment -> tune -> calibrate -> evaluate -> register -> map through the
CLI, into a temporary folder and MLflow store: once per test process (a session fixture; with
pytest-xdist, once per worker that runs a module of this folder). The helpers the modules
share live here too."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pytest
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.data.source import WindowSource, load_window_source
from tests.conftest import write_params

runner = CliRunner()


def window_source_of(cfg: Any) -> WindowSource:
    paths = cfg.paths
    return load_window_source(paths.stack, paths.samples, paths.norm, cfg.features.set,
                              cfg.sample.window)


TINY = {"epochs": 2, "batch_size": 32, "latent_dim": 8, "d_widths": [4, 8], "d_hidden": 8,
        "g_width": 8, "image_every": 1}


@pytest.fixture(scope="session")
def pipeline(base_params: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pipeline")
    raw = json.loads(json.dumps(base_params))
    raw["paths"] = {k: str(root / v) for k, v in {
        "stack": "stack.tif", "labels": "labels.tif", "inventory_ids": "ids.tif",
        "samples": "samples.csv", "norm": "norm.json", "split": "split.tif", "trained": "trained",
        "models": "models",
        "maps": "maps", "reports": "reports"}.items()}
    raw["train"].update(TINY | {"forest_trees": 20})
    raw["train"]["patch"].update({"size": 32, "depth": 2, "width": 4, "epochs": 1,
                                  "batch_size": 8})
    raw["evaluate"] = {"feature_sets": ["joint"],
                       "networks": ["ssgan", "baseline", "fixmatch"],  # every window network
                       "classifiers": base_params["evaluate"]["classifiers"],
                       "segmenters": ["unet"]}
    raw["map"].update({"block_size": 100, "preview_size": 200})
    raw["study"].update({"budgets": [0.5, 1.0], "seeds": [0], "steps": 2, "forest_trees": 10,
                         "models": ["ssgan", "baseline", "fixmatch", "forest"],
                         "splits": ["spatial", "random"],
                         "variants": {"pool": {"unlabelled_ratio": 1, "steps": 3},
                                      "fm": {"consistency.ssgan_weight": 1.0}}})
    raw["tune"].update({"trials": 3, "epochs": 2, "storage": f"sqlite:///{root / 'optuna.db'}",
                        "startup_trials": 1, "warmup_epochs": 0})
    params = write_params(raw, root / "params.yaml")
    store = f"sqlite:///{root / 'mlflow.db'}"
    printed: dict[str, str] = {}  # what each command printed
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(root)  # the default artifact root (./mlruns) lands in the temporary folder
        for command in (["prepare"], ["sample"], ["factors"], ["train", "ssgan"],
                        ["train", "baseline"], ["train", "fixmatch"], ["fit", "forest"],
                        ["fit", "glm"], ["segment", "unet"], ["tune"], ["calibrate"],
                        ["evaluate"], ["register"], ["map"]):
            result = runner.invoke(app, [*command, "--params", str(params)])
            assert result.exit_code == 0, (command, result.output, repr(result.exception))
            printed[" ".join(command)] = result.output
    mlflow.set_tracking_uri(store)
    return {"raw": raw, "store": store, "root": root, "printed": printed}


@pytest.fixture(autouse=True)
def _pipeline_store(pipeline: dict[str, Any]) -> Any:
    """Every test starts on the pipeline's store, whatever the previous one pointed at."""
    mlflow.set_tracking_uri(pipeline["store"])
    yield
    mlflow.set_tracking_uri(pipeline["store"])


def invoke(pipeline: dict[str, Any], args: list[str]) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", pipeline["store"])
        patch.chdir(pipeline["root"])
        return runner.invoke(app, args)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, payload: Any) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_up(port: int, path: str, process: Any, seconds: float = 120) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            assert process.poll() is None, "the server exited"
            time.sleep(1)
    raise AssertionError(f"nothing answered on port {port}")


def stopped_cleanly(process: Any, port: int, signum: int | None = None) -> None:
    """SIGTERM (or `signum`): the command and every process it started exit, nothing listens
    any more."""
    import signal
    import socket

    import psutil

    family = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signum or signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
    _, alive = psutil.wait_procs(family, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
