"""What drawing and scoring a run may cost, and what a combination will cost before it trains.

- `Limit` / `limited(model, limit)`: work on a model that stops at a deadline or once its run
  is closed. Every module of the model checks the limit before its forward, so a sampler of a
  thousand network passes, or a density of 784 sequential ones, ends within one pass of the
  deadline, whatever the family (it raises OutOfTime).
- `Cadence`: when the next metric evaluation is due, and on how many samples. Evaluations start
  every METRICS_EVERY seconds and each may take METRICS_SHARE of that; after one that overran
  the next draws fewer samples, after one well under its share more (up to the nominal count),
  so the cadence holds whatever a sample costs. Only when even the smallest count overruns
  does the next wait, (1 / share - 1) times that evaluation's length, so that metrics never take
  more than their share of the machine.
- `estimate(model_name, dataset_name, settings)`: the seconds one training step, one picture and
  one metric evaluation take here, from the work they do on a probe (floating-point operations
  and operator calls, counted, then priced at this machine's measured rates), and a sentence for
  the page when a combination is too slow to watch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..rng import manual_seed

METRICS_EVERY = 1.0  # seconds between the starts of two metric evaluations: the cadence the page states
METRICS_SHARE = 0.2  # the fraction of that an evaluation may take; the sample count shrinks to fit it
METRICS_SECONDS = 10.0  # an evaluation still running after this long is stopped, and the next one smaller
MIN_METRIC_SAMPLES = 8  # the fewest samples an evaluation draws (the record's "n" says how many it drew)
PICTURE_SECONDS = 10.0  # a picture still being drawn after this long is stopped, with a message

SLOW_STEP = 1.0  # a training step slower than this (seconds) is too slow to watch
SLOW_PICTURE = 2.0  # and so is a picture slower than this


class OutOfTime(RuntimeError):
    """Work on a model stopped at its deadline, or because its run was closed."""


class Limit:
    """A deadline `seconds` from now (None: none) and a `cancelled` event (None: never): check()
    raises OutOfTime once either is reached. calls counts the checks (module calls) so far."""

    def __init__(self, seconds: float | None = None, cancelled: threading.Event | None = None,
                 what: str = "this work", clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.cancelled, self.what, self.clock = seconds, cancelled, what, clock
        self.deadline = None if seconds is None else clock() + seconds
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        if self.cancelled is not None and self.cancelled.is_set():
            raise OutOfTime(f"{self.what} was stopped: its run was closed")
        if self.deadline is not None and self.clock() > self.deadline:
            raise OutOfTime(f"{self.what} took more than {self.seconds:g} s and was stopped")


@contextlib.contextmanager
def limited(model: torch.nn.Module, limit: Limit):
    """Hold every module of `model` to `limit` for the block: each checks it before its forward."""
    limit.check()
    handles = [m.register_forward_pre_hook(lambda module, args: limit.check()) for m in model.modules()]
    try:
        yield limit
    finally:
        for h in handles:
            h.remove()


class Cadence:
    """When the next metric evaluation is due (`due`, on `clock`'s scale) and on how many samples (`n`).

    The counts are nominal, nominal/2, nominal/4, ... down to `smallest`, so the noise floors a chart
    compares with are needed at a few sizes only. After an evaluation of n samples that took d
    seconds, the next takes the largest count m whose predicted cost fits the share: d (m/n) below n
    (cost at least linear in the samples: drawing them, so a cut is deep enough) and d (m/n)^1.5
    above it (between drawing, linear, and MMD, quadratic: a quadratic cost that overshoots is cut
    back at the next evaluation). The first evaluation draws the smallest count, so that the first
    point comes soon.
    """

    def __init__(self, nominal: int, every: float = METRICS_EVERY, share: float = METRICS_SHARE,
                 smallest: int = MIN_METRIC_SAMPLES):
        if not (every > 0 and 0 < share <= 1):
            raise ValueError(f"a cadence needs every > 0 and 0 < share <= 1, got every={every}, share={share}")
        nominal = max(1, int(nominal))
        self.levels = [nominal]  # largest first
        while self.levels[-1] // 2 >= max(1, min(int(smallest), nominal)):
            self.levels.append(self.levels[-1] // 2)
        self.every, self.share = float(every), float(share)
        self.level = len(self.levels) - 1
        self.due = -math.inf  # the first one at once

    @property
    def n(self) -> int:
        return self.levels[self.level]

    @property
    def budget(self) -> float:
        return self.every * self.share

    def done(self, started: float, finished: float) -> None:
        """An evaluation of n samples ran from `started` to `finished` (stopped or not): the next's
        time and count."""
        d, n = max(finished - started, 1e-9), self.n
        fits = [i for i, m in enumerate(self.levels) if d * (m / n) ** (1.5 if m > n else 1) <= self.budget]
        self.level = fits[0] if fits else len(self.levels) - 1
        self.due = started + self.every
        if not fits:  # even the smallest count overruns: keep the share by resting
            self.due = max(self.due, finished + d * (1 / self.share - 1))

    def failed(self, started: float) -> None:
        """An evaluation that started at `started` failed (it says so in its record): the next one
        comes at the cadence, on as many samples."""
        self.due = started + self.every


# ---- estimates before Play -------------------------------------------------------------------

PROBE_CAP_SECONDS = 3.0  # a probe stops counting past this much priced work: "more than" is enough to say


class _Counter(TorchDispatchMode):
    """Counts operator calls; stops (OutOfTime) once the priced work passes `cap` seconds."""

    def __init__(self, flops: FlopCounterMode, rates: tuple[float, float], cap: float):
        super().__init__()
        self.ops, self.flops, self.rates, self.cap = 0, flops, rates, cap

    def seconds(self) -> float:
        flop_rate, op_seconds = self.rates
        return self.flops.get_total_flops() / flop_rate + self.ops * op_seconds

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if self.seconds() > self.cap:  # before every operator: one matmul can be seconds of work
            raise OutOfTime("the probe passed its cap")
        return func(*args, **(kwargs or {}))


@functools.lru_cache(maxsize=1)
def machine_rates() -> tuple[float, float]:
    """(floating-point operations per second of a float32 matmul, seconds per small operator call)
    on this machine, in this process: measured once, in a few tens of milliseconds."""
    a = torch.randn(256, 256)
    a @ a
    t0 = time.perf_counter()
    for _ in range(20):
        a @ a
    flop_rate = 20 * 2 * 256**3 / max(time.perf_counter() - t0, 1e-9)
    x = torch.zeros(8)
    t0 = time.perf_counter()
    for _ in range(2000):
        x = x + 1.0
    return flop_rate, max(time.perf_counter() - t0, 1e-9) / 2000


def priced(work: Callable[[], object], cap: float = PROBE_CAP_SECONDS) -> tuple[float, bool]:
    """(seconds, complete): the work `work()` does (operator calls and floating-point operations)
    priced at machine_rates(); past `cap` seconds of it the count stops and complete is False."""
    flops = FlopCounterMode(display=False)
    counter = _Counter(flops, machine_rates(), cap)
    complete = True
    with flops:
        try:
            with counter:
                work()
        except OutOfTime:
            complete = False
    return counter.seconds(), complete


def _about(seconds: float, complete: bool) -> str:
    amount = f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return amount if complete else f"more than {amount}"


def estimate(model_name: str, dataset_name: str, settings: dict | None = None) -> dict:
    """What one training step, one picture and one metric evaluation of `model_name` on
    `dataset_name` with `settings` (model and training knobs) cost on this machine:

        {"fits": bool,               False: the model is not built for this data (see message)
         "step": s, "picture": s,    seconds (at least that much where "complete" says False)
         "metrics": s,               one evaluation on the fewest samples the cadence draws
         "metric_samples": n,        the samples an evaluation draws within its share (nominal at most)
         "metrics_every": s,         how often metrics come: METRICS_EVERY unless even n = smallest overruns
         "complete": {"step": bool, "picture": bool, "metrics": bool},
         "slow": bool,               a step over SLOW_STEP or a picture over SLOW_PICTURE seconds
         "message": str}             a plain sentence for the page when slow or not fitting, else ""

    The work is counted on a probe (the model as built, one batch of the run's size, the view's
    points) and priced at this machine's rates; counts past a few seconds' worth stop early, so an
    estimate takes at most about ten seconds, whatever the combination.
    """
    from .. import registry
    from ..errors import ConfigError
    from .trainer import Trainer

    settings = dict(settings or {})
    dataset = registry.load_dataset(dataset_name)
    kind = registry.data_kind(dataset.shape)
    try:
        model_cfg = registry.model_config(model_name, {k: v for k, v in settings.items()
                                                       if k in _fields(registry.model_config(model_name))})
        train = {k: v for k, v in settings.items() if k in _fields(registry.train_config(model_name, {}, kind))}
        cfg = registry.train_config(model_name, {**train, "steps": 2}, kind)
        cfg.n_data = max(min(cfg.n_data, 2000), cfg.batch_size)  # a probe's data: enough for one batch
        with torch.random.fork_rng(devices=[]):
            manual_seed(cfg.seed)
            model = registry.build_from_config(model_name, dataset.shape, model_cfg)
            trainer = Trainer(model, dataset, cfg, device="cpu", transport="thread", n_reference=500)
    except ConfigError as e:
        return {"fits": False, "step": None, "picture": None, "metrics": None, "metric_samples": 0,
                "metrics_every": None, "complete": {}, "slow": True, "message": str(e)}
    with torch.random.fork_rng(devices=[]):
        manual_seed(cfg.seed)
        priced(trainer.step)  # the first step also initialises (ActNorm, optimiser state): not typical
        step, step_done = priced(trainer.step)
        picture, picture_done = priced(lambda: trainer.snapshot(model, with_metrics=False))
        cadence = Cadence(trainer.scoring.n_eval)
        small = cadence.n
        metrics, metrics_done = priced(lambda: trainer.evaluate(n=small, model=model))
    cadence.done(0.0, metrics)  # started at 0: due is the time between two evaluations
    every = cadence.due
    slow = step > SLOW_STEP or picture > SLOW_PICTURE
    message = ""
    if slow:
        parts = []
        if step > SLOW_STEP:
            parts.append(f"one training step takes about {_about(step, step_done)}")
        if picture > SLOW_PICTURE:
            parts.append(f"one picture about {_about(picture, picture_done)}")
        message = (f"{model_name} on {dataset_name} is too slow to watch here: {' and '.join(parts)} "
                   f"(an estimate for this machine). Try a smaller model (fewer layers or hidden units), "
                   f"a smaller batch, or another model for this data "
                   f"({', '.join([n for n in registry.models_for(kind) if n != model_name][:6])}, ...).")
    return {"fits": True, "step": step, "picture": picture, "metrics": metrics, "metric_samples": cadence.n,
            "metrics_every": every, "complete": {"step": step_done, "picture": picture_done, "metrics": metrics_done},
            "slow": slow, "message": message}


def _fields(cfg) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cfg)}
