"""Where a background run trains: in a thread of this process, in a child process, or in chunks.

All run the same Runner on the same Engine and speak the same messages
(core.train.runner): commands go in, reports come out. A transport has

    start(report)    begin training; report(message) is called from a thread of this process
    send(command)    a command for the run
    join(timeout)    wait for the end; kill()  end it now (a step that does not return)
    alive

ThreadTransport trains this process's model in a thread. A Python thread that
trains a small model spends most of its time in the interpreter, so pictures,
metrics and a web page drawn by other threads take turns with it for the
interpreter lock, and training slows while someone watches.

ProcessTransport trains in a child process with an interpreter of its own.
The child builds its Engine from the model as it was before any training,
with the same seed, so a run takes exactly the steps that headless training
takes. Messages are pickled by hand (plain pickle, not torch's shared-memory
reductions), the weights as numpy arrays (`to_wire`): a few hundred kilobytes
at most, a few times a second, sent from a thread of the child's own
(`_Outbox`) so that training never waits for this process to read. Children
fork from a server process that has already imported torch and every model
(`warm_up`), so starting one costs milliseconds.

ChunkedTransport trains where a GPU is lent one call at a time, and no child
process may be started (a ZeroGPU Space): a thread of this process calls a
chunk function (core.train.chunks.train_chunk, or the same function
decorated to run on the lent GPU) again and again, each call a few seconds of
training that resumes exactly where the last ended, and obeys the commands
between calls.
"""

from __future__ import annotations

import collections
import contextvars
import multiprocessing as mp
import pickle
import queue
import re
import threading
import time
from typing import Callable

import numpy as np
import torch

from .engine import Engine
from .runner import Runner

# Imported once by the server the children fork from: torch._dynamo is what the first
# Adam optimiser imports (seconds), core.registry's load_all every model.
PRELOAD = ["torch._dynamo", "core.train.transports", "core.registry"]
_context = None


def context():
    """forkserver where the platform has it (Linux, macOS), spawn otherwise."""
    global _context
    if _context is None:
        if "forkserver" in mp.get_all_start_methods():
            _context = mp.get_context("forkserver")
            _context.set_forkserver_preload(PRELOAD)
        else:
            _context = mp.get_context("spawn")
    return _context


def warm_up() -> None:
    """Start the server the children fork from, so the first Play starts at once."""
    if context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def to_wire(state: dict) -> dict:
    """A state dict as numpy arrays where numpy has the dtype: they pickle and unpickle as raw
    bytes, where torch's own tensor pickling costs milliseconds per message."""
    out = {}
    for k, v in state.items():
        v = v.detach().to("cpu", copy=True)
        try:
            out[k] = v.numpy()
        except TypeError:  # bfloat16 and the like travel as tensors
            out[k] = v
    return out


def from_wire(state: dict) -> dict:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}


class _QueueInbox:
    def __init__(self):
        self.queue: queue.Queue = queue.Queue()

    def poll(self, timeout: float):
        try:
            return self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None


class _PipeInbox:
    def __init__(self, conn):
        self.conn = conn

    def poll(self, timeout: float):
        return pickle.loads(self.conn.recv_bytes()) if self.conn.poll(timeout) else None


class ThreadTransport:
    """The Runner in a daemon thread of this process, on this process's engine."""

    def __init__(self, engine: Engine, steps: int, log_every: int, report_every: float, paused: bool):
        self.runner = Runner(engine, steps, log_every)
        self._args = (report_every, paused)
        self._inbox = _QueueInbox()
        self._thread: threading.Thread | None = None

    def start(self, report) -> None:
        report_every, paused = self._args
        self._thread = threading.Thread(target=self.runner.run, daemon=True,
                                        args=(self._inbox, report, report_every, paused))
        self._thread.start()

    def send(self, *command) -> None:
        self._inbox.queue.put(command)

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def kill(self) -> None:
        """A thread cannot be ended from outside; it ends after its current step."""

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())


PARK_AFTER = 15.0  # seconds a paused run keeps its training process before the process is parked


