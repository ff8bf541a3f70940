"""Weights as safetensors, with the config needed to rebuild the model.

The file's metadata holds the model name, its config, the data shape, the
trainer settings and the dataset, so `load` needs nothing else; the CLI's
`sample` and `logprob`, and the playground's export, all go through here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from safetensors import safe_open

from . import config as C
from .errors import ConfigError, DataError
from .registry import model_spec

WEIGHTS = "model.safetensors"
FORMAT = "generative-playground/1"
MAX_DATA_VALUES = 4096  # numbers in one data point: a 64 x 64 image; the playground's are 2 and 784


def save(path: str | Path, name: str, model, train_cfg=None, dataset: str = "") -> Path:
    """Write `path` (a directory, or a .safetensors file) and return the file written."""
    path = Path(path)
    file = path if path.suffix == ".safetensors" else path / WEIGHTS
    file.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "model": name,
        "config": json.dumps(C.to_dict(model.config)),
        "data_shape": json.dumps(list(model.data_shape)),
        "train": json.dumps(C.to_dict(train_cfg) if train_cfg is not None else {}),
        "dataset": dataset,
    }
    was = model.device
    save_model(model.to("cpu"), str(file), metadata=meta)
    model.to(was)
    return file


def read_metadata(path: str | Path) -> dict:
    file = _weights_file(path)
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise DataError(f"{file} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{file} was not written by this playground (no '{FORMAT}' metadata)")
    return meta


def load(path: str | Path, device: str | torch.device = "cpu"):
    """(model, metadata) from a directory written by `save` or the file itself.

    Metadata that is missing, not JSON, or names settings or a shape the model cannot take, and
    weights that do not fit the model it names, are each refused with a DataError that says so."""
    meta = read_metadata(path)
    file = _weights_file(path)
    try:
        spec = model_spec(_entry(meta, "model", str, file))
    except ConfigError as e:
        raise DataError(f"{file}: its metadata names a model this playground does not have ({e})") from None
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    cfg_dict = {k: v for k, v in _entry(meta, "config", dict, file).items() if k in fields}
    shape = _entry(meta, "data_shape", list, file)
    if not 1 <= len(shape) <= 3 or not all(isinstance(n, int) and n >= 1 for n in shape) \
            or math.prod(shape) > MAX_DATA_VALUES:
        raise DataError(f"{file}: its metadata names a data shape of {shape}, which no model here takes "
                        f"(1 to 3 positive sizes, at most {MAX_DATA_VALUES:,} numbers); write it again with "
                        f"'python -m core train'")
    try:
        cfg = spec.config_cls(**cfg_dict)
        C.validate(cfg)
        model = spec.cls(tuple(shape), cfg)
    except ConfigError as e:
        raise DataError(f"{file}: the {meta['model']} settings in its metadata cannot be used ({e})") from None
    try:
        load_model(model, str(file), strict=True)
    except (RuntimeError, SafetensorError, OSError) as e:
        detail = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e).strip())
        raise DataError(f"{file}: its weights do not fit the {meta['model']} model its metadata describes "
                        f"({detail[:300]})") from None
    return model.to(device).eval(), meta


def _entry(meta: dict, key: str, kind: type, file: Path):
    """One field of the metadata: the model's name as it is, the others decoded from JSON."""
    if key not in meta:
        raise DataError(f"{file}: its metadata lacks '{key}', so the model cannot be rebuilt; "
                        f"write it again with 'python -m core train'")
    value = meta[key]
    if kind is not str:
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, kind):
        raise DataError(f"{file}: its metadata's '{key}' is not {'a name' if kind is str else 'a JSON ' + kind.__name__} "
                        f"({meta[key][:80]!r}); write it again with 'python -m core train'")
    return value


def _weights_file(path: str | Path) -> Path:
    path = Path(path)
    file = path if path.suffix == ".safetensors" else path / WEIGHTS
    if not file.exists():
        raise DataError(f"no saved model at {path}: expected {file} (written by 'python -m core train ... --out DIR')")
    return file
