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
reductions): each is a few hundred kilobytes at most, a few times a second.
Children fork from a server process that has already imported torch and every
model (`warm_up`), so starting one costs milliseconds, not the seconds of a
fresh interpreter.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import pickle
import threading
import time

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

    def __init__(self, model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, device: str = "auto",
                 n_reference: int = 2000, n_eval: int = 1000):
        self._payload = pickle.dumps((model, dataset))  # the model before the trainer initialises it
        self._train_device = resolve_device(device)
        super().__init__(model, dataset, cfg, "cpu", n_reference, n_eval)
        self._conn = None
        self._proc = None
        self._send_lock = threading.Lock()
        self.child_lrs: dict[str, float] = {}  # the learning rates the child last reported

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
        if isinstance(state, GenerativeModel):
            return state
        model = copy.deepcopy(self.model)  # this side's copy holds the live config (beta, the sampler, ...)
        model.load_state_dict(state)
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
    single = 0  # steps still to take while paused
    sent = 0  # history records already sent
    last_report = 0.0
    dirty = True  # weights changed since the last report
    stopped = False

    def report(final: bool = False, state: bool = True) -> None:
        nonlocal sent, last_report, dirty
        trainer._flush_history()
        msg = {"step": trainer.step_count, "elapsed": trainer.elapsed, "history": trainer.history[sent:],
               "status": trainer.status, "message": trainer.message, "lrs": trainer.learning_rates(),
               "final": final}
        if state:
            msg["state"] = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
        conn.send_bytes(pickle.dumps(msg))
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
        while not stopped and trainer.step_count < cfg.steps:
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
    try:
        report(final=True)
    except (OSError, ValueError):
        pass  # the parent is gone
    finally:
        conn.close()
