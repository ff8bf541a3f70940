"""Training in a child process, watched from this one.

A Python thread that trains a small model spends most of its time in the
interpreter, not in torch kernels, so pictures, metrics and a web page drawn
by other threads of the same process take turns with it for the interpreter
lock, and training slows by a third or more while someone watches.
`ProcessTrainer` keeps the `Trainer` API (start, pause, resume, step_once,
stop, set_live, history, snapshots) but runs the training loop in a child
process with an interpreter of its own:

    child:  Trainer(model, data, cfg).step() ... every snapshot_interval seconds
            sends (step, time, new loss records, a CPU copy of the weights)
    parent: loads the newest weights into a copy of the model and draws the
            pictures and metrics from it, exactly as Trainer's views do

The child builds its Trainer from the model as it was before any training,
with the same seed, so a run takes exactly the steps that `Trainer.fit` takes.
Messages are pickled by hand (plain pickle, not torch's shared-memory
reductions), the weights as numpy arrays (`to_wire`): each is a few hundred
kilobytes at most, a few times a second, sent from a thread of the child's own
(`_Outbox`) so that training never waits for this process to read.
Children fork from a server process that has already imported torch and every
model (`warm_up`), so starting one costs milliseconds, not the seconds of a
fresh interpreter.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing as mp
import pickle
import threading
import time

import numpy as np
import torch

from .config import TrainConfig
from .data.base import Dataset
from .errors import TrainingDiverged
from .model import GenerativeModel
from .trainer import Trainer, resolve_device

FINISHED = ("done", "stopped", "diverged", "error")
# Imported once by the server the children fork from: torch._dynamo is what the first
# Adam optimiser imports (seconds), core.registry imports every model.
PRELOAD = ["torch._dynamo", "core.registry", "core.process"]

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


class ProcessTrainer(Trainer):
    """A Trainer whose background run (`start`) trains in a child process.

    This process keeps the data, the reference samples and a copy of the model
    on the CPU to draw from; `fit` and `step` still train here, headless.
    `train_device` is where the child trains ("auto": the GPU when present).
    """

    PICTURE_REST = 0.25  # training has its own interpreter: pictures need rest only for the page's sake
    SPARES = 4  # models to load the child's weights into: the newest, one held by metrics, one by the page, one to draw

    def __init__(self, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, device: str = "auto",
                 n_reference: int = 2000, n_eval: int = 1000):
        self._payload = pickle.dumps((model, dataset))  # the model before the trainer initialises it
        self._train_device = resolve_device(device)
        super().__init__(model, dataset, cfg, "cpu", n_reference, n_eval)
        self._conn = None
        self._proc = None
        self._send_lock = threading.Lock()
        self.child_lrs: dict[str, float] = {}  # the learning rates the child last reported
        self._spares: list[GenerativeModel] = []

    @property
    def train_device(self) -> torch.device:
        return self._train_device

    # ---- start and the messages from the child ------------------------------
    def start(self, *args, **kwargs) -> None:
        if self._proc is not None or self.step_count:
            raise RuntimeError("a ProcessTrainer trains in the background once, from step 0; make a new one")
        super().start(*args, **kwargs)

    def _launch(self, snapshot_interval: float, log_every: int, paused: bool) -> None:
        ctx = context()
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, daemon=True, name="playground-trainer",
                                 args=(child_conn, self._payload, pickle.dumps(self.cfg), self._train_device.type, torch.get_num_threads(),
                                       snapshot_interval, log_every, paused))
        self._proc.start()
        child_conn.close()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        views, final = self._views, None
        try:
            while True:
                msg = pickle.loads(self._conn.recv_bytes())
                self._apply(msg)
                if views and "state" in msg:
                    views.request(msg["state"], msg["step"], msg["elapsed"], final=msg["final"],
                                  with_metrics=not self._stop.is_set())
                if msg["final"]:
                    final = msg
                    break
        except (EOFError, OSError):  # the child is gone without a last word
            if self.status not in FINISHED:
                self._proc.join(1.0)
                self.status = "error"
                self.message = (f"Training stopped at step {self.step_count}: the training process ended "
                                f"unexpectedly (exit code {self._proc.exitcode}). Press Reset to start again.")
        finally:
            if views:
                if final is None:  # the last picture is of the last weights this process saw
                    views.request(self.latest_model or self.model, self.step_count, self.elapsed,
                                  final=True, with_metrics=False)
                views.close()
            self._proc.join(5.0)
            self._conn.close()

    def _apply(self, msg: dict) -> None:
        self.step_count, self.elapsed = msg["step"], msg["elapsed"]
        self.history.extend(msg["history"])
        self.child_lrs = msg["lrs"] or self.child_lrs
        if msg["status"] in FINISHED:  # pause and resume are this side's to say
            self.status, self.message = msg["status"], msg["message"]

    def _materialize(self, state) -> GenerativeModel:
        """A model with the child's weights to draw from: a spare that nobody holds (see
        Trainer.newest) and that is not the newest picture's, else a fresh copy of this
        side's model. Copying a model takes about as long as drawing a small one."""
        if isinstance(state, GenerativeModel):
            return state
        with self._latest_lock:
            free = [m for m in self._spares if m is not self.latest_model and not self._leases[id(m)]]
        if free:
            model = free[0]
            for f in dataclasses.fields(model.config):  # the live config (beta, the sampler, ...)
                setattr(model.config, f.name, copy.deepcopy(getattr(self.model.config, f.name)))
        else:
            model = copy.deepcopy(self.model)
            if len(self._spares) < self.SPARES:
                self._spares.append(model)
        model.load_state_dict(from_wire(state))
        return model

    def _send(self, *command) -> None:
        if self._conn is None:
            return
        try:
            with self._send_lock:
                self._conn.send_bytes(pickle.dumps(command))
        except (OSError, ValueError):  # the child has already ended; nothing to tell it
            pass

    # ---- control ------------------------------------------------------------
    def pause(self) -> None:
        super().pause()
        self._send("pause")

    def resume(self) -> None:
        super().resume()
        self._send("resume")

    def step_once(self, n: int = 1) -> None:
        self._send("step", int(n))

    def set_live(self, name: str, value) -> None:
        super().set_live(name, value)  # checks it, and keeps this copy's config in step for the pictures
        self._send("set", name, value)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._send("stop")
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():  # a step that does not end (a huge batch): end the process
                self._proc.kill()
                self._proc.join(1.0)
        super().stop(timeout)  # the reader thread and the views end with the child's last word


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


