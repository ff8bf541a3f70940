"""Per-browser-session state and the one thing shared between sessions.

- `RunManager` (one per process) caps how many runs train at once
  (PLAYGROUND_MAX_RUNS, default 4). A run over the cap waits in a FIFO queue and
  starts by itself when a slot frees; a paused run gives its slot back.
- `Run` is one model training on one dataset in a child process (core.process:
  training keeps an interpreter of its own, so drawing the page never slows
  it): it keeps the newest snapshot, a bounded list of past ones (for the GIF)
  and the view context (grid, true density, modes) the figures need.
- `Session` is what one browser tab holds in gr.State: the current run, the
  finished ones (as light `RunRecord`s for the Compare tab) and uploads.

Nothing here imports Gradio; the app turns these objects into pages.
"""

from __future__ import annotations

import copy
import dataclasses
import atexit
import itertools
import os
import shutil
import tempfile
import threading
import time
import weakref

import numpy as np
import torch

from core import registry
from core.config import TrainConfig
from core.data.base import Dataset
from core.model import to_numpy
from core.process import FINISHED, ProcessTrainer
from core.trainer import field_traces

GRID_RESOLUTION = 60
SNAPSHOT_INTERVAL = 0.15  # seconds between snapshots, the page's redraw period: a picture for every redraw, and no more
METRICS_INTERVAL = 1.0  # seconds between metric evaluations
FRAME_INTERVAL = 1.0  # seconds between frames kept for the GIF (doubles when the list is full)
MAX_FRAMES = 120
MAX_RECORDS = 10  # finished runs a session keeps for Compare
MAX_HISTORY_POINTS = 2000
NOTE_SECONDS = 6.0  # how long a note (a live knob applied, a refusal) stays in the status line  # loss/metric records kept per finished run
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def thin(records: list, limit: int) -> list:
    """At most `limit` records, evenly spaced, always keeping the last one."""
    if len(records) <= limit:
        return list(records)
    stride = -(-len(records) // limit)
    out = records[::stride]
    if out[-1] is not records[-1]:
        out = out[:-1] + [records[-1]]
    return out


class RunManager:
    """Caps the runs training at the same time; the rest wait in order."""

    def __init__(self, max_runs: int | None = None):
        if max_runs is None:
            max_runs = int(os.environ.get("PLAYGROUND_MAX_RUNS", "4"))
        if max_runs < 1:
            raise ValueError(f"PLAYGROUND_MAX_RUNS must be at least 1, got {max_runs}")
        self.max_runs = max_runs
        self._lock = threading.RLock()
        self._active: list[Run] = []
        self._waiting: list[Run] = []
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()  # every live run, to stop them at exit
        atexit.register(self.shutdown)

    def track(self, run: "Run") -> None:
        with self._lock:
            self._runs.add(run)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every run and let its last snapshot finish (a thread killed inside torch aborts the process)."""
        with self._lock:
            runs = list(self._runs)
        for r in runs:
            r.stop(wait=timeout)

    def acquire(self, run: "Run") -> bool:
        """True if `run` may train now; otherwise it joins the queue."""
        with self._lock:
            if run in self._active:
                return True
            if len(self._active) < self.max_runs and not self._waiting:
                self._active.append(run)
                return True
            if run not in self._waiting:
                self._waiting.append(run)
            return False

    def release(self, run: "Run") -> None:
        """`run` stops training (paused, finished, reset, tab closed): hand its slot on."""
        with self._lock:
            if run in self._active:
                self._active.remove(run)
            if run in self._waiting:
                self._waiting.remove(run)
            promoted = []
            while self._waiting and len(self._active) < self.max_runs:
                nxt = self._waiting.pop(0)
                self._active.append(nxt)
                promoted.append(nxt)
        for nxt in promoted:  # outside the lock: starting a run takes its own lock
            nxt.granted()

    def position(self, run: "Run") -> int:
        """1-based place in the queue; 0 when not waiting."""
        with self._lock:
            return self._waiting.index(run) + 1 if run in self._waiting else 0

    def holds_slot(self, run: "Run") -> bool:
        with self._lock:
            return run in self._active

    def release_owner(self, owner: str) -> int:
        """Stop every run of a closed session; returns how many were stopped."""
        with self._lock:
            runs = [r for r in self._active + self._waiting if r.owner == owner]
        for r in runs:
            r.stop()
        return len(runs)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


def view_context(dataset: Dataset, dataset_name: str, data: torch.Tensor, n: int = 500,
                 seed: int = 0, n_data: int = 0) -> dict:
    """What the figures need besides a snapshot: bounds, true density, modes, labels."""
    ctx = {"bounds": dataset.bounds, "grid_resolution": GRID_RESOLUTION, "dataset": dataset_name,
           "data_shape": tuple(dataset.shape), "true_log_density": None, "modes": None, "labels": None,
           "field_t": None, "mode_std": dataset.mode_std, "labels_name": dataset.labels_name}
    if dataset.modes is not None:
        ctx["modes"] = to_numpy(dataset.modes)
    if tuple(dataset.shape) != (2,):
        return ctx
    from core.data.toy2d import plane_grid

    if dataset.has_density:
        grid = plane_grid(dataset.bounds, GRID_RESOLUTION, torch.float64)[0]
        try:
            ctx["true_log_density"] = dataset.log_prob(grid).detach().cpu().numpy().astype(np.float64)
        except NotImplementedError:
            pass
    # The trainer's points are training_set(n_data, seed); the same draw with labels
    # gives the labels, when the dataset draws both the same way.
    try:
        x, y = dataset.sample_with_labels(n_data, torch.Generator().manual_seed(seed))
        shown = data[:n].detach().cpu()
        if x.shape[0] >= shown.shape[0] and torch.allclose(x[: shown.shape[0]].to(shown.dtype), shown):
            if int(y.min()) >= 0:
                ctx["labels"] = y[: shown.shape[0]].numpy()
    except Exception:  # noqa: BLE001 - labels only colour points; without them the view still works
        pass
    return ctx


class Run:
    """One model training on one dataset, with its live snapshots."""

    def __init__(self, label: str, model_name: str, dataset_name: str, dataset: Dataset,
                 model_settings: dict | None = None, train_settings: dict | None = None,
                 manager: RunManager | None = None, owner: str = "", device: str = "auto",
                 context_cache: dict | None = None):
        self.label, self.model_name, self.dataset_name = label, model_name, dataset_name
        self.model_settings = dict(model_settings or {})
        self.train_settings = dict(train_settings or {})
        self.manager, self.owner = manager, owner
        self.family = registry.model_spec(model_name).family
        self.train_cfg = registry.train_config(model_name, self.train_settings)
        torch.manual_seed(self.train_cfg.seed)
        self.model = registry.build_model(model_name, dataset.shape, self.model_settings)
        self.trainer = ProcessTrainer(self.model, dataset, self.train_cfg, device)
        self.dataset = dataset
        key = (dataset_name, self.train_cfg.seed, self.train_cfg.n_data)
        if context_cache is not None and key in context_cache:
            self.ctx = dict(context_cache[key])
        else:
            self.ctx = view_context(dataset, dataset_name, self.trainer.data, seed=self.train_cfg.seed,
                                    n_data=self.train_cfg.n_data)
            if context_cache is not None:
                context_cache.clear()  # one entry: bounded memory, and Reset on the same data is instant
                context_cache[key] = dict(self.ctx)
        self._lock = threading.Lock()
        self._waiting = False
        self._started = False
        self._final = threading.Event()  # the last snapshot of the training thread arrived
        if manager is not None:
            manager.track(self)
        self.latest: dict | None = None
        self.seq = 0  # bumps with every snapshot; the page redraws when it changes
        self.frames: list[dict] = []
        self._frame_interval = FRAME_INTERVAL
        self._last_frame = -1e9
        self.created = time.monotonic()
        # Step 0 is drawn off the request thread so Reset answers at once.
        initial = copy.deepcopy(self.model)
        self._init_thread = threading.Thread(target=self._initial_snapshot, args=(initial,), daemon=True)
        self._init_thread.start()

    # ---- state ------------------------------------------------------------
    @property
    def status(self) -> str:
        return "waiting" if self._waiting else self.trainer.status

    @property
    def step(self) -> int:
        return self.trainer.step_count

    @property
    def finished(self) -> bool:
        return self.trainer.status in FINISHED

    def queue_position(self) -> int:
        return self.manager.position(self) if self.manager else 0

    # ---- control ----------------------------------------------------------
    def play(self) -> str:
        """Start or resume; returns a note for the status line ('' when it starts)."""
        with self._lock:
            if self.finished:
                return f"This run is {self.trainer.status}; press Reset to start a new one."
            if self._waiting or self.trainer.status == "running":
                return ""
            self._waiting = True
        if self.manager is None or self.manager.acquire(self):
            self.granted()
        return ""

    def granted(self) -> None:
        """The manager gave this run a slot: train."""
        with self._lock:
            if not self._waiting:  # paused or stopped while it waited
                give_back = True
            else:
                give_back = False
                self._waiting = False
                if not self._started:
                    self._start_trainer(paused=False)
                else:
                    self.trainer.resume()
        if give_back and self.manager:
            self.manager.release(self)

    def pause(self) -> None:
        with self._lock:
            self._waiting = False
            if self._started:  # pausing a trainer that never started would stall its first start
                self.trainer.pause()
        if self.manager:
            self.manager.release(self)

    def step_once(self, n: int = 1) -> None:
        """Pause (if training) and take n more steps."""
        with self._lock:
            if self.finished:
                return
            self._waiting = False
            if not self._started:
                self._start_trainer(paused=True)
            else:
                self.trainer.pause()
            self.trainer.step_once(n)
        if self.manager:
            self.manager.release(self)

    def _start_trainer(self, paused: bool) -> None:
        self._started = True
        self.trainer.start(self._on_snapshot, SNAPSHOT_INTERVAL, METRICS_INTERVAL, paused=paused)

    def stop(self, wait: float = 0.0) -> None:
        """Stop training; with wait > 0, also wait up to that long for the final snapshot."""
        with self._lock:
            self._waiting = False
            started = self._started
        # Not under the lock: stopping joins the snapshot worker, whose callback takes it. The
        # final picture of a stopped run is not waited for unless asked (Reset must be quick).
        self.trainer.stop(timeout=max(wait, 0.5))
        if self.manager:
            self.manager.release(self)
        if wait > 0:
            self._init_thread.join(wait)
            if started:
                self._final.wait(wait)
                self.trainer.wait_views(wait)

    def set_live(self, name: str, value) -> None:
        """Apply a live knob now (core.trainer.Trainer.set_live says how each is applied)."""
        self.trainer.set_live(name, value)
        if name in TRAIN_FIELDS:
            self.train_settings[name] = value
        else:
            self.model_settings[name] = value

    def set_field_t(self, t: float | None) -> dict | None:
        """Draw the field at time t from now on; returns a snapshot redrawn at t at once, if possible."""
        self.trainer.field_t = t
        self.ctx["field_t"] = t
        with self._lock:
            latest = self.latest
        with self.trainer.newest() as (model, _):
            if t is None or model is None or latest is None or "traces" not in latest:
                return None
            extra = field_traces(model, self.dataset, t)
        if not extra:
            return None
        snap = dict(latest, traces={**latest["traces"], **extra})
        with self._lock:
            self.latest = snap
            self.seq += 1
        return snap

    # ---- snapshots --------------------------------------------------------
    def _initial_snapshot(self, model) -> None:
        try:
            snap = self.trainer.snapshot(model, with_metrics=False, step=0, elapsed=0.0)
        except Exception as e:  # noqa: BLE001 - shown in the status line
            snap = {"step": 0, "time": 0.0, "error": f"{type(e).__name__}: {e}"}
        snap.setdefault("final", False)
        snap["status"] = self.trainer.status
        with self._lock:
            if self.latest is None:  # training may already have sent a newer one
                self._store(snap)

    def _on_snapshot(self, snap: dict) -> None:
        with self._lock:
            if "traces" not in snap and self.latest is not None:
                # the view failed for this copy: keep the last picture, report the error
                snap = {**self.latest, **snap}
            self._store(snap)
        if snap.get("final"):
            self._final.set()
            if self.manager:
                self.manager.release(self)

    def _store(self, snap: dict) -> None:
        self.latest = snap
        self.seq += 1
        now = time.monotonic()
        if "traces" in snap and (now - self._last_frame >= self._frame_interval or snap.get("final")):
            frame = dict(snap)
            if self.frames and "data" in self.frames[0]:
                frame["data"] = self.frames[0]["data"]  # the same points every time: keep one copy
            self.frames.append(frame)
            self._last_frame = now
            if len(self.frames) > MAX_FRAMES:
                self.frames = self.frames[::2]
                self._frame_interval *= 2

    def snapshot_now(self) -> tuple[int, dict | None]:
        with self._lock:
            return self.seq, self.latest

    def record(self) -> "RunRecord":
        return RunRecord(self.label, self.family, self.model_name, self.dataset_name, self.trainer.status,
                         self.step, thin(self.trainer.history, MAX_HISTORY_POINTS),
                         thin(self.trainer.metric_history, MAX_HISTORY_POINTS))

    def export_model(self):
        """A copy of the newest weights that is safe to save while training goes on."""
        with self.trainer.newest() as (model, _):
            return copy.deepcopy(model if model is not None and self._started else self.model)


class RunRecord:
    """What Compare keeps of a finished run: its curves, not its weights."""

    def __init__(self, label, family, model_name, dataset_name, status, step, history, metric_history):
        self.label, self.family, self.model_name, self.dataset_name = label, family, model_name, dataset_name
        self.status, self.step = status, step
        self.history, self.metric_history = history, metric_history


class Session:
    """One browser tab's state: the current run, finished runs, uploads."""

    def __init__(self, manager: RunManager | None = None, device: str | None = None):
        self.manager = manager
        self.device = device or os.environ.get("PLAYGROUND_DEVICE", "auto")
        self.owner = ""
        self.current: Run | None = None
        self.records: list[RunRecord] = []
        self.uploads: dict[str, Dataset] = {}
        self.shown_seq = -1  # the snapshot the page shows
        self.shown_history = -1
        self.shown_metrics = -1
        self.shown_status = ""
        self.warned_run = ""  # the run whose divergence was already announced
        self.chain: list[dict] = []  # runs a preset queued after the current one
        self._note = ("", 0.0)
        self._counter = itertools.count(1)
        self._datasets: dict = {}
        self._contexts: dict = {}  # the last view context (true density on the grid), reused by Reset
        self._tmpdir: str | None = None

    def notify(self, text: str, seconds: float = NOTE_SECONDS) -> None:
        """A message for the status line that outlives the next few redraws."""
        self._note = (text, time.monotonic() + seconds)

    def note(self) -> str:
        text, until = self._note
        return text if time.monotonic() < until else ""

    def __deepcopy__(self, memo):
        # gr.State deep-copies its initial value; a session is never shared, so it is its own copy.
        return self

    # ---- runs -------------------------------------------------------------
    def dataset(self, name: str) -> Dataset:
        if name in self.uploads:
            return self.uploads[name]
        if name not in self._datasets:  # one entry: Reset on the same data (MNIST: seconds to read) is instant
            self._datasets = {name: registry.load_dataset(name)}
        return self._datasets[name]

    def new_run(self, model_name: str, dataset_name: str, model_settings: dict | None = None,
                train_settings: dict | None = None) -> Run:
        """Stop the current run (keeping its curves) and build a fresh one, not yet training."""
        dataset = self.dataset(dataset_name)
        self.retire()  # first, so the old run's thread is not competing while the new one is built
        label = f"{model_name}@{dataset_name}#{next(self._counter)}"
        self.current = run = Run(label, model_name, dataset_name, dataset, model_settings, train_settings,
                                 manager=self.manager, owner=self.owner, device=self.device,
                                 context_cache=self._contexts)
        self.shown_seq = self.shown_history = self.shown_metrics = -1
        self.shown_status = ""
        return run

    def retire(self) -> None:
        """Stop the current run; keep its curves for Compare if it took any step."""
        run, self.current = self.current, None
        if run is None:
            return
        run.stop()
        if run.step > 0:
            self.records.append(run.record())
            self.records = self.records[-MAX_RECORDS:]

    def runs_for_compare(self) -> dict[str, RunRecord]:
        out = {r.label: r for r in self.records}
        if self.current is not None and self.current.step > 0:
            out[self.current.label] = self.current.record()
        return out

    def tmpdir(self) -> str:
        if self._tmpdir is None or not os.path.isdir(self._tmpdir):
            self._tmpdir = tempfile.mkdtemp(prefix="playground-")
        return self._tmpdir

    def close(self) -> None:
        """The tab is gone: stop training and free what it held."""
        if self.current is not None:
            self.current.stop()
        self.current = None
        self.records.clear()
        self.uploads.clear()
        self._datasets.clear()
        self._contexts.clear()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
