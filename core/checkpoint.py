"""Weights as safetensors, with the config needed to rebuild the model.

The file's metadata holds the model name, its config, the data shape, the
trainer settings and the dataset, so `load` needs nothing else; the CLI's
`sample` and `logprob`, and the playground's export, all go through here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from safetensors import safe_open

from . import config as C
from .errors import DataError
from .registry import model_spec

WEIGHTS = "model.safetensors"
FORMAT = "generative-playground/1"


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
    """(model, metadata) from a directory written by `save` or the file itself."""
    meta = read_metadata(path)
    spec = model_spec(meta["model"])
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    cfg_dict = {k: v for k, v in json.loads(meta["config"]).items() if k in fields}
    cfg = spec.config_cls(**cfg_dict)
    C.validate(cfg)
    model = spec.cls(tuple(json.loads(meta["data_shape"])), cfg)
    load_model(model, str(_weights_file(path)), strict=True)
    return model.to(device).eval(), meta


def _weights_file(path: str | Path) -> Path:
    path = Path(path)
    file = path if path.suffix == ".safetensors" else path / WEIGHTS
    if not file.exists():
        raise DataError(f"no saved model at {path}: expected {file} (written by 'python -m core train ... --out DIR')")
    return file
