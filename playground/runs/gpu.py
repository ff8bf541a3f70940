"""Where runs train on a ZeroGPU Space: in chunks, each one call that holds the GPU.

On a ZeroGPU Space (SPACES_ZERO_GPU=true) a GPU is lent for the length of one call of a
function decorated with `spaces.GPU(duration=s)`, in a daemonic worker process that may start
no process of its own, so the child-process transport cannot train there. A run then trains in
chunks (core.train.chunks): `gpu_chunk` is core.train.chunks.train_chunk so decorated, made at
import because the spaces package wants its GPU functions known before the app launches (import
this module before anything touches CUDA). Each call trains for CHUNK_SECONDS
(PLAYGROUND_CHUNK_SECONDS, default 5) and asks for MARGIN seconds more, which cover building
the engine, the last step and the last report. Elsewhere, locally or on a CPU Space, gpu_chunk
is train_chunk itself and a run keeps its child process:

    Trainer(model, dataset, cfg, device, **transport_options())
"""

from __future__ import annotations

import math
import os

from core.errors import ConfigError

DEFAULT_CHUNK_SECONDS = 5.0
CHUNK_RANGE = (0.5, 60.0)  # seconds; the free quota is a few minutes a day
MARGIN = 10.0  # seconds a call asks for beyond its chunk


def _true(value: str | None) -> bool:
    """An environment flag as the spaces package reads it."""
    return value is not None and value.strip().lower() in ("1", "t", "true")


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space: SPACES_ZERO_GPU is true and the spaces package is there."""
    if not _true(os.environ.get("SPACES_ZERO_GPU")):
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def chunk_seconds_from_env() -> float:
    """PLAYGROUND_CHUNK_SECONDS, a chunk's length in seconds (DEFAULT_CHUNK_SECONDS when unset)."""
    raw = os.environ.get("PLAYGROUND_CHUNK_SECONDS", "").strip()
    if not raw:
        return DEFAULT_CHUNK_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    lo, hi = CHUNK_RANGE
    if not lo <= value <= hi:
        raise ConfigError(f"PLAYGROUND_CHUNK_SECONDS must be a number of seconds from {lo:g} to {hi:g}, got {raw!r}")
    return value


CHUNK_SECONDS = chunk_seconds_from_env()
GPU_SECONDS = math.ceil(CHUNK_SECONDS + MARGIN)  # what each call asks ZeroGPU for

if on_zero_gpu():
    import spaces  # before torch touches CUDA, which core.train.chunks does not do at import

    from core.train.chunks import train_chunk

    gpu_chunk = spaces.GPU(duration=GPU_SECONDS)(train_chunk)
else:
    from core.train.chunks import train_chunk

    gpu_chunk = train_chunk


def transport_options() -> dict:
    """The Trainer's keyword arguments for this host: chunks of gpu_chunk on ZeroGPU, else a child process."""
    if on_zero_gpu():
        return {"transport": "chunked", "chunk_call": gpu_chunk, "chunk_seconds": CHUNK_SECONDS}
    return {"transport": "process"}
