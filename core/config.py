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
import numbers
import re
from typing import Any

from .errors import ConfigError

LR_SCHEDULES = ("constant", "cosine", "linear")
# Points in a training set drawn from a built-in dataset: as many as a file of points may hold
# (core.data.files.MAX_POINTS), more than any 2D density needs; ten million took a gigabyte.
MAX_N_DATA = 200_000
# Steps per second a run may be slowed to (TrainConfig.pace): past a thousand, pacing is no slower
# than most models train at full speed on a CPU, and a picture shows many steps anyway.
MAX_PACE = 1000


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
    n_data: int = param(20_000, lo=2, hi=MAX_N_DATA, help="size of the training set drawn from a built-in dataset")
    grad_clip: float = param(0.0, lo=0.0, hi=1e6, help="clip the gradient norm (0: off)", live=True)
    lr_schedule: str = param("constant", choices=LR_SCHEDULES,
                             help="learning rate over the run: constant, or cosine / linear decay to a tenth by the last step")
    warmup: int = param(0, lo=0, hi=1_000_000, help="steps of linear warm-up from 0 to the learning rate (0: none)")
    pace: float = param(0.0, lo=0.0, hi=MAX_PACE, live=True,
                        help="steps per second, to watch training in slow motion (0: full speed)")


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


def _shown(v) -> str:
    """A value for a message: a huge whole number in scientific notation, not 300 digits."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(v) >= 10**15:
        return f"{float(v):.3g}"
    return str(v)


def _bound(v) -> str:
    """A bound for a message: 10,000,000 rather than 10000000, 1 rather than 1.0."""
    if isinstance(v, float):
        return f"{v:g}"
    return f"{v:,}" if isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(v) < 10**15 else _shown(v)


def allowed(meta: dict, like: Any) -> str:
    """What a field of this kind (the type of `like`) and these bounds accepts, in words."""
    if meta.get("choices") is not None:
        return "one of: " + ", ".join(str(c) for c in meta["choices"])
    if isinstance(like, bool):
        return "true or false"
    kind = "a whole number" if isinstance(like, numbers.Integral) else "a number"
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{kind} from {_bound(lo)} to {_bound(hi)}"
    return kind + (f" of at least {_bound(lo)}" if lo is not None else f" of at most {_bound(hi)}" if hi is not None else "")


def coerce(name: str, value: Any, like: Any, meta: dict | None = None):
    """`value` as typed on a command line, sent by a page or read from a link, as the type of `like`
    (the field's default); ConfigError, naming the field, the value and what is allowed, if it is
    not one. Numbers may come as numeric strings ("0.001"), which is what a link holds; a list, a
    dict, a bool where a number goes or a word are refused."""
    meta = meta or {}
    if isinstance(like, str):
        return value.strip() if isinstance(value, str) else value  # validate checks the choices
    bad = ConfigError(f"{name} must be {allowed(meta, like)}, got {value!r}")
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
        if isinstance(value, str) and value.strip().lower() in words:
            return words[value.strip().lower()]
        raise bad
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise bad
    number = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text) if not re.fullmatch(r"[+-]?\d+", text) else int(text)
        except ValueError:
            raise bad from None
        if isinstance(number, float) and math.isinf(number) and "inf" not in text.lower():
            # 1e400 is a finite number, too large for a float: say so, not "inf"
            hi, lo = meta.get("hi"), meta.get("lo")
            limit = f"allowed up to {_bound(hi)}" if number > 0 and hi is not None else (
                f"allowed down to {_bound(lo)}" if number < 0 and lo is not None else allowed(meta, like))
            raise ConfigError(f"{name}={text} is out of range: too {'large' if number > 0 else 'small'}; {limit}")
    if isinstance(like, numbers.Integral):
        if isinstance(number, numbers.Integral):
            return int(number)
        if not math.isfinite(number) or not float(number).is_integer():
            raise bad
        return int(number)
    return float(number) if not isinstance(number, numbers.Integral) else number


def validate(cfg) -> None:
    """Raise ConfigError with a one-line reason for the first bad field."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        m = f.metadata
        like = f.default
        numeric = isinstance(like, numbers.Real) and not isinstance(like, bool) and m.get("choices") is None
        if numeric and (isinstance(v, bool) or not isinstance(v, numbers.Real)
                        or isinstance(like, numbers.Integral) and not isinstance(v, numbers.Integral)):
            raise ConfigError(f"{f.name} must be {allowed(m, like)}, got {v!r}")
        if isinstance(like, bool) and not isinstance(v, bool):
            raise ConfigError(f"{f.name} must be true or false, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{f.name}={v} is not a finite number; it must be {allowed(m, like)}")
        if m.get("choices") is not None and v not in m["choices"]:
            allowed_ = ", ".join(str(c) for c in m["choices"])
            raise ConfigError(f"{f.name}={v!r} is not allowed; choose one of: {allowed_}")
        lo, hi = m.get("lo"), m.get("hi")
        if hi is not None and v > hi:
            raise ConfigError(f"{f.name}={_shown(v)} is out of range: too large; allowed up to {_bound(hi)}")
        if lo is not None and v < lo:
            rng = f"between {_bound(lo)} and {_bound(hi)}" if hi is not None else f"at least {_bound(lo)}"
            raise ConfigError(f"{f.name}={_shown(v)} is out of range; it must be {rng}")


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
            values[k] = coerce(k, v, getattr(base, k), names[k].metadata)
    cfg = dataclasses.replace(base, **values)
    validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
