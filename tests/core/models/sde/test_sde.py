"""The score SDE model: its loss, sampling, density, score levels and traces, checked with the
exact score of Gaussian data N(m, s^2 I) plugged in as its network, and the CLI end to end.

Along either SDE the data's marginal is p_t = N(alpha_t m, v_t I), v_t = alpha_t^2 s^2 + sigma_t^2,
so the exact noise predictor is E[eps | x_t] = sigma_t (x_t - alpha_t m) / v_t.
"""

import json
import math

import numpy as np
import pytest
import torch

from core import checkpoint, registry
from core.cli import main
from core.config import make
from core.errors import ConfigError
from core.models.sde import ScoreSDE, ScoreSDEConfig

F64 = torch.float64
M, S = torch.tensor([0.5, -0.3], dtype=F64), 0.4


class ExactEps(torch.nn.Module):
    """The exact eps of data N(m, s^2 I) as the model's network, which sees c_in x_t."""

    def __init__(self, sde, m=M, s=S):
        super().__init__()
        self.sde, self.m, self.s = sde, m, s

    def forward(self, u, t):
        a, sig = (f(t.to(F64))[:, None].to(u) for f in (self.sde.alpha, self.sde.sigma))
        x = u * torch.sqrt(a**2 + sig**2)  # undo c_in
        return sig * (x - a * self.m.to(u)) / (a**2 * self.s**2 + sig**2)


class Shifted(ExactEps):
    def forward(self, u, t):
        return super().forward(u, t) + 0.3


def build(**overrides):
    torch.manual_seed(0)
    return ScoreSDE((2,), make(ScoreSDEConfig, overrides))


def exact_model(**overrides):
    model = build(**overrides).double()
    model.eps_net = ExactEps(model.sde)
    return model


def gaussian_log_prob(x, mean, var):
    return (-0.5 * (x - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)).sum(1)


@pytest.mark.parametrize("kind,sampler", [("vp", "em"), ("vp", "pc"), ("ve", "em"), ("ve", "ode")])
def test_sample_with_the_exact_score_reproduces_gaussian_data(kind, sampler):
    model = exact_model(sde=kind, sampler=sampler, sample_steps=100)
    torch.manual_seed(0)
    x = model.sample(10_000)
    # the VE ODE keeps s / sqrt(s^2 + sigma_max^2) = 7% of the prior's miss of m (see the dynamics tests)
    atol = 0.02 + (0.07 * 0.5 if (kind, sampler) == ("ve", "ode") else 0.0)
    assert torch.allclose(x.mean(0), M, atol=atol), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), S, dtype=F64), rtol=0.04), x.std(0)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_loss_of_the_exact_score_is_its_closed_form_floor(kind):
    """L = E_t E||eps_theta - eps||^2 / D is smallest at eps* = E[eps | x_t], where it equals
    E_t[Var(eps | x_t)] = E_t[1 - sigma_t^2 / v_t], t ~ U(t_min, 1)."""
    model = exact_model(sde=kind)
    torch.manual_seed(0)
    losses = torch.stack([model.loss(M + S * torch.randn(20_000, 2, dtype=F64))["loss"] for _ in range(5)])
    t = torch.linspace(model.sde.t_min, 1.0, 10_001, dtype=F64)
    a, sig = model.sde.alpha(t), model.sde.sigma(t)
    floor = (1 - sig**2 / (a**2 * S**2 + sig**2)).mean()
    assert abs(losses.mean() - floor) < 0.01, (losses.mean(), floor)
    # a predictor off by a constant pays exactly its square on top of the floor
    model.eps_net = Shifted(model.sde)
    shifted = torch.stack([model.loss(M + S * torch.randn(20_000, 2, dtype=F64))["loss"] for _ in range(5)])
    assert abs(shifted.mean() - floor - 0.09) < 0.01


def test_fresh_loss_is_about_one_and_reaches_every_parameter():
    model = build()
    torch.manual_seed(1)
    out = model.loss(2.0 * torch.randn(8192, 2))
    assert set(out) == {"loss", "dsm"} and abs(out["loss"].item() - 1.0) < 0.06
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_log_prob_with_the_exact_score_is_the_gaussian_density(kind):
    m = M if kind == "vp" else torch.zeros(2, dtype=F64)  # the VE prior N(0, sigma_max^2) centres p_1 at 0
    model = build(sde=kind, ode_steps=50).double()
    model.eps_net = ExactEps(model.sde, m)
    torch.manual_seed(0)
    x = m + S * torch.randn(32, 2, dtype=F64)
    lp = model.log_prob(x)
    assert lp.shape == (32,) and (lp - gaussian_log_prob(x, m, S**2)).abs().max() < 0.03


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_score_levels_and_score_at_are_the_path_at_a_few_times(kind):
    model = exact_model(sde=kind)
    levels = model.score_levels()
    t = torch.tensor(model.score_times(), dtype=F64)
    assert np.allclose(levels, torch.stack([model.sde.alpha(t), model.sde.sigma(t)], 1).numpy())
    assert np.allclose([s for _, s in levels], ScoreSDE.SCORE_SIGMAS)  # the same noise stds on both SDEs
    x = torch.randn(9, 2, dtype=F64)
    for alpha, sigma in levels:
        exact = -(x - alpha * M) / (alpha**2 * S**2 + sigma**2)  # the score of alpha X + sigma eps
        assert torch.allclose(model.score_at(x, alpha, sigma), exact, rtol=1e-8)
    with pytest.raises(ValueError, match="not a level"):
        model.score_at(x, 1.0, 1e-9)


