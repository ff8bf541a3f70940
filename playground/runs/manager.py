"""What sessions share: how many runs train at once, which tabs are gone, and the time
the server spends on pictures.

`RunManager` (one per process) caps the runs training at the same time
(PLAYGROUND_MAX_RUNS; the default comes from the machine, `default_max_runs`).
A run over the cap waits in a FIFO queue and starts by itself when a slot
frees; a paused run gives its slot back.

A tab that closes (Gradio's unload) is closed here at once: its run stops
whether it trains, waits, is paused or was stepped, and what it held is freed.
A request that still arrives for it afterwards (a late Play) is refused, so no
run is left that nobody owns.

Pictures share a budget: `redraw_interval` spreads PICTURE_BUDGET of one core
over the sessions being watched, so thirty tabs get fewer redraws each rather
than buttons that wait behind pictures.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """The cores this process may run on (its affinity, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_max_runs(cores: int | None = None, gpus: int | None = None) -> int:
    """How many runs train at once when PLAYGROUND_MAX_RUNS does not say.

    On the CPU each run's training process takes a core, and one core is left to the
    page (pictures, metrics, every button): cores - 1, at least 1. With GPUs a run
    mostly waits on its GPU, which a small model leaves nearly idle, but still needs a
    core to feed it: 8 runs per GPU, at most one per core (and at least 2).
    """
    cores = cpu_count() if cores is None else cores
    if gpus is None:
        try:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except Exception:  # noqa: BLE001 - no usable CUDA: count none
            gpus = 0
    if gpus > 0:
        return max(2, min(cores, 8 * gpus))
    return max(1, cores - 1)


def max_runs_from_env() -> int:
    value = os.environ.get("PLAYGROUND_MAX_RUNS", "").strip()
    if not value:
        return default_max_runs()
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"PLAYGROUND_MAX_RUNS must be a whole number of runs, got {value!r}") from None
    if n < 1:
        raise ValueError(f"PLAYGROUND_MAX_RUNS must be at least 1, got {n}")
    return n


PICTURE_BUDGET = 0.5  # of one core, for every session's redraws together
WATCHED_SECONDS = 5.0  # a session that asked for a picture this recently is being watched
CLOSED_KEPT = 10_000  # closed tabs remembered, to refuse their late requests


class RunManager:
    """Caps the runs training at the same time; the rest wait in order."""

    def __init__(self, max_runs: int | None = None):
        if max_runs is None:
            max_runs = max_runs_from_env()
        if max_runs < 1:
            raise ValueError(f"PLAYGROUND_MAX_RUNS must be at least 1, got {max_runs}")
        self.max_runs = max_runs
        self._lock = threading.RLock()
        self._active: list[Run] = []
        self._waiting: list[Run] = []
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()  # every live run, to stop them at exit
        self._sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # owner -> Session
        self._closed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._watched: dict[str, float] = {}  # owner -> when it last asked for a picture
        self._redraw_cost = 0.05  # seconds of CPU per redraw, a running average
        # A run promoted from the queue starts on this one thread, in the order promoted, not on
        # the request (a Pause, a Reset, a closed tab) that freed its slot: starting a run packs
        # its model for the child and starts its threads, which is not that request's work.
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promote")
        self._shutting_down = False
        atexit.register(self.shutdown)

    # ---- sessions ---------------------------------------------------------------
    def attach(self, owner: str, session) -> bool:
        """`session` speaks for the tab `owner`; False if that tab has already closed."""
        if not owner:
            return True
        with self._lock:
            if owner in self._closed:
                return False
            self._sessions[owner] = session
            return True

    def is_closed(self, owner: str) -> bool:
        with self._lock:
            return bool(owner) and owner in self._closed

    def close_owner(self, owner: str) -> int:
        """The tab `owner` is gone: close its session (its run stops, whatever its state, and what
        it held is freed) and refuse its later requests. Returns how many runs were stopped."""
        if not owner:
            return 0
        with self._lock:
            self._closed[owner] = time.monotonic()
            while len(self._closed) > CLOSED_KEPT:
                self._closed.popitem(last=False)
            session = self._sessions.pop(owner, None)
            self._watched.pop(owner, None)
        stopped = self.release_owner(owner)
        if session is not None:
            stopped = max(stopped, session.close())
        return stopped

    # ---- the picture budget -----------------------------------------------------
    def watching(self, owner: str) -> None:
        """`owner`'s page asked for a picture now."""
        with self._lock:
            self._watched[owner] = time.monotonic()

    def unwatched(self, owner: str) -> None:
        """`owner`'s page is hidden (a background tab)."""
        with self._lock:
            self._watched.pop(owner, None)

    def watched_sessions(self) -> int:
        now = time.monotonic()
        with self._lock:
            for owner in [o for o, t in self._watched.items() if now - t > WATCHED_SECONDS]:
                del self._watched[owner]
            return len(self._watched)

    def redrawn(self, seconds: float) -> None:
        """One redraw took `seconds` of CPU: the running average the budget divides."""
        self._redraw_cost = 0.9 * self._redraw_cost + 0.1 * max(0.0, seconds)

    def redraw_interval(self, period: float) -> float:
        """The shortest time between two redraws of one session: its timer's period, or longer
        when the watched sessions together would spend more than PICTURE_BUDGET of a core."""
        return max(period, self.watched_sessions() * self._redraw_cost / PICTURE_BUDGET)

    def picture_rest(self, base: float) -> float:
        """How long a run's picture thread rests after a picture, in multiples of its duration:
        `base` with few runs watched, more when many share the page's core."""
        watched = max(1, min(self.watched_sessions(), self.max_runs))
        return max(base, watched / PICTURE_BUDGET - 1.0)

    def track(self, run: "Run") -> None:
        with self._lock:
            self._runs.add(run)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every run and let its last snapshot finish (a thread killed inside torch aborts the process)."""
        with self._lock:
            self._shutting_down = True  # no run is promoted while every run stops
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
            while self._waiting and len(self._active) < self.max_runs and not self._shutting_down:
                nxt = self._waiting.pop(0)
                self._active.append(nxt)
                promoted.append(nxt)
        for nxt in promoted:  # outside the lock: starting a run takes its own lock
            self._starter.submit(self._grant, nxt)

    def _grant(self, run: "Run") -> None:
        try:
            run.granted()
        except Exception as e:  # noqa: BLE001 - the run says why in its status line; the slot moves on
            log.exception("a run promoted from the queue could not start")
            could_not_start = getattr(run, "could_not_start", None)
            if could_not_start is not None:
                could_not_start(e)
            self.release(run)

    def position(self, run: "Run") -> int:
        """1-based place in the queue; 0 when not waiting."""
        with self._lock:
            return self._waiting.index(run) + 1 if run in self._waiting else 0

    def holds_slot(self, run: "Run") -> bool:
        with self._lock:
            return run in self._active

    def release_owner(self, owner: str) -> int:
        """Stop every run of `owner`, training, waiting, paused or stepped; returns how many were
        still going (not finished, not already stopped)."""
        with self._lock:
            runs = [r for r in dict.fromkeys(self._active + self._waiting + list(self._runs)) if r.owner == owner]
        going = [r for r in runs if not getattr(r, "finished", False)]
        for r in runs:
            r.stop()
        return len(going)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)
