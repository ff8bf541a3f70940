"""Runs on a ZeroGPU Space: chunks that train inside a daemonic worker process, as ZeroGPU runs them."""

import math
import multiprocessing as mp
import os
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch

from core import registry
from core.errors import ConfigError
from core.train import Trainer, train_chunk

spaces = pytest.importorskip("spaces", reason="the spaces package is not installed (pip install spaces)")
gpu = pytest.importorskip("playground.runs.gpu")

SETTINGS = {"n_data": 256, "batch_size": 32, "steps": 12, "seed": 3}
TINY = {"layers": 2, "hidden": 16}


def build(name="nsgan", **kwargs):
    cfg = registry.train_config(name, SETTINGS)
    torch.manual_seed(cfg.seed)
    data = registry.load_dataset("eight_gaussians")
    return Trainer(registry.build_model(name, data.shape, dict(TINY)), data, cfg, device="cpu", n_reference=64,
                   n_eval=64, **kwargs)


def children() -> list[int]:
    """This process's children, as Linux lists them for each of its threads."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def _worker(conn, args) -> None:
    """What a ZeroGPU worker does with a generator: iterate it, and send each item back pickled as
    its queues pickle them (multiprocessing's ForkingPickler)."""
    try:
        for item in gpu.gpu_chunk(*args):
            conn.send_bytes(bytes(ForkingPickler.dumps(item)))
        try:  # what the worker may not do: it is daemonic
            mp.get_context("fork").Process(target=print).start()
            refused = ""
        except AssertionError as e:
            refused = str(e)
        conn.send_bytes(pickle.dumps({"done": True, "children": children(), "refused": refused,
                                      "daemon": mp.current_process().daemon}))
    finally:
        conn.close()


def in_worker(args) -> tuple[list[dict], dict]:
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    worker = ctx.Process(target=_worker, args=(theirs, args), daemon=True)
    worker.start()
    theirs.close()
    items = []
    while True:
        assert mine.poll(120), "the worker said nothing for two minutes"
        msg = pickle.loads(mine.recv_bytes())  # unpickled here, where no engine and no GPU is
        if msg.get("done"):
            worker.join(30)
            return items, msg
        items.append(msg)


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc/self/task"),
                    reason="needs fork and Linux's /proc to watch the worker's children")
def test_a_chunk_trains_inside_a_daemonic_worker_process_and_its_reports_come_back():
    if not gpu.on_zero_gpu():
        assert gpu.gpu_chunk is train_chunk  # off ZeroGPU, spaces.GPU hands the function back
    t = build()
    blob = pickle.dumps((t.model, t.training_data, t.cfg))
    first, end = in_worker((blob, None, "cpu", 6, 3, 0.0, math.inf, []))
    assert end["daemon"] and "daemonic processes are not allowed to have children" in end["refused"]
    assert end["children"] == []  # the chunk itself started none
    steps = [item["step"] for item in first]
    assert steps == list(range(1, 7)) and first[-1]["chunk_end"] and not first[-1]["final"]
    rest, _ = in_worker((blob, first[-1]["resume"], "cpu", 12, 3, math.inf, math.inf, [("set", "lr", 3e-3)]))
    assert [item["step"] for item in rest] == [12] and rest[-1]["final"] and rest[-1]["status"] == "done"
    assert rest[-1]["lrs"] == {"D": 3e-3, "G": 3e-3}
    # the two calls, in two workers, took the steps of one headless run
    reference = build()
    reference.fit(6, log_every=3)
    reference.set_live("lr", 3e-3)
    reference.fit(6, log_every=3)
    for k, v in reference.engine.view_weights().items():
        assert torch.equal(torch.as_tensor(rest[-1]["state"][k]), v), k


def test_off_zero_gpu_a_run_keeps_its_child_process(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not gpu.on_zero_gpu() and gpu.transport_options() == {"transport": "process"}
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    assert not gpu.on_zero_gpu() and gpu.transport_options() == {"transport": "process"}
    assert build(**gpu.transport_options()).transport == "process"


def test_on_zero_gpu_a_run_trains_in_chunks_of_the_decorated_call(monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "True")
    assert gpu.on_zero_gpu()
    options = gpu.transport_options()
    assert options == {"transport": "chunked", "chunk_call": gpu.gpu_chunk, "chunk_seconds": gpu.CHUNK_SECONDS}
    t = build(**options)
    assert t.transport == "chunked" and t.chunk_call is gpu.gpu_chunk
    assert gpu.GPU_SECONDS > gpu.CHUNK_SECONDS  # a call asks for more than its chunk trains


def test_the_chunk_length_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PLAYGROUND_CHUNK_SECONDS", raising=False)
    assert gpu.chunk_seconds_from_env() == gpu.DEFAULT_CHUNK_SECONDS
    monkeypatch.setenv("PLAYGROUND_CHUNK_SECONDS", " 2.5 ")
    assert gpu.chunk_seconds_from_env() == 2.5
    for bad in ("soon", "0", "-3", "nan", "600"):
        monkeypatch.setenv("PLAYGROUND_CHUNK_SECONDS", bad)
        with pytest.raises(ConfigError, match=r"PLAYGROUND_CHUNK_SECONDS must be a number of seconds from 0.5 to 60"):
            gpu.chunk_seconds_from_env()
