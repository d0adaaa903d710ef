"""params.yaml turned into frozen, validated dataclasses.

Every setting lives in params.yaml; this module is the only place that reads it. The
dataclasses below *are* the schema: field names are the params.yaml keys, types say what a
value may be, and ranges are declared once, in each field's metadata (`setting(low=...)`).
One generic parser walks them, so every section is checked the same way: a wrong type, a
value out of range or an unknown key (a typo such as `train.epocs`) is one line that names
the full key, and suggests the closest valid key where there is one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from landslide_ssgan.errors import ConfigError

LayerKind = Literal["optical", "continuous", "categorical", "lines", "derived"]
Role = Literal["optical", "factor"]
Derivation = Literal["slope", "aspect", "ndvi"]
FeatureSet = Literal["factors", "optical", "joint"]
FEATURE_SETS: tuple[FeatureSet, ...] = typing.get_args(FeatureSet)
SplitMethod = Literal["spatial", "random"]
Negatives = Literal["inventory", "outside"]
UnlabelledFrom = Literal["train", "area"]
# Model kinds are plain names here: models/learners.py holds the table of kinds, and the
# stages that train or load models check these names against it (config stays free of the
# model code, so that editing a model never reruns prepare or sample).

T = TypeVar("T")


class Invalid(ConfigError):
    """A value that breaks a rule of its section; `key` is relative to the section, so the
    parser can name the full key wherever the section sits."""

    def __init__(self, key: str, text: str) -> None:
        super().__init__(f"{key}: {text}" if key else text)
        self.key, self.text = key, text


def setting(default: Any = dataclasses.MISSING, *, low: float | None = None,
            high: float | None = None, low_open: bool = False, nonempty: bool = False,
            tunable: bool = False, parse: Callable[[Any, str], Any] | None = None,
            named: bool = False) -> Any:
    """A field with its rules: a range [low, high] (low excluded with `low_open`), `nonempty`
    for lists, `tunable` for train settings Optuna may search, a custom `parse` for free-form
    mappings, and `named` for a mapping of name -> section (the name fills `name`)."""
    metadata = {"low": low, "high": high, "low_open": low_open, "nonempty": nonempty,
                "tunable": tunable, "parse": parse, "named": named}
    return field(default=default, metadata=metadata)


# --- sections ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GridConfig:
    crs: str
    resolution: float = setting(low=0.0, low_open=True, high=10_000.0)
    extent_layer: str = setting()
    max_pixels: int = setting(2_000_000_000, low=1)  # a guard against a mistyped resolution


@dataclass(frozen=True, kw_only=True)
class LayerConfig:
    """One input layer; which fields matter depends on `kind`."""

    name: str
    kind: LayerKind
    role: Role
    path: str | None = None
    layer: str | None = None          # the layer inside a multi-layer vector file
    bands: tuple[str, ...] = ()
    field: str | None = None
    encoding: Literal["onehot", "ordinal"] = "onehot"
    classes: tuple[str, ...] = ()
    derive: Derivation | None = None
    source: str | None = None
    red: str | None = None
    nir: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "derived":
            if self.derive is None or self.source is None:
                raise Invalid("", "a derived layer needs 'derive' and 'source'")
            if self.derive == "ndvi" and (self.red is None or self.nir is None):
                raise Invalid("", "ndvi needs 'red' and 'nir' band names")
        elif self.path is None:
            raise Invalid("path", "missing")
        if self.kind == "optical" and not self.bands:
            raise Invalid("bands", "an optical layer needs its band names")


@dataclass(frozen=True, kw_only=True)
class InventoryConfig:
    path: str
    layer: str | None = None
    field: str | None = None
    landslide: tuple[str, ...] = setting(nonempty=True)
    stable: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PrepareConfig:
    grid: GridConfig
    layers: tuple[LayerConfig, ...] = setting(named=True, nonempty=True)
    inventory: InventoryConfig = setting()

    def __post_init__(self) -> None:
        names = {layer.name for layer in self.layers}
        if self.grid.extent_layer not in names:
            raise Invalid("grid.extent_layer", f"{self.grid.extent_layer!r} is not a layer")
        for layer in self.layers:
            if layer.kind == "derived" and layer.source not in names:
                raise Invalid(f"layers.{layer.name}.source", f"{layer.source!r} is not a layer")


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    method: SplitMethod
    train: float = setting(low=0.0, high=1.0)
    val: float = setting(low=0.0, high=1.0)
    test: float = setting(low=0.0, high=1.0)
    block_size: int = setting(low=1)

    def __post_init__(self) -> None:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6 or not (
                self.train and self.val and self.test):
            raise Invalid("", "train + val + test must be 1, each > 0 (the validation area "
                              "chooses thresholds and models, the test area judges them)")


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    window: int
    per_class: int | None = setting(None, low=1)
    negatives: Negatives = "inventory"   # inventory: stable polygons only; outside: any ground
    negative_buffer_m: float = setting(0.0, low=0.0, high=1e6)  # outside: from any landslide
    negative_ratio: float = setting(1.0, low=0.0, low_open=True, high=100.0)
    unlabelled_ratio: float = setting(low=0.0, low_open=True, high=1000.0)  # the SSGAN's pool
    unlabelled_from: UnlabelledFrom = "train"  # area: the whole mapped area (transductive)
    split: SplitConfig = setting()

    def __post_init__(self) -> None:
        if self.window < 13 or self.window % 6 != 1:
            raise Invalid("window", f"{self.window} must be 13, 19, 25, ... (odd, and what "
                          "the discriminator's 3 x 3 pooling divides)")
        if self.split.block_size < 2 * self.window:
            raise Invalid("split.block_size", f"{self.split.block_size} must be at least "
                          f"twice the window ({2 * self.window})")


@dataclass(frozen=True, kw_only=True)
class FeaturesConfig:
    set: FeatureSet
    rgb: tuple[str, ...] = ()  # red, green, blue band names for previews; () for none

    def __post_init__(self) -> None:
        if self.rgb and (len(self.rgb) != 3 or len(set(self.rgb)) != 3):
            raise Invalid("rgb", f"{list(self.rgb)} must name three different bands (red, "
                          "green, blue) or be empty")


@dataclass(frozen=True, kw_only=True)
class LossWeightsConfig:
    """Discriminator loss = labelled + unlabelled + generated parts, each weighted."""

    labelled: float = setting(low=0.0, high=1000.0, tunable=True)
    unlabelled: float = setting(low=0.0, high=1000.0, tunable=True)
    generated: float = setting(low=0.0, high=1000.0, tunable=True)


@dataclass(frozen=True, kw_only=True)
class ConsistencyConfig:
    """FixMatch's consistency term: the learner `fixmatch`, and the SSGAN when ssgan_weight
    is above 0 (models/consistency.py)."""

    unlabelled_weight: float = setting(low=0.0, high=1000.0, tunable=True)
    threshold: float = setting(low=0.5, high=1.0, tunable=True)  # pseudo-label confidence
    teacher_ema: float = setting(low=0.0, high=0.9999, tunable=True)  # 0: its own teacher
    noise: float = setting(low=0.0, high=10.0, tunable=True)  # strong view, in std units
    cutout: int = setting(low=0, tunable=True)                # pixels a side; 0 = none
    band_dropout: float = setting(low=0.0, high=1.0, tunable=True)
    ssgan_weight: float = setting(0.0, low=0.0, high=1000.0, tunable=True)
    feature_dropout: float = setting(0.0, low=0.0, high=0.95, tunable=True)  # segmatch's
                                # feature-perturbation stream (UniMatch); 0 = none
    rampup: int = setting(0, low=0, tunable=True)  # segmatch: optimiser steps over which
                                # the unlabelled weight rises from 0 (Laine & Aila); 0 = none
    pseudo_classes: Literal["both", "balanced", "landslide"] = "both"  # segmatch: which
                                # confident pixels teach (segmatch.pseudo_loss)
    pseudo_from: Literal["teacher", "batch"] = "teacher"  # segmatch: the weak views'
                                # pseudo-labels from the teacher at inference (FixMatch) or
                                # from the training pass beside the labelled patches (UniMatch)

    def __post_init__(self) -> None:
        if self.pseudo_from == "batch" and self.teacher_ema > 0:
            raise Invalid("pseudo_from", "batch takes the pseudo-labels from the network's own "
                          "training pass, so there is no teacher to average: set teacher_ema "
                          "to 0 or pseudo_from to teacher")


@dataclass(frozen=True, kw_only=True)
class PatchConfig:
    """The patch segmenters (models/unet.py, data/patches.py): the patches and the U-Net."""

    size: int = setting(64, low=8, high=1024)   # pixels a side (a multiple of 2 ** depth)
    stride: int = setting(16, low=1, high=1024)  # pixels between patch centres
    min_inside: float = setting(0.5, low=0.0, low_open=True, high=1.0)  # share in its area
    negative_ratio: float = setting(1.0, low=0.0, high=100.0)  # patches without a landslide
    max_labelled: int | None = setting(4096, low=1)  # labelled patches at most (null: all)
    depth: int = setting(3, low=1, high=6, tunable=True)       # halvings
    width: int = setting(16, low=1, high=512, tunable=True)    # filters at full resolution
    dropout: float = setting(0.0, low=0.0, high=0.95, tunable=True)  # at the bottom
    loss: Literal["cross_entropy", "focal", "dice"] = "cross_entropy"
    augment: bool = setting(True, tunable=True)  # the square's 8 symmetries, aspect turned
    epochs: int = setting(20, low=1)             # passes over the labelled patches
    batch_size: int = setting(16, low=1, tunable=True)
    lr: float = setting(0.001, low=0.0, low_open=True, high=1.0, tunable=True)
    lr_schedule: Literal["constant", "poly"] = "constant"  # poly: falls to 0 over the epochs
    average: float = setting(0.25, low=0.0, high=1.0)  # share of the last epochs whose end
    # weights are averaged into the model (stochastic weight averaging); 0: the last weights

    def __post_init__(self) -> None:
        if self.size % 2 ** (self.depth + 1):  # half a patch of context, a whole number of
            raise Invalid("size", f"{self.size} must be a multiple of 2 ** (depth + 1) "
                          f"({2 ** (self.depth + 1)}): maps read half a patch of context, "
                          "which must keep the U-Net's pooling grid aligned")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The SSGAN's and the baseline's settings (the baseline uses the discriminator's)."""

    epochs: int = setting(low=1)
    batch_size: int = setting(low=1, tunable=True)
    latent_dim: int = setting(low=1, tunable=True)
    d_widths: tuple[int, int] = setting(low=1)
    d_hidden: int = setting(low=1, tunable=True)
    g_width: int = setting(low=2, tunable=True)
    dropout: float = setting(low=0.0, high=0.95, tunable=True)
    leaky_slope: float = setting(low=0.0, high=1.0, tunable=True)
    lr_d: float = setting(low=0.0, low_open=True, tunable=True)
    lr_g: float = setting(low=0.0, low_open=True, tunable=True)
    beta1: float = setting(low=0.0, high=0.999, tunable=True)
    loss_weights: LossWeightsConfig = setting()
    feature_matching: bool = setting(tunable=True)
    gradient_penalty: float = setting(low=0.0, high=1000.0, tunable=True)
    class_weighting: bool = setting(tunable=True)
    ema: float = setting(low=0.0, high=0.9999, tunable=True)
    consistency: ConsistencyConfig = setting()
    threshold: float = setting(low=0.0, high=1.0)  # on balanced windows (the paper's protocol)
    image_every: int = setting(low=1)
    forest_trees: int = setting(low=1)
    patch: PatchConfig = setting(PatchConfig())     # the patch segmenters


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig:
    """What a trained model's map is given on the validation area (stages/calibrate.py): its
    threshold and the prior that moves its probabilities to the area's prevalence."""

    target_recall: float | None = setting(None, low=0.0, low_open=True, high=1.0)
    min_val_landslides: int = setting(5, low=1)  # fewer in the validation area: no choosing
    prevalence: Literal["auto"] | float = setting(  # the area's landslide share the model's
        "auto", low=0.0, low_open=True, high=1.0)   # probabilities are corrected to on request
    symmetries: Literal[1, 8] = 8  # a segmenter's map: the mean over the square's 8 symmetries


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """The kinds dvc.yaml makes and evaluate scores: the window networks (train) and the
    classifiers (fit) on every feature set, the segmenters (segment) on features.set."""

    feature_sets: tuple[FeatureSet, ...] = setting(nonempty=True)
    networks: tuple[str, ...] = ()     # window networks (dvc.yaml's train)
    classifiers: tuple[str, ...] = ()  # classifiers on window features (dvc.yaml's fit)
    segmenters: tuple[str, ...] = ()   # patch segmenters (dvc.yaml's segment)

    def __post_init__(self) -> None:
        if not self.networks + self.classifiers:
            raise Invalid("networks", "evaluate.networks and evaluate.classifiers are both "
                          "empty; name at least one window kind (`landslide kinds` lists them)")

    @property
    def window_kinds(self) -> tuple[str, ...]:
        """The kinds that classify windows: networks, then classifiers."""
        return self.networks + self.classifiers


