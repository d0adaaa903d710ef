"""The model kinds: one learner each, in one table.

A learner says how its model is made from the train settings and a window source (a network
is built here and trained by training/fit.py's recipe; a classifier is fitted at once), what
the trained model becomes for inference (its predictor: how it answers windows and whole map
blocks, and how it is saved and loaded; predictors.py), the prior it learns at, whether it
learns from unlabelled windows, the train settings it reads, the stage that makes it, and how
it is drawn in plots. The stages, the study, scoring, tuning, the registry and the reports ask
this table; params.yaml's evaluate section (dvc.yaml's train, fit and segment matrices),
`registry.kinds`, `study.models` and `tune.model` are checked against it. The kinds' names
are written here and nowhere else in the code: a new kind is one module and one line in
LEARNERS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import numpy as np

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.errors import ConfigError
from landslide_ssgan.models.forest import fit_forest
from landslide_ssgan.models.glm import fit_glm
from landslide_ssgan.models.predictors import Forest, Glm, PatchNetwork, Predictor, WindowNetwork
from landslide_ssgan.models.prior import trained_share

Build = Callable[[TrainConfig, Any, int], Any]  # (settings, window or patch source, seed)
Stage = Literal["train", "fit", "segment"]

# The train settings (params.yaml's train.<key>) each kind reads. A kind is built and trained
# from a copy of the settings that holds only these (Learner.settings: the others are None, so
# reading one fails at once), its MLflow run logs only these, and dvc.yaml's train, fit and
# segment stages each list exactly the union over their kinds (tests/test_dvc_deps.py): a
# change to a setting reruns only the models that read it.
_WINDOW_NETWORK = ("epochs", "batch_size", "d_widths", "d_hidden", "dropout", "leaky_slope",
                   "lr_d", "beta1", "class_weighting", "ema", "threshold")
_GENERATOR = ("latent_dim", "g_width", "lr_g", "loss_weights", "image_every")
_SEGMENTER = ("patch", "class_weighting", "threshold")


def _built_by(builder: str) -> Build:
    """The network builder `networks.<builder>`, imported when a network is built: the
    classifiers' stage (fit) and the commands that only read the table never load
    TensorFlow, seconds of every such process."""
    def build(train: TrainConfig, source: Any, seed: int) -> Any:
        from landslide_ssgan.models import networks

        return getattr(networks, builder)(train, source, seed)

    build.__name__ = builder
    return build


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
    reads: tuple[str, ...] = ()  # the train settings it reads (see _WINDOW_NETWORK)

    @property
    def network(self) -> bool:
        """A Keras network (epochs, resumable, an exact dense twin for maps), not a
        classifier on window features."""
        return self.build is not None

    @property
    def stage(self) -> Stage:
        """The stage (and command) that makes it: `train` a window network by epochs, `fit` a
        classifier at once, `segment` a patch segmenter."""
        return "segment" if self.patches else "train" if self.network else "fit"

    def settings(self, train: TrainConfig) -> TrainConfig:
        """The train settings with only those it reads (the others None): what it is built,
        trained and logged with, so a setting it does not list can never shape it."""
        unread: dict[str, Any] = {f.name: None for f in fields(train)
                                  if f.name not in self.reads}
        return replace(train, **unread)

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
            "tab:red", _window_network, build=_built_by("build_ssgan"), unlabelled=True,
            generator=True, twin="baseline",
            reads=(*_WINDOW_NETWORK, *_GENERATOR, "feature_matching", "gradient_penalty",
                   "consistency")),
    Learner("baseline", "supervised twin",
            "the SSGAN's supervised twin: the same discriminator, labels only",
            "tab:blue", _window_network, build=_built_by("build_supervised"),
            reads=_WINDOW_NETWORK),
    Learner("fixmatch", "FixMatch",
            "the twin taught by its confident weak views of unlabelled windows",
            "tab:purple", _window_network, build=_built_by("build_fixmatch"), unlabelled=True,
            twin="baseline", reads=(*_WINDOW_NETWORK, "consistency")),
    Learner("forest", "random forest",
            "a random forest on window features (centre, mean, deviation)",
            "tab:green", Forest, fit=_forest, reads=("forest_trees", "threshold")),
    Learner("glm", "GLM", "a logistic regression on the centre pixel's bands", "tab:brown",
            Glm, fit=_glm, reads=("threshold",)),
    Learner("unet", "U-Net", "a U-Net segmenting whole patches, labels only", "tab:orange",
            _patch_network, build=_built_by("build_segmenter"), patches=True, reads=_SEGMENTER),
    Learner("segssgan", "patch SSGAN",
            "the SSGAN carried to patches: the U-Net with N + 1 outputs per pixel, a generator "
            "of whole patches", "tab:pink", _patch_network, build=_built_by("build_segssgan"),
            unlabelled=True, generator=True, patches=True, twin="unet",
            reads=(*_SEGMENTER, *_GENERATOR, "leaky_slope", "beta1")),
    Learner("segmatch", "patch FixMatch",
            "the U-Net taught by its confident weak views of unlabelled patches (CutMix, "
            "perturbed features)",
            "tab:cyan", _patch_network, build=_built_by("build_segmatch"), unlabelled=True,
            patches=True, twin="unet", reads=(*_SEGMENTER, "consistency")),
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
                stage: Stage | None = None) -> None:
    """Every name is a kind (and a network, with `networks_only`; one that `stage` makes, with
    `stage`), else one line naming `key` and the command that makes it."""
    for name in names:
        if not learner(name, key).network and networks_only:
            raise ConfigError(f"{key}: {name} is not a network; networks are "
                              f"{', '.join(k for k in KINDS if LEARNERS[k].network)}")
        if stage is not None and LEARNERS[name].stage != stage:
            raise ConfigError(f"{key}: {name} is made by `landslide {LEARNERS[name].stage} "
                              f"{name}`; this setting takes {', '.join(of_stage(stage))}")


def of_stage(stage: Stage) -> tuple[str, ...]:
    """The kinds a stage makes (train: the window networks; fit: the classifiers; segment:
    the patch segmenters)."""
    return tuple(k for k in KINDS if LEARNERS[k].stage == stage)


def stage_reads(stage: Stage) -> tuple[str, ...]:
    """The train settings any kind of the stage reads: what its dvc.yaml stage lists."""
    return tuple(sorted({key for k in of_stage(stage) for key in LEARNERS[k].reads}))
