"""One model training on one dataset in a child process, with its live snapshots.

A `Run` keeps the newest snapshot, a bounded list of past ones (for the GIF)
and the view context (grid, true density, modes) the figures need. Training
keeps an interpreter of its own (core.train's process transport), so drawing
the page never slows it.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import threading
import time

import numpy as np
import torch

from core import registry
from core.config import TrainConfig
from core.data.base import Dataset
from core.model import to_numpy
from core.rng import manual_seed
from core.train import FINISHED, Trainer

from ..views import view_for
from .gpu import transport_options
from .manager import RunManager

GRID_RESOLUTION = 60
SNAPSHOT_INTERVAL = 0.15  # seconds between snapshots, the page's redraw period: a picture for every redraw, and no more
METRICS_INTERVAL = 1.0  # seconds between metric evaluations
FRAME_INTERVAL = 1.0  # seconds between frames kept for the GIF (doubles when the list is full)
MAX_FRAMES = 120
MAX_HISTORY_POINTS = 2000  # loss and metric records kept per finished run
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
SHARED_CONTEXTS = 16  # view contexts of built-in datasets kept for every tab (a true density on the grid each)
_SHARED_CONTEXTS: dict = {}
_SHARED_LOCK = threading.Lock()


def thin(records: list, limit: int) -> list:
    """At most `limit` records, evenly spaced, always keeping the last one."""
    if len(records) <= limit:
        return list(records)
    stride = -(-len(records) // limit)
    out = records[::stride]
    if out[-1] is not records[-1]:
        out = out[:-1] + [records[-1]]
    return out


def view_context(dataset: Dataset, dataset_name: str, data: torch.Tensor, n: int = 500,
                 seed: int = 0, n_data: int = 0) -> dict:
    """What the figures need besides a snapshot: bounds, true density, modes, labels."""
    ctx = {"bounds": dataset.bounds, "grid_resolution": GRID_RESOLUTION, "dataset": dataset_name,
           "data_shape": tuple(dataset.shape), "true_log_density": None, "modes": None, "labels": None,
           "options": {}, "mode_std": dataset.mode_std, "labels_name": dataset.labels_name}
    if dataset.modes is not None:
        ctx["modes"] = to_numpy(dataset.modes)
    # The trainer's data are training_set(n_data, seed); labelled_training_set draws the same
    # rows with their labels (digits, mixture components), checked against the data shown.
    try:
        x, y = dataset.labelled_training_set(n_data, seed)
        shown = data[:n].detach().cpu()
        if x.shape[0] >= shown.shape[0] and torch.allclose(x[: shown.shape[0]].to(shown.dtype), shown):
            if int(y.min()) >= 0:
                ctx["labels"] = y[: shown.shape[0]].numpy()
    except Exception:  # noqa: BLE001 - labels only colour points; without them the view still works
        pass
    if tuple(dataset.shape) != (2,):
        return ctx
    from core.data.toy2d import plane_grid

    if dataset.has_density:
        grid = plane_grid(dataset.bounds, GRID_RESOLUTION, torch.float64)[0]
        try:
            ctx["true_log_density"] = dataset.log_prob(grid).detach().cpu().numpy().astype(np.float64)
        except NotImplementedError:
            pass
    return ctx


class Run:
    """One model training on one dataset, with its live snapshots."""

    cost_note = ""  # what the combination costs, when too slow to watch (the page estimates it)

    def __init__(self, label: str, model_name: str, dataset_name: str, dataset: Dataset,
                 model_settings: dict | None = None, train_settings: dict | None = None,
                 manager: RunManager | None = None, owner: str = "", device: str = "auto",
                 context_cache: dict | None = None, watched=None, pictures: bool = True):
        self.label, self.model_name, self.dataset_name = label, model_name, dataset_name
        self.model_settings = dict(model_settings or {})
        self.train_settings = dict(train_settings or {})
        self.manager, self.owner = manager, owner
        self._watched = watched
        self.pictures = pictures  # False: nobody can ever see them (a client of the API), so step 0 is not drawn
        self.family = registry.model_spec(model_name).family
        self.train_cfg = registry.train_config(model_name, self.train_settings, registry.data_kind(dataset.shape))
        self.note = self._fit_batch_to(dataset)
        manual_seed(self.train_cfg.seed)
        self.model = registry.build_model(model_name, dataset.shape, self.model_settings)
        # a child process here and on CPU Spaces; chunks of spaces.GPU calls on a ZeroGPU Space
        self.trainer = Trainer(self.model, dataset, self.train_cfg, device, **transport_options())
        # the view's controls (a field's time t) start at their defaults and reach the model's traces
        self.trainer.view_options = {c.name: c.default for c in view_for(self.family).controls}
        self.dataset = dataset
        key = (dataset_name, self.train_cfg.seed, self.train_cfg.n_data)
        shared = dataset_name in registry.dataset_names()  # the same for every tab; an upload is its own
        cache = _SHARED_CONTEXTS if shared else context_cache
        with _SHARED_LOCK:
            cached = cache.get(key) if cache is not None else None
        if cached is not None:
            self.ctx = dict(cached)
        else:
            self.ctx = view_context(dataset, dataset_name, self.trainer.data, seed=self.train_cfg.seed,
                                    n_data=self.train_cfg.n_data)
            if cache is not None:
                with _SHARED_LOCK:
                    if not shared:
                        cache.clear()  # one entry: bounded memory, and Reset on the same data is instant
                    cache[key] = dict(self.ctx)
                    while len(cache) > SHARED_CONTEXTS:
                        cache.pop(next(iter(cache)))
        self.ctx["options"] = dict(self.trainer.view_options)
        self._lock = threading.Lock()
        self._context = None  # the request that pressed Play: a ZeroGPU call is charged to its user
        self._waiting = False
        self._started = False
        self._final = threading.Event()  # the last snapshot of the training thread arrived
        if manager is not None:
            manager.track(self)
        self.latest: dict | None = None
        self._true_scores: dict[tuple, np.ndarray | None] = {}  # (alpha, sigma) -> exact score on the grid
        self.seq = 0  # bumps with every snapshot; the page redraws when it changes
        self.frames: list[dict] = []
        self._frame_interval = FRAME_INTERVAL
        self._last_frame = -1e9
        self.created = time.monotonic()
        # Step 0 is drawn off the request thread so Reset answers at once; a run without pictures
        # has nothing to draw, and its first snapshot is stored here (a thread started on every
        # request waits for the interpreter's lock, which a busy server makes long).
        self._init_thread = None
        if pictures:
            self._init_thread = threading.Thread(target=self._initial_snapshot, daemon=True)
            self._init_thread.start()
        else:
            self._initial_snapshot()

    def _fit_batch_to(self, dataset: Dataset) -> str:
        """A file of fewer points than the default batch trains on batches of all its points
        (16 points are enough to upload); a batch size the person chose stays, and is refused
        by the trainer with the largest allowed."""
        points = getattr(dataset, "points", None)
        if points is None:
            return ""
        rows = int(points.shape[0])
        default = registry.train_config(self.model_name, {}, registry.data_kind(dataset.shape)).batch_size
        if self.train_cfg.batch_size <= rows or self.train_cfg.batch_size != default:
            return ""
        self.train_cfg.batch_size = rows
        return f"batch_size is {rows}, every point of the file, at each step (the default is larger than the file)."

    def watched(self) -> bool:
        """Someone looks at this run's pictures; while many do, each run's pictures rest longer."""
        if self._watched is not None and not self._watched():
            return False
        if self.manager is not None:
            self.trainer.PICTURE_REST = self.manager.picture_rest(Trainer.PICTURE_RESTS["process"])
        return True

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

    @property
    def floors(self) -> dict:
        """The sample metrics' noise floors, once the metrics thread has them (core.train.Trainer.floors)."""
        return self.trainer.floors(compute=False)

    @property
    def kl_note(self) -> str:
        """How the model's KL (or NLL on digits) is computed, when it is not exact ("IWAE estimate")."""
        live = self.model.live_kl or (self.model.has_log_prob and registry.data_kind(self.dataset.shape) == "images")
        return self.model.density_note if live else ""

    @property
    def literature(self):
        """The model's published NLL on MNIST (core.registry.Literature), when it trains on digits."""
        if self.dataset_name != "mnist":
            return None
        return registry.model_spec(self.model_name).literature

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
            if self.manager is not None and self.manager.is_closed(self.owner):
                return ""  # the tab is gone: nobody to train for
            self._waiting = True
            self._context = contextvars.copy_context()
        if self.manager is None or self.manager.acquire(self):
            self.granted()
        return ""

    def granted(self) -> None:
        """The manager gave this run a slot: train."""
        with self._lock:
            gone = self.manager is not None and self.manager.is_closed(self.owner)
            if not self._waiting or gone:  # paused or stopped while it waited, or its tab closed
                self._waiting = False
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

    def could_not_start(self, error: Exception) -> None:
        """Starting it failed where no request waits on the answer (it was promoted from the queue):
        its status line says so, and Reset builds a fresh run."""
        with self._lock:
            self.trainer.status = "error"
            self.trainer.message = (f"Training could not start ({type(error).__name__}: {error}). "
                                    "Press Reset to try again.")

    def pause(self) -> None:
        with self._lock:
            self._waiting = False
            if self._started:  # pausing a trainer that never started would stall its first start
                self.trainer.pause()
        if self.manager:
            self.manager.release(self)

    @property
    def phases(self) -> list[str]:
        """The model's phase names, in the order a step runs them (["D", "G"] for a GAN, one name
        for a model of one phase): what step_once(n, phase) may name. A page offers a button per
        phase when there are two or more."""
        return list(self.trainer.phases)

    def step_once(self, n: int = 1, phase: str | None = None) -> None:
        """Pause (if training) and take n more steps: of every phase, or of `phase` alone (one of
        self.phases; a step of one phase counts as a step of the run). A phase the model does not
        have is refused with a ConfigError that lists those it has."""
        if phase is not None:
            self.trainer.check_phase(phase)
        with self._lock:
            if self.finished or (self.manager is not None and self.manager.is_closed(self.owner)):
                return
            self._waiting = False
            if not self._started:
                self._context = contextvars.copy_context()
                self._start_trainer(paused=True)
            else:
                self.trainer.pause()
            self.trainer.step_once(n, phase)
        if self.manager:
            self.manager.release(self)

    def _start_trainer(self, paused: bool) -> None:
        self._started = True
        context = self._context or contextvars.copy_context()
        self.trainer.start(self._on_snapshot, SNAPSHOT_INTERVAL, METRICS_INTERVAL, paused=paused,
                           watched=self.watched, context=context)

    def stop(self, wait: float = 0.0) -> None:
        """Stop training; with wait > 0, also wait up to that long for the final snapshot."""
        with self._lock:
            self._waiting = False
            started = self._started
        # Not under the lock: stopping may join the snapshot worker, whose callback takes it. The
        # process's last word and the final snapshot are not waited for unless asked (Reset must be
        # quick); they come in the background and reach a run nobody shows, so nothing is drawn
        # for them (a class resetting at once would otherwise draw a picture per run for nobody).
        self.trainer.stop(timeout=max(wait, 5.0), wait_views=wait > 0, wait=wait > 0, last_picture=False)
        if self.manager:
            self.manager.release(self)
        if wait > 0:
            if self._init_thread is not None:
                self._init_thread.join(wait)
            if started:
                self._final.wait(wait)
                self.trainer.wait_views(wait)

    def set_live(self, name: str, value) -> None:
        """Apply a live knob now (core.train.engine.Engine.set_live says how each is applied); a
        pace ("pace", steps per second from 0, full speed, to 1000) among them. A value out of
        range is refused with a ConfigError that says what is allowed."""
        self.trainer.set_live(name, value)
        if name in TRAIN_FIELDS:
            self.train_settings[name] = value
        else:
            self.model_settings[name] = value

    def set_view_option(self, name: str, value) -> dict | None:
        """A view control moved (a field's time t): draw with it from now on, and return a snapshot
        of the newest weights redrawn with it at once (None before the first picture)."""
        self.trainer.view_options[name] = value
        self.ctx["options"] = dict(self.trainer.view_options)
        with self._lock:
            latest = self.latest
        if latest is None or "traces" not in latest:
            return None
        with self.trainer.newest() as (model, _):
            if model is None:
                return None
            snap = self.trainer.snapshot(model, with_metrics=False, step=latest["step"], elapsed=latest["time"])
        snap = dict(latest, traces=snap["traces"])
        with self._lock:
            self.latest = snap
            self.seq += 1
        return snap

    # ---- snapshots --------------------------------------------------------
    def _initial_snapshot(self) -> None:
        try:
            if self.pictures:
                snap = self.trainer.snapshot(self.trainer.initial_model(), with_metrics=False, step=0, elapsed=0.0)
            else:
                snap = {"step": 0, "time": 0.0}
        except Exception as e:  # noqa: BLE001 - shown in the status line
            snap = {"step": 0, "time": 0.0, "error": f"{type(e).__name__}: {e}"}
        snap.setdefault("final", False)
        snap["status"] = self.trainer.status
        self._attach_true_score(snap)
        with self._lock:
            if self.latest is None:  # training may already have sent a newer one
                self._store(snap)

    def _on_snapshot(self, snap: dict) -> None:
        self._attach_true_score(snap)  # outside the lock: a new level takes a grid of exact scores
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

    def _attach_true_score(self, snap: dict) -> None:
        """snap["true_score_field"]: the data's exact score on the plane grid at the (alpha, sigma)
        of the field the model drew (traces' "field_level"), cached per level."""
        level = (snap.get("traces") or {}).get("field_level")
        if level is None or not getattr(self.dataset, "has_score", False) or tuple(self.dataset.shape) != (2,):
            return
        key = tuple(round(float(v), 6) for v in np.asarray(level).reshape(-1)[:2])
        if len(key) != 2 or not all(np.isfinite(key)) or key[0] <= 0 or key[1] < 0:
            return
        cache = self._true_scores
        if key not in cache:
            if len(cache) >= 16:  # a slider sweeps levels: keep the memory bounded
                cache.clear()
            from core.data.toy2d import plane_grid

            grid = plane_grid(self.dataset.bounds, self.ctx.get("grid_resolution", GRID_RESOLUTION), torch.float64)[0]
            try:
                cache[key] = self.dataset.path_score(grid, *key).numpy().astype(np.float32)
            except (NotImplementedError, ValueError):
                cache[key] = None
        if cache[key] is not None:
            snap["true_score_field"] = cache[key]

    def snapshot_now(self) -> tuple[int, dict | None]:
        with self._lock:
            return self.seq, self.latest

    def record(self) -> "RunRecord":
        return RunRecord(self.label, self.family, self.model_name, self.dataset_name, self.trainer.status,
                         self.step, thin(self.trainer.history, MAX_HISTORY_POINTS),
                         thin(self.trainer.metric_history, MAX_HISTORY_POINTS), self.kl_note)

    def export_model(self):
        """A copy of the newest weights that is safe to save while training goes on."""
        with self.trainer.newest() as (model, _):
            return copy.deepcopy(model if model is not None and self._started else self.model)


class RunRecord:
    """What Compare keeps of a finished run: its curves, not its weights."""

    def __init__(self, label, family, model_name, dataset_name, status, step, history, metric_history, kl_note=""):
        self.label, self.family, self.model_name, self.dataset_name = label, family, model_name, dataset_name
        self.status, self.step = status, step
        self.history, self.metric_history, self.kl_note = history, metric_history, kl_note