@dataclass(frozen=True, kw_only=True)
class FactorsConfig:
    trees: int = setting(low=10, high=10_000)


SPACE_KEYS = ("low", "high", "log", "choices")


def _search_space(raw: Any, where: str) -> Mapping[str, Mapping[str, Any]]:
    """{setting: {low, high[, log]} or {choices}}; which settings exist is checked against
    the train section (see Params)."""
    space = _mapping(raw, where)
    if not space:
        raise ConfigError(f"{where}: at least one setting to search")
    for name, spec in space.items():
        key = f"{where}.{name}"
        spec = _mapping(spec, key)
        _reject_unknown(spec, SPACE_KEYS, key)
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{key}.choices: expected a non-empty list")
            continue
        low, high = (_scalar(float, spec.get(k), f"{key}.{k}") for k in ("low", "high"))
        if not low < high:
            raise ConfigError(f"{key}: low {low} must be below high {high}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{key}: a log scale needs low > 0")
    return {str(k): dict(v) for k, v in space.items()}


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    """The Optuna study: budget, storage, sampler, pruner and the search space."""

    model: str = setting()  # the network kind tuned (a kind of models/learners.py)
    trials: int = setting(low=1)
    epochs: int = setting(low=1)
    study: str = setting()
    storage: str = setting()
    sampler_seed: int = setting()  # trial n draws from seed + n: no repeats across workers
    startup_trials: int = setting(low=0)
    warmup_epochs: int = setting(low=0)
    space: Mapping[str, Mapping[str, Any]] = setting(parse=_search_space)
    # a running trial beats every heartbeat_s; one silent for 3 beats (its worker was killed)
    # is failed by the next worker, which then runs the trial in its place
    heartbeat_s: int = setting(30, low=1, high=3600)


