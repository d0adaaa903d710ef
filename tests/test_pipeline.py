"""prepare -> sample -> train (both models) -> evaluate on the real crop, through the CLI, into a
temporary MLflow store; then the logged pyfunc model against the Keras model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.config import parse_params
from landslide_ssgan.data.windows import cut_windows
from landslide_ssgan.models.ssgan import landslide_probability
from landslide_ssgan.workflows import load_window_source
from tests.conftest import write_params

runner = CliRunner()
TINY = {"epochs": 2, "batch_size": 32, "latent_dim": 8, "d_widths": [4, 8], "d_hidden": 8,
        "g_width": 8, "image_every": 1}


@pytest.fixture(scope="module")
def pipeline(base_params: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
             ) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pipeline")
    raw = json.loads(json.dumps(base_params))
    raw["paths"] = {k: str(root / v) for k, v in {
        "stack": "stack.tif", "labels": "labels.tif", "inventory_ids": "ids.tif",
        "samples": "samples.csv", "norm": "norm.json", "models": "models",
        "reports": "reports"}.items()}
    raw["train"].update(TINY)
    params = write_params(raw, root / "params.yaml")
    store = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.chdir(root)  # the default artifact root (./mlruns) lands in the temporary folder
        for command in (["prepare"], ["sample"], ["train", "ssgan"], ["train", "baseline"],
                        ["evaluate"]):
            result = runner.invoke(app, [*command, "--params", str(params)])
            assert result.exit_code == 0, (command, result.output)
    mlflow.set_tracking_uri(store)
    return {"raw": raw, "store": store, "root": root}


def test_reports_hold_both_models(pipeline: dict[str, Any]) -> None:
    reports = Path(pipeline["raw"]["paths"]["reports"])
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) == {"ssgan", "baseline"}
    for row in metrics.values():
        assert {"precision", "recall", "f1", "kappa", "miou", "accuracy"} <= set(row)
        assert np.array(row["confusion_matrix"]).sum() == row["test_windows"] > 0
    table = (reports / "evaluation.md").read_text()
    assert "| ssgan |" in table and "| baseline |" in table
    assert (reports / "loss_curves.png").stat().st_size > 5000


def test_runs_have_losses_validation_curves_images_and_data_hashes(
        pipeline: dict[str, Any]) -> None:
    client = MlflowClient(pipeline["store"])
    models = Path(pipeline["raw"]["paths"]["models"])
    run_id = json.loads((models / "ssgan" / "run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    for key in ("d_labelled_loss", "d_unlabelled_loss", "d_generated_loss", "g_loss",
                "val_precision", "val_recall", "val_f1", "val_kappa", "val_miou", "test_f1"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run_id, "g_loss")) == TINY["epochs"]
    assert run.data.tags["model"] == "ssgan" and run.data.tags["feature_set"] == "joint"
    assert run.data.params["train.epochs"] == str(TINY["epochs"])
    names = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert names == {"stack", "samples", "norm"}
    images = [a.path for a in client.list_artifacts(run_id, "generator")]
    assert len(images) == TINY["epochs"] and all(p.endswith(".png") for p in images)
    baseline = json.loads((models / "baseline" / "run.json").read_text())["run_id"]
    assert client.get_run(baseline).data.tags["data_digest"] == run.data.tags["data_digest"]


def test_pyfunc_takes_raw_windows_and_matches_keras(pipeline: dict[str, Any]) -> None:
    raw = pipeline["raw"]
    folder = Path(raw["paths"]["models"]) / "ssgan"
    model_uri = json.loads((folder / "run.json").read_text())["model_uri"]
    cfg = parse_params(raw)
    source = load_window_source(cfg)
    rows, cols, _ = source.part("test")
    normalised = cut_windows(source.image, rows, cols, source.window)
    raw_windows = normalised * source.std + source.mean  # back to the stack's own units
    discriminator = keras.saving.load_model(folder / "discriminator.keras", compile=False)
    expected = np.asarray(landslide_probability(discriminator.predict(normalised, verbose=0)[0]))
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    got = pyfunc.predict(raw_windows.astype(np.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # MLflow's signature check or the model's own: both say what shape was expected
    with pytest.raises(Exception, match="expected (windows of )?shape"):
        pyfunc.predict(raw_windows[:, :5].astype(np.float32))
    broken = raw_windows[:2].astype(np.float32).copy()
    broken[0, 0, 0, 0] = np.nan
    with pytest.raises(Exception, match="NaN"):
        pyfunc.predict(broken)


def test_unreachable_tracking_server_is_one_clear_line(pipeline: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params = Path(pipeline["root"]) / "params.yaml"
    result = runner.invoke(app, ["evaluate", "--params", str(params)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: MLflow tracking server http://127.0.0.1:9 cannot")
    assert len(result.stderr.strip().splitlines()) == 1
