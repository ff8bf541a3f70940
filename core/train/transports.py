"""Where a background run trains: in a thread of this process, or in a child process.

Both run the same Runner on the same Engine and speak the same messages
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
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import threading

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


class ProcessTransport:
    """The Runner in a child process; reports arrive on a reader thread of this process."""

    def __init__(self, payload: bytes, device: str, steps: int, log_every: int, report_every: float, paused: bool):
        self._args = (payload, device, torch.get_num_threads(), steps, log_every, report_every, paused)
        self._conn = self.proc = self._reader = None
        self._send_lock = threading.Lock()

    def start(self, report) -> None:
        ctx = context()
        self._conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, daemon=True, name="playground-trainer",
                                args=(child_conn, *self._args))
        self.proc.start()
        child_conn.close()
        self._reader = threading.Thread(target=self._receive, args=(report,), daemon=True)
        self._reader.start()

    def _receive(self, report) -> None:
        try:
            while True:
                msg = pickle.loads(self._conn.recv_bytes())
                report(msg)
                if msg["final"]:
                    return
        except (EOFError, OSError):  # the child is gone without a last word
            self.proc.join(1.0)
            report({"final": True, "lost": True, "exitcode": self.proc.exitcode})
        finally:
            self.proc.join(5.0)
            self._conn.close()

    def send(self, *command) -> None:
        if self._conn is None:
            return
        try:
            with self._send_lock:
                self._conn.send_bytes(pickle.dumps(command))
        except (OSError, ValueError):  # the child has already ended; nothing to tell it
            pass

    def join(self, timeout: float) -> None:
        if self.proc is not None:
            self.proc.join(timeout)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1.0)

    @property
    def alive(self) -> bool:
        return bool(self._reader and self._reader.is_alive())


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


def _child_main(conn, payload: bytes, device: str, threads: int, steps: int, log_every: int,
                report_every: float, paused: bool) -> None:
    """The child's whole life: build the engine, run, and end with a final report."""
    torch.set_num_threads(threads)
    try:
        model, data, cfg = pickle.loads(payload)
        engine = Engine(model, data, cfg, torch.device(device))
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        conn.send_bytes(pickle.dumps({"step": 0, "elapsed": 0.0, "history": [], "lrs": {}, "final": True,
                                      "status": "error", "message": f"Training could not start: {type(e).__name__}: {e}"}))
        conn.close()
        return
    outbox = _Outbox(conn)
    Runner(engine, steps, log_every).run(_PipeInbox(conn), outbox.put, report_every, paused,
                                         stop_if=lambda: outbox.broken)
    outbox.close()  # a parent that is gone makes the send fail, which ends the thread
    conn.close()
