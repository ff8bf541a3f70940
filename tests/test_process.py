"""Training in a child process: the same steps as headless training, live control, clean ends."""

import threading
import time

import pytest
import torch

from core import registry
from core.process import ProcessTrainer
from core.trainer import Trainer

TINY = {"layers": 2, "hidden": 16}
SETTINGS = {"n_data": 512, "batch_size": 64, "steps": 100_000, "seed": 3}


def build(cls, model="realnvp", dataset="eight_gaussians", **settings):
    cfg = registry.train_config(model, {**SETTINGS, **settings})
    torch.manual_seed(cfg.seed)
    data = registry.load_dataset(dataset)
    return cls(registry.build_model(model, data.shape, dict(TINY)), data, cfg, device="cpu")


def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


class Snaps:
    def __init__(self):
        self.items, self.got = [], threading.Event()

    def __call__(self, snap):
        self.items.append(snap)
        self.got.set()


def test_the_child_takes_exactly_the_steps_of_headless_training():
    headless = build(Trainer)
    headless.fit(40, log_every=10)
    t, snaps = build(ProcessTrainer), Snaps()
    t.start(snaps, snapshot_interval=0.05, paused=True, log_every=10)
    t.step_once(40)
    assert wait_for(lambda: t.step_count == 40 and snaps.items and snaps.items[-1]["step"] == 40)
    t.stop()
    assert t.status == "stopped" and not t.running and not t._proc.is_alive()
    for (name, a), (_, b) in zip(headless.model.state_dict().items(), t.latest_model.state_dict().items()):
        assert torch.equal(a, b), name  # bit for bit: same model, seed, batches and optimiser
    # Records average the steps since the last one and are cut when a picture is sent, so
    # compare the sum of every step's loss, which does not depend on where records were cut.
    def total(history):
        return sum(h["loss"] * (h["step"] - prev["step"]) for prev, h in zip([{"step": 0}] + history, history))

    assert t.history[-1]["step"] == 40
    assert total(t.history) == pytest.approx(total(headless.history), rel=1e-9)


def test_pause_step_resume_and_stop_reach_the_child():
    t, snaps = build(ProcessTrainer), Snaps()
    t.start(snaps, snapshot_interval=0.05, metrics_interval=0.2)
    assert snaps.got.wait(30) and wait_for(lambda: t.step_count > 5)
    t.pause()
    assert t.status == "paused"
    time.sleep(0.3)
    frozen = t.step_count
    time.sleep(0.3)
    assert t.step_count == frozen  # the child stopped stepping, and said where
    t.step_once(3)
    assert wait_for(lambda: t.step_count == frozen + 3)
    time.sleep(0.2)
    assert t.step_count == frozen + 3 and t.status == "paused"
    t.resume()
    assert wait_for(lambda: t.step_count > frozen + 10)
    assert wait_for(lambda: any("metrics" in s for s in snaps.items))
    t.stop()
    assert t.status == "stopped" and not t._proc.is_alive()
    last = snaps.items[-1]
    assert last["final"] and {"step", "time", "terms", "traces", "status"} <= set(last)
    assert "forward_states" in last["traces"]
    steps = [s["step"] for s in snaps.items]
    assert steps == sorted(steps)
    assert t.metric_history and "kl" in t.metric_history[-1]


def test_live_settings_change_the_childs_training():
    t = build(ProcessTrainer, "vae")
    t.start(Snaps(), snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 20)
    t.set_live("lr", 0.004)
    assert wait_for(lambda: t.child_lrs == {"model": 0.004})
    t.set_live("beta", 0.0)  # the loss becomes the reconstruction term alone
    seen = len(t.history)
    assert wait_for(lambda: len(t.history) > seen + 3)
    t.stop()
    last = t.history[-1]
    assert last["loss"] == pytest.approx(last["recon"], rel=1e-5) and last["kl"] > 0


def test_a_run_that_reaches_its_steps_is_done_with_final_metrics():
    t, snaps = build(ProcessTrainer, steps=30), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.status == "done")
    assert t.wait_views(30)
    assert t.step_count == 30 and snaps.items[-1]["final"] and snaps.items[-1]["step"] == 30
    assert t.metric_history[-1]["step"] == 30  # the finished model was evaluated
    assert not t.running


def test_a_child_that_dies_is_reported_not_hung_on():
    t, snaps = build(ProcessTrainer), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 5)
    t._proc.kill()
    assert wait_for(lambda: t.status == "error")
    assert "ended unexpectedly" in t.message and "Reset" in t.message
    assert t.wait_views(30) and snaps.items[-1]["final"]
    t.stop()


def test_a_process_trainer_starts_once():
    t = build(ProcessTrainer, steps=5)
    t.start(Snaps())
    assert wait_for(lambda: t.status == "done")
    with pytest.raises(RuntimeError, match="once"):
        t.start(Snaps())
