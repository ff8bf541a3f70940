"""Names -> families, models and datasets.

A family is one package under core/models/; it registers itself and its
models there and nowhere else, and everything else (the CLI, the
playground's dropdowns, the contract tests, the benchmarks) is built from
what it registered. Nothing here names a family: the packages are found by
walking core/models/.

    register_family("flow", "Normalizing flows", order=10)     # in core/models/flows/__init__.py
    register_model("realnvp", RealNVP, FlowConfig, "...")    # the family is RealNVP.family
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Callable

from . import config as C
from .errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    name: str
    title: str
    order: int  # position in lists and dropdowns


@dataclasses.dataclass(frozen=True)
class Quality:
    """A target the benchmark trains a model to: `metric` below `threshold` (at least it, with
    at_least). scale multiplies the threshold: "floor" by the metric's value between two
    independent sets of true samples of the same sizes (its noise floor), a metric's name
    by that metric (modes_covered at least 1 x n_modes: every mode)."""

    metric: str
    threshold: float
    at_least: bool = False
    scale: str | None = None

    def target(self, metrics: dict, floors: dict | None = None) -> float | None:
        if self.scale is None:
            return self.threshold
        base = (floors or {}).get(self.metric) if self.scale == "floor" else metrics.get(self.scale)
        return None if base is None else self.threshold * base

    def label(self, metrics: dict | None = None, floors: dict | None = None) -> str:
        what = {None: f"{self.threshold:g}", "floor": f"{self.threshold:g} x its floor (true vs true)"}.get(
            self.scale, f"{self.threshold:g} x {self.scale}")
        value = self.target(metrics or {}, floors)
        shown = f" ({value:.3g})" if self.scale is not None and value is not None else ""
        return f"{self.metric} {'>=' if self.at_least else '<'} {what}{shown}"

    def reached(self, metrics: dict, floors: dict | None = None) -> bool:
        value, target = metrics.get(self.metric), self.target(metrics, floors)
        if value is None or target is None:
            return False
        return value >= target if self.at_least else value < target


@dataclasses.dataclass(frozen=True)
class Literature:
    """A published figure for a model on MNIST: `value` in `unit` ("nats" per binarized digit, or
    "bits/dim" on dequantized digits), as reported in `source`; the NLL chart draws it."""

    value: float
    unit: str
    source: str

    def __post_init__(self):
        if self.unit not in ("nats", "bits/dim"):
            raise ValueError(f"a literature figure is in nats or bits/dim, got {self.unit!r}")

    @property
    def metric(self) -> str:
        """The metric key it sits beside: nll (nats) or bits_per_dim."""
        return "nll" if self.unit == "nats" else "bits_per_dim"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type
    config_cls: type
    defaults: dict
    summary: str
    train: dict  # TrainConfig defaults that suit this model (lr, steps, batch_size)
    quality: Quality | None = None  # what `python -m core bench` trains it to, if anything
    train_images: dict | None = None  # TrainConfig defaults on images, where they differ
    literature: Literature | None = None  # the published NLL on MNIST

    @property
    def family(self) -> str:
        return self.cls.family

    def train_for(self, kind: str) -> dict:
        """TrainConfig defaults for data of `kind` ("points" or "images")."""
        if kind == "images" and self.train_images is not None:
            return dict(self.train_images)
        return dict(self.train)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    factory: Callable
    summary: str


FAMILIES: dict[str, FamilySpec] = {}
MODELS: dict[str, ModelSpec] = {}
DATASETS: dict[str, DatasetSpec] = {}
_loaded = False


def register_family(name: str, title: str, order: int) -> None:
    FAMILIES[name] = FamilySpec(name, title, order)


def register_model(name: str, cls: type, config_cls: type, summary: str, train: dict | None = None,
                   quality: Quality | None = None, train_images: dict | None = None,
                   literature: Literature | None = None, **defaults) -> None:
    """Register `cls` under `name`; `defaults` are config overrides for this variant.

    The family is the class's own `family`, which its package must have registered first.
    train: TrainConfig defaults (lr, steps, batch_size); train_images: those on images, where
    they differ; literature: the published NLL on MNIST, drawn beside the model's.
    """
    if cls.family not in FAMILIES:
        raise ValueError(f"{cls.__name__}.family = {cls.family!r} is not a registered family; "
                         f"call register_family first")
    C.make(config_cls, defaults)  # registered defaults must themselves be valid
    C.make(C.TrainConfig, train or {})
    if train_images is not None:
        C.make(C.TrainConfig, train_images)
    MODELS[name] = ModelSpec(name, cls, config_cls, dict(defaults), summary, dict(train or {}), quality,
                             None if train_images is None else dict(train_images), literature)


def register_dataset(name: str, factory: Callable, summary: str) -> None:
    DATASETS[name] = DatasetSpec(name, factory, summary)


def load_all() -> None:
    """Import the datasets and every family package under core/models/ (which registers them)."""
    global _loaded
    if _loaded:
        return
    importlib.import_module("core.data")
    models = importlib.import_module("core.models")
    for info in pkgutil.iter_modules(models.__path__):
        if info.ispkg:
            importlib.import_module(f"core.models.{info.name}")
    _loaded = True


def families() -> list[str]:
    """Registered families that have at least one model, in their declared order."""
    load_all()
    used = {spec.family for spec in MODELS.values()}
    return [f.name for f in sorted(FAMILIES.values(), key=lambda f: f.order) if f.name in used]


def family_spec(name: str) -> FamilySpec:
    load_all()
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; valid families: {', '.join(families())}")
    return FAMILIES[name]


def model_names(family: str | None = None) -> list[str]:
    """Registered models, grouped by family in the families' order, then as registered."""
    load_all()
    rank = {f: i for i, f in enumerate(families())}
    order = list(MODELS)
    names = sorted(MODELS, key=lambda n: (rank[MODELS[n].family], order.index(n)))
    return [n for n in names if family is None or MODELS[n].family == family]