@dataclass(frozen=True, kw_only=True)
class MapConfig:
    """Batch mapping of the whole stack and the post-processing into landslide bodies."""

    model_uri: str | None = None  # None: models:/<registry.model_name>@<registry.alias>
    compare_baseline: bool     # also map models/<set>/baseline for map_summary.json
    block_size: int = setting(low=16, high=8192)
    threshold: Literal["auto"] | float = setting(low=0.0, high=1.0)  # auto: the model's own
    prior_correction: bool = False  # probabilities at the area's prevalence (model.json)
    opening: int = setting(low=0, high=50)       # radius in pixels (0 = off)
    closing: int = setting(low=0, high=50)
    min_area_m2: float = setting(low=0.0, high=1e9)
    connectivity: Literal[4, 8]
    preview_size: int = setting(low=64, high=8192)  # longest side of the PNG preview
    score_areas: bool = True  # score each map on the split's areas (holds the map in memory)
    attribution: str = ""     # the input data's attribution, written into the maps' tags


def _variants(raw: Any, where: str) -> Mapping[str, Mapping[str, Any]]:
    """name -> train settings, nested as in the train section (checked against it, see
    Params)."""
    return {str(name): dict(_mapping(settings, f"{where}.{name}"))
            for name, settings in _mapping(raw or {}, where).items()}


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """The label-efficiency study: budgets x seeds x models, on fixed test windows."""

    budgets: tuple[float, ...] = setting(low=0.0, low_open=True, high=1.0, nonempty=True)
    seeds: tuple[int, ...] = setting(nonempty=True)
    models: tuple[str, ...] = setting(nonempty=True)
    steps: int = setting(low=1)           # optimiser steps per network, whatever the budget
    forest_trees: int = setting(low=1)
    splits: tuple[SplitMethod, ...] = setting(nonempty=True)
    variants: Mapping[str, Mapping[str, Any]] = setting(parse=_variants)

    def __post_init__(self) -> None:
        object.__setattr__(self, "budgets", tuple(sorted(self.budgets)))

    def variant(self, train: TrainConfig, name: str) -> Variant:
        """A variant's train settings, optimiser steps and unlabelled pool: its keys are train
        settings, plus `steps` (instead of study.steps) and `unlabelled_ratio` (the SSGAN
        uses only that many unlabelled windows per landslide training window of the pool)."""
        where = f"study.variants.{name}"
        settings = dict(self.variants[name])
        steps = settings.pop("steps", self.steps)
        ratio = settings.pop("unlabelled_ratio", None)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise Invalid(f"study.variants.{name}.steps",
                          f"expected an integer >= 1, got {steps!r}")
        if ratio is not None and (not isinstance(ratio, (int, float)) or isinstance(ratio, bool)
                                  or ratio < 0):
            raise Invalid(f"study.variants.{name}.unlabelled_ratio",
                          f"expected a number >= 0, got {ratio!r}")
        return Variant(override(train, settings, where), steps,
                       None if ratio is None else float(ratio))