def test_traces():
    model = build(sampler="pc", sample_steps=150, corrector_steps=1)
    x = torch.randn(130, 2)
    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 7), torch.linspace(-3, 3, 7), indexing="ij"), -1).reshape(-1, 2)
    tr = model.traces(x, grid, t=0.5)
    m = ScoreSDE.TRACE_MAX_POINTS
    # pc evaluates the network twice a step: 50 steps keep the live chain at 100 evaluations
    assert model.trace_steps() == 50 and tr["trajectory"].shape == (51, m, 2) and tr["trajectory_t"][0] == 1.0
    assert math.isclose(tr["trajectory_t"][-1], model.sde.t_min, rel_tol=1e-6)
    # the very chain reverse_trajectory runs from the same seed, the same on every call
    expected, _ = model.reverse_trajectory(m, steps=50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(torch.from_numpy(tr["trajectory"]), expected)
    assert (model.traces(x, grid, t=0.5)["trajectory"] == tr["trajectory"]).all()
    assert tr["forward"].shape == (6, m, 2) and np.allclose(tr["forward_t"], np.linspace(0, 1, 6))
    assert np.allclose(tr["forward"][0], x[:m].numpy())
    # the last forward frame is x_0 noised to t = 1: alpha_1 x_0 + sigma_1 eps, nearly N(0, I)
    assert abs(tr["forward"][-1].std() - 1) < 0.15
    assert tr["field_t"].tolist() == [0.5]
    t = torch.tensor([0.5], dtype=F64)
    assert np.allclose(tr["field_level"], [float(model.sde.alpha(t)), float(model.sde.sigma(t))])
    assert np.allclose(tr["score_field"], model.score(grid, torch.tensor([0.5])).detach().numpy(), atol=1e-6)
    assert not np.allclose(model.traces(x, grid, t=0.1)["score_field"], tr["score_field"])  # the slider's t matters
    assert model.traces(x, grid, t=0.0)["field_t"].tolist() == [pytest.approx(model.sde.t_min)]
    assert "score_field" not in model.traces(x, None)
    model.config.sampler = "ode"
    assert model.trace_steps() == 25
    model.config.sampler, model.config.sample_steps = "em", 40
    assert model.trace_steps() == 40 and model.traces(x[:5], None)["trajectory"].shape == (41, 5, 2)


def test_image_shaped_data():
    model = ScoreSDE((1, 4, 4), make(ScoreSDEConfig, {"hidden": 16, "layers": 2, "sample_steps": 5, "ode_steps": 4}))
    x = torch.rand(8, 1, 4, 4)
    model.loss(x)["loss"].backward()
    assert model.sample(3).shape == (3, 1, 4, 4)
    assert model.log_prob(x[:2]).shape == (2,)  # Hutchinson's divergence above 16 dimensions
    tr = model.traces(x, None)
    assert tr["trajectory"].shape == (6, 8, 1, 4, 4) and tr["forward"].shape == (6, 8, 1, 4, 4)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="0 < sigma_min < sigma_max"):
        registry.build_model("sde", (2,), {"sde": "ve", "sigma_min": 0.5, "sigma_max": 0.2})
    with pytest.raises(ConfigError, match="0 < beta_min <= beta_max"):
        registry.build_model("sde", (2,), {"beta_min": 5, "beta_max": 1})
    with pytest.raises(ConfigError, match="sampler='ddim' is not allowed; choose one of: em, pc, ode"):
        registry.build_model("sde", (2,), {"sampler": "ddim"})


def test_registered():
    spec = registry.model_spec("sde")
    assert spec.family == "sde" and spec.cls is ScoreSDE and registry.family_spec("sde").title == "Score SDEs"
    assert ScoreSDE.has_log_prob and not ScoreSDE.log_prob_is_exact and spec.quality.metric == "kl"


def test_cli_train_sample_and_logprob(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "sde", "--data", "eight_gaussians", "--steps", "20", "--batch-size", "64", "--seed", "2",
                 "--set", "hidden=16", "--set", "layers=2", "--set", "sample_steps=10", "--set", "ode_steps=6",
                 "--set", "sampler=pc", "--set", "n_data=500", "--metrics-every", "20", "--n-samples", "50",
                 "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == "sde" and report["steps_done"] == 20 and report["config"]["model"]["sampler"] == "pc"
    assert report["config"]["model"]["sample_steps"] == 10  # --set reaches the model, not the trainer's steps
    assert "kl" in report["final"] and "density of the probability-flow ODE" in report["notes"]["kl"]
    assert np.load(out / "samples.npy").shape == (50, 2)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for f in (a, b):
        assert main(["sample", str(out), "--n", "40", "--out", str(f), "--seed", "1"]) == 0
    assert np.load(a).shape == (40, 2) and np.array_equal(np.load(a), np.load(b))
    pts = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    capsys.readouterr()
    assert main(["logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    assert "estimate" in capsys.readouterr().err
    model, meta = checkpoint.load(out)
    assert meta["model"] == "sde" and model.config.sampler == "pc"
    with torch.no_grad():
        expect = model.log_prob(torch.from_numpy(pts)).numpy()
    assert np.allclose(np.load(tmp_path / "lp.npy"), expect, atol=1e-5)
