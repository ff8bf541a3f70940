"""Runs and sessions: the cap on concurrent training and its queue, isolation, live knobs, Pause and Reset."""

import time

import pytest

from core import registry
from playground import app as A
from playground import controls as K
from playground.runs import RunManager, Session
from tests.fakes import wait_for
from tests.playground.tiny import TINY, TINY_TRAIN, knob_values, tiny_run


# ---- the run manager ----------------------------------------------------------
class FakeRun:
    def __init__(self, owner=""):
        self.owner, self.granted_calls, self.stopped = owner, 0, False

    def granted(self):
        self.granted_calls += 1

    def stop(self, wait=0.0):
        self.stopped = True
        self.manager.release(self)


def test_run_manager_caps_queues_in_order_and_frees_on_close():
    m = RunManager(2)
    runs = [FakeRun(owner=f"tab{i}") for i in range(5)]
    for r in runs:
        r.manager = m
    assert [m.acquire(r) for r in runs] == [True, True, False, False, False]
    assert [m.position(r) for r in runs] == [0, 0, 1, 2, 3]
    assert (m.active, m.waiting) == (2, 3)
    m.release(runs[0])  # the first waiting run starts (on the manager's thread), the others move up
    assert m.holds_slot(runs[2]) and wait_for(lambda: runs[2].granted_calls == 1)
    assert [m.position(r) for r in runs[3:]] == [1, 2]
    assert m.release_owner("tab4") == 1 and runs[4].stopped and m.position(runs[4]) == 0  # a closed tab leaves the queue
    assert m.release_owner("tab1") == 1  # its slot goes to the next in line
    assert wait_for(lambda: runs[3].granted_calls == 1)
    assert (m.active, m.waiting) == (2, 0)
    assert not runs[0].stopped and runs[2].granted_calls == 1
    with pytest.raises(ValueError):
        RunManager(0)


def test_a_run_promoted_from_the_queue_starts_off_the_request_that_freed_its_slot():
    """Pause, Reset or a closed tab answers at once: the next run in line starts on the manager's
    own thread, the promoted runs in their order, and one that fails to start says so and passes
    its slot on."""
    import threading

    m = RunManager(1)
    gate, order, failures = threading.Event(), [], []

    class Slow(FakeRun):
        def granted(self):
            order.append((self.owner, threading.current_thread()))
            gate.wait(10)

    class Broken(FakeRun):
        def granted(self):
            raise OSError("no process could be started")

        def could_not_start(self, error):
            failures.append(str(error))

    first, slow, broken, last = FakeRun("a"), Slow("b"), Broken("c"), FakeRun("d")
    for r in (first, slow, broken, last):
        r.manager = m
    assert [m.acquire(r) for r in (first, slow, broken, last)] == [True, False, False, False]
    t0 = time.perf_counter()
    m.release(first)
    assert time.perf_counter() - t0 < 1.0 and m.holds_slot(slow)  # not waiting on the slow start
    assert wait_for(lambda: order) and order[0][1] is not threading.current_thread()
    m.release(slow)  # its start is still under way: the next waits its turn, in order
    time.sleep(0.2)
    assert failures == [] and last.granted_calls == 0
    gate.set()
    assert wait_for(lambda: last.granted_calls == 1)  # the broken one said why and passed its slot on
    assert failures == ["no process could be started"] and m.holds_slot(last) and m.waiting == 0


def test_over_the_cap_a_session_waits_and_starts_when_a_slot_frees(manager):
    a, b = Session(manager), Session(manager)
    a.owner, b.owner = "tab-a", "tab-b"
    ra, rb = tiny_run(a), tiny_run(b)
    ra.play()
    rb.play()
    assert ra.status == "running" and rb.status == "waiting" and rb.queue_position() == 1
    assert "#1** in the queue" in A.format_status(b)
    assert wait_for(lambda: ra.step > 5)
    time.sleep(0.3)
    assert rb.step == 0  # waiting means not training
    ra.pause()  # a paused run gives its slot to the next in line
    assert wait_for(lambda: rb.status == "running" and rb.step > 5)
    assert ra.status == "paused"
    ra.play()
    assert ra.status == "waiting" and ra.queue_position() == 1
    manager.release_owner("tab-b")  # b's tab closes: its run stops and a's resumes
    assert rb.status == "stopped"
    assert wait_for(lambda: ra.status == "running")
    a.close()
    assert (manager.active, manager.waiting) == (0, 0)


