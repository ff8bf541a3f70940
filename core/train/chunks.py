"""Training in chunks: a run made of short calls, each resuming exactly where the last one ended.

Where a GPU is lent for the length of one function call (a ZeroGPU Space lends it to a call
decorated with `spaces.GPU`, in a worker process of its own), a run of minutes is trained by
calling

    for item in train_chunk(payload, state, device, steps, log_every, report_every, seconds, commands):
        ...

again and again. Each call builds the Engine from the model as it was before training
(payload: the pickled (model, data, cfg), as the child process gets it), puts the run's state
back (state None for the first call), applies `commands` (the live settings made since the last
call, ("set", name, value), and while paused the steps asked for, ("step", n, phase or None),
which the call then takes, each of its phase) and trains until the step count `steps` or for
about `seconds`.
Every item is one of the Runner's reports (core.train.runner.message_for: weights as numpy
arrays) with two more keys:

    resume     the run's state after the steps reported so far (bytes): what the next call starts from
    chunk_end  True on the call's last item; its "final" says whether the run is over
               (its status done, diverged or error)

An item holds numpy arrays, bytes and plain Python values only, nothing on a GPU, so it
unpickles in a process that has none.

The state (`pack`, `restore`) is what training reads beyond the model as it was built: the
weights and buffers, the model's view_state, each optimiser's state, the weight average, the
step count, the generator the batches are drawn with, torch's global random state (and the
GPU's), the configs' live settings, the learning rates and the Runner's training time. Put back
after the Engine's own start (which reseeds and draws a first batch), it leaves the random
stream where it was: a run trained in chunks takes exactly the steps of one trained at once.
Two limits: a model that keeps training state in plain attributes rather than buffers starts
them afresh with each call (flow matching's reflow pairs); and torch's global random state is
the process's, so a chunk is exact when nothing else in its process draws from it meanwhile, as
in a worker process of its own.

core.train.transports.ChunkedTransport makes the calls, from a thread of the process that draws.
"""

from __future__ import annotations

import pickle
import time

import numpy as np
import torch

from .engine import Engine
from .runner import Runner
from .transports import from_wire, to_wire


# ---- the state ------------------------------------------------------------------
def _host(value):
    """Tensors anywhere in a nest of dicts, lists and tuples, as host copies (numpy where it has the dtype)."""
    if isinstance(value, torch.Tensor):
        return to_wire({"t": value})["t"]
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    return value


def _tensors(value):
    """The inverse of _host: numpy arrays back to tensors (on the host)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: _tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensors(v) for v in value)
    return value


def pack(engine: Engine, runner: Runner) -> bytes:
    """The run's state after the steps taken so far, as bytes (see the module's docstring)."""
    model = engine.model
    weights = model.state_dict()
    state = {
        "step": engine.step_count,
        "elapsed": runner.elapsed,
        "model": to_wire(weights),
        # buffers outside the state dict (a mixture's EM set, permutations): cheap, and exact
        "buffers": to_wire({k: v for k, v in model.named_buffers() if k not in weights}),
        "view_state": to_wire(model.view_state()),
        "optimizers": {name: _host(opt.state_dict()) for name, opt in engine.optimizers.items()},
        "ema": to_wire(engine.ema.state()) if engine.ema is not None else None,
        "batches": engine._batches.get_state().numpy(),
        "rng": torch.get_rng_state().numpy(),
        "cuda_rng": torch.cuda.get_rng_state(engine.device).numpy() if engine.device.type == "cuda" else None,
        "config": dict(vars(model.config)),
        "train": dict(vars(engine.cfg)),
        "base_lr": dict(engine.base_lr),
        "phase_lr": {p.name: p.lr for p in engine.phases},
        "pace_due_in": runner.pace_due_in(),  # a slow pace's wait goes on in the next call
    }
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def restore(engine: Engine, runner: Runner, state: bytes) -> None:
    """Put `state` (from pack) back into a freshly built engine and its runner."""
    s = pickle.loads(state)
    model, device = engine.model, engine.device
    for k, v in s["config"].items():
        setattr(model.config, k, v)
    for k, v in s["train"].items():
        setattr(engine.cfg, k, v)
    model.load_state_dict(from_wire(s["model"]))
    for name, value in from_wire(s["buffers"]).items():
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner)
        setattr(module, leaf, value.to(getattr(module, leaf).device))
    model.load_view_state({k: v.to(device) for k, v in from_wire(s["view_state"]).items()})
    for name, opt in engine.optimizers.items():
        opt.load_state_dict(_tensors(s["optimizers"][name]))
    if engine.ema is not None:
        engine.ema.load({k: v.to(device) for k, v in from_wire(s["ema"]).items()})
    engine.base_lr.update(s["base_lr"])
    for p in engine.phases:
        p.lr = s["phase_lr"][p.name]
    engine.step_count = s["step"]
    engine._batches.set_state(torch.from_numpy(s["batches"]))
    torch.set_rng_state(torch.from_numpy(s["rng"]))
    if s["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(torch.from_numpy(s["cuda_rng"]), device)
    engine._save_good()  # a loss that turns non-finite before the first check goes back here
    runner.elapsed = s["elapsed"]
    runner.resume_pace(s.get("pace_due_in", 0.0))


# ---- one chunk ------------------------------------------------------------------
class _Commands:
    """The live settings of a chunk, as the Runner's inbox: each once, then nothing."""

    def __init__(self, commands):
        self.queue = list(commands)

    def poll(self, timeout: float):
        return self.queue.pop(0) if self.queue else None


