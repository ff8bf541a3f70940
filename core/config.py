"""Typed, validated hyperparameters.

Each model's config is a dataclass whose fields are declared with `param`, which
records the allowed range next to the default. One function, `validate`, checks
every config, so the CLI, the playground and the tests refuse the same values
with the same one-line reason, and the playground builds its sliders from the
same metadata.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import ConfigError

LR_SCHEDULES = ("constant", "cosine", "linear")


def param(default, *, lo=None, hi=None, choices=None, help="", live=False, when=None, variant=False):
    """A config field with its allowed values.

    lo/hi: inclusive numeric bounds; choices: allowed values; live: the knob can
    change while training runs (a learning rate) without rebuilding the model;
    when: (field, values) if the setting only matters while another field of the
    same config holds one of `values` (DDIM's eta while sampler is ddim), so
    that a UI can hide it otherwise; variant: the field tells registered models
    of one class apart (a GAN's objective), so a UI shows it as the model's
    name rather than as a knob.
    """
    if when is not None:
        field, values = when
        when = (field, tuple(values) if isinstance(values, (tuple, list)) else (values,))
    meta = {"lo": lo, "hi": hi, "choices": choices, "help": help, "live": live, "when": when, "variant": variant}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class TrainConfig:
    """What the trainer needs, shared by every model."""

    steps: int = param(2000, lo=1, hi=10_000_000, help="optimisation steps")
    batch_size: int = param(256, lo=1, hi=65536, help="points per batch")
    lr: float = param(1e-3, lo=1e-7, hi=1.0, help="learning rate (Adam)", live=True)
    seed: int = param(0, lo=0, hi=2**31 - 1, help="random seed")
    n_data: int = param(20_000, lo=2, hi=10_000_000, help="size of the training set drawn from a built-in dataset")
    grad_clip: float = param(0.0, lo=0.0, hi=1e6, help="clip the gradient norm (0: off)", live=True)
    lr_schedule: str = param("constant", choices=LR_SCHEDULES,
                             help="learning rate over the run: constant, or cosine / linear decay to a tenth by the last step")
    warmup: int = param(0, lo=0, hi=1_000_000, help="steps of linear warm-up from 0 to the learning rate (0: none)")


def relevant(cfg, name: str) -> bool:
    """Whether setting `name` matters for this config (see param's `when`)."""
    field = next(f for f in dataclasses.fields(cfg) if f.name == name)
    when = field.metadata.get("when")
    return when is None or getattr(cfg, when[0]) in when[1]


def describe(cfg) -> dict[str, dict]:
    """Field name -> {default, lo, hi, choices, help, live, type}, for UIs and docs."""
    out = {}
    for f in dataclasses.fields(cfg):
        m = dict(f.metadata)
        m["type"] = type(getattr(cfg, f.name)) if not isinstance(cfg, type) else f.type
        m["default"] = f.default
        out[f.name] = m
    return out


def _coerce(name: str, value: Any, default: Any):
    """Turn a string from the command line into the type of the default."""
    if not isinstance(value, str) or isinstance(default, str):
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{name} must be a whole number, got {value!r}")
            return int(value)
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[type(default)]
        raise ConfigError(f"{name} must be {kind}, got {value!r}") from None
    return text


def validate(cfg) -> None:
    """Raise ConfigError with a one-line reason for the first bad field."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        m = f.metadata
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{f.name} must be a finite number, got {v}")
        if m.get("choices") is not None and v not in m["choices"]:
            allowed = ", ".join(str(c) for c in m["choices"])
            raise ConfigError(f"{f.name}={v!r} is not allowed; choose one of: {allowed}")
        lo, hi = m.get("lo"), m.get("hi")
        if lo is not None and v < lo or hi is not None and v > hi:
            rng = f"between {lo} and {hi}" if lo is not None and hi is not None else (
                f"at least {lo}" if lo is not None else f"at most {hi}")
            raise ConfigError(f"{f.name}={v} is out of range; it must be {rng}")


def make(cls, overrides: dict | None = None, **defaults):
    """Build a config of `cls`: registered defaults, then user overrides, validated.

    Unknown keys are refused with the list of valid ones.
    """
    base = cls()
    names = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for source in (defaults, overrides or {}):
        for k, v in source.items():
            if k not in names:
                valid = ", ".join(sorted(names))
                raise ConfigError(f"unknown setting {k!r}; valid settings: {valid}")
            values[k] = _coerce(k, v, getattr(base, k))
    cfg = dataclasses.replace(base, **values)
    validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
