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


@dataclass(frozen=True)
class PathsConfig:
    stack: str
    labels: str
    inventory_ids: str
    samples: str
    norm: str
    reports: str


@dataclass(frozen=True)
class Params:
    seed: int
    paths: PathsConfig
    prepare: PrepareConfig
    sample: SampleConfig
    features: FeaturesConfig


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
    if config.window < 1 or config.window % 2 == 0:
        raise ConfigError(f"sample.window: {config.window} must be a positive odd number")
    if split.block_size < 2 * config.window:
        raise ConfigError(f"sample.split.block_size: {split.block_size} must be at least "
                          f"twice the window ({2 * config.window})")
    if config.per_class is not None and config.per_class < 1:
        raise ConfigError(f"sample.per_class: {config.per_class} must be positive or null")
    _in_range(config.unlabelled_ratio, 0.0, 100.0, "sample.unlabelled_ratio")
    return config


def _paths(raw: Mapping[str, Any]) -> PathsConfig:
    keys = ("stack", "labels", "inventory_ids", "samples", "norm", "reports")
    return PathsConfig(**{k: _get(raw, k, "paths", str) for k in keys})


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
        features=FeaturesConfig(set=_choice(features, "set", "features",
                                            ("factors", "optical", "joint"))),
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