class ProcessTransport:
    """The Runner in a child process; reports arrive on a reader thread of this process.

    A run paused for `park_after` seconds is parked: its process packs the run's state
    (core.train.chunks.pack) and ends, so that a class of paused runs holds no processes (each
    is a few hundred megabytes). The next Resume or Step starts a new process from that state,
    which goes on exactly where the last one stopped; a live setting made meanwhile reaches it
    first. A caller sees nothing of this but the start's few milliseconds.
    """

    def __init__(self, payload: bytes, device: str, steps: int, log_every: int, report_every: float, paused: bool,
                 park_after: float | None = PARK_AFTER):
        self._args = (payload, device, torch.get_num_threads(), steps, log_every, report_every)
        self._paused = paused
        self._park_after = park_after
        self._conn = self.proc = self._reader = None
        self._report = None
        self._send_lock = threading.Lock()  # commands, and the parking below
        self._parked: bytes | None = None  # the state of a parked run
        self._parked_at = (0, 0.0)  # its (step, elapsed)
        self._parking = False  # the process was asked to park and has not answered yet
        self._held: list[tuple] = []  # commands for a parked (or parking) run, sent when it wakes
        self._timer: threading.Timer | None = None
        self._last_command = 0.0
        self.processes = 0  # started so far (a parked run that wakes starts one more)
        self.parks = 0

    def start(self, report) -> None:
        """Begin at once: the child is started from the reader thread, so that a caller (a Play
        button) never waits for the fork server, which takes seconds to boot on a busy machine.
        Commands sent meanwhile wait in the pipe and reach the child first thing."""
        self._report = report
        with self._send_lock:
            self._launch(None, self._paused)
            self._arm()

    def _launch(self, state: bytes | None, paused: bool) -> None:
        ctx = context()
        conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=_child_main, daemon=True, name="playground-trainer",
                           args=(child_conn, *self._args, paused, state))
        self._conn, self.proc = conn, proc
        self.processes += 1
        self._reader = threading.Thread(target=self._receive, args=(conn, child_conn, proc), daemon=True)
        self._reader.start()

    _killed = False

    @staticmethod
    def _began(proc) -> bool:
        return proc is not None and getattr(proc, "_popen", None) is not None

    def _started(self) -> bool:
        return self._began(self.proc)

    def _receive(self, conn, child_conn, proc) -> None:
        report = self._report
        try:
            if self._killed:
                raise EOFError
            try:
                proc.start()
            except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
                report({"step": 0, "elapsed": 0.0, "history": [], "lrs": {}, "final": True, "status": "error",
                        "message": f"Training could not start: {type(e).__name__}: {e}"})
                return
            finally:
                child_conn.close()
            while True:
                msg = pickle.loads(conn.recv_bytes())
                if msg.get("parked"):
                    self._on_parked(msg)
                    return
                if msg["final"]:
                    with self._send_lock:
                        self._parking, self._held = False, []
                    report(msg)
                    return
                report(msg)
        except (EOFError, OSError):  # the child is gone without a last word
            if self._began(proc):
                proc.join(1.0)
            report({"final": True, "lost": True, "exitcode": proc.exitcode if self._began(proc) else None})
        finally:
            if self._began(proc):
                proc.join(5.0)
            conn.close()

    # ---- parking ------------------------------------------------------------------
    def _arm(self) -> None:
        """(Under the lock.) A paused run is parked if no command comes for park_after seconds."""
        self._last_command = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._paused and self._park_after is not None and not self._killed:
            self._park_later()

    def _park_later(self) -> None:
        self._timer = threading.Timer(self._park_after, self._maybe_park)
        self._timer.daemon = True
        self._timer.start()

    def _maybe_park(self) -> None:
        with self._send_lock:
            quiet = time.monotonic() - self._last_command >= 0.99 * self._park_after
            if not (self._paused and quiet) or self._parking or self._parked is not None or self._killed:
                return
            if not self._started():  # the child is still booting (seconds on a busy machine): look again later
                self._park_later()
                return
            if not self.proc.is_alive():
                return
            self._parking = True
            self._write(("park",))

    def _on_parked(self, msg: dict) -> None:
        """The process packed the run and ends: keep the state; wake at once if asked meanwhile."""
        final = None
        with self._send_lock:
            self._parked, self._parked_at = msg["resume"], (msg["step"], msg["elapsed"])
            self._parking = False
            self.parks += 1
            held, self._held = self._held, []
            if any(c[0] == "stop" for c in held):
                final = self._stopped_parked()
            elif any(c[0] in ("resume", "step") for c in held):
                self._wake(held)
            else:
                self._held = held  # live settings: they wait for the wake
        if final is not None:
            self._report(final)

    def _wake(self, commands: list[tuple]) -> None:
        """(Under the lock.) A new process from the parked state, which obeys `commands` first."""
        state, self._parked = self._parked, None
        self._launch(state, paused=True)
        for command in commands:
            self._track(command)
            self._write(command)
        self._arm()

    def _stopped_parked(self) -> dict:
        """(Under the lock.) A parked run is stopped: its last word, as its process would have said it."""
        step, elapsed = self._parked_at
        self._parked = None
        self._killed = True  # nothing starts again
        return {"step": step, "elapsed": elapsed, "history": [], "lrs": {}, "final": True, "status": "stopped",
                "message": ""}

    @property
    def parked(self) -> bool:
        return self._parked is not None

    # ---- commands -----------------------------------------------------------------
    def _track(self, command: tuple) -> None:
        if command[0] == "pause":
            self._paused = True
        elif command[0] == "resume":
            self._paused = False

    def _write(self, command: tuple) -> None:
        try:
            self._conn.send_bytes(pickle.dumps(command))
        except (OSError, ValueError):  # the child has already ended; nothing to tell it
            pass

    def send(self, *command) -> None:
        if self._conn is None:
            return
        final = None
        with self._send_lock:
            if self._parked is not None:
                if command[0] == "stop":
                    final = self._stopped_parked()
                elif command[0] in ("resume", "step"):
                    self._wake(self._held + [command])
                    self._held = []
                elif command[0] != "pause":
                    self._held.append(command)
            elif self._parking:
                self._held.append(command)  # the answer to "park" decides where it goes
            else:
                self._track(command)
                self._write(command)
                self._arm()
        if final is not None:
            self._report(final)

    def join(self, timeout: float) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)  # it starts the child, then waits for its last word
        if self._started():
            self.proc.join(timeout)

    def kill(self) -> None:
        with self._send_lock:
            self._killed = True  # a child not started yet never starts, a parked one never wakes
            if self._timer is not None:
                self._timer.cancel()
        if self._started() and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1.0)

    @property
    def alive(self) -> bool:
        return bool(self._reader and self._reader.is_alive())


