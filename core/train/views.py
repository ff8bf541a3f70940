"""The pictures and metrics of a background run, each on a thread of its own.

The run's reports carry the weights (core.train.runner); the trainer loads
them into a spare copy of the model and asks for a picture of it here. A
picture is drawn from the newest copy; a copy that waits is replaced by a
newer one, never queued. Metrics evaluate the newest model drawn (the initial
model at step 0 before the first picture) at a steady cadence,
core.train.budget.METRICS_EVERY seconds, each evaluation within its share of
that: one that overran is followed by one on fewer samples (its record's "n"
says how many), rather than by a longer wait. Closing the views stops a
picture or an evaluation under way within one network pass. On Linux both
threads run at a lower priority than training.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

from .budget import METRICS_EVERY, METRICS_SECONDS, PICTURE_SECONDS, Cadence, Limit, OutOfTime, limited

VIEW_NICE = 10  # how much lower the views' threads run than training (Linux nice levels)


def lower_priority(level: int) -> None:
    """Run this thread (and the threads it starts, which inherit it) at nice `level`, unless it
    already runs lower. On Linux nice is per thread; elsewhere it would lower the whole process,
    so it is left alone there."""
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            if os.getpriority(os.PRIO_PROCESS, tid) < level:
                os.setpriority(os.PRIO_PROCESS, tid, level)
        except OSError:  # not permitted here: normal priority
            pass


def yield_to_training() -> None:
    """Lower this thread's CPU priority, so that drawing takes what training leaves."""
    lower_priority(VIEW_NICE)


