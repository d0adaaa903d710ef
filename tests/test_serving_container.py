"""The Dockerfile's serving image, without a Docker engine: the files it copies exist, it
installs with the project's pins, and its export command and CMD, run here on a small
registered model, serve a request."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from landslide_ssgan.data.normalisation import Normalisation
from landslide_ssgan.models import bundle
from landslide_ssgan.models.predictors import PatchNetwork
from landslide_ssgan.models.unet import build_unet
from landslide_ssgan.ops import pyfunc
from landslide_ssgan.training.fit import seed_everything
from tests.pipeline.conftest import free_port, post, stopped_cleanly, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines()
            if line.startswith(f"{name} ")]


def _export_command() -> list[str]:
    """The export command the Dockerfile's comment tells users to run."""
    comment = "\n".join(line[2:] for line in DOCKERFILE.splitlines() if line.startswith("# "))
    found = re.search(r"(mlflow artifacts download .*?--dst-path \S+)",
                      re.sub(r"\\\n\s*", " ", comment))
    assert found, "the Dockerfile says how to export the model"
    return shlex.split(found.group(1))


def test_the_image_copies_files_the_project_has_and_installs_with_its_pins() -> None:
    assert _instructions("FROM")[0].startswith("python:3.11")  # pyproject: >=3.11,<3.12
    arguments = dict(a.split("=", 1) for a in _instructions("ARG"))
    for copy in _instructions("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            if source.startswith("${"):
                assert arguments[source[2:-1]] == "serving/model"  # made by the export
                continue
            assert (ROOT / source).exists(), source
    install = next(r for r in _instructions("RUN") if "pip install" in r)
    assert "-c requirements.lock ." in install


@pytest.mark.slow
def test_the_exported_champion_answers_through_the_images_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)  # over any store an earlier test of this worker chose
    try:
        _export_and_serve(store, tmp_path)
    finally:
        mlflow.set_tracking_uri(previous)


def _export_and_serve(store: str, tmp_path: Path) -> None:
    seed_everything(4)
    folder = tmp_path / "model"
    bundle.save_model(folder, PatchNetwork(build_unet(2, depth=2, width=4)),
                      Normalisation(("a", "b"), np.zeros(2), np.ones(2), 16))
    # its own experiment: an earlier test of this worker may have chosen one of its store
    with mlflow.start_run(experiment_id=MlflowClient().create_experiment("serving")):
        uri = pyfunc.log_window_model(folder, [])
    version = mlflow.register_model(uri, "landslide-ssgan")
    MlflowClient().set_registered_model_alias("landslide-ssgan", "champion", version.version)

    build = tmp_path / "context"  # the build context: the image's files, then the export
    build.mkdir()
    shutil.copy(ROOT / "params.yaml", build / "params.yaml")
    export = _export_command()
    done = subprocess.run([str(Path(sys.executable).parent / export[0]), *export[1:]],
                          cwd=build, capture_output=True, text=True,
                          env={**os.environ, "MLFLOW_TRACKING_URI": store})
    assert done.returncode == 0, done.stderr
    model = build / "serving" / "model"
    assert (model / "MLmodel").is_file()

    env_line = " ".join(_instructions("ENV"))
    image_env = dict(re.findall(r"(\w+)=(\S+)", env_line))
    (tmp_path / "store").mkdir()
    port = free_port()
    command = json.loads(_instructions("CMD")[0])
    command = [{"/srv/model": str(model), "5001": str(port)}.get(a, a) for a in command]
    assert command[0] == "landslide"
    env = {**os.environ, **image_env,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "landslide"), *command[1:]],
                              cwd=build, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        wait_until_up(port, "/ping", server)
        patches = np.random.default_rng(3).normal(size=(2, 16, 16, 2)).astype(np.float32)
        status, body = post(port, {"inputs": patches.tolist()})
        assert status == 200, body
        expected = bundle.load_bundle(folder).predictor.probability(patches)
        np.testing.assert_allclose(np.asarray(json.loads(body)["predictions"]).ravel(),
                                   expected, atol=1e-5)
    finally:
        stopped_cleanly(server, port)