CHUNK_SECONDS = 5.0  # a chunk's length: long enough that starting a call is a small share of it


class ChunkedTransport:
    """The run as a series of calls of `chunk_call`, made from a thread of this process.

    chunk_call has the signature of core.train.chunks.train_chunk and yields its items (the
    default is train_chunk itself, which trains in that thread). Each call trains for about
    `seconds`; the thread keeps the state of the last report it forwarded and starts the next
    call from it. Commands take effect between calls: "set" goes with the next call (a pace
    too); "step n" (or "step n phase") makes calls that end after n more steps, which go with
    them, each of its phase; "stop" ends the run at the next report, which is
    the last. "pause" ends the current call at its next report, which is not forwarded: the
    weights the person sees are those of the last report forwarded, the next call starts from
    its state, and no step is lost or taken twice. Every call runs in a copy of `context`
    (default: the context of whoever calls start): a ZeroGPU Space reads there whose request,
    and so whose quota, the GPU is lent to.
    """

    def __init__(self, payload: bytes, device: str, steps: int, log_every: int, report_every: float, paused: bool,
                 chunk_call: Callable | None = None, seconds: float = CHUNK_SECONDS,
                 context: contextvars.Context | None = None):
        if chunk_call is None:
            from .chunks import train_chunk as chunk_call
        self._call, self._context, self._steps = chunk_call, context, int(steps)
        self._args = (payload, device, log_every, report_every, seconds)
        self._cv = threading.Condition()
        self._paused, self._stopped, self._killed = paused, False, False
        self._singles: collections.deque[list] = collections.deque()  # [phase or None, steps] asked while paused
        self._waiting = False
        self._settings: list[tuple] = []  # live settings that the state held here does not have yet
        self._state: bytes | None = None  # the state of the last report forwarded
        self._step, self._elapsed = 0, 0.0
        self._forward_lock = threading.Lock()
        self._over = False  # the last report is out
        self._report = None
        self._thread: threading.Thread | None = None
        self.calls = 0  # chunk calls made so far

    def start(self, report) -> None:
        if self._context is None:
            self._context = contextvars.copy_context()
        self._report = report
        self._thread = threading.Thread(target=self._run, daemon=True, name="playground-chunks")
        self._thread.start()

    def send(self, *command) -> None:
        name, *args = command
        with self._cv:
            if name == "pause":
                self._paused = True
            elif name == "resume":
                self._paused = False
                self._singles.clear()
            elif name == "step":
                if int(args[0]) > 0:
                    self._singles.append([args[1] if len(args) > 1 else None, int(args[0])])
            elif name == "set":
                self._settings.append(tuple(command))
            elif name == "stop":
                self._stopped = True
            else:
                raise ValueError(f"unknown command {name!r}")
            self._cv.notify_all()

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def kill(self) -> None:
        """A call cannot be ended from outside: the run ends here now, and the thread forwards
        nothing more (it ends at the call's next report)."""
        with self._cv:
            self._stopped = self._killed = True
            self._cv.notify_all()
        self._forward(self._last_word("stopped", ""))

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive()) and not self._killed

    @property
    def waiting(self) -> bool:
        """Paused between calls: no call is being made until a resume, a step or a stop."""
        with self._cv:
            return self._waiting

    # ---- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._stopped and self._paused and not self._singles:
                        self._waiting = True
                        self._cv.wait()
                    self._waiting = False
                    if self._stopped:
                        break
                    stepping = self._paused  # and steps were asked for
                    single = sum(n for _, n in self._singles)
                    target = min(self._step + single, self._steps) if stepping else self._steps
                    settings = list(self._settings)
                    if stepping:  # the steps go with the call, each of its phase
                        settings += [("step", n, phase) for phase, n in self._singles]
                if self._chunk(target, settings, stepping):
                    return
        except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
            what = getattr(e, "title", None) or type(e).__name__  # a gradio.Error (ZeroGPU's quota) has a title
            said = " ".join(re.sub(r"<[^>]*>", "", str(e)).split())  # one line, without the toast's HTML
            self._forward(self._last_word("error", f"Training stopped at step {self._step}: {what}: {said}"))
            return
        self._forward(self._last_word("stopped", ""))

    def _chunk(self, target: int, settings: list, stepping: bool) -> bool:
        """One call, its reports forwarded until it ends, a pause or a stop; True if the run is over."""
        payload, device, log_every, report_every, seconds = self._args
        context = self._context.copy()
        self.calls += 1
        live = [c for c in settings if c[0] == "set"]
        chunk = context.run(self._call, payload, self._state, device, target, log_every, report_every, seconds,
                            settings)
        try:
            while True:
                try:
                    item = context.run(next, chunk)
                except StopIteration:
                    raise RuntimeError("the call that trains ended before its last report") from None
                with self._cv:
                    if self._paused and not stepping and not self._stopped:
                        return False  # not forwarded: the next call starts from the last report that was
                    msg = {k: v for k, v in item.items() if k not in ("resume", "chunk_end")}
                    if not msg["final"] and msg["step"] >= self._steps:
                        msg.update(final=True, status="done")  # the run's steps, if fewer than its config's
                    elif self._stopped and not msg["final"]:
                        msg.update(final=True, status="stopped")
                    elif not msg["final"]:
                        msg["status"] = "paused" if self._paused else "running"
                    del self._settings[:len(live)]  # this call applied them: its states hold them
                    live = []
                    if stepping:
                        self._consume(msg["step"] - self._step)
                    self._state, self._step, self._elapsed = item["resume"], msg["step"], msg["elapsed"]
                self._forward(msg)
                if msg["final"]:
                    return True
                if item["chunk_end"]:
                    return False
        finally:
            context.run(chunk.close)

    def _consume(self, taken: int) -> None:
        """Forget the first `taken` of the steps asked for while paused (they are in a report)."""
        while taken > 0 and self._singles:
            head = self._singles[0]
            used = min(taken, head[1])
            head[1] -= used
            taken -= used
            if head[1] <= 0:
                self._singles.popleft()

    def _last_word(self, status: str, message: str) -> dict:
        """A final report without weights (the last picture stays that of the last report)."""
        return {"step": self._step, "elapsed": self._elapsed, "history": [], "status": status, "message": message,
                "lrs": {}, "final": True}

    def _forward(self, msg: dict) -> None:
        with self._forward_lock:
            if self._over:
                return
            self._over = bool(msg["final"])
            self._report(msg)