@dataclass(frozen=True)
class Variant:
    train: TrainConfig
    steps: int
    unlabelled_ratio: float | None  # None: the whole pool


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    model_name: str
    alias: str
    kinds: tuple[str, ...] = setting(nonempty=True)  # the kinds a champion may be
    score: Literal["auprc", "balanced_f1"]  # what the champion is chosen by (validation)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Bounds of `landslide serve`: a larger request is answered 413 before it is computed."""

    max_windows: int = setting(low=1, high=10_000_000)  # windows per request
    max_request_mb: float = setting(low=0.001, high=100_000.0)  # request body


@dataclass(frozen=True, kw_only=True)
class WindowsConfig:
    """Where training, evaluation and tuning cut their windows from: the normalised image of
    a feature set in memory while it is at most `in_memory_mib`, else a temporary file in
    `temp_dir` (null: the system's temporary folder) read a window at a time."""

    in_memory_mib: float = setting(1024.0, low=0.0)
    temp_dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    experiment: str
    default_uri: str


@dataclass(frozen=True, kw_only=True)
class PathsConfig:
    stack: str
    labels: str
    inventory_ids: str
    samples: str
    norm: str
    split: str
    trained: str
    models: str
    maps: str
    reports: str


@dataclass(frozen=True, kw_only=True)
class Params:
    seed: int = setting(low=0, high=2**32 - 1)  # numpy's and TensorFlow's seed range
    paths: PathsConfig
    prepare: PrepareConfig
    sample: SampleConfig
    features: FeaturesConfig
    train: TrainConfig
    calibrate: CalibrateConfig
    evaluate: EvaluateConfig
    factors: FactorsConfig
    tune: TuneConfig
    map: MapConfig
    study: StudyConfig
    registry: RegistryConfig
    serve: ServeConfig
    tracking: TrackingConfig
    windows: WindowsConfig = WindowsConfig()

    def __post_init__(self) -> None:
        if self.features.set not in self.evaluate.feature_sets:
            raise Invalid("evaluate.feature_sets", f"must include features.set "
                          f"({self.features.set!r})")
        roles = {layer.role for layer in self.prepare.layers}
        for feature_set in self.evaluate.feature_sets:
            role = {"factors": "factor", "optical": "optical"}.get(feature_set)
            if role is not None and role not in roles:
                raise Invalid("evaluate.feature_sets", f"{feature_set!r} has no bands: no layer "
                              f"of prepare.layers has role {role!r}; leave it out")
        self._check_cutout(self.train, "train")
        tunable = tunable_settings()
        for name, spec in self.tune.space.items():
            key = f"tune.space.{name}"
            if name not in tunable:
                raise ConfigError(_not_a_setting(key, [f"tune.space.{t}" for t in tunable]))
            for value in spec.get("choices", [spec.get("low"), spec.get("high")]):
                self._check_cutout(override(self.train, {name: value}, "tune.space"), key)
        for name in self.study.variants:
            self._check_cutout(self.study.variant(self.train, name).train,
                               f"study.variants.{name}")
        self._check_outputs_spare_inputs()

    def _check_outputs_spare_inputs(self) -> None:
        """No output path may be an input layer or the inventory, nor a folder that holds
        one: `--paths.labels data/raw/dem.tif` would replace the user's DEM."""
        inputs = {Path(layer.path).resolve(): f"prepare.layers.{layer.name}.path"
                  for layer in self.prepare.layers if layer.path is not None}
        inputs[Path(self.prepare.inventory.path).resolve()] = "prepare.inventory.path"
        for output in fields(PathsConfig):
            path = Path(getattr(self.paths, output.name)).resolve()
            for source, key in inputs.items():
                if source == path or path in source.parents:
                    raise Invalid(f"paths.{output.name}", f"{getattr(self.paths, output.name)} "
                                  f"would overwrite {key} ({source}); give the output a path "
                                  "of its own")

    def _check_cutout(self, train: TrainConfig, where: str) -> None:
        """The strong view's cut-out square must fit in the window with room to move."""
        cutout = train.consistency.cutout
        if cutout >= self.sample.window:
            raise Invalid(where, f"train.consistency.cutout {cutout} must be smaller than the "
                          f"window ({self.sample.window} pixels)")


