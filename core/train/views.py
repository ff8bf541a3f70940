"""The pictures and metrics of a background run, each on a thread of its own.

The run's reports carry the weights (core.train.runner); the trainer loads
them into a spare copy of the model and asks for a picture of it here. A
picture is drawn from the newest copy; a copy that waits is replaced by a
newer one, never queued. Metrics evaluate the newest model drawn, at a
cadence bounded by their own cost, so a quadratic metric on a small CPU slows
neither pictures nor training much. On Linux both threads run at a lower
priority than training.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

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


class Views:
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

    WATCH_POLL = 0.25  # seconds between looks at watched() while nobody watches

    def __init__(self, trainer, callback: Callable[[dict], None], metrics_interval: float,
                 watched: Callable[[], bool] | None = None):
        self.trainer, self.callback, self.metrics_interval = trainer, callback, metrics_interval
        self.watched = watched or (lambda: True)
        self.evaluations = 0  # metric evaluations so far
        self.polls = 0  # wake-ups of the metrics thread: it must sleep while there is nothing new
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
                if not final and not self.watched():
                    # nobody looks: keep only the newest copy, and look again in a while
                    self._cv.wait(self.WATCH_POLL)
                    continue
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
        try:
            trainer.floors()  # once per run: what a perfect model would score, for the charts
        except Exception:  # noqa: BLE001 - the charts then go without their floor line
            pass
        while True:
            self._metrics_wake.wait(wait)
            self._metrics_wake.clear()
            self.polls += 1
            end = self._metrics_end
            if end == "stop":
                return
            if not end and not self.watched():
                wait = self.WATCH_POLL
                continue
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
                    self.evaluations += 1
                    t1 = time.perf_counter()
                    self._next_eval = max(t0 + self.metrics_interval, t1 + self.METRICS_REST * (t1 - t0))
                fresh = model is not None and at != done
            if end == "final":
                return
            # Nothing new since the last evaluation (a paused run, a queued one): sleep until the
            # pictures bring a newer copy (they set the wake event), not in a loop of zero waits.
            wait = max(0.0, self._next_eval - time.perf_counter()) if fresh else None

    _next_eval = 0.0