class _Outbox:
    """The child's reports, sent from a thread of their own.

    Sending a few hundred kilobytes of weights fills the connection's buffer
    several times over, and each refill waits until the page's process, busy
    drawing, gets round to reading: sent from the training thread, that wait
    cost training 2-6% of its time. A report that finds the previous one still
    unsent merges into it: the loss records stay, in order, and the newest
    weights and status win.
    """

    def __init__(self, conn):
        self.conn = conn
        self.broken = False  # the parent is gone: nobody is listening any more
        self._cv = threading.Condition()
        self._pending: dict | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, msg: dict) -> None:
        with self._cv:
            if self._pending is not None:
                msg = {**self._pending, **msg, "history": self._pending["history"] + msg["history"]}
            self._pending = msg
            self._cv.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending, then end the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._pending is None:
                    return
                msg, self._pending = self._pending, None
            try:
                self.conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError):
                self.broken = True
                return


CHILD_NICE = 5  # how much lower a training process runs than the server it serves (Linux nice levels)


def below_the_server() -> None:
    """Lower this process's CPU priority before it starts any thread, so that the server's answers
    to buttons come before training on a machine with more runs than cores. The views' threads
    run lower still (core.train.views.VIEW_NICE)."""
    from .views import lower_priority

    lower_priority(CHILD_NICE)