def _child_main(conn, payload: bytes, cfg: bytes, device: str, threads: int, snapshot_interval: float, log_every: int,
                paused: bool) -> None:
    """The child's whole life: train, obey commands, report, and end with a final report."""
    torch.set_num_threads(threads)
    try:
        (model, dataset), cfg = pickle.loads(payload), pickle.loads(cfg)
        trainer = Trainer(model, dataset, cfg, device)
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        conn.send_bytes(pickle.dumps({"step": 0, "elapsed": 0.0, "history": [], "lrs": {}, "final": True,
                                      "status": "error", "message": f"Training could not start: {type(e).__name__}: {e}"}))
        conn.close()
        return
    trainer.status = "paused" if paused else "running"
    outbox = _Outbox(conn)
    single = 0  # steps still to take while paused
    sent = 0  # history records already sent
    last_report = 0.0
    dirty = True  # weights changed since the last report
    stopped = False

    def report(final: bool = False) -> None:
        nonlocal sent, last_report, dirty
        trainer._flush_history()
        msg = {"step": trainer.step_count, "elapsed": trainer.elapsed, "history": trainer.history[sent:],
               "status": trainer.status, "message": trainer.message, "lrs": trainer.learning_rates(),
               "final": final,
               "state": to_wire(trainer.model.state_dict())}
        outbox.put(msg)
        sent = len(trainer.history)
        last_report, dirty = time.perf_counter(), False

    def obey(command) -> None:
        nonlocal single, stopped, dirty
        name, *args = command
        if name == "pause":
            trainer.status = "paused"
        elif name == "resume":
            trainer.status, single = "running", 0
        elif name == "step":
            single += args[0]
        elif name == "set":
            trainer.set_live(*args)
            dirty = True  # the next report carries the new learning rates
        elif name == "stop":
            stopped = True

    try:
        while not stopped and not outbox.broken and trainer.step_count < cfg.steps:
            wait = 0.05 if trainer.status == "paused" and single <= 0 else 0.0
            while conn.poll(wait):
                obey(pickle.loads(conn.recv_bytes()))
                wait = 0.0
            if stopped:
                break
            if trainer.status == "paused":
                if single <= 0:
                    if dirty:
                        report()
                    continue
                single -= 1
            t0 = time.perf_counter()
            trainer.step()
            trainer.elapsed += time.perf_counter() - t0
            dirty = True
            if trainer.step_count % log_every == 0:
                trainer._flush_history()
            if time.perf_counter() - last_report >= snapshot_interval:
                report()
        trainer.status = "stopped" if stopped else "done"
    except TrainingDiverged:
        pass  # the trainer put the last good weights back and wrote the message
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        trainer.status = "error"
        trainer.message = f"Training stopped at step {trainer.step_count}: {type(e).__name__}: {e}"
    report(final=True)
    outbox.close()  # a parent that is gone makes the send fail, which ends the thread
    conn.close()
