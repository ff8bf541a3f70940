"""The one run loop, fed by commands: headless training, a thread and a child process all run it.

    runner = Runner(engine, steps, log_every)
    runner.run(inbox, report, report_every)   # until `steps`, ("stop",), divergence or an error

Commands, as tuples: ("pause",), ("resume",), ("step", n) (n more steps while
paused), ("step", n, phase) (n more steps of that phase alone, as GAN Lab steps
the discriminator or the generator: core.train.engine.Engine.step), ("set",
name, value) (a live setting; ("set", "pace", v) among them), ("park",) (a
paused run with no steps left to take ends with the status "parked", and no
final report: its process packs its state and a new one resumes it later, see
core.train.transports.ProcessTransport), ("stop",). An
inbox has `poll(timeout) -> command | None`. Every `report_every` seconds, and
whenever a paused run has something new, `report(message)` gets a dict:

    step, elapsed (training seconds, pauses excluded), history (the loss records
    since the last report), status, message, lrs (each phase's learning rate),
    final (the last report), state (the weights the pictures use, as
    numpy arrays: core.train.transports.to_wire), view_state (the model's)

History records are the mean loss terms since the previous record, taken
every `log_every` steps (and after every step while paused), each with its
step and elapsed time.

Pace (cfg.pace, steps per second; 0 is full speed) slows a running run for a
class to watch: a step starts no sooner than 1/pace after the one before, and
the wait is slept in slices of at most PACE_SLICE, polling the inbox between
them, so Pause, Step and Stop answer at once. Steps asked for while paused do
not wait. The wait is not training time (elapsed leaves it out). A pace slow
enough that a step takes at least a report's interval records and reports
after every step, so each picture shows one more step. `clock` and `sleep`
are the Runner's time (a test gives fake ones).
"""

from __future__ import annotations

import collections
import time
from typing import Callable

from ..errors import TrainingDiverged
from ..model import VIEW_STATE_MAX_ELEMENTS
from .engine import Engine

FINISHED = ("done", "stopped", "diverged", "error")
PACE_SLICE = 0.02  # seconds: the longest a paced run sleeps before it looks at its commands again


class Runner:
    def __init__(self, engine: Engine, steps: int, log_every: int = 10,
                 on_record: Callable[[dict], None] | None = None, history: list | None = None,
                 clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep):
        self.engine, self.steps, self.log_every = engine, int(steps), max(1, int(log_every))
        self.on_record = on_record
        self.history = [] if history is None else history
        self.clock, self.sleep = clock, sleep
        self.elapsed = 0.0
        self.status, self.message = "ready", ""
        self._sent = len(self.history)
        self._singles: collections.deque[list] = collections.deque()  # [phase or None, steps] asked while paused
        self._stopped = False
        self._park = False  # asked to park: end once paused with no steps left to take
        self._last_start: float | None = None  # when the last step began (the clock's time), for the pace
        self.pacing = False  # in a pace's wait between two steps

    @property
    def pace(self) -> float:
        return float(getattr(self.engine.cfg, "pace", 0.0) or 0.0)

    def every_step_reported(self, report_every: float) -> bool:
        """A pace slow enough that a step takes at least a report's interval: each step is reported."""
        return self.pace > 0 and 1.0 / self.pace >= report_every

    def pace_due_in(self) -> float:
        """Seconds until the next step is due at the pace (0: now); a chunk's state keeps it."""
        if self.pace <= 0 or self._last_start is None:
            return 0.0
        return max(0.0, self._last_start + 1.0 / self.pace - self.clock())

    def resume_pace(self, due_in: float) -> None:
        """The next step is due in `due_in` seconds (pace_due_in of the run this one resumes)."""
        if self.pace > 0 and due_in > 0:
            self._last_start = self.clock() + due_in - 1.0 / self.pace

    @property
    def _single(self) -> int:
        """Steps still to take while paused."""
        return sum(n for _, n in self._singles)

    def _take_single(self) -> str | None:
        """The phase of the next step asked for while paused (None: every phase)."""
        head = self._singles[0]
        head[1] -= 1
        if head[1] <= 0:
            self._singles.popleft()
        return head[0]

    # ---- commands ---------------------------------------------------------------
    def obey(self, command) -> None:
        name, *args = command
        if name == "pause":
            self.status = "paused"
        elif name == "resume":
            self.status = "running"
            self._singles.clear()
        elif name == "step":
            phase = args[1] if len(args) > 1 else None
            if phase is not None:
                self.engine.check_phase(phase)
            if int(args[0]) > 0:
                self._singles.append([phase, int(args[0])])
        elif name == "set":
            self.engine.set_live(*args)
        elif name == "stop":
            self._stopped = True
        elif name == "park":
            self._park = True
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
                phase = None
                if self.status == "paused":
                    if self._single <= 0:
                        if dirty and report is not None:
                            self.record()
                            report(self.message_for())
                            last_report, dirty = self.clock(), False
                        if self._park:
                            self.status = "parked"
                            return self.status
                        continue
                    phase = self._take_single()
                elif self._wait_for_pace(inbox, stop_if):
                    continue  # a command came meanwhile (a pause, a stop): the loop looks at it first
                t0 = self._last_start = self.clock()
                engine.step(phase)
                self.elapsed += self.clock() - t0
                dirty = True
                each = self.every_step_reported(report_every)
                if engine.step_count % self.log_every == 0 or engine.step_count == self.steps \
                        or self.status == "paused" or each:
                    self.record()
                if report is not None and (each or self.clock() - last_report >= report_every):
                    self.record()
                    report(self.message_for())
                    last_report = self.clock()
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
            if report is not None and self.status != "parked":
                report(self._final_message())
        return self.status

    def _wait_for_pace(self, inbox, stop_if) -> bool:
        """Sleep until the next step is due at the pace, answering commands between slices;
        True if a command (or stop_if) interrupted the wait, which the next call goes on with."""
        try:
            self.pacing = True
            return self._pace_slices(inbox, stop_if)
        finally:
            self.pacing = False

    def _pace_slices(self, inbox, stop_if) -> bool:
        while (pace := self.pace) > 0 and self._last_start is not None:
            left = self._last_start + 1.0 / pace - self.clock()
            if left <= 0:
                return False
            self.sleep(min(left, PACE_SLICE))
            interrupted = False
            if inbox is not None:
                while (command := inbox.poll(0.0)) is not None:
                    self.obey(command)
                    interrupted = interrupted or command[0] in ("pause", "stop", "step")
            if interrupted or self._stopped or self.status == "paused" or (stop_if and stop_if()):
                return True
        return False

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