def _child_main(conn, payload: bytes, device: str, threads: int, steps: int, log_every: int,
                report_every: float, paused: bool, state: bytes | None = None) -> None:
    """The child's whole life: build the engine (from a parked run's state, if given), run, and
    end with a final report, or parked, with the state to go on from."""
    from .chunks import pack, restore

    below_the_server()
    torch.set_num_threads(threads)
    try:
        model, data, cfg = pickle.loads(payload)
        engine = Engine(model, data, cfg, torch.device(device))
        runner = Runner(engine, steps, log_every)
        if state is not None:
            restore(engine, runner, state)
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        conn.send_bytes(pickle.dumps({"step": 0, "elapsed": 0.0, "history": [], "lrs": {}, "final": True,
                                      "status": "error", "message": f"Training could not start: {type(e).__name__}: {e}"}))
        conn.close()
        return
    outbox = _Outbox(conn)
    status = runner.run(_PipeInbox(conn), outbox.put, report_every, paused, stop_if=lambda: outbox.broken)
    outbox.close()  # a parent that is gone makes the send fail, which ends the thread
    if status == "parked" and not outbox.broken:
        try:
            msg = {"parked": True, "resume": pack(engine, runner), "step": engine.step_count, "elapsed": runner.elapsed}
        except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
            runner.status = "error"
            runner.message = (f"Training stopped at step {engine.step_count}: the paused run could not be set "
                              f"aside ({type(e).__name__}: {e}); press Reset to start again.")
            msg = runner._final_message()
        try:
            conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError):
            pass
    conn.close()