# --- the generic parser -----------------------------------------------------------------


def _shown(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and key else where or key


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'params'}: expected a mapping, got {_shown(raw)}")
    return raw


# settings that were renamed: what an older params.yaml is told to write instead
RENAMED = {"evaluate.models": "split it into evaluate.networks (the window networks, dvc.yaml's "
                              "train) and evaluate.classifiers (forest, glm: dvc.yaml's fit)"}


def _not_a_setting(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = (RENAMED[key] if key in RENAMED else f"did you mean {close[0]}?" if close
            else f"expected one of {', '.join(valid)}")
    return f"{key} is not a setting ({hint})"


def _reject_unknown(raw: Mapping[str, Any], known: Any, where: str) -> None:
    for key in raw:
        if key not in known:
            raise ConfigError(_not_a_setting(_join(where, str(key)),
                                             [_join(where, k) for k in known]))


def _scalar(kind: type, value: Any, key: str) -> Any:
    if value is None:
        raise ConfigError(f"{key}: missing")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # NaN passes every range check
        raise ConfigError(f"{key}: {value} is not a finite number")
    return value


def _check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    low, high = meta.get("low"), meta.get("high")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    below = low is not None and (value <= low if meta.get("low_open") else value < low)
    if below or (high is not None and value > high):
        interval = (f"{'(' if meta.get('low_open') else '['}{'-inf' if low is None else low}, "
                    f"{'inf' if high is None else high}]")
        raise ConfigError(f"{key}: {value} is out of range {interval}")


def _value(kind: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
    """One value of type `kind` (the field's annotation) from its YAML form."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):  # None was handled by the caller
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:
            try:
                return _value(option, raw, key, meta)
            except ConfigError:
                continue
        return _value(options[-1], raw, key, meta)
    if origin is Literal:
        if raw not in args or isinstance(raw, bool):
            raise ConfigError(f"{key}: {raw!r} is not one of {', '.join(map(str, args))}")
        return raw
    if origin is tuple:
        return _tuple(args, raw, key, meta)
    if dataclasses.is_dataclass(kind):
        return parse_section(kind, raw, key)  # type: ignore[arg-type]
    value = _scalar(kind, raw, key)
    _check_range(value, meta, key)
    return value


def _tuple(args: tuple[Any, ...], raw: Any, key: str, meta: Mapping[str, Any]) -> tuple:
    variadic = len(args) == 2 and args[1] is Ellipsis
    if variadic and args[0] is str and isinstance(raw, str | int) and not isinstance(raw, bool):
        raw = [raw]  # a single name for a list of names
    if not isinstance(raw, list | tuple) or (not variadic and len(raw) != len(args)):
        wanted = "a list" if variadic else f"a list of {len(args)}"
        raise ConfigError(f"{key}: expected {wanted}, got {_shown(raw)}")
    if meta.get("nonempty") and not raw:
        raise ConfigError(f"{key}: expected a non-empty list")
    kinds = [args[0]] * len(raw) if variadic else list(args)
    if kinds and kinds[0] is str:  # names: codes such as 1 or 2 are names too
        raw = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in raw]
    return tuple(_value(k, v, f"{key}[{i}]", meta) for i, (k, v) in enumerate(
        zip(kinds, raw, strict=True)))


def _field_value(item: dataclasses.Field, kind: Any, raw: Mapping[str, Any], where: str) -> Any:
    key, meta = _join(where, item.name), item.metadata
    value = raw.get(item.name)
    if meta.get("parse"):
        return meta["parse"](value, key)
    if value is None:
        if item.default is not dataclasses.MISSING:
            return item.default
        if typing.get_origin(kind) in (types.UnionType, typing.Union) and item.name in raw:
            return None  # an explicit null for an optional setting
        raise ConfigError(f"{key}: missing")
    if meta.get("named"):
        section = typing.get_args(kind)[0]
        value = _mapping(value, key)
        if meta.get("nonempty") and not value:
            raise ConfigError(f"{key}: at least one is needed")
        return tuple(parse_section(section, {**_mapping(v, f"{key}.{n}"), "name": str(n)},
                                   f"{key}.{n}", skip=("name",)) for n, v in value.items())
    return _value(kind, value, key, meta)


def parse_section(cls: type[T], raw: Any, where: str, skip: tuple[str, ...] = ()) -> T:
    """An instance of the dataclass `cls` from its YAML mapping, every rule checked.
    `skip` names fields filled in by the caller rather than written in params.yaml."""
    raw = _mapping(raw, where)
    hints = typing.get_type_hints(cls)
    items = [f for f in fields(cls)]  # type: ignore[arg-type]
    _reject_unknown({k: v for k, v in raw.items() if k not in skip},
                    [f.name for f in items if f.name not in skip], where)
    values = {f.name: _field_value(f, hints[f.name], raw, where) for f in items}
    try:
        return cls(**values)
    except Invalid as exc:
        raise ConfigError(f"{_join(where, exc.key)}: {exc.text}") from None


def tunable_settings() -> list[str]:
    """Train settings Optuna may search and study variants may change, as dotted names
    (loss_weights.unlabelled)."""
    found = []
    hints = typing.get_type_hints(TrainConfig)
    for item in fields(TrainConfig):
        if dataclasses.is_dataclass(hints[item.name]):
            found += [f"{item.name}.{sub.name}" for sub in fields(hints[item.name])
                      if sub.metadata.get("tunable")]
        elif item.metadata.get("tunable"):
            found.append(item.name)
    return found


def _as_raw(section: Any) -> Any:
    """A section back in its YAML form (lists for tuples), for re-parsing with changes."""
    if dataclasses.is_dataclass(section):
        return {f.name: _as_raw(getattr(section, f.name)) for f in fields(section)}
    if isinstance(section, tuple):
        return [_as_raw(v) for v in section]
    return section


def override(section: T, changes: Mapping[str, Any], where: str = "") -> T:
    """`section` with `changes` applied, checked like params.yaml (errors name keys under
    `where`): keys are dotted (loss_weights.unlabelled) or nested mappings, as in the YAML."""
    raw = _as_raw(section)
    for key, value in changes.items():
        *parents, last = str(key).split(".")
        node = raw
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(_not_a_setting(_join(where, str(key)),
                                                 [_join(where, k) for k in raw]))
            node = node[part]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = {**node[last], **value}
        else:
            node[last] = value
    return parse_section(type(section), raw, where)


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed params mapping (what params.yaml holds)."""
    return parse_section(Params, raw, "")


def load_params(path: str | Path = "params.yaml",
                overrides: Mapping[str, str] | None = None) -> Params:
    """params.yaml, with `overrides` (dotted name -> value as YAML text, from the command line)
    put in before it is checked, so an override is validated like the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    where = f"{path} with {', '.join(f'{k}={v}' for k, v in overrides.items())}" \
        if overrides else str(path)
    try:
        for name, text in (overrides or {}).items():
            _put(raw, name, text)
        return parse_params(raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _put(raw: Any, name: str, text: str) -> None:
    """Set the dotted `name` of the params mapping to `text` read as YAML (2 -> int)."""
    *sections, key = name.split(".")
    node = raw
    for section in sections:
        if not isinstance(node, dict) or not isinstance(node.get(section), dict):
            raise ConfigError(f"{name} is not a setting")
        node = node[section]
    try:
        node[key] = yaml.safe_load(text) if text != "" else None
    except yaml.YAMLError:
        node[key] = text
