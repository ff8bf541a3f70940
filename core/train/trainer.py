"""One trainer for every family: headless, or in the background with live pictures.

    trainer = Trainer(model, dataset, cfg, device="auto", transport="thread")
    trainer.fit(steps)                 headless, in this thread
    trainer.start(on_snapshot, ...)    in the background, with pictures and metrics
    trainer.pause() / resume() / step_once(n, phase) / set_live(name, value) / stop()
    trainer.phases                     the model's phase names (["D", "G"] for a GAN)

The trainer knows a model only through its protocol (core.model). Training is
the Engine (one step, divergence) driven by the Runner (the one loop, fed by
commands), either here (`fit`) or behind a transport: a thread of this
process, a child process (`transport="process"`, as the playground trains,
so that drawing never competes with training for the interpreter), or a
series of short calls (`transport="chunked"`, where a GPU is lent one call at
a time: `chunk_call` is core.train.chunks.train_chunk, or that function made
to run on the lent GPU, and `chunk_seconds` a call's length). Either way the
run reports its weights a few times a second; they are loaded into a spare
copy of the model, which the views (core.train.views) draw and score. The
process that draws never builds an engine of its own.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import math
import pickle
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from ..config import TrainConfig, describe, validate
from ..data.base import Dataset
from ..errors import ConfigError
from ..model import GenerativeModel, to_numpy
from ..rng import manual_seed
from .engine import Engine, check_data, live_train_value, training_data_for
from .runner import FINISHED, Runner
from .scoring import Scoring, traced
from .spares import Spares
from .transports import CHUNK_SECONDS, PARK_AFTER, ChunkedTransport, ProcessTransport, ThreadTransport
from .views import Views

TRANSPORTS = ("thread", "process", "chunked")
_LIVE: "weakref.WeakSet[Trainer]" = weakref.WeakSet()
# stop(wait=False) leaves the waiting for the run's end to these threads, kept between stops: a
# thread started per stop would wait for the interpreter's lock inside the request that stops it.
_ENDING = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stop")


@atexit.register
def _stop_live_trainers() -> None:
    # A daemon thread still inside torch when the interpreter exits aborts the process.
    for trainer in list(_LIVE):
        trainer.stop(timeout=30)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no GPU is available; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not allowed; choose auto, cpu or cuda")
    return torch.device(device)


class Trainer:
    """Trains `model` on `dataset` with the settings in `cfg`.

    history: one record per `log_every` steps (mean loss terms since the last);
    metric_history: one record per metrics evaluation.
    """

    # After a picture that took d seconds the next waits PICTURE_REST x d: a thread shares the
    # interpreter with training, a child process or the GPU's worker process that runs the chunks
    # leaves it alone (rest for the page's sake only).
    PICTURE_RESTS = {"thread": 1.0, "process": 0.25, "chunked": 0.25}
    # A run paused this long gives its training process back (core.train.transports.ProcessTransport
    # parks it) and the next Resume or Step starts one from where it stopped; None keeps it.
    PARK_AFTER: float | None = PARK_AFTER

    def __init__(self, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, device: str = "auto",
                 transport: str = "thread", n_reference: int = 2000, n_eval: int = 1000,
                 chunk_call: Callable | None = None, chunk_seconds: float = CHUNK_SECONDS):
        validate(cfg)
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport {transport!r} is not allowed; choose one of: {', '.join(TRANSPORTS)}")
        if chunk_call is not None and transport != "chunked":
            raise ConfigError(f"chunk_call is for transport 'chunked', not {transport!r}")
        if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds) and chunk_seconds > 0):
            raise ConfigError(f"chunk_seconds must be a positive number of seconds, got {chunk_seconds!r}")
        self.model, self.dataset, self.cfg, self.transport = model, dataset, cfg, transport
        self.chunk_call, self.chunk_seconds = chunk_call, float(chunk_seconds)
        self.PICTURE_REST = self.PICTURE_RESTS[transport]
        self.train_device = resolve_device(device)
        manual_seed(cfg.seed)
        self.training_data = training_data_for(model, dataset, cfg.n_data, cfg.seed)
        check_data(cfg, self.training_data, model)
        self.data = self.training_data.x  # (N, *shape), on the CPU: what the views draw
        self.scoring = Scoring(dataset, n_reference, n_eval, cfg.seed,
                               image_samples=getattr(model, "metric_samples", None) or n_eval)
        # Pictures are drawn from copies of the untrained model, which take the live settings. A
        # model trained elsewhere (a child process, a chunk) is never trained here: it is that copy.
        self.pictures = Spares(copy.deepcopy(model) if transport == "thread" else model)
        self._template = self.pictures.template
        self.phases: list[str] = [p.name for p in self._template.phases(cfg.lr)]  # what step_once may name
        # Headless training and the thread transport train here; a child process or a chunk has its own.
        self._engine = Engine(model, self.training_data, copy.copy(cfg), self.train_device) \
            if transport == "thread" else None
        self.step_count, self.elapsed = 0, 0.0
        self.history: list[dict] = []
        self.metric_history: list[dict] = []
        self.status, self.message = "ready", ""
        self.view_options: dict = {}  # the views' controls (a time t for a field)
        self.latest_metrics: dict = {}
        self.reported_lrs: dict[str, float] = {}
        self._transport = None
        self._views: Views | None = None

    # ---- headless ---------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            where = "in a child process" if self.transport == "process" else "in chunks, each with an engine of its own"
            raise RuntimeError(f"this trainer trains {where}; it has no engine here")
        return self._engine

    @property
    def optimizers(self) -> dict:
        return self.engine.optimizers

    def step(self) -> dict[str, torch.Tensor]:
        """One training step, here. Returns the loss terms (tensors on the training device)."""
        terms = self.engine.step()
        self.step_count = self.engine.step_count
        return terms

    def fit(self, steps: int | None = None, log_every: int = 50, metrics_every: int = 0,
            on_log: Callable[[dict], None] | None = None) -> list[dict]:
        """Train in this thread. Returns the history; raises TrainingDiverged on a non-finite loss."""
        steps = self.cfg.steps if steps is None else steps
        target = self.engine.step_count + steps

        def on_record(rec: dict) -> None:
            self.step_count, self.elapsed = rec["step"], runner.elapsed
            if metrics_every and (rec["step"] % metrics_every == 0 or rec["step"] == target):
                self.metric_history.append({"step": rec["step"], "time": rec["time"], **self.evaluate()})
            if on_log:
                on_log(rec)

        runner = Runner(self.engine, target, log_every, on_record, history=self.history)
        runner.elapsed = self.elapsed
        self.status = "running"
        try:
            runner.run(raise_divergence=True)
        finally:
            self.step_count, self.elapsed = self.engine.step_count, runner.elapsed
            self.status, self.message = runner.status, runner.message
        return self.history

    def final_model(self) -> GenerativeModel:
        """The trained model as samples should come from it: with its weight average, if it keeps one."""
        return self.engine.averaged_model()

    # ---- live settings --------------------------------------------------------------
    def set_lr(self, lr: float, phase: str | None = None) -> None:
        self.engine.set_lr(lr, phase)

    def set_live(self, name: str, value) -> None:
        """Apply a knob marked live (core.train.engine.Engine.set_live says how), to the run and to
        the config the pictures are drawn with."""
        train_live = {k for k, m in describe(self.cfg).items() if m.get("live")}
        if name not in train_live and not hasattr(self._template.config, name):
            raise ConfigError(f"{name!r} is not a setting of {type(self.model).__name__} or of training")
        if name in train_live:  # refused here, in words, before the run (a child, a chunk) gets it
            value = live_train_value(self.cfg, name, value)
        if self._transport is not None:
            self._transport.send("set", name, value)
        elif self._engine is not None:
            self._engine.set_live(name, value)
        if name in train_live:
            setattr(self.cfg, name, value)
        else:
            setattr(self._template.config, name, value)
            if self._engine is None:  # a child's model is this side's copy (and is built from it at start)
                setattr(self.model.config, name, value)

    def learning_rates(self) -> dict[str, float]:
        """Each phase's learning rate: as the run last reported it, else as configured."""
        if self.reported_lrs:
            return dict(self.reported_lrs)
        if self._engine is not None:
            return self._engine.learning_rates()
        return {p.name: p.lr for p in self._template.phases(self.cfg.lr) if p.is_gradient}

    # ---- background -----------------------------------------------------------------
    def start(self, on_snapshot: Callable[[dict], None] | None = None, snapshot_interval: float = 0.2,
              metrics_interval: float = 1.0, log_every: int = 10, paused: bool = False,
              watched: Callable[[], bool] | None = None, context: contextvars.Context | None = None) -> None:
        """Train in the background until cfg.steps, stop() or divergence.

        Every `snapshot_interval` seconds the run reports its weights; the views
        draw them and call on_snapshot(snapshot) from a worker thread. Each
        snapshot carries the newest metrics, evaluated at most every
        `metrics_interval` seconds on a thread of their own. watched() False: nobody looks at
        the pictures now, so none are drawn and no metrics evaluated until it is True again
        (the final picture and metrics are drawn regardless). context: where every chunk's call
        runs (transport "chunked"; default: a copy of the caller's, which on a ZeroGPU Space holds
        the request whose quota the GPU is lent to).
        """
        if self._transport is not None:
            raise RuntimeError("a trainer trains in the background once, from where it is; make a new one")
        self.status = "paused" if paused else "running"
        self._views = Views(self, on_snapshot, metrics_interval, watched) if on_snapshot else None
        if self.transport == "thread":
            self._transport = ThreadTransport(self.engine, self.cfg.steps, log_every, snapshot_interval, paused)
            self._transport.runner.elapsed = self.elapsed
        elif self.transport == "process":
            payload = pickle.dumps((self.model, self.training_data, self.cfg))
            self._transport = ProcessTransport(payload, self.train_device.type, self.cfg.steps, log_every,
                                               snapshot_interval, paused, park_after=self.PARK_AFTER)
        else:
            payload = pickle.dumps((self.model, self.training_data, self.cfg))
            self._transport = ChunkedTransport(payload, self.train_device.type, self.cfg.steps, log_every,
                                               snapshot_interval, paused, self.chunk_call, self.chunk_seconds,
                                               context if context is not None else contextvars.copy_context())
        _LIVE.add(self)
        self._transport.start(self._on_report)

    def _on_report(self, msg: dict) -> None:
        """A report of the run (from a thread of this process): keep its records, draw its weights."""
        if msg.get("lost"):
            self.lost = True
            if self.status not in FINISHED:
                self.status = "error"
                code = msg["exitcode"]
                how = f"was killed (signal {-code})" if isinstance(code, int) and code < 0 else \
                    f"ended unexpectedly (exit code {code})"
                self.message = (f"Training stopped at step {self.step_count}: the training process {how}. "
                                f"Press Play to start again.")
        else:
            self.step_count, self.elapsed = msg["step"], msg["elapsed"]
            self.history.extend(msg["history"])
            self.reported_lrs = msg["lrs"] or self.reported_lrs
            if msg["status"] in FINISHED:  # pause and resume are this side's to say
                self.status, self.message = msg["status"], msg["message"]
        if self._views is None:
            return
        draw = not (msg["final"] and self._stopping and not self._last_picture)
        if "state" in msg:
            state = (msg["state"], msg.get("view_state") or {})
            self._views.request(state, msg["step"], msg["elapsed"], final=msg["final"],
                                with_metrics=not self._stopping, draw=draw)
        elif msg["final"]:  # nothing new to draw: the last picture is of the last weights seen
            self._views.request(self.latest_model or self._template, self.step_count, self.elapsed,
                                final=True, with_metrics=False, draw=draw)
        if msg["final"]:
            self._views.close()

    _stopping = False
    _last_picture = True  # stop(last_picture=False): the final report of a stopped run is not drawn
    lost = False  # the training process ended without a last word (killed)

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.send("pause")
        if self.status == "running":
            self.status = "paused"

    def resume(self) -> None:
        if self._transport is not None:
            self._transport.send("resume")
        if self.status == "paused":
            self.status = "running"

    def step_once(self, n: int = 1, phase: str | None = None) -> None:
        """While paused: take n more steps, then stay paused. phase: n steps of that phase alone
        (one of self.phases; core.train.engine.Engine.step says how such a step counts)."""
        if phase is not None:
            self.check_phase(phase)
        if self._transport is not None:
            self._transport.send(*(("step", int(n)) if phase is None else ("step", int(n), phase)))

    def check_phase(self, phase) -> None:
        """ConfigError, listing the model's phases, unless `phase` names one of them."""
        if phase not in self.phases:
            raise ConfigError(f"{phase!r} is not a phase of {type(self.model).__name__}; its phases are: "
                              f"{', '.join(self.phases)}")

    def stop(self, timeout: float = 5.0, wait_views: bool = True, wait: bool = True,
             last_picture: bool = True) -> None:
        """End training (up to `timeout` for the process or thread to end); with wait_views, also
        wait for the picture and metrics threads, which otherwise finish in the background.
        wait False: return at once (a Reset answers without waiting for the run's last word); the
        waiting, and ending a process that does not stop within `timeout`, go on in a thread.
        last_picture False: the final snapshot still comes, with the last weights' step, but
        nothing is drawn for it (a run reset or closed, which nobody will look at again)."""
        self._stopping = True
        self._last_picture = last_picture
        if self._transport is not None:
            self._transport.send("stop")
            if wait:
                self._end(timeout)
            else:
                try:
                    _ENDING.submit(self._end, timeout)
                except RuntimeError:  # the interpreter is exiting: wait here
                    self._end(timeout)
        if self._views and wait_views:
            self._views.join(timeout)
        if self.status in ("running", "paused", "ready"):
            self.status = "stopped"

    def _end(self, timeout: float) -> None:
        self._transport.join(timeout)
        if self._transport.alive:  # a step that does not end (a huge batch): end the process
            self._transport.kill()

    def wait_views(self, timeout: float) -> bool:
        """Wait until the last picture and the last metrics of a finished run are in."""
        return self._views.join(timeout) if self._views else True

    @property
    def running(self) -> bool:
        return self._transport is not None and self._transport.alive

    # ---- the models pictures are drawn from (core.train.spares) ----------------------------
    def initial_model(self) -> GenerativeModel:
        """The model as it starts training (after its data-dependent start), to draw step 0."""
        return self.pictures.initial(self.training_data, self.cfg)

    def newest(self):
        """(model, (step, elapsed)) the views last drew, held for the block (Spares.newest)."""
        return self.pictures.newest()

    @property
    def latest_model(self) -> GenerativeModel | None:
        return self.pictures.latest_model

    @property
    def latest_at(self) -> tuple[int, float]:
        return self.pictures.latest_at

    def _publish(self, model: GenerativeModel, at: tuple[int, float]) -> None:
        self.pictures.publish(model, at)

    def _materialize(self, state) -> GenerativeModel:
        return self.pictures.materialize(state)

    # ---- evaluation and snapshots (core.train.scoring) -----------------------------------------
    def evaluate(self, n: int | None = None, with_kl: bool | None = None, model: GenerativeModel | None = None) -> dict:
        """Metrics against the data; deterministic and leaves the training RNG untouched."""
        return self.scoring.evaluate(model or self.model, n, with_kl)

    def floors(self, n: int | None = None, compute: bool = True) -> dict:
        """The sample metrics' noise floors at the sizes evaluate(n) compares (Scoring.floors)."""
        return self.scoring.floors(n, compute)

    def snapshot(self, model: GenerativeModel | None = None, n: int = 500, grid_resolution: int = 60,
                 with_metrics: bool = True, step: int | None = None, elapsed: float | None = None) -> dict:
        """Everything a live view draws at this moment: the model's traces with the view's options,
        the data, the run's step, time, status and newest loss record, and metrics if asked."""
        model = model or self.model
        snap = {
            "step": self.step_count if step is None else step,
            "time": self.elapsed if elapsed is None else elapsed,
            "status": self.status,
            "message": self.message,
            "terms": dict(self.history[-1]) if self.history else {},
            "traces": traced(model, self.dataset, self.data[:n], self.view_options, self.cfg.seed + 3, grid_resolution),
            "data": to_numpy(self.data[:n]),
        }
        if with_metrics:
            snap["metrics"] = self.evaluate(model=model)
        return snap


def finite_or_none(v):
    """JSON-safe float: NaN/inf become None."""
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