def train_chunk(payload: bytes, state: bytes | None, device: str, steps: int, log_every: int = 10,
                report_every: float = 0.2, seconds: float = 5.0, commands=()):
    """One chunk of a run: yields the Runner's reports, each with the state to resume from.

    steps: the step count at which this chunk ends (cfg.steps, the run's, at most). seconds: no
    step starts once this long has passed since the call began (building the engine counted);
    every report, and so every call, has at least one step. report_every: seconds between
    reports. commands: ("set", name, value) tuples, applied before the first step, and ("step", n,
    phase) tuples: the call is then a paused run that takes those steps (steps should be where they
    end). A pace slow enough reports every step; one slower than the reports reports meanwhile
    without a step, and the call may then end without one. The last item has chunk_end True.
    """
    began = time.monotonic()
    commands = list(commands)
    for command in commands:
        if command[0] not in ("set", "step"):
            raise ValueError(f"a chunk takes live settings (\"set\", name, value) and steps (\"step\", n, phase) "
                             f"only, got {command!r}")
    stepping = any(command[0] == "step" for command in commands)
    saved = pickle.loads(state) if state is not None else {"step": 0, "elapsed": 0.0}
    try:
        model, data, cfg = pickle.loads(payload)
        engine = Engine(model, data, cfg, torch.device(device))
        runner = Runner(engine, min(int(steps), cfg.steps), log_every)
        if state is not None:
            restore(engine, runner, state)
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        yield {"step": saved["step"], "elapsed": saved["elapsed"], "history": [], "lrs": {}, "status": "error",
               "message": f"Training could not start: {type(e).__name__}: {e}", "final": True,
               "chunk_end": True, "resume": state}
        return

    reported, last, deadline = engine.step_count, time.monotonic(), began + seconds

    def due() -> bool:  # checked before every step: a report, or the chunk's end, is due
        now = time.monotonic()
        if engine.step_count == reported:  # every report, and so every call, takes a step, unless
            # a slow pace holds it back: then the reports go on, so that a pause ends the call
            # (asked in the wait, and again at the top of the Runner's loop, where the wait is over
            # for the moment but not its due time: without the second the call slept on for good)
            held = runner.pacing or runner.pace_due_in() > 0
            return held and (now >= deadline or now - last >= report_every)
        return now >= deadline or now - last >= report_every or runner.every_step_reported(report_every)

    inbox = _Commands(commands)
    while True:
        status = runner.run(inbox, stop_if=due, paused=stepping)  # records the steps' losses when it returns
        inbox = None
        over = status in ("diverged", "error") or engine.step_count >= cfg.steps
        end = over or engine.step_count >= runner.steps or time.monotonic() >= deadline
        if over and status not in ("diverged", "error"):
            runner.status = "done"
        elif not over:
            runner.status = "running"  # the Runner stopped for this report only: the run goes on
        item = _report(runner, over)
        item["chunk_end"] = end or item["final"]
        yield item
        if item["chunk_end"]:
            return
        reported, last = engine.step_count, time.monotonic()


def _report(runner: Runner, final: bool) -> dict:
    """The Runner's report with the state to resume from; an error report if either cannot be made."""
    try:
        item = runner.message_for(final=final)
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        _failed(runner, e)
        item = runner._final_message()  # the records since the last report, without the weights
        return {**item, "status": runner.status, "message": runner.message, "final": True, "resume": None}
    try:
        item["resume"] = pack(runner.engine, runner)
    except Exception as e:  # noqa: BLE001 - reported to the person, not a traceback
        _failed(runner, e)
        item.update(status=runner.status, message=runner.message, final=True, resume=None)
    return item


def _failed(runner: Runner, e: Exception) -> None:
    if runner.status not in ("error", "diverged"):
        runner.status = "error"
        runner.message = f"Training stopped at step {runner.engine.step_count}: {type(e).__name__}: {e}"
