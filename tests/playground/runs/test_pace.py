"""A page's pace control and its per-phase Step buttons, through Run, on every transport.

The pace is seen in what the run records and in a bound on steps, never in how long a step
takes: at a slow pace a record comes after every step, and at a pace of one step a minute no
more than one step is taken in a few seconds, however fast or slow the machine.
"""

import copy
import time

import pytest
import torch

from core.errors import ConfigError
from playground.runs import Session
from playground.runs import run as R
from tests.fakes import wait_for
from tests.playground.tiny import tiny_run

TRANSPORTS = {"thread": {"transport": "thread"}, "process": {"transport": "process"},
              "chunked": {"transport": "chunked", "chunk_seconds": 0.5}}


@pytest.fixture(params=sorted(TRANSPORTS))
def session(request, manager, monkeypatch):
    monkeypatch.setattr(R, "transport_options", lambda: dict(TRANSPORTS[request.param]))
    s = Session(manager)
    yield s
    if s.current is not None:
        s.current.stop(wait=5)


def consecutive(records) -> bool:
    steps = [r["step"] for r in records]
    return len(steps) >= 4 and all(b - a == 1 for a, b in zip(steps, steps[1:]))


def test_a_pace_set_live_slows_the_run_to_one_record_per_step(session):
    run = tiny_run(session)
    run.play()
    assert wait_for(lambda: run.step > 10)
    run.set_live("pace", 5)
    assert run.train_settings["pace"] == 5
    assert wait_for(lambda: consecutive(run.trainer.history[-4:]), timeout=60)
    run.set_live("pace", 1 / 60)
    time.sleep(2.0)  # the setting reaches the run (a chunk's call ends within half a second)
    held = run.step
    time.sleep(2.0)
    assert run.step <= held + 1 and run.status == "running"
    run.set_live("pace", 0)  # full speed again, at once, though a minute's wait had begun
    # (within a chunk's call or two: a call held by the wait once slept the whole minute, and on a
    # ZeroGPU Space would have held the GPU for it)
    assert wait_for(lambda: run.step > held + 20, timeout=30)
    with pytest.raises(ConfigError, match="pace=5000 is out of range: too large; allowed up to 1,000"):
        run.set_live("pace", 5000)


def test_stepping_one_phase_of_a_gan_moves_only_that_player(session):
    run = tiny_run(session, "gan")
    assert run.phases == ["D", "G"]
    with pytest.raises(ConfigError, match="'X' is not a phase of GAN; its phases are: D, G"):
        run.step_once(1, phase="X")
    start = run.trainer.initial_model().state_dict()  # after its data-dependent start, as training begins

    def picture_at(step):
        assert wait_for(lambda: run.trainer.latest_at[0] == step and run.status == "paused")
        with run.trainer.newest() as (model, _):
            return copy.deepcopy(model.state_dict())

    def moved(before, after, player):
        keys = [k for k in before if k.startswith(player + ".") and before[k].is_floating_point()]
        assert keys
        return [not torch.equal(before[k], after[k]) for k in keys]

    run.step_once(1, phase="D")
    one = picture_at(1)
    assert any(moved(start, one, "D")) and not any(moved(start, one, "G"))
    run.step_once(1, phase="G")
    two = picture_at(2)
    assert any(moved(one, two, "G")) and not any(moved(one, two, "D"))
    assert run.step == 2


def test_a_model_of_one_phase_names_it():
    from core import registry
    from core.train import Trainer

    registry.load_all()
    model = registry.build_model("realnvp", (2,), {"layers": 2, "hidden": 16})
    cfg = registry.train_config("realnvp", {"n_data": 256, "batch_size": 32})
    assert Trainer(model, registry.load_dataset("two_moons"), cfg, device="cpu").phases == ["model"]
