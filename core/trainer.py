"""One trainer for every family.

The trainer knows a model only through its protocol (core.model): it asks the
model for its optimisation phases and runs them in order each step, so the
alternating GAN update (D n_critic times, then G) lives here, once.

It runs headless (`fit`) or in a background thread (`start`) with pause,
resume, single step and stop, and streams snapshots (step, wall time, loss
terms, metrics, samples, the family's traces) at a cadence the caller sets.
Pictures are computed from a copy of the weights on a worker thread, and a
stale request is replaced by a newer one, so watching never stalls training;
metrics (quadratic in the sample count) are computed on a thread of their own
so that pictures never wait for them. core.process runs the same loop in a
child process, for when watching must not share the interpreter with training.

A non-finite loss stops training with a message naming the step and what to
try; the last weights that gave a finite loss are restored.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import math
import os
import sys
import threading
import time
import weakref
from typing import Callable

import numpy as np
import torch

from . import metrics as M
from .config import TrainConfig, validate
from .data.base import Dataset
from .errors import ConfigError, TrainingDiverged
from .model import GenerativeModel, to_numpy


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

    GOOD_EVERY = 25  # steps between copies of the last good weights

    def __init__(self, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, device: str = "auto",
                 n_reference: int = 2000, n_eval: int = 1000):
        validate(cfg)
        self.model, self.dataset, self.cfg = model, dataset, cfg
        self.device = resolve_device(device)
        torch.manual_seed(cfg.seed)
        data = dataset.training_set(cfg.n_data, cfg.seed)
        if cfg.batch_size > data.shape[0]:
            raise ConfigError(f"batch_size={cfg.batch_size} is larger than the data ({data.shape[0]} points); "
                              f"use a batch of at most {data.shape[0]}")
        self.data = data.to(self.device)  # (N, *shape)
        self.reference = dataset.sample(n_reference, torch.Generator().manual_seed(cfg.seed + 1))
        self.n_eval = n_eval
        self._batch_gen = torch.Generator().manual_seed(cfg.seed)
        model.to(self.device)
        model.train()
        model.init_from_data(self._batch())
        self.phases = model.phases(cfg.lr)
        self.optimizers = {p.name: torch.optim.Adam(p.params, lr=p.lr, betas=p.betas) for p in self.phases}

        self.step_count = 0
        self.elapsed = 0.0  # seconds spent training, pauses excluded
        self.history: list[dict] = []
        self.metric_history: list[dict] = []
        self.status = "ready"  # ready | running | paused | done | stopped | diverged
        self.message = ""
        self._acc: dict[str, float] = {}
        self._acc_n = 0
        self._good = self._checkpoint()
        self._good_step = 0
        # background control
        self._thread: threading.Thread | None = None
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._single_steps = 0
        self._views: _Views | None = None
        self._lock = threading.Lock()  # guards weights between training and snapshot copies
        self._ref_terms: dict | None = None  # the reference's share of MMD and energy, computed once
        # what the live views last drew: a copy of the weights safe to read while training goes on
        # (read it through newest(), which keeps it from being reused while you hold it)
        self.latest_model: GenerativeModel | None = None
        self.latest_at: tuple[int, float] = (0, 0.0)
        self._latest_lock = threading.Lock()
        self._leases: collections.Counter = collections.Counter()  # id(model) -> holders
        self.latest_metrics: dict = {}
        self.field_t: float | None = None  # draw time-dependent fields (diffusion) at this t

    @property
    def train_device(self) -> torch.device:
        """Where the weights are trained (core.process trains elsewhere than it draws)."""
        return self.device

    # ---- data -------------------------------------------------------------
    def _batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.cfg.batch_size,), generator=self._batch_gen)
        return self.data[idx.to(self.device)]

    # ---- one step -------------------------------------------------------
    def set_lr(self, lr: float, phase: str | None = None) -> None:
        """Change a learning rate live (all phases, or one by name)."""
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {lr}")
        for p in self.phases:
            if phase is None or p.name == phase:
                p.lr = lr
                for group in self.optimizers[p.name].param_groups:
                    group["lr"] = lr
        if phase is None:
            self.cfg.lr = lr

    def set_live(self, name: str, value) -> None:
        """Apply a knob marked live while training runs.

        lr: every phase (a GAN's per-player rate lr_d / lr_g, when set, keeps
        precedence, as in the model's phases()); lr_<phase>: that phase, 0
        meaning "the trainer's lr"; grad_clip: the trainer's; anything else is
        a model config field that the loss reads at every step (beta, ...).
        """
        cfg = self.model.config
        phases = {p.name for p in self.phases}
        if name == "lr":
            for phase in phases:
                self.set_lr(getattr(cfg, f"lr_{phase.lower()}", 0.0) or float(value), phase=phase)
            self.cfg.lr = float(value)
        elif name == "grad_clip":
            self.cfg.grad_clip = float(value)
        elif name.startswith("lr_") and name[3:].upper() in phases:
            setattr(cfg, name, float(value))
            self.set_lr(float(value) or self.cfg.lr, phase=name[3:].upper())
        elif hasattr(cfg, name):
            setattr(cfg, name, value)
        else:
            raise ConfigError(f"{name!r} is not a setting of {type(self.model).__name__} or of training")

    def learning_rates(self) -> dict[str, float]:
        return {p.name: self.optimizers[p.name].param_groups[0]["lr"] for p in self.phases}

    def step(self) -> dict[str, float]:
        """One training step: every phase, each `repeats` times. Returns the loss terms."""
        terms: dict[str, float] = {}
        multi = len(self.phases) > 1
        with self._lock:
            for phase in self.phases:
                opt = self.optimizers[phase.name]
                for _ in range(phase.repeats):
                    out = phase.loss(self._batch())
                    loss = out["loss"]
                    if not torch.isfinite(loss):
                        self._diverged(phase.name if multi else "", loss.item())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(phase.params, self.cfg.grad_clip)
                    opt.step()
                    self.model.after_phase(phase.name)
                for k, v in out.items():
                    key = (f"loss_{phase.name}" if multi else "loss") if k == "loss" else k
                    terms[key] = float(v.detach())
            self.step_count += 1
            if self.step_count % self.GOOD_EVERY == 0:
                self._good, self._good_step = self._checkpoint(), self.step_count
        for k, v in terms.items():
            self._acc[k] = self._acc.get(k, 0.0) + v
        self._acc_n += 1
        return terms

    def _checkpoint(self) -> dict:
        return {"model": copy.deepcopy(self.model.state_dict()),
                "opt": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}}

    def _diverged(self, phase: str, value: float) -> None:
        self.model.load_state_dict(self._good["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(self._good["opt"][k])
        what = f"the {phase} loss" if phase else "the loss"
        lr = ", ".join(f"{p.name}: {p.lr:g}" for p in self.phases) if len(self.phases) > 1 else f"{self.phases[0].lr:g}"
        self.status = "diverged"
        self.message = (f"Training stopped at step {self.step_count + 1}: {what} became {value}. "
                        f"The weights from step {self._good_step} were kept. Try a lower learning rate "
                        f"(now {lr}), gradient clipping, or a smaller model.")
        raise TrainingDiverged(self.message)

    def _flush_history(self) -> None:
        if self._acc_n:
            rec = {"step": self.step_count, "time": round(self.elapsed, 4)}
            rec.update({k: v / self._acc_n for k, v in self._acc.items()})
            self.history.append(rec)
            self._acc, self._acc_n = {}, 0

    # ---- evaluation and snapshots ----------------------------------------
    def evaluate(self, n: int | None = None, with_kl: bool | None = None, model: GenerativeModel | None = None) -> dict:
        """Metrics against the data; deterministic and leaves the training RNG untouched."""
        model = model or self.model
        if with_kl is None:
            with_kl = getattr(model, "log_prob_is_exact", False) or model.family == "vae"
        if self._ref_terms is None:
            self._ref_terms = M.reference_terms(self.reference)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 2)
            was_training = model.training
            model.eval()
            try:
                out = M.evaluate(model, self.dataset, self.reference, n=n or self.n_eval, with_kl=with_kl,
                                 ref_terms=self._ref_terms)
            finally:
                model.train(was_training)
        return out

    def snapshot(self, model: GenerativeModel | None = None, n: int = 500, grid_resolution: int = 60,
                 with_metrics: bool = True, step: int | None = None, elapsed: float | None = None) -> dict:
        """Everything a live view draws at this moment."""
        model = model or self.model
        x = self.data[:n] if self.data.shape[0] >= n else self.data
        grid = None
        if self.dataset.shape == (2,):
            from .data.toy2d import plane_grid

            grid = plane_grid(self.dataset.bounds, grid_resolution)[0].to(self.device)
        # A model that draws its fields at its own `field_t` draws them at the chosen t in the same pass.
        own_t = self.field_t is not None and hasattr(model, "field_t")
        default_t = getattr(model, "field_t", None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed + 3)
            model.eval()
            if own_t:
                model.field_t = self.field_t
            try:
                traces = model.traces(x, grid)
            finally:
                model.train()
                if own_t:
                    model.field_t = default_t
        if self.field_t is not None and not own_t:
            traces.update(field_traces(model, self.dataset, self.field_t, grid_resolution))
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

    # ---- headless ---------------------------------------------------------
    def fit(self, steps: int | None = None, log_every: int = 50, metrics_every: int = 0,
            on_log: Callable[[dict], None] | None = None) -> list[dict]:
        """Train in this thread. Returns the history; raises TrainingDiverged on NaN."""
        steps = self.cfg.steps if steps is None else steps
        self.status = "running"
        target = self.step_count + steps
        t0 = time.perf_counter()
        try:
            while self.step_count < target:
                self.step()
                self.elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                if self.step_count % log_every == 0 or self.step_count == target:
                    self._flush_history()
                    if metrics_every and (self.step_count % metrics_every == 0 or self.step_count == target):
                        m = self.evaluate()
                        self.metric_history.append({"step": self.step_count, "time": round(self.elapsed, 4), **m})
                        t0 = time.perf_counter()  # evaluation is not training time
                    if on_log:
                        on_log(self.history[-1])
        except TrainingDiverged:
            self._flush_history()
            raise
        self.status = "done"
        return self.history

    # ---- background -------------------------------------------------------
    PICTURE_REST = 1.0  # after a picture that took d seconds, the next waits PICTURE_REST * d

    def start(self, on_snapshot: Callable[[dict], None] | None = None, snapshot_interval: float = 0.2,
              metrics_interval: float = 1.0, log_every: int = 10, paused: bool = False) -> None:
        """Train in the background until cfg.steps, stop() or divergence.

        Every `snapshot_interval` seconds the weights are copied and handed to
        the views, which call on_snapshot(snapshot) from a worker thread; each
        snapshot carries the newest metrics, evaluated at most every
        `metrics_interval` seconds on a thread of their own.
        """
        if self.running:
            raise RuntimeError("this trainer is already running")
        self._stop.clear()
        if paused:
            self._paused.set()
        self.status = "paused" if paused else "running"
        self._views = _Views(self, on_snapshot, metrics_interval) if on_snapshot else None
        _LIVE.add(self)
        self._launch(snapshot_interval, log_every, paused)

    def _launch(self, snapshot_interval: float, log_every: int, paused: bool) -> None:
        self._thread = threading.Thread(target=self._loop, args=(snapshot_interval, log_every), daemon=True)
        self._thread.start()

    def _loop(self, snapshot_interval: float, log_every: int) -> None:
        views, last_snap = self._views, 0.0
        try:
            while not self._stop.is_set() and self.step_count < self.cfg.steps:
                if self._paused.is_set():
                    if self._single_steps <= 0:
                        self._wake.wait(0.05)
                        self._wake.clear()
                        continue
                    self._single_steps -= 1
                t0 = time.perf_counter()
                self.step()
                self.elapsed += time.perf_counter() - t0
                if self.step_count % log_every == 0 or self._paused.is_set():
                    self._flush_history()
                now = time.perf_counter()
                if views and (now - last_snap >= snapshot_interval or self._paused.is_set()):
                    self._flush_history()
                    views.request(self._copy_model(), self.step_count, self.elapsed)
                    last_snap = now
            if not self._stop.is_set():
                self.status = "done"
        except TrainingDiverged:
            pass  # status and message already set; the last good weights are back in place
        except Exception as e:  # noqa: BLE001 - shown to the person, not a traceback
            self.status = "error"
            self.message = f"Training stopped at step {self.step_count}: {type(e).__name__}: {e}"
        finally:
            self._flush_history()
            if views:
                # A person's stop (Reset) needs no final metrics; a finished run gets them.
                views.request(self._copy_model(), self.step_count, self.elapsed, final=True,
                              with_metrics=not self._stop.is_set())
                views.close()

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

    def _copy_model(self) -> GenerativeModel:
        with self._lock:
            return copy.deepcopy(self.model)

    def _materialize(self, copied) -> GenerativeModel:
        """The model a picture is drawn from, given what the training loop handed over."""
        return copied

    def pause(self) -> None:
        self._paused.set()
        if self.status == "running":
            self.status = "paused"

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()
        if self.status == "paused":
            self.status = "running"

    def step_once(self, n: int = 1) -> None:
        """While paused: take n more steps, then stay paused."""
        self._single_steps += n
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._views:
            self._views.join(timeout)
        if self.status in ("running", "paused", "ready"):
            self.status = "stopped"

    def wait_views(self, timeout: float) -> bool:
        """Wait until the last picture and the last metrics of a finished run are in."""
        return self._views.join(timeout) if self._views else True

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())


VIEW_NICE = 10  # how much lower the views' threads run than training (Linux nice levels)


def _yield_to_training() -> None:
    """Lower this thread's CPU priority, so that drawing takes what training leaves.

    On Linux nice is per thread; elsewhere it would lower the whole process, so
    it is left alone there.
    """
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), VIEW_NICE)
        except OSError:  # not permitted here: the views run at normal priority
            pass


class _Views:
    """Pictures and metrics of a background run, each on a thread of its own.

    A picture is drawn from the newest copy of the weights; a copy that waits
    is replaced by a newer one, never queued. After a picture that took d
    seconds the next waits trainer.PICTURE_REST * d, so drawing takes a bounded
    share of the machine however heavy the family's traces are. Metrics
    evaluate the newest copy drawn, at most every `metrics_interval` seconds
    and no sooner than METRICS_REST times the last evaluation's duration after
    it (a sixth of a core at most), so a quadratic metric on a small CPU
    slows neither pictures nor training much.
    """

    METRICS_REST = 5.0

    def __init__(self, trainer: Trainer, callback: Callable[[dict], None], metrics_interval: float):
        self.trainer, self.callback, self.metrics_interval = trainer, callback, metrics_interval
        self._pending = None
        self._cv = threading.Condition()
        self._closed = False
        self._rest_until = 0.0
        self._metrics_wake = threading.Event()
        self._metrics_end: str | None = None  # "final" (evaluate once more) or "stop"
        self._pictures = threading.Thread(target=self._draw, daemon=True)
        self._metrics = threading.Thread(target=self._evaluate, daemon=True)
        self._pictures.start()
        self._metrics.start()

    def request(self, model, step: int, elapsed: float, final: bool = False, with_metrics: bool = True) -> None:
        with self._cv:
            self._pending = (model, step, elapsed, final, with_metrics)  # replaces a stale request
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in (self._pictures, self._metrics):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not (self._pictures.is_alive() or self._metrics.is_alive())

    def _draw(self) -> None:
        _yield_to_training()
        trainer = self.trainer
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._pending is None:
                    break
                _, _, _, final, _ = self._pending
            if not final:
                time.sleep(max(0.0, min(self._rest_until - time.perf_counter(), 1.0)))
            with self._cv:  # a newer copy may have come while resting
                model, step, elapsed, final, with_metrics = self._pending
                self._pending = None
            t0 = time.perf_counter()
            model = trainer._materialize(model)
            try:
                snap = trainer.snapshot(model, with_metrics=False, step=step, elapsed=elapsed)
            except Exception as e:  # noqa: BLE001 - a view failing must not stop training
                snap = {"step": step, "time": elapsed, "error": f"{type(e).__name__}: {e}"}
            trainer._publish(model, (step, elapsed))
            now = time.perf_counter()
            self._rest_until = now + trainer.PICTURE_REST * (now - t0)
            if trainer.latest_metrics:
                snap["metrics"] = trainer.latest_metrics
            snap.update(final=final, status=trainer.status, message=trainer.message)
            if final:
                self._metrics_end = "final" if with_metrics else "stop"
            self._metrics_wake.set()
            self.callback(snap)
            if final:
                break
        if self._metrics_end is None:
            self._metrics_end = "stop"
            self._metrics_wake.set()

    def _evaluate(self) -> None:
        _yield_to_training()
        trainer, done, wait = self.trainer, None, 0.0
        while True:
            self._metrics_wake.wait(wait)
            self._metrics_wake.clear()
            end = self._metrics_end
            if end == "stop":
                return
            with trainer.newest() as (model, at):
                if model is not None and at != done and (end or time.perf_counter() >= self._next_eval):
                    step, elapsed = at
                    t0 = time.perf_counter()
                    try:
                        m = trainer.evaluate(model=model)
                    except Exception as e:  # noqa: BLE001 - a metric failing must not stop the pictures
                        m = {"error": f"{type(e).__name__}: {e}"}
                    trainer.latest_metrics = {"step": step, "time": round(elapsed, 4), **m}
                    trainer.metric_history.append(trainer.latest_metrics)
                    done = at
                    t1 = time.perf_counter()
                    self._next_eval = max(t0 + self.metrics_interval, t1 + self.METRICS_REST * (t1 - t0))
            if end == "final":
                return
            wait = max(0.0, self._next_eval - time.perf_counter()) if done is not None else 0.5

    _next_eval = 0.0


def field_traces(model: GenerativeModel, dataset: Dataset, t: float, grid_resolution: int = 60) -> dict:
    """The model's vector fields on the plane grid at time t (diffusion); {} if it has none."""
    fields = getattr(model, "fields", None)
    if fields is None or tuple(dataset.shape) != (2,):
        return {}
    from .data.toy2d import plane_grid

    grid = plane_grid(dataset.bounds, grid_resolution)[0].to(model.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        was_training = model.training
        model.eval()
        try:
            out = fields(grid, float(t))
        finally:
            model.train(was_training)
    return {k: to_numpy(v) if isinstance(v, torch.Tensor) else v for k, v in out.items()}


def finite_or_none(v):
    """JSON-safe float: NaN/inf become None."""
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