def test_sessions_are_isolated():
    m = RunManager(4)
    try:
        a, b = Session(m), Session(m)
        ra, rb = tiny_run(a, seed=1), tiny_run(b, "vae", "eight_gaussians", seed=2)
        assert ra is not rb and a.current is ra and b.current is rb
        rb.play()
        assert wait_for(lambda: rb.step > 10)
        assert ra.step == 0 and ra.status == "ready"
        rb.set_live("lr", 0.01)
        rb.set_live("beta", 2.5)
        assert wait_for(lambda: rb.trainer.learning_rates() == {"model": 0.01})  # the child says so
        assert rb.model.config.beta == 2.5
        assert ra.trainer.learning_rates() == {"model": registry.train_config("realnvp").lr}
        b.close()
        assert a.current is ra and a.runs_for_compare() == {}
    finally:
        m.shutdown()


def test_a_live_knob_acts_on_the_running_model_and_the_others_wait_for_reset(manager):
    s = Session(manager)
    tiny_run(s, "vae", "eight_gaussians")
    s.current.play()
    knobs = knob_values("vae", **TINY, **TINY_TRAIN)
    beta, lr, hidden = (K.knob_key(K.knobs_for("vae")[n][0]) for n in ("beta", "lr", "hidden"))
    out = A.on_knob(s, "vae", "eight_gaussians", {**knobs, beta: 3.0}, beta)
    assert s.current.model.config.beta == 3.0 and "beta = 3.0 applied" in out["status"]
    assert "beta=3" in out["query"]
    A.on_knob(s, "vae", "eight_gaussians", {**knobs, beta: 3.0, lr: 0.02}, lr)
    assert wait_for(lambda: s.current.trainer.learning_rates() == {"model": 0.02})
    assert wait_for(lambda: s.current.step > 0)
    out = A.on_knob(s, "vae", "eight_gaussians", {**knobs, hidden: 32}, hidden)
    assert s.current.model.config.hidden == TINY["hidden"] and "takes effect when you press Reset" in out["status"]
    assert "takes effect when you press Reset" in A.format_status(s)  # the note outlives the next redraw


def test_pause_and_reset_answer_within_a_second(manager):
    s = Session(manager)
    run = tiny_run(s)
    run.play()
    assert wait_for(lambda: run.step > 10 and run.seq > 1)
    t0 = time.perf_counter()
    run.pause()
    assert time.perf_counter() - t0 < 1.0
    time.sleep(0.2)
    paused_at = run.step
    time.sleep(0.5)
    assert run.step == paused_at and run.status == "paused"
    run.step_once(3)
    assert wait_for(lambda: run.step == paused_at + 3)
    run.play()
    assert wait_for(lambda: run.step > paused_at + 10)
    t0 = time.perf_counter()
    out = A.reset(s, "realnvp", "two_moons", knob_values(**TINY, **TINY_TRAIN))
    took = time.perf_counter() - t0
    assert run.status == "stopped" and s.current is not run and s.current.step == 0
    assert "step 0" in out["status"]
    assert list(s.runs_for_compare()) == [run.label]  # the old run's curves went to Compare
    assert wait_for(lambda: s.current.latest is not None)  # the fresh model is drawn at step 0
    s.current.play()
    assert wait_for(lambda: s.current.step > 10)
    t0 = time.perf_counter()
    A.reset(s, "realnvp", "two_moons", knob_values(**TINY, **TINY_TRAIN))
    assert min(took, time.perf_counter() - t0) < 1.0  # the better of two, against a busy machine's noise


def test_a_drawn_field_level_brings_the_exact_score_of_the_data_on_the_plane():
    import types

    import torch

    import numpy as np

    from core import registry
    from core.data.toy2d import plane_grid
    from playground.runs.run import Run

    ds = registry.load_dataset("eight_gaussians")
    host = types.SimpleNamespace(dataset=ds, ctx={"grid_resolution": 12}, _true_scores={})
    snap = {"traces": {"field_level": np.array([0.8, 0.5], dtype=np.float32)}}
    Run._attach_true_score(host, snap)
    grid = plane_grid(ds.bounds, 12, torch.float64)[0]
    assert snap["true_score_field"].shape == (144, 2)
    np.testing.assert_allclose(snap["true_score_field"], ds.path_score(grid, 0.8, 0.5).numpy(), rtol=1e-5, atol=1e-5)
    assert list(host._true_scores) == [(0.8, 0.5)]  # cached per level
    for bad in ({"traces": {}}, {"traces": {"field_level": np.array([0.0, 0.5])}}, {}):
        Run._attach_true_score(host, bad)
        assert "true_score_field" not in bad


def test_a_run_nobody_can_see_has_its_first_snapshot_at_once_and_no_picture(manager):
    """A client of the API never sees pictures: its run's step 0 is stored as it is built, with
    nothing drawn; a page's run draws its step 0 off the request."""
    api, page = Session(manager), Session(manager)
    api.api_call()
    run = tiny_run(api)
    assert run._init_thread is None and run.latest is not None
    assert run.latest["step"] == 0 and "traces" not in run.latest
    shown = tiny_run(page)
    assert shown._init_thread is not None
    assert wait_for(lambda: shown.latest is not None and "traces" in shown.latest)
    api.close()
    page.close()
