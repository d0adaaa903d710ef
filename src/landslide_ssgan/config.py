"""params.yaml turned into frozen, validated dataclasses.

Every setting lives in params.yaml; this module is the only place that reads it. Each
section is checked once, here, so that the core never sees a value of the wrong type or out
of range and a user gets one line that names the key that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import yaml

from landslide_ssgan.errors import ConfigError

LayerKind = Literal["optical", "continuous", "categorical", "lines", "derived"]
Role = Literal["optical", "factor"]
Derivation = Literal["slope", "aspect", "ndvi"]
FeatureSet = Literal["factors", "optical", "joint"]
SplitMethod = Literal["spatial", "random"]

T = TypeVar("T")


@dataclass(frozen=True)
class GridConfig:
    crs: str
    resolution: float
    extent_layer: str


@dataclass(frozen=True)
class LayerConfig:
    """One input layer; which fields matter depends on `kind`."""

    name: str
    kind: LayerKind
    role: Role
    path: str | None = None
    vector_layer: str | None = None
    bands: tuple[str, ...] = ()
    field: str | None = None
    encoding: Literal["onehot", "ordinal"] = "onehot"
    classes: tuple[str, ...] = ()
    derive: Derivation | None = None
    source: str | None = None
    red: str | None = None
    nir: str | None = None


@dataclass(frozen=True)
class InventoryConfig:
    path: str
    vector_layer: str | None
    field: str | None
    landslide: tuple[str, ...]
    stable: tuple[str, ...]


@dataclass(frozen=True)
class PrepareConfig:
    grid: GridConfig
    layers: tuple[LayerConfig, ...]
    inventory: InventoryConfig


@dataclass(frozen=True)
class SplitConfig:
    method: SplitMethod
    train: float
    val: float
    test: float
    block_size: int


@dataclass(frozen=True)
class SampleConfig:
    window: int
    per_class: int | None
    unlabelled_ratio: float
    split: SplitConfig


@dataclass(frozen=True)
class FeaturesConfig:
    set: FeatureSet
    rgb: tuple[str, ...]


@dataclass(frozen=True)
class TrainConfig:
    """The SSGAN's and the baseline's settings (the baseline uses the discriminator's)."""

    epochs: int
    batch_size: int
    latent_dim: int
    d_widths: tuple[int, int]
    d_hidden: int
    g_width: int
    dropout: float
    leaky_slope: float
    lr_d: float
    lr_g: float
    beta1: float
    w_labelled: float
    w_unlabelled: float
    w_generated: float
    feature_matching: bool
    gradient_penalty: float
    class_weighting: bool
    ema: float
    threshold: float
    image_every: int
    forest_trees: int


@dataclass(frozen=True)
class EvaluateConfig:
    feature_sets: tuple[FeatureSet, ...]


@dataclass(frozen=True)
class FactorsConfig:
    trees: int


@dataclass(frozen=True)
class TuneConfig:
    """The Optuna study: budget, storage, sampler, pruner and the search space."""

    trials: int
    epochs: int
    study: str
    storage: str
    sampler_seed: int
    startup_trials: int
    warmup_epochs: int
    space: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class MapConfig:
    """Batch mapping of the whole stack and the post-processing into landslide bodies."""

    model_uri: str | None      # None: models:/<registry.model_name>@<registry.alias>
    compare_baseline: bool     # also map models/<set>/baseline for map_summary.json
    block_size: int
    threshold: float
    opening: int               # radius in pixels (0 = off)
    closing: int
    min_area_m2: float
    connectivity: Literal[4, 8]
    preview_size: int          # longest side of the PNG preview, pixels


@dataclass(frozen=True)
class StudyConfig:
    """The label-efficiency study: budgets x seeds x models, on fixed test windows."""

    budgets: tuple[float, ...]        # fractions of the labelled training windows
    seeds: tuple[int, ...]
    models: tuple[str, ...]           # ssgan, baseline, forest
    steps: int                        # optimiser steps per network, whatever the budget
    forest_trees: int
    splits: tuple[SplitMethod, ...]   # spatial (honest) and random (the paper's), compared
    variants: Mapping[str, Mapping[str, Any]]  # SSGAN improvements: name -> train settings


@dataclass(frozen=True)
class RegistryConfig:
    model_name: str
    alias: str


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str
    default_uri: str


@dataclass(frozen=True)
class PathsConfig:
    stack: str
    labels: str
    inventory_ids: str
    samples: str
    norm: str
    models: str
    maps: str
    reports: str


@dataclass(frozen=True)
class Params:
    seed: int
    paths: PathsConfig
    prepare: PrepareConfig
    sample: SampleConfig
    features: FeaturesConfig
    train: TrainConfig
    factors: FactorsConfig
    evaluate: EvaluateConfig
    tune: TuneConfig
    map: MapConfig
    study: StudyConfig
    registry: RegistryConfig
    tracking: TrackingConfig


# --- small typed readers: each names the full key on error -------------------------------


def _section(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key}: expected a mapping, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _get(raw: Mapping[str, Any], key: str, where: str, kind: type[T], default: Any = ...) -> T:
    if key not in raw or raw[key] is None:
        if default is ...:
            raise ConfigError(f"{where}.{key}: missing")
        return cast(T, default)
    value = raw[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {_shown(value)}")
    return cast(T, value)


def _choice(raw: Mapping[str, Any], key: str, where: str, options: tuple[str, ...],
            default: Any = ...) -> Any:
    value = _get(raw, key, where, str, default)
    if value not in options and value is not None:
        raise ConfigError(f"{where}.{key}: {value!r} is not one of {', '.join(options)}")
    return value


def _strings(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if value is None:
        return ()
    if isinstance(value, str | int):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of names, got {_shown(value)}")
    return tuple(str(v) for v in value)


def _in_range(value: float, low: float, high: float, key: str) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{key}: {value} is out of range [{low}, {high}]")


# --- sections ---------------------------------------------------------------------------


def _layer(name: str, raw: Any) -> LayerConfig:
    where = f"prepare.layers.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_shown(raw)}")
    kind = _choice(raw, "kind", where, ("optical", "continuous", "categorical", "lines", "derived"))
    layer = LayerConfig(
        name=name,
        kind=kind,
        role=_choice(raw, "role", where, ("optical", "factor")),
        path=_get(raw, "path", where, str, None),
        vector_layer=_get(raw, "layer", where, str, None),
        bands=_strings(raw, "bands", where),
        field=_get(raw, "field", where, str, None),
        encoding=_choice(raw, "encoding", where, ("onehot", "ordinal"), "onehot"),
        classes=_strings(raw, "classes", where),
        derive=_choice(raw, "derive", where, ("slope", "aspect", "ndvi"), None),
        source=_get(raw, "source", where, str, None),
        red=_get(raw, "red", where, str, None),
        nir=_get(raw, "nir", where, str, None),
    )
    if kind == "derived":
        if layer.derive is None or layer.source is None:
            raise ConfigError(f"{where}: a derived layer needs 'derive' and 'source'")
        if layer.derive == "ndvi" and (layer.red is None or layer.nir is None):
            raise ConfigError(f"{where}: ndvi needs 'red' and 'nir' band names")
    elif layer.path is None:
        raise ConfigError(f"{where}.path: missing")
    if kind == "optical" and not layer.bands:
        raise ConfigError(f"{where}.bands: an optical layer needs its band names")
    return layer


def _prepare(raw: Mapping[str, Any]) -> PrepareConfig:
    grid_raw = _section(raw, "grid", "prepare")
    grid = GridConfig(
        crs=_get(grid_raw, "crs", "prepare.grid", str),
        resolution=_get(grid_raw, "resolution", "prepare.grid", float),
        extent_layer=_get(grid_raw, "extent_layer", "prepare.grid", str),
    )
    if not 0 < grid.resolution <= 10_000:
        raise ConfigError(f"prepare.grid.resolution: {grid.resolution} must be in (0, 10000] m")
    layers = tuple(_layer(str(n), v) for n, v in _section(raw, "layers", "prepare").items())
    if not layers:
        raise ConfigError("prepare.layers: at least one layer is needed")
    names = {layer.name for layer in layers}
    if grid.extent_layer not in names:
        raise ConfigError(f"prepare.grid.extent_layer: {grid.extent_layer!r} is not a layer")
    for layer in layers:
        if layer.kind == "derived" and layer.source not in names:
            raise ConfigError(
                f"prepare.layers.{layer.name}.source: {layer.source!r} is not a layer")
    inv = _section(raw, "inventory", "prepare")
    inventory = InventoryConfig(
        path=_get(inv, "path", "prepare.inventory", str),
        vector_layer=_get(inv, "layer", "prepare.inventory", str, None),
        field=_get(inv, "field", "prepare.inventory", str, None),
        landslide=_strings(inv, "landslide", "prepare.inventory"),
        stable=_strings(inv, "stable", "prepare.inventory"),
    )
    if not inventory.landslide:
        raise ConfigError("prepare.inventory.landslide: name the value(s) that mark a landslide")
    return PrepareConfig(grid=grid, layers=layers, inventory=inventory)


def _sample(raw: Mapping[str, Any]) -> SampleConfig:
    split_raw = _section(raw, "split", "sample")
    split = SplitConfig(
        method=_choice(split_raw, "method", "sample.split", ("spatial", "random")),
        train=_get(split_raw, "train", "sample.split", float),
        val=_get(split_raw, "val", "sample.split", float),
        test=_get(split_raw, "test", "sample.split", float),
        block_size=_get(split_raw, "block_size", "sample.split", int),
    )
    for key in ("train", "val", "test"):
        _in_range(getattr(split, key), 0.0, 1.0, f"sample.split.{key}")
    total = split.train + split.val + split.test
    if abs(total - 1.0) > 1e-6 or split.train == 0 or split.test == 0:
        raise ConfigError("sample.split: train + val + test must be 1, with train and test > 0")
    config = SampleConfig(
        window=_get(raw, "window", "sample", int),
        per_class=_get(raw, "per_class", "sample", int, None),
        unlabelled_ratio=_get(raw, "unlabelled_ratio", "sample", float),
        split=split,
    )
    if config.window < 13 or config.window % 6 != 1:
        raise ConfigError(f"sample.window: {config.window} must be 13, 19, 25, ... (odd, and "
                          "what the discriminator's 3 x 3 pooling divides)")
    if split.block_size < 2 * config.window:
        raise ConfigError(f"sample.split.block_size: {split.block_size} must be at least "
                          f"twice the window ({2 * config.window})")
    if config.per_class is not None and config.per_class < 1:
        raise ConfigError(f"sample.per_class: {config.per_class} must be positive or null")
    _in_range(config.unlabelled_ratio, 0.0, 100.0, "sample.unlabelled_ratio")
    return config


def _paths(raw: Mapping[str, Any]) -> PathsConfig:
    keys = ("stack", "labels", "inventory_ids", "samples", "norm", "models", "maps",
            "reports")
    return PathsConfig(**{k: _get(raw, k, "paths", str) for k in keys})


def _positive(value: float, key: str) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: {value} must be positive")


def _train(raw: Mapping[str, Any]) -> TrainConfig:
    where = "train"
    weights = _section(raw, "loss_weights", where)
    widths = raw.get("d_widths")
    if not (isinstance(widths, list) and len(widths) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in widths)):
        raise ConfigError(f"train.d_widths: expected two positive integers, got {_shown(widths)}")
    config = TrainConfig(
        epochs=_get(raw, "epochs", where, int),
        batch_size=_get(raw, "batch_size", where, int),
        latent_dim=_get(raw, "latent_dim", where, int),
        d_widths=(widths[0], widths[1]),
        d_hidden=_get(raw, "d_hidden", where, int),
        g_width=_get(raw, "g_width", where, int),
        dropout=_get(raw, "dropout", where, float),
        leaky_slope=_get(raw, "leaky_slope", where, float),
        lr_d=_get(raw, "lr_d", where, float),
        lr_g=_get(raw, "lr_g", where, float),
        beta1=_get(raw, "beta1", where, float),
        w_labelled=_get(weights, "labelled", "train.loss_weights", float),
        w_unlabelled=_get(weights, "unlabelled", "train.loss_weights", float),
        w_generated=_get(weights, "generated", "train.loss_weights", float),
        feature_matching=_get(raw, "feature_matching", where, bool),
        gradient_penalty=_get(raw, "gradient_penalty", where, float),
        class_weighting=_get(raw, "class_weighting", where, bool),
        ema=_get(raw, "ema", where, float),
        threshold=_get(raw, "threshold", where, float),
        image_every=_get(raw, "image_every", where, int),
        forest_trees=_get(raw, "forest_trees", where, int),
    )
    for key in ("epochs", "batch_size", "latent_dim", "d_hidden", "g_width", "lr_d", "lr_g",
                "image_every", "forest_trees"):
        _positive(getattr(config, key), f"train.{key}")
    if config.g_width < 2:
        raise ConfigError(f"train.g_width: {config.g_width} must be at least 2")
    _in_range(config.dropout, 0.0, 0.95, "train.dropout")
    _in_range(config.beta1, 0.0, 0.999, "train.beta1")
    _in_range(config.leaky_slope, 0.0, 1.0, "train.leaky_slope")
    _in_range(config.threshold, 0.0, 1.0, "train.threshold")
    _in_range(config.gradient_penalty, 0.0, 1000.0, "train.gradient_penalty")
    _in_range(config.ema, 0.0, 0.9999, "train.ema")
    for key in ("w_labelled", "w_unlabelled", "w_generated"):
        _in_range(getattr(config, key), 0.0, 1000.0, f"train.loss_weights.{key[2:]}")
    return config


def _factors(raw: Mapping[str, Any]) -> FactorsConfig:
    config = FactorsConfig(trees=_get(raw, "trees", "factors", int))
    if not 10 <= config.trees <= 10_000:
        raise ConfigError(f"factors.trees: {config.trees} is out of range [10, 10000]")
    return config


def _evaluate(raw: Mapping[str, Any], features: Mapping[str, Any]) -> EvaluateConfig:
    sets = _strings(raw, "feature_sets", "evaluate")
    unknown = [s for s in sets if s not in ("factors", "optical", "joint")]
    if unknown or not sets:
        raise ConfigError(f"evaluate.feature_sets: {list(sets)} must be a non-empty list of "
                          "factors, optical, joint")
    if features.get("set") not in sets:
        raise ConfigError(f"evaluate.feature_sets: must include features.set "
                          f"({features.get('set')!r})")
    return EvaluateConfig(feature_sets=sets)  # type: ignore[arg-type]


TUNABLE = {"lr_d", "lr_g", "beta1", "latent_dim", "d_hidden", "g_width", "dropout",
           "w_labelled", "w_unlabelled", "w_generated", "batch_size", "feature_matching",
           "gradient_penalty", "leaky_slope", "class_weighting", "ema"}


def _space(raw: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    space = {}
    for name, spec in raw.items():
        key = f"tune.space.{name}"
        if name not in TUNABLE:
            raise ConfigError(f"{key}: not a tunable setting (one of {', '.join(sorted(TUNABLE))})")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key}: expected {{low, high[, log]}} or {{choices}}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ConfigError(f"{key}.choices: expected a non-empty list")
        else:
            low, high = _get(spec, "low", key, float), _get(spec, "high", key, float)
            if not low < high:
                raise ConfigError(f"{key}: low {low} must be below high {high}")
            if spec.get("log") and low <= 0:
                raise ConfigError(f"{key}: a log scale needs low > 0")
        space[str(name)] = dict(spec)
    if not space:
        raise ConfigError("tune.space: at least one setting to search")
    return space


def _tune(raw: Mapping[str, Any]) -> TuneConfig:
    where = "tune"
    config = TuneConfig(
        trials=_get(raw, "trials", where, int),
        epochs=_get(raw, "epochs", where, int),
        study=_get(raw, "study", where, str),
        storage=_get(raw, "storage", where, str),
        sampler_seed=_get(raw, "sampler_seed", where, int),
        startup_trials=_get(raw, "startup_trials", where, int),
        warmup_epochs=_get(raw, "warmup_epochs", where, int),
        space=_space(_section(raw, "space", where)),
    )
    for key in ("trials", "epochs"):
        _positive(getattr(config, key), f"tune.{key}")
    return config


def _map(raw: Mapping[str, Any]) -> MapConfig:
    where = "map"
    connectivity = _get(raw, "connectivity", where, int)
    if connectivity not in (4, 8):
        raise ConfigError(f"map.connectivity: {connectivity} must be 4 or 8")
    config = MapConfig(
        model_uri=_get(raw, "model_uri", where, str, None),
        compare_baseline=_get(raw, "compare_baseline", where, bool),
        block_size=_get(raw, "block_size", where, int),
        threshold=_get(raw, "threshold", where, float),
        opening=_get(raw, "opening", where, int),
        closing=_get(raw, "closing", where, int),
        min_area_m2=_get(raw, "min_area_m2", where, float),
        connectivity=connectivity,  # type: ignore[arg-type]
        preview_size=_get(raw, "preview_size", where, int),
    )
    if not 16 <= config.block_size <= 8192:
        raise ConfigError(f"map.block_size: {config.block_size} is out of range [16, 8192]")
    _in_range(config.threshold, 0.0, 1.0, "map.threshold")
    for key in ("opening", "closing"):
        _in_range(getattr(config, key), 0, 50, f"map.{key}")
    _in_range(config.min_area_m2, 0.0, 1e9, "map.min_area_m2")
    _in_range(config.preview_size, 64, 8192, "map.preview_size")
    return config


def _study(raw: Mapping[str, Any]) -> StudyConfig:
    where = "study"
    budgets = raw.get("budgets")
    if not (isinstance(budgets, list) and budgets and all(
            isinstance(b, int | float) and not isinstance(b, bool) and 0 < b <= 1
            for b in budgets)):
        raise ConfigError(f"study.budgets: expected a list of fractions in (0, 1], got "
                          f"{_shown(budgets)}")
    seeds = raw.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"study.seeds: expected a list of integers, got {_shown(seeds)}")
    models = _strings(raw, "models", where)
    if not models or set(models) - {"ssgan", "baseline", "forest"}:
        raise ConfigError(f"study.models: {list(models)} must be some of ssgan, baseline, forest")
    splits = _strings(raw, "splits", where)
    if not splits or set(splits) - {"spatial", "random"}:
        raise ConfigError(f"study.splits: {list(splits)} must be some of spatial, random")
    variants = raw.get("variants") or {}
    if not isinstance(variants, Mapping):
        raise ConfigError(f"study.variants: expected a mapping, got {_shown(variants)}")
    for name, settings in variants.items():
        if not isinstance(settings, Mapping) or set(settings) - TUNABLE:
            raise ConfigError(f"study.variants.{name}: expected train settings (some of "
                              f"{', '.join(sorted(TUNABLE))})")
    config = StudyConfig(
        budgets=tuple(sorted(float(b) for b in budgets)), seeds=tuple(seeds), models=models,
        steps=_get(raw, "steps", where, int), forest_trees=_get(raw, "forest_trees", where, int),
        splits=splits, variants={str(k): dict(v) for k, v in variants.items()})  # type: ignore[arg-type]
    _positive(config.steps, "study.steps")
    _positive(config.forest_trees, "study.forest_trees")
    return config


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed params mapping (what params.yaml holds)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"params: expected a mapping at the top level, got {_shown(raw)}")
    features = _section(raw, "features", "params")
    return Params(
        seed=_get(raw, "seed", "params", int),
        paths=_paths(_section(raw, "paths", "params")),
        prepare=_prepare(_section(raw, "prepare", "params")),
        sample=_sample(_section(raw, "sample", "params")),
        features=FeaturesConfig(
            set=_choice(features, "set", "features", ("factors", "optical", "joint")),
            rgb=_strings(features, "rgb", "features")),
        train=_train(_section(raw, "train", "params")),
        factors=_factors(_section(raw, "factors", "params")),
        evaluate=_evaluate(_section(raw, "evaluate", "params"), features),
        tune=_tune(_section(raw, "tune", "params")),
        map=_map(_section(raw, "map", "params")),
        study=_study(_section(raw, "study", "params")),
        registry=RegistryConfig(
            model_name=_get(_section(raw, "registry", "params"), "model_name", "registry", str),
            alias=_get(_section(raw, "registry", "params"), "alias", "registry", str)),
        tracking=TrackingConfig(
            experiment=_get(_section(raw, "tracking", "params"), "experiment", "tracking", str),
            default_uri=_get(_section(raw, "tracking", "params"), "default_uri", "tracking", str),
        ),
    )


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    try:
        return parse_params(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
