"""The training machinery, for every family alike.

    engine.py      one step of any model's phases; loss terms and divergence kept on the device
    optim.py       optimisers (Adam, RMSprop, SGD), learning-rate schedules, the weight average
    runner.py      the one run loop, fed by commands (pause, step, live settings, stop)
    chunks.py      a run in short calls, each resuming exactly: where a GPU is lent one call at a time
    transports.py  where a background run trains: a thread, a child process, or chunks
    views.py       the pictures and metrics of a background run, on threads of their own
    trainer.py     Trainer: headless fit, or start / pause / step / stop with live pictures
"""

from .chunks import train_chunk
from .engine import Engine, initialise
from .runner import FINISHED, Runner
from .trainer import TRANSPORTS, Trainer, finite_or_none, resolve_device
from .transports import CHUNK_SECONDS, ChunkedTransport, from_wire, to_wire, warm_up

__all__ = ["CHUNK_SECONDS", "ChunkedTransport", "Engine", "FINISHED", "Runner", "TRANSPORTS", "Trainer",
           "finite_or_none", "from_wire", "initialise", "resolve_device", "to_wire", "train_chunk", "warm_up"]
