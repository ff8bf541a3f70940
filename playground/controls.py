"""Knobs and links: from the registry's config metadata to controls, and to a query string.

Every config field of every registered model (core.config.param: default,
range, choices, help, live) becomes a `Knob`; the page builds one control per
knob and shows the ones the chosen model has. The same knobs read and write
the configuration as a URL query string, keeping only the values changed
from the model's defaults and refusing bad ones with a reason each.
No Gradio here: these are plain functions of the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse

from core import registry
from core.config import allowed, coerce, describe
from core.errors import ConfigError

DEFAULT_MODEL = "realnvp"
DEFAULT_DATASET = "two_moons"
TRAIN_KNOBS = ("lr", "batch_size", "steps", "seed", "grad_clip", "n_data", "lr_schedule", "warmup", "pace")
UPLOAD_PREFIX = "upload: "  # uploaded datasets are named like this; they never travel in a link


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # choice | bool | int | float
    scope: str  # model | train
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    help: str = ""
    live: bool = False
    when: tuple | None = None  # (setting, values): shown only while that setting holds one of them

    @property
    def slider(self) -> bool:
        return self.kind == "int" and self.lo is not None and self.hi is not None and self.hi - self.lo <= 512

    def info(self) -> str:
        when = "live: applies while training" if self.live else "applies on Reset"
        return f"{self.help} ({when})" if self.help else when

    def coerce(self, value):
        """A control's value as the config field's type; ConfigError, naming the knob, the value and
        what is allowed, if it cannot be. Numeric strings are numbers (a link holds nothing else)."""
        like = {"int": 0, "float": 0.0, "bool": False}.get(self.kind, self.choices[0] if self.choices else "")
        meta = {"lo": self.lo, "hi": self.hi, "choices": self.choices}
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConfigError(f"{self.name} needs a value: {allowed(meta, like)}")
        return coerce(self.name, value, like, meta)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "choice"


def data_kind(dataset: str) -> str:
    """"images" for a built-in dataset of images (MNIST), "points" for the rest (uploads, drawings)."""
    spec = registry.DATASETS.get(dataset)
    shape = getattr(spec.factory, "shape", (2,)) if spec is not None else (2,)
    return registry.data_kind(shape)


def knobs_for(model_name: str, kind: str = "points") -> dict[str, tuple[Knob, object]]:
    """name -> (knob, default) for the model's config and the trainer, with the model's defaults
    on data of `kind` (an image model trains with smaller batches, say).

    A setting that tells registered variants apart (a GAN's objective) is the model's name,
    not a knob, and is left out. Every handler asks this many times, and building and
    validating the configs costs a millisecond or more each: it is worked out once per
    registered model (its spec, should a model be registered again) and kind."""
    return dict(_knobs_for(model_name, kind, id(registry.model_spec(model_name))))


@functools.lru_cache(maxsize=1024)
def _knobs_for(model_name: str, kind: str, spec_id: int) -> dict[str, tuple[Knob, object]]:
    out = {}
    for scope, cfg in (("model", registry.model_config(model_name)), ("train", registry.train_config(model_name, kind=kind))):
        for name, m in describe(cfg).items():
            if scope == "train" and name not in TRAIN_KNOBS or m.get("variant"):
                continue
            value = getattr(cfg, name)
            kind = "choice" if m.get("choices") else _kind(value)
            out[name] = (Knob(name, kind, scope, m.get("lo"), m.get("hi"), tuple(m["choices"]) if m.get("choices") else None,
                              m.get("help", ""), bool(m.get("live")), m.get("when")), value)
    return out


def shown(model_name: str, settings: dict | None = None) -> set[str]:
    """The model's knobs that matter with these settings (DDIM's eta only while sampler is ddim)."""
    knobs = knobs_for(model_name)
    values = dataclasses.asdict(registry.model_config(model_name))  # a variant's own fields too (a GAN's loss)
    values.update({name: (settings or {}).get(name, default) for name, (_, default) in knobs.items()})
    return {name for name, (k, _) in knobs.items() if k.when is None or values.get(k.when[0]) in k.when[1]}


def dependents(model_name: str, name: str) -> list[str]:
    """The model's knobs whose visibility follows the setting `name`."""
    return [n for n, (k, _) in knobs_for(model_name).items() if k.when is not None and k.when[0] == name]


