"""A run's pace (steps per second, 0 for full speed) and a step of one phase alone.

Pace is checked against a fake clock the Runner is given, never against the wall clock: the
Runner must ask to sleep 1/pace between steps, in slices that leave it answering commands,
and report after every step once a step takes at least a report's interval.
"""

import pytest
import torch

from core import registry
from core.config import TrainConfig
from core.data.base import TrainingData
from core.errors import ConfigError
from core.train import Engine, Trainer
from core.train.engine import training_data_for
from core.train.runner import PACE_SLICE, Runner
from tests.fakes import Gauss2D, MeanModel


class FakeClock:
    """A clock that moves only when slept on; a step takes no time on it."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedInbox:
    """Gives `commands` one per poll, each once a `when(clock)` holds."""

    def __init__(self, fake: FakeClock, script):
        self.fake, self.script = fake, list(script)

    def poll(self, timeout):
        if self.script and self.script[0][0](self.fake):
            return self.script.pop(0)[1]
        return None


def mean_engine(pace: float = 0.0, steps: int = 100) -> Engine:
    data = TrainingData({"x": torch.randn(256, 2, generator=torch.Generator().manual_seed(0)) + 3.0})
    return Engine(MeanModel(), data, TrainConfig(steps=steps, batch_size=32, lr=0.05, pace=pace), torch.device("cpu"))


def stepped_at(engine: Engine, fake: FakeClock) -> list[float]:
    """Record the fake time at which every step starts."""
    times, step = [], engine.step

    def timed(*args, **kwargs):
        times.append(fake.now)
        return step(*args, **kwargs)

    engine.step = timed
    return times


# ---- pace -----------------------------------------------------------------------------
@pytest.mark.parametrize("pace", [5.0, 2.0])
def test_at_a_slow_pace_the_runner_sleeps_one_over_pace_between_steps_and_reports_every_step(pace):
    fake, e = FakeClock(), mean_engine(pace)
    times = stepped_at(e, fake)
    reports = []
    status = Runner(e, 6, log_every=10, clock=fake.clock, sleep=fake.sleep).run(
        report=reports.append, report_every=0.15)
    assert status == "done" and e.step_count == 6
    assert times == pytest.approx([i / pace for i in range(6)])  # the first step waits for nothing
    assert sum(fake.sleeps) == pytest.approx(5 / pace)
    assert max(fake.sleeps) <= PACE_SLICE  # slices: a command is answered within one
    # every step reported, each with its own loss record, and the sleeping is not training time
    assert [r["step"] for r in reports if not r["final"]] == [1, 2, 3, 4, 5, 6]
    assert [rec["step"] for r in reports for rec in r["history"]] == [1, 2, 3, 4, 5, 6]
    assert reports[-1]["elapsed"] < 0.5 / pace


def test_at_pace_zero_the_runner_never_sleeps():
    fake, e = FakeClock(), mean_engine(0.0)
    reports = []
    Runner(e, 50, log_every=10, clock=fake.clock, sleep=fake.sleep).run(report=reports.append, report_every=0.15)
    assert fake.sleeps == [] and e.step_count == 50
    assert [rec["step"] for r in reports for rec in r["history"]] == [10, 20, 30, 40, 50]


def test_pause_and_step_answer_during_a_slow_pace_at_once():
    fake, e = FakeClock(), mean_engine(0.5)  # two seconds between steps
    times = stepped_at(e, fake)
    inbox = ScriptedInbox(fake, [(lambda f: f.now > 0, ("pause",)),  # during the first wait
                                 (lambda f: True, ("step", 1)),
                                 (lambda f: e.step_count == 2, ("stop",))])
    status = Runner(e, 100, clock=fake.clock, sleep=fake.sleep).run(inbox, report=lambda m: None)
    assert status == "stopped" and e.step_count == 2
    assert times == [0.0, pytest.approx(PACE_SLICE)]  # paused after one slice; the step did not wait


def test_pace_is_a_live_setting_of_the_run_and_is_refused_out_of_range():
    fake, e = FakeClock(), mean_engine(0.0)
    runner = Runner(e, 3, clock=fake.clock, sleep=fake.sleep)
    runner.obey(("set", "pace", 4))
    assert e.cfg.pace == 4.0
    runner.run(report=lambda m: None)
    assert sum(fake.sleeps) == pytest.approx(2 / 4)
    t = Trainer(MeanModel(), Gauss2D(), TrainConfig(steps=10, batch_size=32, n_data=256), device="cpu")
    for bad, needle in [(2000, "pace=2000 is out of range: too large; allowed up to 1,000"),
                        (-1, "pace=-1 is out of range; it must be between 0 and 1,000"),
                        ("fast", "pace must be a number from 0 to 1,000, got 'fast'")]:
        with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
            t.set_live("pace", bad)
    t.set_live("pace", "2.5")  # a link's string
    assert t.cfg.pace == 2.5 and t.engine.cfg.pace == 2.5


# ---- one phase alone ---------------------------------------------------------------------
def gan_engine(**settings) -> Engine:
    torch.manual_seed(0)
    model = registry.build_model("gan", (2,), {"hidden": 16, "layers": 1, **settings})
    data = training_data_for(model, registry.load_dataset("two_moons"), 512, 0)
    return Engine(model, data, TrainConfig(steps=100, batch_size=64, n_data=512), torch.device("cpu"))


def params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters())]


@pytest.mark.parametrize("phase,moves,stays", [("D", "D", "G"), ("G", "G", "D")])
def test_a_step_of_one_phase_changes_only_that_players_weights(phase, moves, stays):
    e = gan_engine(n_critic=3)
    m = e.model
    before = {name: params(getattr(m, name)) for name in ("D", "G")}
    terms = e.step(phase)
    assert all(changed(before[moves], getattr(m, moves)))
    assert not any(changed(before[stays], getattr(m, stays)))
    # a step of one phase counts as one step of the run, and carries only that phase's terms
    assert e.step_count == 1 and f"loss_{phase}" in terms and f"loss_{stays}" not in terms
    assert e.check()[f"loss_{phase}"] == pytest.approx(float(terms[f"loss_{phase}"]), rel=1e-6)


def test_the_discriminator_alone_takes_its_n_critic_batches():
    e = gan_engine(n_critic=3)
    calls = []
    d_loss = e.phases[0].loss
    e.phases[0].loss = lambda batch: calls.append(1) or d_loss(batch)
    e.step("D")
    assert len(calls) == 3


def test_a_phase_the_model_does_not_have_is_refused_with_the_valid_ones():
    e = gan_engine()
    with pytest.raises(ConfigError, match=r"'X' is not a phase of GAN; its phases are: D, G"):
        e.step("X")
    assert e.step_count == 0
    t = Trainer(MeanModel(), Gauss2D(), TrainConfig(steps=10, batch_size=32, n_data=256), device="cpu")
    assert t.phases == ["model"]
    with pytest.raises(ConfigError, match=r"'D' is not a phase of MeanModel; its phases are: model"):
        t.step_once(1, phase="D")


def test_the_runner_steps_one_phase_while_paused():
    e = gan_engine()
    m = e.model
    before = {name: params(getattr(m, name)) for name in ("D", "G")}
    inbox = ScriptedInbox(FakeClock(), [(lambda f: True, ("step", 2, "G")),
                                        (lambda f: e.step_count == 2, ("stop",))])  # once both are taken
    status = Runner(e, 100).run(inbox, report=lambda msg: None, paused=True)
    assert status == "stopped" and e.step_count == 2
    assert all(changed(before["G"], m.G)) and not any(changed(before["D"], m.D))
