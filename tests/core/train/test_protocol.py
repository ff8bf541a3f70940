"""What the protocol lets a family declare, and the engine does with it: each phase's
optimiser, steps that are not gradient steps, a learning-rate schedule, a weight average,
batches of several tensors, and a small piece of state that travels with the weights."""

import math

import pytest
import torch

from core.config import TrainConfig, make
from core.errors import ConfigError, TrainingDiverged
from core.model import VIEW_STATE_MAX_ELEMENTS, Phase
from core.train import Engine, Trainer
from core.train.optim import EMA, lr_multiplier
from tests.fakes import (Gauss2D, Labelled, MeanModel, RunningMean, TinyImages, ToyConfig, TwoDomains, Unpaired,
                         wait_for)


def cfg(**kw):
    return make(TrainConfig, {"steps": 200, "batch_size": 32, "lr": 0.05, "n_data": 512, **kw})


def engine(model, dataset=None, **kw):
    data = (dataset or Gauss2D()).training_data(512, 0, model.batch_fields)
    return Engine(model, data, cfg(**kw), torch.device("cpu"))


# ---- optimisers -----------------------------------------------------------------------
class ThreeOptimisers(MeanModel):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))

    def phases(self, lr):
        sq = lambda p: (lambda x: {"loss": (p * x.mean(0)).sum()})  # noqa: E731 - gradient = batch mean
        return [Phase("adam", sq(self.mu), [self.mu], lr, betas=(0.5, 0.9)),
                Phase("rms", sq(self.a), [self.a], lr, betas=(0.0, 0.95), optimizer="rmsprop", momentum=0.1),
                Phase("sgd", sq(self.b), [self.b], 0.25, optimizer="sgd")]


def test_each_phase_gets_the_optimiser_it_asks_for():
    model = ThreeOptimisers()
    e = engine(model)
    adam, rms, sgd = (e.optimizers[k] for k in ("adam", "rms", "sgd"))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.5, 0.9)
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.95 and rms.defaults["momentum"] == 0.1
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["lr"] == 0.25
    # plain SGD: b <- b - lr * grad, and the gradient of (b . mean(x)) is the batch's mean
    before = model.b.detach().clone()
    batches = torch.Generator()
    batches.set_state(e._batches.get_state())  # replay the engine's batch draws
    for _ in range(2):  # the adam and rmsprop phases draw their batches first
        e.data.batch(32, batches)
    expected = before - 0.25 * e.data.batch(32, batches).mean(0)
    e.step()
    assert torch.allclose(model.b.detach(), expected)


def test_a_phase_needs_a_loss_or_an_update_and_a_known_optimiser():
    with pytest.raises(ValueError, match="either a loss or an update"):
        Phase("x")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        Phase("x", loss=lambda b: {}, optimizer="lbfgs")


# ---- steps that are not gradient steps -------------------------------------------------------
def test_an_update_phase_changes_the_model_without_an_optimiser():
    model = RunningMean()
    e = engine(model)
    assert e.optimizers == {}
    batches = torch.Generator()
    batches.set_state(e._batches.get_state())
    seen = torch.cat([e.data.batch(32, batches) for _ in range(10)])
    for _ in range(10):
        e.step()
    assert torch.allclose(model.mu, seen.mean(0), atol=1e-6)  # the mean of everything seen
    means = e.check()
    assert set(means) == {"loss", "seen"} and means["seen"] == pytest.approx(sum(32 * k for k in range(1, 11)) / 10)


def test_a_non_finite_update_loss_stops_the_run_too():
    class Bad(RunningMean):
        def update(self, x):
            out = super().update(x)
            return {**out, "loss": out["loss"] * float("inf")}

    e = engine(Bad())
    e.step()
    with pytest.raises(TrainingDiverged, match="step 1: the loss became inf"):
        e.check()


# ---- learning-rate schedules ------------------------------------------------------------------
def test_the_schedule_is_a_plain_function_of_the_step():
    c = cfg(steps=100, warmup=10, lr_schedule="cosine")
    assert lr_multiplier(0, c) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(0))))
    assert lr_multiplier(9, c) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lr_multiplier(50, c) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_multiplier(100, c) == pytest.approx(0.1)  # a tenth of the rate at the last step
    assert lr_multiplier(60, cfg(steps=100, lr_schedule="linear")) == pytest.approx(1 - 0.9 * 0.6)
    assert lr_multiplier(60, cfg(steps=100)) == 1.0
    with pytest.raises(ConfigError):
        cfg(lr_schedule="exponential")


def test_the_engine_sets_the_scheduled_rate_at_every_step():
    e = engine(MeanModel(), steps=40, warmup=5, lr_schedule="linear")
    seen = []
    opt = e.optimizers["model"]
    real_step = opt.step

    def spy(*a, **k):
        seen.append(opt.param_groups[0]["lr"])
        return real_step(*a, **k)

    opt.step = spy
    for _ in range(40):
        e.step()
    assert seen == pytest.approx([0.05 * lr_multiplier(k, e.cfg) for k in range(40)])
    e.set_lr(0.01)  # a live change scales the schedule's base
    e.step()
    assert seen[-1] == pytest.approx(0.01 * lr_multiplier(40, e.cfg))


