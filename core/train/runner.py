"""The one run loop, fed by commands: headless training, a thread and a child process all run it.

    runner = Runner(engine, steps, log_every)
    runner.run(inbox, report, report_every)   # until `steps`, ("stop",), divergence or an error

Commands, as tuples: ("pause",), ("resume",), ("step", n) (n more steps while
paused), ("set", name, value) (a live setting), ("stop",). An inbox has
`poll(timeout) -> command | None`. Every `report_every` seconds, and whenever
a paused run has something new, `report(message)` gets a dict:

    step, elapsed (training seconds, pauses excluded), history (the loss records
    since the last report), status, message, lrs (each phase's learning rate),
    final (the last report), state (the weights the pictures use, as
    numpy arrays: core.train.transports.to_wire), view_state (the model's)

History records are the mean loss terms since the previous record, taken
every `log_every` steps (and after every step while paused), each with its
step and elapsed time.
"""

from __future__ import annotations

import time
from typing import Callable

from ..errors import TrainingDiverged
from ..model import VIEW_STATE_MAX_ELEMENTS
from .engine import Engine

FINISHED = ("done", "stopped", "diverged", "error")


class Runner:
    def __init__(self, engine: Engine, steps: int, log_every: int = 10,
                 on_record: Callable[[dict], None] | None = None, history: list | None = None):
        self.engine, self.steps, self.log_every = engine, int(steps), max(1, int(log_every))
        self.on_record = on_record
        self.history = [] if history is None else history
        self.elapsed = 0.0
        self.status, self.message = "ready", ""
        self._sent = len(self.history)
        self._single = 0
        self._stopped = False

    # ---- commands ---------------------------------------------------------------
    def obey(self, command) -> None:
        name, *args = command
        if name == "pause":
            self.status = "paused"
        elif name == "resume":
            self.status, self._single = "running", 0
        elif name == "step":
            self._single += int(args[0])
        elif name == "set":
            self.engine.set_live(*args)
        elif name == "stop":
            self._stopped = True
        else:
            raise ValueError(f"unknown command {name!r}")

    # ---- records ------------------------------------------------------------------
    def record(self) -> None:
        """Read the engine's terms since the last record (one device read) and keep them."""
        means = self.engine.check()
        if means is not None:
            rec = {"step": self.engine.step_count, "time": round(self.elapsed, 4), **means}
            self.history.append(rec)
            if self.on_record:
                self.on_record(rec)

    def message_for(self, final: bool = False) -> dict:
        """A report: what happened since the last one, and the weights to draw."""
        view_state = {k: v.detach() for k, v in self.engine.model.view_state().items()}
        size = sum(v.numel() for v in view_state.values())
        if size > VIEW_STATE_MAX_ELEMENTS:
            raise ValueError(f"{type(self.engine.model).__name__}.view_state() holds {size} numbers; "
                             f"at most {VIEW_STATE_MAX_ELEMENTS} travel with each picture")
        from .transports import to_wire

        msg = {"step": self.engine.step_count, "elapsed": self.elapsed, "history": self.history[self._sent:],
               "status": self.status, "message": self.message, "lrs": self.engine.learning_rates(), "final": final,
               "state": to_wire(self.engine.view_weights()), "view_state": to_wire(view_state)}
        self._sent = len(self.history)
        return msg

    # ---- the loop -------------------------------------------------------------------
    def run(self, inbox=None, report: Callable[[dict], None] | None = None, report_every: float = 0.2,
            paused: bool = False, raise_divergence: bool = False, stop_if: Callable[[], bool] | None = None) -> str:
        """Train until the step target, a stop, divergence or an error; returns the final status.

        inbox None: nothing to obey (headless). report None: nothing is reported.
        raise_divergence: re-raise TrainingDiverged (headless callers want it).
        stop_if: checked every step (a reader that is gone).
        """
        engine = self.engine
        self.status = "paused" if paused else "running"
        last_report, dirty = 0.0, True
        try:
            while not self._stopped and engine.step_count < self.steps and not (stop_if and stop_if()):
                if inbox is not None:
                    wait = 0.05 if self.status == "paused" and self._single <= 0 else 0.0
                    while (command := inbox.poll(wait)) is not None:
                        self.obey(command)
                        dirty, wait = True, 0.0  # a live setting: the next report carries it
                    if self._stopped:
                        break
                if self.status == "paused":
                    if self._single <= 0:
                        if dirty and report is not None:
                            self.record()
                            report(self.message_for())
                            last_report, dirty = time.perf_counter(), False
                        continue
                    self._single -= 1
                t0 = time.perf_counter()
                engine.step()
                self.elapsed += time.perf_counter() - t0
                dirty = True
                if engine.step_count % self.log_every == 0 or engine.step_count == self.steps \
                        or self.status == "paused":
                    self.record()
                if report is not None and time.perf_counter() - last_report >= report_every:
                    self.record()
                    report(self.message_for())
                    last_report = time.perf_counter()
            self.record()
            self.status = "stopped" if self._stopped or (stop_if and stop_if()) else "done"
        except TrainingDiverged:
            self.status, self.message = "diverged", engine.message
            if raise_divergence:
                raise
        except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
            self.status = "error"
            self.message = f"Training stopped at step {engine.step_count}: {type(e).__name__}: {e}"
            if raise_divergence:
                raise
        finally:
            if report is not None:
                report(self._final_message())
        return self.status

    def _final_message(self) -> dict:
        """The last report; without weights if they cannot be sent (the error says why)."""
        try:
            return self.message_for(final=True)
        except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
            if self.status not in ("error", "diverged"):
                self.status = "error"
                self.message = f"Training stopped at step {self.engine.step_count}: {type(e).__name__}: {e}"
            return {"step": self.engine.step_count, "elapsed": self.elapsed, "history": self.history[self._sent:],
                    "status": self.status, "message": self.message, "lrs": {}, "final": True}
