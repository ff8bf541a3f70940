"""Names -> models and datasets.

A model or dataset appears in the CLI, the playground's dropdowns and the
parametrised tests by being registered here once, from its own module.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

from . import config as C
from .errors import ConfigError, DataError

# Modules that register models or datasets when imported.
_FAMILY_MODULES = (
    "core.data.toy2d",
    "core.data.mnist",
    "core.flows",
    "core.vae",
    "core.gan",
    "core.diffusion",
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    cls: type
    config_cls: type
    defaults: dict
    summary: str
    train: dict  # TrainConfig defaults that suit this model (lr, steps, batch_size)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    factory: Callable
    summary: str


MODELS: dict[str, ModelSpec] = {}
DATASETS: dict[str, DatasetSpec] = {}
_loaded = False


def register_model(name: str, family: str, cls: type, config_cls: type, summary: str,
                   train: dict | None = None, **defaults) -> None:
    """Register `cls` under `name`; `defaults` are config overrides for this variant."""
    C.make(config_cls, defaults)  # registered defaults must themselves be valid
    C.make(C.TrainConfig, train or {})
    MODELS[name] = ModelSpec(name, family, cls, config_cls, defaults, summary, dict(train or {}))


def register_dataset(name: str, factory: Callable, summary: str) -> None:
    DATASETS[name] = DatasetSpec(name, factory, summary)


def load_all() -> None:
    global _loaded
    if not _loaded:
        for mod in _FAMILY_MODULES:
            importlib.import_module(mod)
        _loaded = True


FAMILY_ORDER = ("flow", "vae", "gan", "diffusion")


def model_names(family: str | None = None) -> list[str]:
    """Registered models, grouped by family in a fixed order (whatever was imported first)."""
    load_all()
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    names = sorted(MODELS, key=lambda n: (rank.get(MODELS[n].family, len(rank)), list(MODELS).index(n)))
    return [n for n in names if family is None or MODELS[n].family == family]


def families() -> list[str]:
    load_all()
    return list(dict.fromkeys(MODELS[n].family for n in model_names()))


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


def train_config(name: str, overrides: dict | None = None) -> C.TrainConfig:
    """Trainer settings for `name`: the model's registered defaults, then overrides."""
    spec = model_spec(name)
    return C.make(C.TrainConfig, overrides, **spec.train)


def build_model(name: str, data_shape: tuple, overrides: dict | None = None):
    """The model `name` for data of `data_shape`, with validated settings."""
    spec = model_spec(name)
    cfg = model_config(name, overrides)
    return spec.cls(tuple(data_shape), cfg)


def build_from_config(name: str, data_shape: tuple, cfg):
    spec = model_spec(name)
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
    raise DataError(f"unknown dataset {spec!r}; valid datasets: {', '.join(DATASETS)}, or a path to a .csv/.npy file of N x 2 points")