# ---- a weight average -------------------------------------------------------------------------
def test_the_average_follows_the_ema_recursion_and_is_what_pictures_and_samples_use():
    model = MeanModel(config=ToyConfig(ema=0.9))
    e = engine(model)
    assert isinstance(e.ema, EMA)
    shadow = model.mu.detach().clone()
    for k in range(1, 31):
        e.step()
        d = min(0.9, (1 + k) / (10 + k))
        shadow = d * shadow + (1 - d) * model.mu.detach()
    assert torch.allclose(e.view_weights()["mu"], shadow, atol=1e-6)
    assert not torch.allclose(model.mu.detach(), shadow)  # the average lags the weights
    assert torch.allclose(e.averaged_model().mu, shadow, atol=1e-6)
    assert engine(MeanModel()).ema is None  # no average unless the model asks for one


def test_a_background_run_draws_the_average():
    model = MeanModel(config=ToyConfig(ema=0.9))
    t = Trainer(model, Gauss2D(), cfg(), device="cpu")
    t.start(lambda snap: None, snapshot_interval=0.01, paused=True)
    t.step_once(20)
    assert wait_for(lambda: t.latest_at[0] == 20)
    t.stop()
    with t.newest() as (drawn, _):
        assert torch.allclose(drawn.mu, t.engine.ema.state()["mu"]) and not torch.allclose(drawn.mu, model.mu)


# ---- batches of several tensors -------------------------------------------------------------------
def test_a_batch_carries_labels_row_for_row():
    model = Labelled()
    e = engine(model, TinyImages())
    e.step()
    (batch,) = model.batches
    assert set(batch) == {"x", "label"} and batch.x.shape == (32, *model.data_shape)
    rows = batch.x[:, 0].mean(2).argmax(1)  # (n,) the bright row of each image
    assert torch.equal(rows, batch.label)  # each image with its own label (the bright row)


def test_two_domains_are_drawn_independently():
    model = Unpaired()
    e = engine(model, TwoDomains())
    e.step()
    (batch,) = model.batches
    assert batch.x.shape == (32, 2) and batch.b.shape == (32, 2) and bool((batch.b >= 1000).all())
    assert not torch.equal(batch.b - 1000, batch.x)  # no row of b was chosen with its row of x
    assert int(batch.b.max()) < 1000 + 256  # b is its own, smaller set


class DrawsItsOwnDomain(Unpaired):
    """Unpaired, but b comes from the model itself (a CycleGAN's source domain), not the dataset."""

    def own_data(self, n, seed):
        return {"b": 1000.0 + torch.arange(n // 4, dtype=torch.float32)[:, None].expand(n // 4, 2).clone()}


def test_fields_a_model_draws_itself_join_the_dataset_s_as_their_own_group():
    model = DrawsItsOwnDomain()
    t = Trainer(model, Gauss2D(), cfg(steps=1), device="cpu")
    assert t.training_data.fields == ("x", "b") and len(t.training_data.groups) == 2
    t.fit(1)
    (batch,) = model.batches
    assert batch.x.shape == (32, 2) and bool((batch.b >= 1000).all()) and int(batch.b.max()) < 1000 + 128
    assert abs(float(batch.x.mean()) - 1.0) < 0.3  # x is Gauss2D's, centred on (1, 1)


def test_data_without_what_the_model_needs_is_refused():
    with pytest.raises(ConfigError, match="no label"):
        Trainer(Labelled((2,)), TwoDomains(), cfg(), device="cpu")
    with pytest.raises(ConfigError, match="has no labels"):
        Trainer(Labelled((2,)), Gauss2D(), cfg(), device="cpu")


# ---- state beside the weights ---------------------------------------------------------------------
def test_view_state_travels_with_the_weights_to_the_process_that_draws():
    model = RunningMean()
    t = Trainer(model, Gauss2D(), cfg(steps=12), device="cpu", transport="process")
    t.start(lambda snap: None, snapshot_interval=0.01)
    assert wait_for(lambda: t.status == "done") and t.wait_views(30)
    with t.newest() as (drawn, at):
        assert at[0] == 12
        # the child's last batch mean, and its mean of all batches: exactly what training here gives
        here = Trainer(RunningMean(), Gauss2D(), cfg(steps=12), device="cpu")
        here.fit(12)
        assert torch.equal(drawn.mu, here.model.mu) and torch.equal(drawn.last, here.model.last)


class TooMuchState(RunningMean):  # at module level, so that the child process can unpickle it
    def view_state(self):
        return {"chains": torch.zeros(VIEW_STATE_MAX_ELEMENTS + 1)}


def test_a_view_state_too_large_to_travel_is_refused_with_a_reason():
    t = Trainer(TooMuchState(), Gauss2D(), cfg(), device="cpu", transport="process")
    t.start(lambda snap: None, snapshot_interval=0.01)
    assert wait_for(lambda: t.status == "error")
    assert "view_state() holds" in t.message and f"at most {VIEW_STATE_MAX_ELEMENTS}" in t.message
    t.stop()
