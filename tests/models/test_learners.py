"""The learner table: one entry per model kind, and everything that names kinds agrees with it.

Fast: synthetic windows made here, no `dvc pull`.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from landslide_ssgan.cli import app
from landslide_ssgan.config import load_params
from landslide_ssgan.data.sampling import AREA_CODES, UNLABELLED, Samples
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.data.windows import ImageWindows
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.evaluation import map_metrics, scoring
from landslide_ssgan.models import learners
from landslide_ssgan.models.bundle import ModelBundle
from landslide_ssgan.ops import tracking

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "landslide_ssgan"
PARAMS = load_params(ROOT / "params.yaml")


def test_params_and_dvc_name_the_kinds_of_the_table() -> None:
    # the shipped pipelines train kinds of the table: dvc repro the paper's SSGAN and its twin
    # and every classifier on every feature set, segmenters on features.set; the study
    # (studies/dvc.yaml) every kind
    assert {"ssgan", "baseline"} <= set(PARAMS.evaluate.networks)
    assert all(learners.learner(k).stage == "train" for k in PARAMS.evaluate.networks)
    assert PARAMS.evaluate.classifiers == learners.of_stage("fit")
    assert set(PARAMS.study.models) == set(learners.KINDS)
    assert all(learners.learner(k).stage == "segment" for k in PARAMS.evaluate.segmenters)
    assert set(PARAMS.registry.kinds) <= set(learners.KINDS)
    assert set(PARAMS.study.models) <= set(learners.KINDS)
    assert learners.learner(PARAMS.tune.model).network
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["matrix"]["model"] == "${evaluate.networks}"
    assert stages["fit"]["matrix"]["model"] == "${evaluate.classifiers}"
    assert stages["segment"]["matrix"]["model"] == "${evaluate.segmenters}"
    assert {a for pair in learners.COMPARISONS for a in pair} <= set(learners.KINDS)
    assert learners.PAPER_MODEL in learners.KINDS
    assert not learners.learner(learners.SUPERVISED_TWIN).unlabelled


def _kind_strings(path: Path) -> list[str]:
    """String constants of a module that are a model kind's name (docstrings aside)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings
            and node.value.split("+")[0] in learners.KINDS]


def test_the_kinds_are_named_in_the_learner_table_only() -> None:
    found = {str(path.relative_to(SRC)): names for path in sorted(SRC.rglob("*.py"))
             if (names := _kind_strings(path))}
    assert set(found) == {"models/learners.py"}, found


def test_an_unknown_kind_is_one_line_that_lists_the_kinds() -> None:
    result = CliRunner().invoke(app, ["train", "segformer"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: MODEL: unknown model kind 'segformer'; the kinds are "
        f"{', '.join(learners.KINDS)}"]
    segmenter = learners.of_stage("segment")[0]
    result = CliRunner().invoke(app, ["train", segmenter])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: MODEL: {segmenter} is made by `landslide segment {segmenter}`; this setting "
        f"takes {', '.join(learners.of_stage('train'))}"]
    for command, kind in (("segment", "forest"), ("train", "glm"), ("fit", "ssgan")):
        result = CliRunner().invoke(app, [command, kind])
        assert result.exit_code == 2
        assert f"{kind} is made by `landslide {learners.learner(kind).stage} {kind}`" in \
            result.output
    with pytest.raises(ConfigError, match="^tune.model: forest is not a network"):
        learners.check_kinds(("forest",), "tune.model", networks_only=True)
    with pytest.raises(ConfigError, match="^study.models: unknown model kind 'segformer'"):
        learners.check_kinds(("ssgan", "segformer"), "study.models")


def _ground() -> scoring.Ground:
    labels = np.zeros((20, 20), np.uint8)
    labels[2:4, 2:4] = 1
    areas = np.full((20, 20), AREA_CODES["train"], np.uint8)
    return scoring.Ground(map_metrics.Truth(labels, labels.astype(np.int32)), areas, 100.0)


@pytest.mark.parametrize("kind", learners.KINDS)
def test_each_kind_learns_at_the_prior_of_its_loss(kind: str) -> None:
    """With class weighting every network's loss weighs the classes equally (prior one half);
    a classifier ignores the setting and learns the windows' share. Main once gave FixMatch,
    which weighs its loss too, the windows' share."""
    labels = np.array([1, 0, 0, 0])
    weighted = replace(PARAMS.train, class_weighting=True)
    learner = learners.learner(kind)
    assert learner.trained_prior(weighted, labels) == (0.5 if learner.network else 0.25)
    assert learner.trained_prior(PARAMS.train, labels) == 0.25
    prior = scoring.model_prior(learner.trained_prior(weighted, labels), PARAMS.calibrate,
                                _ground())
    assert prior.area == pytest.approx(4 / 400)


def _tiny_source(window: int = 5, size: int = 24) -> WindowSource:
    """A synthetic 3-band image whose landslide centres are bright, and its samples."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(size + window - 1, size + window - 1, 3)).astype(np.float32)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    label = (rng.random(rows.size) < 0.5).astype(np.int8)
    half = window // 2
    image[rows[label == 1] + half, cols[label == 1] + half] += 3.0
    split = np.where(rows < size // 2, "train", np.where(rows < 3 * size // 4, "val", "test"))
    label = np.where(rng.random(rows.size) < 0.2, UNLABELLED, label).astype(np.int8)
    table = pd.DataFrame({"row": rows.astype(np.int32), "col": cols.astype(np.int32),
                          "label": label, "split": split, "group": 0})
    return WindowSource(ImageWindows(image, window), Samples(table), window, ("a", "b", "c"),
                        np.zeros(3), np.ones(3), (False, False, False))


@pytest.mark.parametrize("kind", [k for k in learners.KINDS if not learners.LEARNERS[k].network])
def test_each_classifier_fits_from_the_table_and_separates_bright_centres(kind: str) -> None:
    source = _tiny_source()
    fitted = learners.learner(kind).fit(replace(PARAMS.train, forest_trees=10), source, 0)
    windows, labels = source.windows("test")
    probability = ModelBundle(source.normalisation, learners.learner(kind).predictor(fitted)
                              ).probability(windows)
    assert probability.shape == labels.shape
    assert probability[labels == 1].mean() > probability[labels == 0].mean() + 0.3


def test_a_kind_sees_only_the_train_settings_it_reads() -> None:
    train = PARAMS.train
    forest = learners.learner("forest").settings(train)
    assert forest.forest_trees == train.forest_trees and forest.epochs is None
    assert tracking.train_params(forest) == {"train.forest_trees": train.forest_trees,
                                            "train.threshold": train.threshold}
    ssgan = learners.learner("ssgan").settings(train)
    assert ssgan.patch is None and ssgan.lr_g == train.lr_g


def test_every_network_names_a_builder_of_the_networks_module() -> None:
    """A network's builder is named by a string (imported only when a network is built, so
    the classifiers' stage never loads TensorFlow): each name must be a function there."""
    from landslide_ssgan.models import networks

    for learner in learners.LEARNERS.values():
        if learner.network:
            assert learner.build is not None
            assert callable(getattr(networks, learner.build.__name__, None)), learner.name