def dataset_names() -> list[str]:
    load_all()
    return list(DATASETS)


def model_spec(name: str) -> ModelSpec:
    load_all()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
    return MODELS[name]


def model_config(name: str, overrides: dict | None = None):
    spec = model_spec(name)
    return C.make(spec.config_cls, overrides, **spec.defaults)


def data_kind(shape) -> str:
    """"points" for vectors (D,), "images" for (C, H, W) or (H, W)."""
    return "points" if len(tuple(shape)) == 1 else "images"


def models_for(kind: str) -> list[str]:
    """The registered models built for data of `kind`."""
    return [n for n in model_names() if kind in MODELS[n].cls.data_kinds]


def check_fits(name: str, data_shape) -> None:
    """Refuse a model on data it is not built for, naming the models that fit."""
    spec, kind = model_spec(name), data_kind(data_shape)
    if kind not in spec.cls.data_kinds:
        what = {"points": f"points of shape {tuple(data_shape)}", "images": f"images of shape {tuple(data_shape)}"}[kind]
        built = " and ".join(spec.cls.data_kinds)
        raise ConfigError(f"{name} is built for {built}, not {what}; models for {kind}: "
                          f"{', '.join(models_for(kind))}")


def train_config(name: str, overrides: dict | None = None, kind: str = "points") -> C.TrainConfig:
    """Trainer settings for `name` on data of `kind`: the model's registered defaults, then overrides."""
    spec = model_spec(name)
    return C.make(C.TrainConfig, overrides, **spec.train_for(kind))


def build_model(name: str, data_shape: tuple, overrides: dict | None = None):
    """The model `name` for data of `data_shape`, with validated settings."""
    return build_from_config(name, data_shape, model_config(name, overrides))


def build_from_config(name: str, data_shape: tuple, cfg):
    spec = model_spec(name)
    check_fits(name, data_shape)
    C.validate(cfg)
    return spec.cls(tuple(data_shape), cfg)


def load_dataset(spec: str, **kwargs):
    """A built-in dataset by name, or points from a .csv/.npy path."""
    load_all()
    if spec in DATASETS:
        return DATASETS[spec].factory(**kwargs)
    if spec.lower().endswith((".csv", ".npy", ".txt")):
        from .data.files import PointsFile

        return PointsFile.from_path(spec)
    raise DataError(f"unknown dataset {spec!r}; valid datasets: {', '.join(DATASETS)}, "
                    "or a path to a .csv/.npy file of N x 2 points")
