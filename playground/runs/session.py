"""What one browser tab holds in gr.State: the current run, the finished ones, uploads.

Finished runs are kept as light `RunRecord`s (their curves, not their
weights) for the Compare tab. Nothing here imports Gradio; the app turns
these objects into pages.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import threading
import time

from core import registry
from core.data.base import Dataset
from core.errors import DataError, PlaygroundError

from .browser import BrowserLoad
from .manager import RunManager
from .run import Run, RunRecord

MAX_RECORDS = 10  # finished runs a session keeps for Compare
NOTE_SECONDS = 6.0  # how long a note (a live knob applied, a refusal) stays in the status line
WATCHED_SECONDS = 10.0  # a tab that has asked for nothing for this long is not being looked at
CLOSED_MESSAGE = ("This page lost its connection to the server, so its run was stopped and its "
                  "slot given to others. Reload the page to start again.")


_SHARED_DATASETS: dict[str, Dataset] = {}
_SHARED_LOCK = threading.Lock()


def shared_dataset(name: str) -> Dataset:
    """The built-in dataset `name`, one object for every session of this process: a dataset is
    never changed once made, and it keeps its recent seeded draws (core.data.base.Dataset._kept),
    so thirty sessions resetting on two moons draw its training set once."""
    with _SHARED_LOCK:
        dataset = _SHARED_DATASETS.get(name)
    if dataset is None:
        made = registry.load_dataset(name)  # outside the lock: MNIST takes seconds to read
        with _SHARED_LOCK:
            dataset = _SHARED_DATASETS.setdefault(name, made)
    return dataset


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
        self._contexts: dict = {}  # the last view context (true density on the grid), reused by Reset
        self._tmpdir: str | None = None
        self.closed = False
        self.visible = True  # the page is in a foreground tab
        self.last_seen = time.monotonic()  # when the page last asked for anything
        # A client of the API (a script, the load test's students) is shown no pictures: its run
        # draws none and evaluates no metrics between its first and last (Run.watched). A tab's
        # page asks for them with its timer; a session built in code is watched while it is used.
        self.api_only = False
        self.paged = False  # a page was loaded for this session (its tab's timer asks for pictures)
        self.last_redraw = -1e9  # when the page was last sent pictures
        self.browser = BrowserLoad()  # what a picture costs the tab's own browser
        self.redraw_period = 0.15  # the redraw period the person picked, in seconds
        self.timer_period = 0.15  # what the page's timer ticks at now (handlers.tick sets it)
        self.timer_mode = "busy"  # the page's "pace": "busy" redraws at each tick, "still" asks the pulse first
        self.lively_until = 0.0  # until then the page ticks at its pace though its run stands still
        self.replaying = False  # the panels show a recorded picture (the replay slider), not the newest
        self.compare_labels: tuple = ()  # the runs Compare lists, and what its chart last drew
        self.compare_drawn: tuple = ()
        self.generation = 0  # counts the changes of configuration: a redraw begun before one is dropped
        self._turns = threading.Condition()
        self._next_ticket = itertools.count()
        self._serving = 0
        self._holder: int | None = None  # the thread whose change is being made

    # ---- one change at a time ------------------------------------------------
    @contextlib.contextmanager
    def turn(self):
        """Changes of configuration (family, model, data, knobs, Play, Reset) one at a time, in the
        order they arrive. Gradio runs a tab's events side by side; two quick changes would otherwise
        build runs over each other, and the one that finished last would win, whatever was clicked last."""
        me = threading.get_ident()
        if self._holder == me:  # a change made of changes (a link that names a preset)
            yield
            return
        with self._turns:
            ticket = next(self._next_ticket)
            while self._serving != ticket:
                self._turns.wait()
            self._holder = me
        try:
            yield
        finally:
            with self._turns:
                self._holder = None
                self._serving += 1
                self._turns.notify_all()

    def changing(self) -> bool:
        """A change of configuration is being made or waits."""
        with self._turns:
            return self._holder is not None

    # ---- who is looking -------------------------------------------------------
    def seen(self, visible: bool | None = None) -> None:
        """The page asked for something now (visible: whether its tab is in the foreground)."""
        self.last_seen = time.monotonic()
        if visible is not None:
            self.visible = bool(visible)

    def api_call(self) -> None:
        """A request came through the API. Until a page loads for this session (Gradio's load event
        of a tab), nobody can see its pictures."""
        if not self.paged:
            self.api_only = True

    def page_loaded(self) -> None:
        self.paged, self.api_only = True, False

    def watched(self) -> bool:
        """Someone is looking at this tab's pictures: it is open, in the foreground and asking (a
        client of the API never is)."""
        return not self.closed and not self.api_only and self.visible and \
            time.monotonic() - self.last_seen < WATCHED_SECONDS

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
        """A built-in dataset or one this session uploaded or drew; never a path on the server
        (the CLI reads files by path, a page or a script through the API uploads them)."""
        if name in self.uploads:
            return self.uploads[name]
        if name not in registry.dataset_names():
            own = f", or this page's own: {', '.join(self.uploads)}" if self.uploads else ""
            raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(registry.dataset_names())}{own}, "
                            "or upload a .csv/.npy file of points")
        return shared_dataset(name)  # loaded once per process: Reset on MNIST (seconds to read) is instant

    def new_run(self, model_name: str, dataset_name: str, model_settings: dict | None = None,
                train_settings: dict | None = None) -> Run:
        """Stop the current run (keeping its curves) and build a fresh one, not yet training."""
        if self.closed:
            raise PlaygroundError(CLOSED_MESSAGE)
        dataset = self.dataset(dataset_name)
        registry.check_fits(model_name, dataset.shape)  # refused before the run there is now is stopped
        self.retire()  # first, so the old run's thread is not competing while the new one is built
        label = f"{model_name}@{dataset_name}#{next(self._counter)}"
        self.seen()
        self.current = run = Run(label, model_name, dataset_name, dataset, model_settings, train_settings,
                                 manager=self.manager, owner=self.owner, device=self.device,
                                 context_cache=self._contexts, watched=self.watched, pictures=not self.api_only)
        self.shown_seq = self.shown_history = self.shown_metrics = -1
        self.shown_status = ""
        self.replaying = False
        self.generation += 1
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

    def close(self) -> int:
        """The tab is gone: stop its run, whatever its state, and free what it held. Later
        requests of this tab are refused (CLOSED_MESSAGE). Returns 1 if a run was still going."""
        self.closed = True
        self.chain = []
        going = 0
        if self.current is not None:
            going = int(not self.current.finished)
            self.current.stop()
        self.current = None
        self.records.clear()
        self.uploads.clear()
        self._contexts.clear()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        return going
