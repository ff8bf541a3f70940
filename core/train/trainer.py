"""One trainer for every family: headless, or in the background with live pictures.

    trainer = Trainer(model, dataset, cfg, device="auto", transport="thread")
    trainer.fit(steps)                 headless, in this thread
    trainer.start(on_snapshot, ...)    in the background, with pictures and metrics
    trainer.pause() / resume() / step_once(n) / set_live(name, value) / stop()

The trainer knows a model only through its protocol (core.model). Training is
the Engine (one step, divergence) driven by the Runner (the one loop, fed by
commands), either here (`fit`) or behind a transport: a thread of this
process, or a child process (`transport="process"`, as the playground trains,
so that drawing never competes with training for the interpreter). Either
way the run reports its weights a few times a second; they are loaded into a
spare copy of the model, which the views (core.train.views) draw and score.
The process that draws never builds an engine of its own.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import dataclasses
import inspect
import math
import pickle
import threading
import weakref
from typing import Callable

import numpy as np
import torch

from .. import metrics as M
from ..config import TrainConfig, describe, validate
from ..data.base import Dataset
from ..errors import ConfigError
from ..model import GenerativeModel, to_numpy
from .engine import Engine, check_data, initialise
from .runner import FINISHED, Runner
from .transports import ProcessTransport, ThreadTransport, from_wire
from .views import Views

TRANSPORTS = ("thread", "process")
_LIVE: "weakref.WeakSet[Trainer]" = weakref.WeakSet()


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
    # interpreter with training, a child process leaves it alone (rest for the page's sake only).
    PICTURE_RESTS = {"thread": 1.0, "process": 0.25}
    SPARES = 4  # models to load reported weights into: the newest, one held by metrics, one by the page, one to draw

    def __init__(self, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, device: str = "auto",
                 transport: str = "thread", n_reference: int = 2000, n_eval: int = 1000):
        validate(cfg)
        if transport not in TRANSPORTS:
            raise ConfigError(f"transport {transport!r} is not allowed; choose one of: {', '.join(TRANSPORTS)}")
        self.model, self.dataset, self.cfg, self.transport = model, dataset, cfg, transport
        self.PICTURE_REST = self.PICTURE_RESTS[transport]
        self.train_device = resolve_device(device)
        torch.manual_seed(cfg.seed)
        self.training_data = dataset.training_data(cfg.n_data, cfg.seed, model.batch_fields)
        check_data(cfg, self.training_data, model)
        self.data = self.training_data.x  # (N, *shape), on the CPU: what the views draw
        self.reference = dataset.sample(n_reference, torch.Generator().manual_seed(cfg.seed + 1))
        self.n_eval = n_eval
        # A copy of the untrained model: spares for pictures are made from it, and it takes the
        # live settings, so every picture is drawn with the config of the moment.
        self._template = copy.deepcopy(model)
        # Headless training and the thread transport train here; the child process has its own.
        self._engine = Engine(model, self.training_data, copy.copy(cfg), self.train_device) \
            if transport == "thread" else None
        self.step_count, self.elapsed = 0, 0.0
        self.history: list[dict] = []
        self.metric_history: list[dict] = []
        self.status, self.message = "ready", ""
        self.view_options: dict = {}  # the views' controls (a time t for a field)
        self.latest_model: GenerativeModel | None = None  # the newest picture's model: read it via newest()
        self.latest_at: tuple[int, float] = (0, 0.0)
        self.latest_metrics: dict = {}
        self.reported_lrs: dict[str, float] = {}
        self._transport = None
        self._views: Views | None = None
        self._latest_lock = threading.Lock()
        self._leases: collections.Counter = collections.Counter()  # id(model) -> holders
        self._spares: list[GenerativeModel] = []
        self._ref_terms: dict | None = None
        self._floors: dict[int, dict] = {}

    # ---- headless ---------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("this trainer trains in a child process; it has no engine here")
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
        if self._transport is not None:
            self._transport.send("set", name, value)
        elif self._engine is not None:
            self._engine.set_live(name, value)
        if name in train_live:
            setattr(self.cfg, name, float(value))
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
              metrics_interval: float = 1.0, log_every: int = 10, paused: bool = False) -> None:
        """Train in the background until cfg.steps, stop() or divergence.

        Every `snapshot_interval` seconds the run reports its weights; the views
        draw them and call on_snapshot(snapshot) from a worker thread. Each
        snapshot carries the newest metrics, evaluated at most every
        `metrics_interval` seconds on a thread of their own.
        """
        if self._transport is not None:
            raise RuntimeError("a trainer trains in the background once, from where it is; make a new one")
        self.status = "paused" if paused else "running"
        self._views = Views(self, on_snapshot, metrics_interval) if on_snapshot else None
        if self.transport == "thread":
            self._transport = ThreadTransport(self.engine, self.cfg.steps, log_every, snapshot_interval, paused)
            self._transport.runner.elapsed = self.elapsed
        else:
            payload = pickle.dumps((self.model, self.training_data, self.cfg))
            self._transport = ProcessTransport(payload, self.train_device.type, self.cfg.steps, log_every,
                                               snapshot_interval, paused)
        _LIVE.add(self)
        self._transport.start(self._on_report)

    def _on_report(self, msg: dict) -> None:
        """A report of the run (from a thread of this process): keep its records, draw its weights."""
        if msg.get("lost"):
            if self.status not in FINISHED:
                self.status = "error"
                self.message = (f"Training stopped at step {self.step_count}: the training process ended "
                                f"unexpectedly (exit code {msg['exitcode']}). Press Reset to start again.")
        else:
            self.step_count, self.elapsed = msg["step"], msg["elapsed"]
            self.history.extend(msg["history"])
            self.reported_lrs = msg["lrs"] or self.reported_lrs
            if msg["status"] in FINISHED:  # pause and resume are this side's to say
                self.status, self.message = msg["status"], msg["message"]
        if self._views is None:
            return
        if "state" in msg:
            state = (msg["state"], msg.get("view_state") or {})
            self._views.request(state, msg["step"], msg["elapsed"], final=msg["final"],
                                with_metrics=not self._stopping)
        elif msg["final"]:  # nothing new to draw: the last picture is of the last weights seen
            self._views.request(self.latest_model or self._template, self.step_count, self.elapsed,
                                final=True, with_metrics=False)
        if msg["final"]:
            self._views.close()

    _stopping = False

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

    def step_once(self, n: int = 1) -> None:
        """While paused: take n more steps, then stay paused."""
        if self._transport is not None:
            self._transport.send("step", int(n))

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        if self._transport is not None:
            self._transport.send("stop")
            self._transport.join(timeout)
            if self._transport.alive:  # a step that does not end (a huge batch): end the process
                self._transport.kill()
        if self._views:
            self._views.join(timeout)
        if self.status in ("running", "paused", "ready"):
            self.status = "stopped"

    def wait_views(self, timeout: float) -> bool:
        """Wait until the last picture and the last metrics of a finished run are in."""
        return self._views.join(timeout) if self._views else True

    @property
    def running(self) -> bool:
        return self._transport is not None and self._transport.alive

    # ---- the models pictures are drawn from ----------------------------------------------
    def initial_model(self) -> GenerativeModel:
        """The model as it starts training (after its data-dependent start), to draw step 0."""
        model = copy.deepcopy(self._template)
        initialise(model, self.training_data, self.cfg, torch.device("cpu"), reseed=False)
        return model

    @contextlib.contextmanager
    def newest(self):
        """(model, (step, elapsed)) the live views last drew, held for the block: nothing
        loads other weights into that model while you read it. model is None before the
        first picture."""
        with self._latest_lock:
            model, at = self.latest_model, self.latest_at
            if model is not None:
                self._leases[id(model)] += 1
        try:
            yield model, at
        finally:
            if model is not None:
                with self._latest_lock:
                    self._leases[id(model)] -= 1
                    if not self._leases[id(model)]:
                        del self._leases[id(model)]

    def _publish(self, model: GenerativeModel, at: tuple[int, float]) -> None:
        with self._latest_lock:
            self.latest_model, self.latest_at = model, at

    def _materialize(self, state) -> GenerativeModel:
        """A model with the reported weights to draw from: a spare that nobody holds (see newest)
        and that is not the newest picture's, else a fresh copy of the template. Copying a model
        takes about as long as drawing a small one."""
        if isinstance(state, GenerativeModel):
            return state
        weights, view_state = state if isinstance(state, tuple) else (state, {})
        with self._latest_lock:
            free = [m for m in self._spares if m is not self.latest_model and not self._leases[id(m)]]
        if free:
            model = free[0]
            for f in dataclasses.fields(model.config):  # the live config (beta, the sampler, ...)
                setattr(model.config, f.name, copy.deepcopy(getattr(self._template.config, f.name)))
        else:
            model = copy.deepcopy(self._template)
            if len(self._spares) < self.SPARES:
                self._spares.append(model)
        model.load_state_dict(from_wire(weights))
        if view_state:
            model.load_view_state(from_wire(view_state))
        return model

    # ---- evaluation and snapshots ---------------------------------------------------------
    def evaluate(self, n: int | None = None, with_kl: bool | None = None, model: GenerativeModel | None = None) -> dict:
        """Metrics against the data; deterministic and leaves the training RNG untouched."""
        model = model or self.model
        if with_kl is None:
            with_kl = model.live_kl
        if self._ref_terms is None:
            self._ref_terms = M.reference_terms(self.reference)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 2)
            out = M.evaluate(model, self.dataset, self.reference, n=n or self.n_eval, with_kl=with_kl,
                             ref_terms=self._ref_terms)
        return out

    def floors(self, n: int | None = None, compute: bool = True) -> dict:
        """Each sample metric between the reference and n independent true samples (n_eval by
        default): its noise floor, what a perfect model scores at the sizes evaluate(n) compares.
        Computed once per n ({} if not yet, with compute False)."""
        n = n or self.n_eval
        if n not in self._floors:
            if not compute:
                return {}
            if self._ref_terms is None:
                self._ref_terms = M.reference_terms(self.reference)
            self._floors[n] = M.noise_floor(self.dataset, self.reference, n, self.cfg.seed + 4,
                                            ref_terms=self._ref_terms)
        return self._floors[n]

    def _trace_options(self, model: GenerativeModel) -> dict:
        params = inspect.signature(model.traces).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return dict(self.view_options)
        return {k: v for k, v in self.view_options.items() if k in params}

    def snapshot(self, model: GenerativeModel | None = None, n: int = 500, grid_resolution: int = 60,
                 with_metrics: bool = True, step: int | None = None, elapsed: float | None = None) -> dict:
        """Everything a live view draws at this moment."""
        model = model or self.model
        x = self.data[:n]
        grid = None
        if tuple(self.dataset.shape) == (2,) and self.dataset.bounds is not None:
            from ..data.toy2d import plane_grid

            grid = plane_grid(self.dataset.bounds, grid_resolution)[0].to(model.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 3)
            was_training = model.training
            model.eval()
            try:
                traces = model.traces(x.to(model.device), grid, **self._trace_options(model))
            finally:
                model.train(was_training)
        snap = {
            "step": self.step_count if step is None else step,
            "time": self.elapsed if elapsed is None else elapsed,
            "status": self.status,
            "message": self.message,
            "terms": dict(self.history[-1]) if self.history else {},
            "traces": traces,
            "data": to_numpy(x),
        }
        if with_metrics:
            snap["metrics"] = self.evaluate(model=model)
        return snap


def finite_or_none(v):
    """JSON-safe float: NaN/inf become None."""
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
