"""The model kinds: one learner each, in one table.

A learner says how its model is made from the train settings and a window source (a network
is built here and trained by training/fit.py's recipe; a classifier is fitted at once), what
the trained model becomes for inference (its predictor: how it answers windows and whole map
blocks, and how it is saved and loaded; predictors.py), the prior it learns at, whether it
learns from unlabelled windows, and how it is drawn in plots. The stages, the study,
scoring, tuning, the registry and the reports ask this table; params.yaml's `evaluate.models`
(dvc.yaml's train matrix), `registry.kinds`, `study.models` and `tune.model` are checked
against it. The kinds' names are written here and nowhere else in the code: a new kind is one
module and one line in LEARNERS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.models import networks
from landslide_ssgan.models.forest import fit_forest
from landslide_ssgan.models.glm import fit_glm
from landslide_ssgan.models.predictors import Forest, Glm, PatchNetwork, Predictor, WindowNetwork
from landslide_ssgan.models.prior import trained_share

Build = Callable[[TrainConfig, Any, int], Any]  # (settings, window or patch source, seed)


def _window_network(model: Any) -> Predictor:
    return WindowNetwork(model.discriminator)


def _patch_network(model: Any) -> Predictor:
    return PatchNetwork(model.network)


@dataclass(frozen=True)
class Learner:
    name: str
    title: str                   # in reports' prose
    summary: str                 # one line: what the model is
    colour: str                  # its colour in every plot
    predictor: Callable[[Any], Predictor]  # the trained (or fitted) model, for inference
    build: Build | None = None   # a network: the compiled Keras model, trained by epochs
    fit: Build | None = None     # a classifier: the fitted model, at once
    unlabelled: bool = False     # learns from the unlabelled windows too
    generator: bool = False      # has a generator (images in MLflow, the realism check)
    patches: bool = False        # a segmenter: trains on whole patches (train.patch)
    twin: str | None = None      # a semi-supervised learner's supervised twin (the same
                                 # network on labels alone), which reports compare it with

    @property
    def network(self) -> bool:
        """A Keras network (epochs, resumable, an exact dense twin for maps), not a
        classifier on window features."""
        return self.build is not None

    def trained_prior(self, train: TrainConfig, labels: np.ndarray) -> float:
        """The landslide share it learns at from its labelled training windows: one half
        when its loss weighs the two classes equally (train.class_weighting, which every
        network's builder applies through networks.class_weights)."""
        return trained_share(labels, self.network and train.class_weighting)


def _forest(train: TrainConfig, source: WindowSource, seed: int) -> Any:
    windows, labels = source.windows("train")
    return fit_forest(windows, labels, train.forest_trees, seed)


def _glm(train: TrainConfig, source: WindowSource, seed: int) -> Any:
    windows, labels = source.windows("train")
    half = source.window // 2
    return fit_glm(windows[:, half, half, :], labels, source.bands)


LEARNERS: dict[str, Learner] = {learner.name: learner for learner in (
    Learner("ssgan", "SSGAN", "the paper's semi-supervised GAN: N + 1 outputs, a generator",
            "tab:red", _window_network, build=networks.build_ssgan, unlabelled=True,
            generator=True, twin="baseline"),
    Learner("baseline", "supervised twin",
            "the SSGAN's supervised twin: the same discriminator, labels only",
            "tab:blue", _window_network, build=networks.build_supervised),
    Learner("fixmatch", "FixMatch",
            "the twin taught by its confident weak views of unlabelled windows",
            "tab:purple", _window_network, build=networks.build_fixmatch, unlabelled=True,
            twin="baseline"),
    Learner("forest", "random forest",
            "a random forest on window features (centre, mean, deviation)",
            "tab:green", Forest, fit=_forest),
    Learner("glm", "GLM", "a logistic regression on the centre pixel's bands", "tab:brown",
            Glm, fit=_glm),
    Learner("unet", "U-Net", "a U-Net segmenting whole patches, labels only", "tab:orange",
            _patch_network, build=networks.build_segmenter, patches=True),
    Learner("segssgan", "patch SSGAN",
            "the SSGAN carried to patches: the U-Net with N + 1 outputs per pixel, a generator "
            "of whole patches", "tab:pink", _patch_network, build=networks.build_segssgan,
            unlabelled=True, generator=True, patches=True, twin="unet"),
    Learner("segmatch", "patch FixMatch",
            "the U-Net taught by its confident weak views of unlabelled patches (CutMix)",
            "tab:cyan", _patch_network, build=networks.build_segmatch, unlabelled=True,
            patches=True, twin="unet"),
)}
KINDS: tuple[str, ...] = tuple(LEARNERS)

# The paper's question and its controls: (model, the model it is compared with), for the
# reports' differences; pairs whose kinds were not both run are left out.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("ssgan", "baseline"), ("fixmatch", "baseline"), ("fixmatch", "ssgan"),
    ("ssgan", "forest"), ("fixmatch", "forest"), ("ssgan", "glm"),
    ("segssgan", "unet"), ("segmatch", "unet"), ("unet", "forest"), ("unet", "baseline"))
PAPER_MODEL = "ssgan"       # the paper's model: the loss curves per feature set, the study
SUPERVISED_TWIN = "baseline"  # the same network without unlabelled data: mapped beside the
                              # champion for comparison


def learner(name: str, key: str = "model") -> Learner:
    """The learner of a kind; a one-line error naming the setting for an unknown one."""
    if name not in LEARNERS:
        raise ConfigError(f"{key}: unknown model kind {name!r}; the kinds are "
                          f"{', '.join(KINDS)}")
    return LEARNERS[name]


def check_kinds(names: Iterable[str], key: str, *, networks_only: bool = False,
                patches: bool | None = None) -> None:
    """Every name is a kind (and a network, with `networks_only`; a segmenter, or not one,
    with `patches`), else one line naming `key`."""
    for name in names:
        if not learner(name, key).network and networks_only:
            raise ConfigError(f"{key}: {name} is not a network; networks are "
                              f"{', '.join(k for k in KINDS if LEARNERS[k].network)}")
        if patches is not None and LEARNERS[name].patches != patches:
            wanted = [k for k in KINDS if LEARNERS[k].patches == patches]
            command = "train" if LEARNERS[name].patches is False else "segment"
            raise ConfigError(f"{key}: {name} is {'not ' if patches else ''}a segmenter "
                              f"(`landslide {command} {name}`); this setting takes "
                              f"{', '.join(wanted)}")
