"""Training in a child process: the same steps as headless training, live control, clean ends."""

import os
import pickle
import threading
import time

import numpy as np
import pytest
import torch

from core import registry
from core.train.transports import _Outbox, from_wire, to_wire
from core.train import Trainer
from tests.fakes import wait_for


def ProcessTrainer(*args, **kwargs):
    return Trainer(*args, transport="process", **kwargs)

TINY = {"layers": 2, "hidden": 16}
SETTINGS = {"n_data": 512, "batch_size": 64, "steps": 100_000, "seed": 3}


def build(cls, model="realnvp", dataset="eight_gaussians", **settings):
    cfg = registry.train_config(model, {**SETTINGS, **settings})
    torch.manual_seed(cfg.seed)
    data = registry.load_dataset(dataset)
    return cls(registry.build_model(model, data.shape, dict(TINY)), data, cfg, device="cpu")


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
    assert t.status == "stopped" and not t.running and not t._transport.proc.is_alive()
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
    assert t.status == "stopped" and not t._transport.proc.is_alive()
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
    assert wait_for(lambda: t.reported_lrs == {"model": 0.004})
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
    # the process ends by itself once its last report is sent (its interpreter's exit may take a
    # moment on a busy machine: it failed in CI when asked at the very instant the report came)
    assert wait_for(lambda: not t.running, timeout=15)


def test_a_child_that_dies_is_reported_not_hung_on():
    t, snaps = build(ProcessTrainer), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 5)
    t._transport.proc.kill()
    assert wait_for(lambda: t.status == "error")
    assert "was killed (signal 9)" in t.message and "Press Play" in t.message and t.lost
    assert t.wait_views(30) and snaps.items[-1]["final"]
    t.stop()


def test_a_process_trainer_starts_once():
    t = build(ProcessTrainer, steps=5)
    t.start(Snaps())
    assert wait_for(lambda: t.status == "done")
    with pytest.raises(RuntimeError, match="once"):
        t.start(Snaps())


class HeldConnection:
    """A connection whose sends wait until released, like a reader that is busy elsewhere."""

    def __init__(self, fail=False):
        self.sent, self.release, self.fail = [], threading.Event(), fail

    def send_bytes(self, data):
        if self.fail:
            raise OSError("the other end is gone")
        self.release.wait()
        self.sent.append(pickle.loads(data))


def test_reports_wait_in_the_outbox_not_in_training_and_merge_in_order():
    conn = HeldConnection()
    box = _Outbox(conn)
    box.put({"step": 1, "history": [{"step": 1}], "state": "w1", "final": False})
    assert wait_for(lambda: box._pending is None)  # the first is being sent, held by the reader

    def put_three():
        for step in (2, 3, 4):
            box.put({"step": step, "history": [{"step": step}], "state": f"w{step}", "final": step == 4})

    putter = threading.Thread(target=put_three, daemon=True)
    putter.start()
    putter.join(20)
    # putting never waits for the reader: all three went in while the first report is still held
    assert not putter.is_alive() and not conn.release.is_set()
    conn.release.set()
    box.close()
    first, merged = conn.sent
    assert first == {"step": 1, "history": [{"step": 1}], "state": "w1", "final": False}
    # the three reports that waited arrive as one: every loss record, in order; the newest weights
    assert merged == {"step": 4, "history": [{"step": 2}, {"step": 3}, {"step": 4}], "state": "w4", "final": True}


def test_an_outbox_whose_reader_is_gone_says_so():
    box = _Outbox(HeldConnection(fail=True))
    box.put({"step": 1, "history": [], "final": False})
    assert wait_for(lambda: box.broken)
    box.close()


def test_weights_travel_exactly_whatever_their_dtype():
    state = {"w": torch.randn(3, 4), "w64": torch.randn(5, dtype=torch.float64), "count": torch.tensor(7),
             "flag": torch.tensor([True, False]), "half": torch.randn(2, 2, dtype=torch.bfloat16),
             "strided": torch.randn(4, 6).t()}
    back = from_wire(pickle.loads(pickle.dumps(to_wire(state))))
    assert back.keys() == state.keys()
    for k, v in state.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    assert isinstance(to_wire(state)["w"], np.ndarray)  # numpy, whose pickles are raw bytes


def test_pictures_reuse_spare_models_but_never_the_newest_or_a_held_one():
    trainer = build(ProcessTrainer, "vae", "eight_gaussians")
    base = trainer.model.state_dict()
    states = [to_wire({k: v + i if v.is_floating_point() else v for k, v in base.items()}) for i in range(5)]
    weights = lambda m: next(iter(m.state_dict().values()))  # noqa: E731
    first = next(iter(base.values()))

    m1 = trainer._materialize(states[1])
    trainer._publish(m1, (1, 0.1))
    m2 = trainer._materialize(states[2])
    assert m2 is not m1  # m1 is the newest picture's
    trainer._publish(m2, (2, 0.2))
    with trainer.newest() as (held, at):
        assert held is m2 and at == (2, 0.2)
        trainer.set_live("beta", 0.25)
        m3 = trainer._materialize(states[3])
        assert m3 is m1  # a spare nobody holds is reused ...
        assert m3.config.beta == 0.25  # ... with the live config of the moment
        trainer._publish(m3, (3, 0.3))
        m4 = trainer._materialize(states[4])
        assert m4 is not m2 and m4 is not m3  # the held one and the newest are left alone
        assert torch.equal(weights(held), first + 2)  # what is held keeps its weights
    assert torch.equal(weights(m3), first + 3) and torch.equal(weights(m4), first + 4)
    trainer._publish(m4, (4, 0.4))
    again = trainer._materialize(states[1])
    assert again is m1 and len(trainer.pictures.models) == 3  # no new copy while spares are free
    trainer._publish(again, (5, 0.5))
    assert trainer._materialize(states[2]) is m2  # released, the held one is a spare again