def knob_key(knob: Knob) -> str:
    """One control per (name, kind): `layers` is one slider for every model that has it."""
    return f"{knob.scope}.{knob.name}.{knob.kind}"


@functools.cache
def all_knobs() -> dict[str, Knob]:
    """Every control the page needs, across all registered models, model settings first."""
    found: dict[str, Knob] = {}
    choices: dict[str, list] = {}
    for model_name in registry.model_names():
        for knob, _ in knobs_for(model_name).values():
            key = knob_key(knob)
            found.setdefault(key, knob)
            if knob.choices:
                choices.setdefault(key, [])
                choices[key] += [c for c in knob.choices if c not in choices[key]]
    out = {k: dataclasses.replace(v, choices=tuple(choices[k])) if k in choices else v for k, v in found.items()}
    order = sorted(out, key=lambda k: (out[k].scope != "model", TRAIN_KNOBS.index(out[k].name) if out[k].scope == "train" else 0))
    return {k: out[k] for k in order}


def settings_from(model_name: str, values: dict[str, object]) -> tuple[dict, dict]:
    """(model settings, train settings) from control values keyed by knob_key; validated."""
    model_s, train_s = {}, {}
    for name, (knob, _) in knobs_for(model_name).items():
        key = knob_key(knob)
        if key not in values:
            continue
        (model_s if knob.scope == "model" else train_s)[name] = knob.coerce(values[key])
    registry.model_config(model_name, model_s)
    registry.train_config(model_name, train_s)
    return model_s, train_s


def non_default(model_name: str, model_s: dict, train_s: dict, kind: str = "points") -> dict:
    knobs = knobs_for(model_name, kind)
    merged = {**model_s, **train_s}
    return {k: v for k, v in merged.items() if k in knobs and v != knobs[k][1]}


def encode_query(model_name: str, dataset: str, settings: dict) -> str:
    """The configuration as a query string: model, data, and only the settings changed from defaults."""
    items = [("model", model_name)]
    if not dataset.startswith(UPLOAD_PREFIX):
        items.append(("data", dataset))
    items += [(k, str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v))
              for k, v in sorted(settings.items())]
    return urllib.parse.urlencode(items)


def decode_query(params: dict) -> tuple[str, str, dict, list[str]]:
    """(model, dataset, settings, problems) from query parameters; bad values are dropped with a reason."""
    problems = []
    model_name = params.get("model") or DEFAULT_MODEL
    if model_name not in registry.model_names():
        problems.append(f"model={model_name!r} is not a model here; valid models: {', '.join(registry.model_names())}")
        model_name = DEFAULT_MODEL
    dataset = params.get("data") or DEFAULT_DATASET
    if dataset not in registry.dataset_names():
        problems.append(f"data={dataset!r} is not a dataset here; valid datasets: {', '.join(registry.dataset_names())}")
        dataset = DEFAULT_DATASET
    knobs = knobs_for(model_name, data_kind(dataset))
    settings = {}
    for k, v in params.items():
        if k in ("model", "data", "preset", "__theme"):
            continue
        if k not in knobs:
            problems.append(f"{k!r} is not a setting of {model_name}; valid settings: {', '.join(knobs)}")
            continue
        try:
            if knobs[k][0].scope == "model":
                value = getattr(registry.model_config(model_name, {k: v}), k)
            else:
                value = getattr(registry.train_config(model_name, {k: v}, data_kind(dataset)), k)
            settings[k] = value
        except ConfigError as e:
            problems.append(str(e))
    return model_name, dataset, settings, problems


def initial_values() -> dict[str, tuple[object, bool]]:
    """knob key -> (value, visible) the page opens with: the default model's, else the first model that has it."""
    visible = shown(DEFAULT_MODEL)
    out = {knob_key(k): (d, name in visible) for name, (k, d) in knobs_for(DEFAULT_MODEL).items()}
    for model in registry.model_names():
        for k, d in knobs_for(model).values():
            out.setdefault(knob_key(k), (d, False))
    return out
