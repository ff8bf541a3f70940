"""The training machinery, for every family alike.

    engine.py      one step of any model's phases; loss terms and divergence kept on the device
    optim.py       optimisers (Adam, RMSprop, SGD), learning-rate schedules, the weight average
    runner.py      the one run loop, fed by commands (pause, step, live settings, stop)
    transports.py  where a background run trains: a thread, or a child process
    views.py       the pictures and metrics of a background run, on threads of their own
    trainer.py     Trainer: headless fit, or start / pause / step / stop with live pictures
"""

from .engine import Engine, initialise
from .runner import FINISHED, Runner
from .trainer import TRANSPORTS, Trainer, finite_or_none, resolve_device
from .transports import from_wire, to_wire, warm_up

__all__ = ["Engine", "FINISHED", "Runner", "TRANSPORTS", "Trainer", "finite_or_none", "from_wire", "initialise",
           "resolve_device", "to_wire", "warm_up"]