# ---- a paused run gives its process back (parking) ----------------------------------------------
def parking(model="realnvp", **settings):
    t = build(ProcessTrainer, model, **settings)
    t.PARK_AFTER = 0.3
    return t


def parked(t) -> bool:
    return t._transport.parked and not t._transport.proc.is_alive()


def test_a_parked_run_goes_on_exactly_where_it_stopped():
    headless = build(Trainer, steps=40)
    headless.fit(40, log_every=10)
    t, snaps = parking(steps=40), Snaps()
    t.start(snaps, snapshot_interval=0.05, paused=True, log_every=10)
    t.step_once(10)
    assert wait_for(lambda: t.step_count == 10 and parked(t))  # paused and quiet: no process is held
    assert t.status == "paused" and not t.running
    t.step_once(5)  # a new process, from the packed state
    assert wait_for(lambda: t.step_count == 15 and parked(t))
    t.resume()
    assert wait_for(lambda: t.status == "done") and t.wait_views(30)
    tr = t._transport
    assert (tr.processes, tr.parks) == (3, 2)
    assert wait_for(lambda: not tr.proc.is_alive())  # it ends after its last word
    assert snaps.items[-1]["final"] and snaps.items[-1]["step"] == 40
    for (name, a), (_, b) in zip(headless.model.state_dict().items(), t.latest_model.state_dict().items()):
        assert torch.equal(a, b), name  # bit for bit, as if it had never been set aside
    steps = [h["step"] for h in t.history]
    assert steps == sorted(steps) and steps[-1] == 40


def test_a_run_paused_while_its_process_boots_is_parked_once_it_has_booted(monkeypatch):
    """The park timer may fire before the child is up (a fork server boots in seconds on a busy
    machine): it looks again later, so the paused run still gives its process back."""
    from core.train.transports import ProcessTransport

    booted = threading.Event()
    monkeypatch.setattr(ProcessTransport, "_started", lambda self: booted.is_set() and self._began(self.proc))
    t = parking()
    t.start(Snaps(), snapshot_interval=0.05, paused=True)
    t.step_once(3)
    time.sleep(3 * t.PARK_AFTER)  # the timer fires while the child does not count as started
    assert not t._transport.parked
    booted.set()
    assert wait_for(lambda: t.step_count == 3 and parked(t))
    t.stop()
    assert t.status == "stopped"


def test_a_live_setting_made_while_parked_reaches_the_next_process():
    t = parking("vae")
    t.start(Snaps(), snapshot_interval=0.05, paused=True)
    t.step_once(2)
    assert wait_for(lambda: t.step_count == 2 and parked(t))
    t.set_live("lr", 0.004)
    assert t._transport.parked  # a setting alone wakes nothing
    t.step_once(1)
    assert wait_for(lambda: t.step_count == 3 and t.reported_lrs == {"model": 0.004})
    t.stop()
    assert t.status == "stopped"


def test_a_parked_run_stops_without_a_process_and_says_its_last_word():
    t, snaps = parking(), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 5)
    t.pause()
    assert wait_for(lambda: parked(t))
    at = t.step_count
    t.stop()
    assert t.status == "stopped" and t.step_count == at and t.wait_views(30)
    assert snaps.items[-1]["final"] and snaps.items[-1]["step"] == at
    assert t._transport.processes == 1  # stopping did not start one to stop it


def test_a_run_that_keeps_being_used_is_not_parked():
    t = parking()
    t.start(Snaps(), snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 5)
    time.sleep(1.0)  # training, however long, is not idle
    assert not t._transport.parked and t._transport.proc.is_alive()
    t.pause()
    for _ in range(4):  # a Step every 0.2 s keeps the process
        time.sleep(0.2)
        t.step_once(1)
    assert not t._transport.parked and t._transport.processes == 1
    t.stop()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="process priorities are a POSIX notion")
def test_training_runs_below_the_server_that_answers_the_buttons():
    from core.train.transports import CHILD_NICE

    t = build(ProcessTrainer)
    t.start(Snaps(), snapshot_interval=0.05)
    assert wait_for(lambda: t.step_count > 0)
    child = os.getpriority(os.PRIO_PROCESS, t._transport.proc.pid)
    assert child >= CHILD_NICE > os.getpriority(os.PRIO_PROCESS, 0) or child == os.getpriority(os.PRIO_PROCESS, 0) >= CHILD_NICE
    t.stop()
