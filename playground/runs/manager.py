"""The one thing shared between sessions: how many runs train at once.

`RunManager` (one per process) caps the runs training at the same time
(PLAYGROUND_MAX_RUNS, default 4). A run over the cap waits in a FIFO queue and
starts by itself when a slot frees; a paused run gives its slot back.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run


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
