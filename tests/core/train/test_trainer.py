"""The trainer: phases, reproducibility, divergence handling, live control."""

import threading
import time

import pytest
import torch

from core import registry
from core.config import TrainConfig, make
from core.errors import ConfigError, TrainingDiverged
from core.model import Phase
from core.train import Trainer
from tests.fakes import Gauss2D as Gauss1
from tests.fakes import MeanModel


class TwoPlayer(MeanModel):
    def __init__(self):
        super().__init__()
        self.d = torch.nn.Parameter(torch.zeros(1))
        self.counts = {"D": 0, "G": 0}
        self.after = []

    def _d(self, x):
        self.counts["D"] += 1
        return {"loss": (self.d - 1).pow(2).sum(), "d_loss": self.d.detach().sum()}

    def _g(self, x):
        self.counts["G"] += 1
        return {"loss": (self.mu - x.mean(0)).pow(2).sum(), "g_loss": self.mu.detach().sum()}

    def phases(self, lr):
        return [Phase("D", self._d, [self.d], lr, repeats=3), Phase("G", self._g, [self.mu], lr)]

    def after_phase(self, name):
        self.after.append(name)


def cfg(**kw):
    return make(TrainConfig, {"steps": 200, "batch_size": 64, "lr": 0.05, "n_data": 1000, **kw})


def test_single_phase_training_moves_toward_the_data():
    t = Trainer(MeanModel(), Gauss1(), cfg(), device="cpu")
    t.fit(200, log_every=20)
    assert torch.allclose(t.model.mu.detach(), torch.ones(2), atol=0.1)
    assert len(t.history) == 10 and t.history[-1]["step"] == 200
    assert t.history[-1]["loss"] < t.history[0]["loss"]


def test_alternating_phases_run_in_order_with_repeats():
    m = TwoPlayer()
    t = Trainer(m, Gauss1(), cfg(), device="cpu")
    terms = t.step()
    assert m.counts == {"D": 3, "G": 1}
    assert m.after == ["D", "D", "D", "G"]
    assert set(terms) == {"loss_D", "d_loss", "loss_G", "g_loss"}
    t.fit(9, log_every=10)
    assert m.counts == {"D": 30, "G": 10}


def test_a_fixed_seed_reproduces_a_cpu_run():
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = registry.build_model("realnvp", (2,), {"layers": 2, "hidden": 16})
        t = Trainer(model, registry.load_dataset("eight_gaussians"), cfg(steps=30, lr=1e-3, seed=7), device="cpu")
        t.fit(30, log_every=10)
        runs.append(([h["loss"] for h in t.history], [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_non_finite_loss_stops_with_a_message_and_keeps_good_weights():
    m = MeanModel(nan_at=60)
    t = Trainer(m, Gauss1(), cfg(), device="cpu")
    with pytest.raises(TrainingDiverged) as e:
        t.fit(200, log_every=10)
    msg = str(e.value)
    assert "step 60" in msg and "nan" in msg and "lower learning rate" in msg and "step 50" in msg
    assert t.status == "diverged" and t.step_count == 59
    assert torch.isfinite(m.mu).all()
    # the kept weights are the ones copied at step 50, not the latest
    t2 = Trainer(MeanModel(), Gauss1(), cfg(), device="cpu")
    t2.fit(50, log_every=10)
    assert torch.allclose(m.mu, t2.model.mu)


def test_batch_larger_than_the_data_is_refused():
    with pytest.raises(ConfigError, match="larger than the data"):
        Trainer(MeanModel(), Gauss1(), cfg(n_data=10, batch_size=64), device="cpu")


def test_learning_rate_changes_live():
    t = Trainer(TwoPlayer(), Gauss1(), cfg(), device="cpu")
    t.set_lr(0.5, phase="G")
    assert t.optimizers["G"].param_groups[0]["lr"] == 0.5
    assert t.optimizers["D"].param_groups[0]["lr"] == 0.05
    with pytest.raises(ConfigError):
        t.set_lr(-1.0)


def test_background_run_pause_step_resume_stop_and_snapshots():
    snaps = []
    got = threading.Event()

    def on_snapshot(s):
        snaps.append(s)
        got.set()

    torch.manual_seed(0)
    model = registry.build_model("realnvp", (2,), {"layers": 2, "hidden": 16})
    t = Trainer(model, registry.load_dataset("eight_gaussians"), cfg(steps=100_000, lr=1e-3), device="cpu")
    t.start(on_snapshot=on_snapshot, snapshot_interval=0.05, metrics_interval=0.2)
    assert got.wait(10)
    t.pause()
    time.sleep(0.2)
    frozen = t.step_count
    time.sleep(0.3)
    assert t.step_count == frozen and t.status == "paused"
    t.step_once(3)
    deadline = time.time() + 5
    while t.step_count < frozen + 3 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert t.step_count == frozen + 3
    t.resume()
    time.sleep(0.2)
    assert t.step_count > frozen + 3
    deadline = time.time() + 30  # metrics are evaluated on their own thread, at most every 0.2 s
    while not any("metrics" in x for x in snaps) and time.time() < deadline:
        time.sleep(0.02)
    t.stop()
    assert not t.running and t.status == "stopped"
    s = snaps[-1]
    assert {"step", "time", "terms", "traces", "status"} <= set(s)
    assert "forward_states" in s["traces"]
    assert any("metrics" in x for x in snaps)
    steps = [x["step"] for x in snaps]
    assert steps == sorted(steps)
