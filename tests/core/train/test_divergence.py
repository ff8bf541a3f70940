"""A loss that explodes stops a run as a non-finite one does: at the step it appeared, with the
weights of the last check put back; a large but healthy loss does not."""

import pytest
import torch

from core.config import TrainConfig
from core.errors import TrainingDiverged
from core.model import Phase
from core.train import Engine
from core.train.engine import LOSS_LIMIT
from core.data.base import TrainingData
from tests.fakes import MeanModel


class Exploding(MeanModel):
    """MeanModel whose loss is multiplied by `factor` from call `at` on: finite, and as large as asked."""

    def __init__(self, at: int, factor: float):
        super().__init__()
        self.at, self.factor = at, factor

    def loss(self, x):
        out = super().loss(x)
        if self.calls >= self.at:
            out = {k: v * self.factor for k, v in out.items()}
        return out


class TwoPhases(MeanModel):
    """A D phase and a G phase on the same mean; G's loss explodes from its call `at` on."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.g_calls = at, 0

    def g_loss(self, x):
        self.g_calls += 1
        nll = -self.log_prob(x).mean()
        return {"loss": nll * (1e12 if self.g_calls >= self.at else 1.0)}

    def phases(self, lr):
        return [Phase("D", self.loss, [self.mu], lr), Phase("G", self.g_loss, [self.mu], lr)]


def engine(model) -> Engine:
    data = TrainingData({"x": torch.randn(512, 2, generator=torch.Generator().manual_seed(0)) + 3.0})
    return Engine(model, data, TrainConfig(steps=100, batch_size=32, lr=0.05), torch.device("cpu"))


def run(e: Engine, steps: int, check_every: int = 10) -> None:
    for _ in range(steps):
        e.step()
        if e.step_count % check_every == 0:
            e.check()


@pytest.mark.parametrize("factor", [1e12, -1e12, 1e31])
def test_a_finite_loss_past_the_limit_stops_the_run_and_keeps_the_last_good_weights(factor):
    e = engine(Exploding(at=25, factor=factor))
    with pytest.raises(TrainingDiverged) as info:
        run(e, 100)
    message = str(info.value)
    assert "step 25: the loss exploded to" in message and f"{LOSS_LIMIT:.0e}" in message
    assert "The weights from step 20 were kept" in message and "lower learning rate" in message
    assert "nan" not in message.lower() and "inf" not in message.lower()  # it is a finite number
    assert e.status == "diverged" and e.step_count == 24
    # the weights put back are those of step 20: the same run, healthy, stopped there
    healthy = engine(MeanModel())
    run(healthy, 20)
    assert torch.equal(e.model.mu, healthy.model.mu) and torch.isfinite(e.model.mu).all()


def test_the_phase_whose_loss_exploded_is_named():
    e = engine(TwoPhases(at=7))
    with pytest.raises(TrainingDiverged, match=r"step 7: the G loss exploded to \d\.\d+e\+1\d"):
        run(e, 20, check_every=5)


def test_a_large_healthy_loss_runs_to_the_end():
    # A digit's NLL in nats at the first step reaches about 2e5 (glow's); a loss of that size,
    # or one a little under the limit, trains on.
    e = engine(MeanModel())
    e.step()
    first = e.check()["loss"]  # about 40 nats: the mean starts 3 from the data's in each coordinate
    for target in (2e5, LOSS_LIMIT / 2):
        e = engine(Exploding(at=1, factor=target / first))
        run(e, 40)
        assert e.status != "diverged" and e.step_count == 40


class SpoiledWeights(MeanModel):
    """MeanModel with a weight `w` that its loss never reads, set to `value` after optimiser step
    `at`: the weights stop being finite while every loss stays finite."""

    def __init__(self, at: int, value: float = float("nan")):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.at, self.value, self.updates = at, value, 0

    def after_phase(self, name):
        self.updates += 1
        if self.updates == self.at:
            with torch.no_grad():
                self.w.fill_(self.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_weights_that_stop_being_finite_stop_the_run_though_every_loss_is_finite(value):
    e = engine(SpoiledWeights(at=15, value=value))
    with pytest.raises(TrainingDiverged) as info:
        run(e, 40)
    message = str(info.value)
    assert "Training stopped at step 20: the model's weights" in message and "after step 10" in message
    assert "The weights from step 10 were kept" in message and "lower learning rate" in message
    assert e.status == "diverged" and e.step_count == 10
    assert all(torch.isfinite(p).all() for p in e.model.parameters())
    healthy = engine(MeanModel())
    run(healthy, 10)
    assert torch.equal(e.model.mu, healthy.model.mu)


def test_a_weight_average_that_stops_being_finite_stops_the_run():
    # the pictures and samples come from the average (view_weights): a NaN there is a NaN picture
    e = engine(MeanModel(config=type(MeanModel().config)(ema=0.9)))
    run(e, 10)
    with torch.no_grad():
        e.ema.shadow[0].fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 20: the model's weights"):
        run(e, 10)
    assert all(torch.isfinite(v).all() for v in e.view_weights().values())


def test_the_runner_ends_a_run_with_spoiled_weights_as_diverged_with_the_message():
    from core.train.runner import Runner

    e = engine(SpoiledWeights(at=15))
    reports = []
    status = Runner(e, 100, log_every=10).run(report=reports.append, report_every=1e9)
    assert status == "diverged" and reports[-1]["final"] and reports[-1]["status"] == "diverged"
    assert "step 20" in reports[-1]["message"] and "gradient clipping" in reports[-1]["message"]
    assert all(abs(v).max() < 1e9 for v in reports[-1]["state"].values())  # the good weights are sent