class Views:
    """Pictures and metrics of a background run, each on a thread of its own.

    A picture is drawn from the newest copy of the weights; a copy that waits
    is replaced by a newer one, never queued. After a picture that took d
    seconds the next waits trainer.PICTURE_REST * d, so drawing takes a bounded
    share of the machine however heavy the family's traces are. Metrics
    evaluate the newest copy drawn every `metrics_interval` seconds (a
    budget.Cadence: each evaluation within METRICS_SHARE of that, on fewer
    samples when it would take longer). close() stops the work under way
    (a stale picture, an evaluation) within one network pass; the final
    picture and metrics asked for before it are still drawn.

    clock and wait (an Event and a timeout, returning whether it was set) are
    time.perf_counter and threading.Event.wait; a test may pass a fake clock.
    """

    WATCH_POLL = 0.25  # seconds between looks at watched() while nobody watches

    def __init__(self, trainer, callback: Callable[[dict], None], metrics_interval: float = METRICS_EVERY,
                 watched: Callable[[], bool] | None = None, clock: Callable[[], float] = time.perf_counter,
                 wait: Callable[[threading.Event, float | None], bool] = threading.Event.wait):
        self.trainer, self.callback, self.metrics_interval = trainer, callback, metrics_interval
        self.watched = watched or (lambda: True)
        self.clock, self._wait = clock, wait
        self.evaluations = 0  # metric evaluations so far
        self.polls = 0  # wake-ups of the metrics thread: it must sleep while there is nothing new
        self.cadence = Cadence(trainer.scoring.n_eval, every=metrics_interval)
        trainer.scoring.wait_for_classifier = False  # a first point now, the classifier's numbers once it is ready
        self._pending = None
        self._cv = threading.Condition()
        self._closed = False
        self._cancel = threading.Event()  # set by close(): the work under way stops
        self._rest_until = 0.0
        self._metrics_wake = threading.Event()
        self._metrics_end: str | None = None  # "final" (evaluate once more) or "stop"
        self._pictures = threading.Thread(target=self._draw, daemon=True)
        self._metrics = threading.Thread(target=self._evaluate, daemon=True)
        self._pictures.start()
        self._metrics.start()

    def request(self, model, step: int, elapsed: float, final: bool = False, with_metrics: bool = True,
                draw: bool = True) -> None:
        """Draw `model` (the newest copy; a stale one waiting is replaced). draw False: the final
        report carries no picture (a run stopped where nobody will see it: the last one stays)."""
        with self._cv:
            self._pending = (model, step, elapsed, final, with_metrics, draw)  # replaces a stale request
            self._cv.notify()

    def close(self) -> None:
        """No more requests: the picture or evaluation under way stops within a network pass; a
        final picture already asked for is drawn, and its metrics evaluated if it asked for them."""
        with self._cv:
            self._closed = True
            self._cancel.set()
            self._cv.notify()
        self._metrics_wake.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in (self._pictures, self._metrics):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not (self._pictures.is_alive() or self._metrics.is_alive())

    def _draw(self) -> None:
        yield_to_training()
        trainer = self.trainer
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._pending is None:
                    break
                final = self._pending[3]
                if not final and not self.watched():
                    # nobody looks: keep only the newest copy, and look again in a while
                    self._cv.wait(self.WATCH_POLL)
                    continue
            if not final:
                time.sleep(max(0.0, min(self._rest_until - time.perf_counter(), 1.0)))
            with self._cv:  # a newer copy may have come while resting
                model, step, elapsed, final, with_metrics, draw = self._pending
                self._pending = None
            t0 = time.perf_counter()
            if draw:
                snap = self._picture(model, step, elapsed, final)
                if snap is None:
                    continue  # closed while drawing a stale copy: the final one comes next
            else:
                snap = {"step": step, "time": elapsed}
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

    def _picture(self, model, step: int, elapsed: float, final: bool) -> dict | None:
        """The snapshot of `model` (its traces), published as the newest copy drawn; None if a
        stale copy was cancelled by close()."""
        trainer = self.trainer
        model = trainer._materialize(model)
        limit = Limit(PICTURE_SECONDS, None if final else self._cancel, "the picture", self.clock)
        try:
            with limited(model, limit):
                snap = trainer.snapshot(model, with_metrics=False, step=step, elapsed=elapsed)
        except OutOfTime as e:
            if self._cancel.is_set() and not final:
                return None
            snap = {"step": step, "time": elapsed, "error": f"{e}; the panels show the last picture drawn"}
        except Exception as e:  # noqa: BLE001 - a view failing must not stop training
            snap = {"step": step, "time": elapsed, "error": f"{type(e).__name__}: {e}"}
        trainer._publish(model, (step, elapsed))
        return snap

    def _evaluate(self) -> None:
        yield_to_training()
        trainer, cadence, done, wait = self.trainer, self.cadence, None, 0.0
        while True:
            self._wait(self._metrics_wake, wait)
            self._metrics_wake.clear()
            self.polls += 1
            end = self._metrics_end
            if end == "stop":
                return
            if not end and not self.watched():
                wait = self.WATCH_POLL
                continue
            with trainer.newest() as (model, at):
                if model is None and done is None and not end and not self._cancel.is_set():
                    model, at = self._initial(), (0, 0.0)  # a first point before the first picture
                fresh = model is not None and at != done
                if fresh and (end or self.clock() >= cadence.due):
                    if self._score(model, at, final=end == "final"):
                        done = at
                    fresh = model is not None and at != done
            if end == "final":
                return
            # Nothing new since the last evaluation (a paused run, a queued one): sleep until the
            # pictures bring a newer copy (they set the wake event), not in a loop of zero waits.
            wait = max(0.0, cadence.due - self.clock()) if fresh else None

    def _initial(self):
        """The model at step 0 (None if it cannot be built: the first picture's copy serves then)."""
        try:
            return self.trainer.initial_model()
        except Exception:  # noqa: BLE001
            return None

    def _score(self, model, at: tuple[int, float], final: bool) -> bool:
        """Evaluate `model` on the cadence's count of samples and record it; False if stopped
        before a record (closed, or out of time on more than the fewest samples)."""
        trainer, cadence = self.trainer, self.cadence
        step, elapsed = at
        n = cadence.n
        t0 = self.clock()
        limit = Limit(METRICS_SECONDS, None if final else self._cancel, "one evaluation of the metrics", self.clock)
        try:
            with limited(model, limit):
                m = trainer.evaluate(n=n, model=model)
        except OutOfTime as e:
            cadence.done(t0, self.clock())
            if (self._cancel.is_set() and not final) or n > cadence.levels[-1]:
                return False  # closed; or the next, on fewer samples, may fit
            m = {"error": f"{e} even on {n} samples; the metrics of this model take too long here"}
        except Exception as e:  # noqa: BLE001 - a metric failing must not stop the pictures
            m = {"error": f"{type(e).__name__}: {e}"}
            cadence.failed(t0)
        else:
            cadence.done(t0, self.clock())
        trainer.latest_metrics = {"step": step, "time": round(elapsed, 4), "n": n, **m}
        trainer.metric_history.append(trainer.latest_metrics)
        self.evaluations += 1
        if "error" not in m:
            self._floors(n)
        return True

    def _floors(self, n: int) -> None:
        """The noise floors at n samples, once per size (what a perfect model scores there), for the
        charts; their time is charged to the cadence like an evaluation's."""
        if self.trainer.floors(n, compute=False):
            return
        t0 = self.clock()
        try:
            self.trainer.floors(n)
        except Exception:  # noqa: BLE001 - the charts then go without their floor line
            pass
        t1 = self.clock()
        self.cadence.due = max(self.cadence.due, t1 + (t1 - t0) * (1 / self.cadence.share - 1))
