"""DDPM: schedule, forward process, posterior, samplers and the probability-flow ODE.

Most checks use Gaussian data N(m, s^2 I), for which everything is known in
closed form: the marginal q(x_t) = N(sqrt(ab) m, (ab s^2 + 1 - ab) I), hence the
exact ("oracle") noise predictor eps*(x_t, t) = sqrt(1 - ab) (x_t - sqrt(ab) m) / v
and the exact score -(x_t - sqrt(ab) m) / v, with ab = alpha_bar(t) and
v = ab s^2 + 1 - ab.
"""

import math

import pytest
import torch

from core.config import make
from core.models.diffusion import DDIM, DDPM, Ancestral, DDPMConfig, NoiseSchedule, make_sampler
from core.models.diffusion.likelihood import pf_ode_log_prob

F64 = torch.float64


def gaussian_oracle(schedule, m, s, Q=None):
    """eps*(x_t, t) = E[eps | x_t] for data N(m, s^2 I), or N(m, Q diag(s^2) Q^T) for an
    orthogonal Q (the per-axis formula in the rotated frame); t: (n,) continuous."""
    def eps_fn(x, t):
        # samplers and the ODE pass one time for all points: evaluate the schedule once
        ab = schedule.alpha_bar_at(t[:1] if bool((t == t[0]).all()) else t)[:, None].to(x)
        v = ab * s**2 + 1 - ab
        if Q is None:
            return (1 - ab).sqrt() * (x - ab.sqrt() * m) / v
        return ((1 - ab).sqrt() * ((x - ab.sqrt() * m) @ Q) / v) @ Q.T
    return eps_fn


def gaussian_log_prob(x, mean, var):
    var = torch.as_tensor(var, dtype=x.dtype)
    return (-0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(1)


def build(data_shape=(2,), **overrides):
    torch.manual_seed(0)
    return DDPM(data_shape, make(DDPMConfig, overrides))


# ---- forward process and posterior ------------------------------------------

@pytest.mark.parametrize("t", [1, 10, 50, 100])
def test_q_sample_matches_closed_form(t):
    model = build(T=100).double()
    ab = float(model.schedule.alpha_bar[t])
    n = 200_000
    x0 = torch.tensor([[1.5, -2.0]], dtype=F64).expand(n, 2)
    torch.manual_seed(1)
    x_t = model.q_sample(x0, t)
    se_mean = math.sqrt((1 - ab) / n)
    assert torch.allclose(x_t.mean(0), math.sqrt(ab) * x0[0], atol=5 * se_mean)
    assert torch.allclose(x_t.var(0), torch.full((2,), 1 - ab, dtype=F64), rtol=5 * math.sqrt(2 / n))
    # marginal for Gaussian data N(m, s^2 I): N(sqrt(ab) m, ab s^2 + 1 - ab)
    m, s = torch.tensor([1.0, -0.5], dtype=F64), 0.7
    x_t = model.q_sample(m + s * torch.randn(n, 2, dtype=F64), t)
    v = ab * s**2 + 1 - ab
    assert torch.allclose(x_t.mean(0), math.sqrt(ab) * m, atol=5 * math.sqrt(v / n))
    assert torch.allclose(x_t.var(0), torch.full((2,), v, dtype=F64), rtol=5 * math.sqrt(2 / n))


def test_q_sample_reparametrisation_and_endpoints():
    model = build(T=20).double()
    x0, eps = torch.randn(7, 2, dtype=F64), torch.randn(7, 2, dtype=F64)
    t = torch.arange(7) * 3
    ab = model.schedule.alpha_bar[t][:, None]
    assert torch.allclose(model.q_sample(x0, t, eps), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    assert torch.equal(model.q_sample(x0, 0, eps), x0)
    with pytest.raises(ValueError):
        model.q_sample(x0, 21)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("t", [2, 5, 40, 100])
def test_posterior_is_bayes_rule(kind, t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalised on a grid."""
    s = NoiseSchedule(100, kind)
    alpha, ab_prev = float(s.alphas[t]), float(s.alpha_bar[t - 1])
    for x0, x_t in [(0.8, -0.3), (-1.7, 2.2)]:
        prior_mean, prior_std = math.sqrt(ab_prev) * x0, math.sqrt(1 - ab_prev)
        # the posterior mean lies between the prior's and the likelihood's, its std below both
        ends = sorted([prior_mean, x_t / math.sqrt(alpha)])
        width = 12 * min(prior_std, math.sqrt((1 - alpha) / alpha))
        grid = torch.linspace(ends[0] - width, ends[1] + width, 400_001, dtype=F64)
        log_w = (-0.5 * (x_t - math.sqrt(alpha) * grid) ** 2 / (1 - alpha)
                 - 0.5 * (grid - prior_mean) ** 2 / prior_std**2)
        w = torch.softmax(log_w, 0)
        mean = (w * grid).sum()
        var = (w * (grid - mean) ** 2).sum()
        mu_tilde, beta_tilde = s.posterior(torch.tensor(x_t, dtype=F64), torch.tensor(x0, dtype=F64), t)
        assert math.isclose(mu_tilde, mean, rel_tol=1e-7, abs_tol=1e-9)
        assert math.isclose(beta_tilde, var, rel_tol=1e-5)


# ---- samplers with the oracle -------------------------------------------------

M, S = torch.tensor([1.0, -0.5], dtype=F64), 0.5


@pytest.mark.parametrize("sampler", [Ancestral(), Ancestral(variance="beta"), DDIM(eta=0.0)], ids=["ancestral", "ancestral-beta", "ddim"])
def test_samplers_with_oracle_reproduce_gaussian_data(sampler):
    """T = 1000 (Ho et al.): with the exact eps the chains end at N(m, s^2) up to a
    discretisation bias of about 1% in the std (with this seed: -0.5%, +0.4%, +0.2%)."""
    schedule = NoiseSchedule(1000, "linear")
    g = torch.Generator().manual_seed(0)
    x0 = sampler(gaussian_oracle(schedule, M, S), schedule, torch.randn(20_000, 2, generator=g, dtype=F64), generator=g)
    assert torch.allclose(x0.mean(0), M, atol=0.015)    # standard error 0.0035
    assert torch.allclose(x0.std(0), torch.full((2,), S, dtype=F64), rtol=0.025)  # standard error 0.5%


@pytest.mark.parametrize("steps", [None, 37])
def test_ancestral_is_ddim_with_eta_one(steps):
    """DDIM eq. 16 with eta = 1 is the DDPM posterior step, on any subsequence."""
    schedule = NoiseSchedule(100, "cosine")
    eps_fn = gaussian_oracle(schedule, M, S)
    x_T = torch.randn(50, 2, dtype=F64)
    a = Ancestral(steps)(eps_fn, schedule, x_T, generator=torch.Generator().manual_seed(3), trajectory=True)
    b = DDIM(steps, eta=1.0)(eps_fn, schedule, x_T, generator=torch.Generator().manual_seed(3), trajectory=True)
    assert a.shape == b.shape == ((steps or 100) + 1, 50, 2)
    assert torch.allclose(a, b, atol=1e-10)


def test_ddim_eta_zero_is_deterministic_and_walks_its_subsequence():
    schedule = NoiseSchedule(100, "linear")
    eps_fn = gaussian_oracle(schedule, M, S)
    x_T = torch.randn(20, 2, dtype=F64)
    smp = DDIM(10, eta=0.0)
    a = smp(eps_fn, schedule, x_T, generator=torch.Generator().manual_seed(1))
    b = smp(eps_fn, schedule, x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert smp.times(100).tolist() == [91, 81, 71, 61, 51, 41, 31, 21, 11, 1, 0]  # Song et al.'s tau_i = 1 + floor(c i)
    assert DDIM(500).times(100).tolist() == list(range(100, -1, -1))  # at most T steps: the full chain
    tau = DDIM(37).times(100)
    assert len(tau) == 38 and tau[-2] == 1 and tau[0] <= 100 and torch.all(tau[1:] < tau[:-1])


# ---- probability-flow ODE ---------------------------------------------------

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ode_integrates_accurately(kind):
    """With the exact p_1 as prior, the ODE returns the exact log p_eps to 1e-4."""
    schedule = NoiseSchedule(100, kind)
    torch.manual_seed(0)
    x = M + S * torch.randn(64, 2, dtype=F64)
    t_eps = 1e-3
    ab_1, ab_eps = schedule.alpha_bar[-1], schedule.alpha_bar_at(torch.tensor(t_eps, dtype=F64))
    prior = lambda y: gaussian_log_prob(y, ab_1.sqrt() * M, ab_1 * S**2 + 1 - ab_1)
    lp = pf_ode_log_prob(gaussian_oracle(schedule, M, S), schedule, x, steps=50, t_eps=t_eps, log_prior=prior)
    exact = gaussian_log_prob(x, ab_eps.sqrt() * M, ab_eps * S**2 + 1 - ab_eps)
    assert (lp - exact).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_model_log_prob_with_oracle_matches_exact_density(kind):
    m, s = torch.tensor([0.5, -0.3], dtype=F64), 0.5
    model = build(T=100, schedule=kind, ode_steps=60).double()
    model.eps_theta = gaussian_oracle(model.schedule, m, s)  # plug in the exact noise predictor
    torch.manual_seed(0)
    x = m + s * torch.randn(64, 2, dtype=F64)
    lp = model.log_prob(x)
    # leftovers: p_{t_eps} vs p_0 and N(0, I) vs p_1 (sqrt(alpha_bar_T) m ~ 0.003)
    assert (lp - gaussian_log_prob(x, m, s**2)).abs().max() < 1e-2


def test_hutchinson_log_prob_is_unbiased_in_high_dimension():
    """For D = 20 > 16 the model switches to Hutchinson; its mean error over points is ~0.

    The data are correlated (covariance Q diag(s^2) Q^T), so the Jacobian of eps* is
    not diagonal and a Rademacher probe does not give its trace exactly."""
    D = 20
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64))[0]
    s = torch.linspace(0.3, 1.2, D, dtype=F64)
    m = torch.zeros(D, dtype=F64)
    model = build((D,), T=50, schedule="cosine", ode_steps=30).double()
    model.eps_theta = gaussian_oracle(model.schedule, m, s, Q)
    x = (torch.randn(400, D, generator=g, dtype=F64) * s) @ Q.T
    exact = gaussian_log_prob(x @ Q, 0.0, s**2)  # rotate back to independent axes
    torch.manual_seed(0)
    err = model.log_prob(x) - exact
    assert err.std() > 0.05  # a stochastic estimate point by point ...
    assert abs(err.mean()) < 4 * err.std() / math.sqrt(len(err)) + 1e-2  # ... unbiased on average


# ---- the model ----------------------------------------------------------------

def test_model_sample_and_score_with_oracle():
    model = build(T=200, schedule="cosine").double()
    model.eps_theta = gaussian_oracle(model.schedule, M, S)
    torch.manual_seed(0)
    x = model.sample(20_000)
    assert torch.allclose(x.mean(0), M, atol=0.02) and torch.allclose(x.std(0), torch.full((2,), S, dtype=F64), rtol=0.04)
    # score_field = -eps/sigma(t) is the exact score of q(x_t) also between the nodes
    pts, t = torch.randn(10, 2, dtype=F64), 0.237
    ab = float(model.schedule.alpha_bar_at(torch.tensor(t, dtype=F64)))
    exact_score = -(pts - math.sqrt(ab) * M) / (ab * S**2 + 1 - ab)
    assert torch.allclose(model.score_field(pts, t), exact_score, rtol=1e-10)


def test_oracle_loss_equals_its_closed_form_minimum():
    """L_simple of eps* is E_t[Var(eps | x_t)] = E_t[1 - (1 - ab_t) / v_t], the loss floor."""
    model = build(T=50).double()
    model.eps_theta = gaussian_oracle(model.schedule, M, S)
    torch.manual_seed(0)
    losses = torch.stack([model.loss(M + S * torch.randn(20_000, 2, dtype=F64))["loss"] for _ in range(5)])
    ab = model.schedule.alpha_bar[1:]
    floor = (1 - (1 - ab) / (ab * S**2 + 1 - ab)).mean()
    assert abs(losses.mean() - floor) < 0.01


def test_fresh_loss_is_about_one_and_gradients_reach_every_parameter():
    model = build()
    torch.manual_seed(1)
    out = model.loss(2.0 * torch.randn(8192, 2))
    assert set(out) == {"loss", "mse"} and torch.equal(out["loss"].detach(), out["mse"])
    assert abs(out["loss"].item() - 1.0) < 0.06  # E||eps||^2 / D with eps_theta ~ 0
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_trajectories_and_traces_shapes():
    model = build(T=100, sampler="ancestral")
    traj = model.reverse_trajectory(5)
    assert traj.shape == (101, 5, 2)
    assert model.reverse_trajectory(5, sampler="ddim", steps=10).shape == (11, 5, 2)
    assert model.reverse_trajectory(5, sampler="ancestral", steps=25).shape == (26, 5, 2)
    x = torch.randn(30, 2)
    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 7), torch.linspace(-3, 3, 7), indexing="ij"), -1).reshape(-1, 2)
    tr = model.traces(x, grid)
    assert tr["trajectory"].shape == (101, 30, 2) and tr["trajectory_t"].shape == (101,)
    # at T = 100 the view runs the whole ancestral chain from fixed noise, as sample() does
    expected = model.reverse_trajectory(30, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(torch.from_numpy(tr["trajectory"]), expected)
    assert torch.allclose(torch.from_numpy(tr["trajectory_t"]).double(), model.make_sampler().times(100).double() / 100)
    # a longer chain is respaced to TRACE_STEPS for the view (Nichol & Dhariwal)
    assert build(T=400).traces(x, None)["trajectory"].shape == (DDPM.TRACE_STEPS + 1, 30, 2)
    assert tr["trajectory_t"][-1] == 0.0 and tr["trajectory_t"][-2] == 0.01
    assert tr["forward"].shape == (6, 30, 2) and tr["forward_t"].shape == (6,)
    assert torch.allclose(torch.from_numpy(tr["forward_t"]).double(), torch.linspace(0, 1, 6, dtype=F64), atol=1e-7)
    assert torch.allclose(torch.from_numpy(tr["forward"][0]), x) and tr["forward_t"][-1] == 1.0
    assert tr["eps_field"].shape == tr["score_field"].shape == (49, 2)
    # traces draw from fixed noise: the view does not jitter between calls
    assert (model.traces(x, grid)["trajectory"] == tr["trajectory"]).all()
    f = model.fields(grid, 0.5)
    sigma = float(model.schedule.sigma_at(torch.tensor(0.5)))
    assert torch.allclose(torch.from_numpy(f["score_field"]), -torch.from_numpy(f["eps_field"]) / sigma, rtol=1e-5)
    assert not (f["eps_field"] == tr["eps_field"]).all()  # field_t matters
    many = model.traces(torch.randn(500, 2), None)  # the live view traces at most 150 particles of 500 points
    assert many["trajectory"].shape[1] == model.TRACE_MAX_POINTS == 150 and many["forward"].shape[1] == 150
    with pytest.raises(ValueError):
        model.fields(grid, 0.0)


def test_image_shaped_data():
    model = build((1, 4, 4), T=20, hidden=32, ode_steps=8)
    x = torch.rand(16, 1, 4, 4)
    out = model.loss(x)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert model.sample(3).shape == (3, 1, 4, 4)
    assert model.log_prob(x[:4]).shape == (4,)
    tr = model.traces(x, None)
    assert tr["trajectory"].shape == (21, 16, 1, 4, 4) and tr["forward"].shape == (6, 16, 1, 4, 4)
    assert "eps_field" not in tr


def test_registered():
    from core.registry import MODELS

    spec = MODELS["ddpm"]
    assert spec.family == "diffusion" and spec.cls is DDPM
    assert DDPM.has_log_prob and not DDPM.log_prob_is_exact
    assert make_sampler("ddim", 5, eta=0.3).eta == 0.3


def test_snapshot_draws_the_field_at_the_view_options_t_in_one_pass():
    from core import registry
    from core.data.toy2d import plane_grid
    from core.train import Trainer

    data = registry.load_dataset("eight_gaussians")
    model = registry.build_model("ddpm", data.shape)
    trainer = Trainer(model, data, registry.train_config("ddpm"), device="cpu")
    calls = []
    fields = model.fields
    model.fields = lambda grid, t: calls.append(t) or fields(grid, t)
    trainer.view_options = {"t": 0.5}  # the view's time slider
    snap = trainer.snapshot(with_metrics=False)
    assert calls == [0.5]  # once, at the slider's t, not again at the model's default
    assert snap["traces"]["field_t"].tolist() == [0.5]
    expected = fields(plane_grid(data.bounds, 60)[0], 0.5)
    assert (snap["traces"]["eps_field"] == expected["eps_field"]).all()
    trainer.view_options = {}
    assert trainer.snapshot(with_metrics=False) and calls[-1] == DDPM.FIELD_T


def test_one_time_shared_by_every_point_equals_a_time_per_point():
    # the samplers and the ODE pass t of shape (1,), so the time is embedded once per step
    model = build(T=100)
    x, t = torch.randn(7, 2), torch.tensor([0.3])
    assert torch.allclose(model.eps_theta(x, t), model.eps_theta(x, t.expand(7)), atol=1e-6)
    seen = []
    Ancestral(steps=5)(lambda x, t: seen.append(tuple(t.shape)) or torch.zeros_like(x), model.schedule, x)
    assert seen == [(1,)] * 5


class ExactEps(torch.nn.Module):
    """The exact noise predictor E[eps | x_t] of data N(m, s^2 I), as a network DDPM can take."""

    def __init__(self, schedule, m, s):
        super().__init__()
        self.eps = gaussian_oracle(schedule, m, s)

    def forward(self, x, t):
        return self.eps(x, t)


def test_the_default_chain_reproduces_the_spread_of_gaussian_data():
    # A perfect model of N(m, 0.15^2) must sample N(m, 0.15^2): with the earlier defaults (linear
    # schedule, beta_tilde) its samples had a standard deviation of 0.127, and the live chain's less.
    from core import registry

    model = registry.build_model("ddpm", (2,))
    m, s = torch.tensor([0.5, -1.0]), 0.15
    model.eps_net = ExactEps(model.schedule, m, s)
    torch.manual_seed(0)
    samples = model.sample(40_000)
    assert torch.allclose(samples.mean(0), m, atol=0.01)
    assert torch.allclose(samples.std(0), torch.full((2,), s), rtol=0.05), samples.std(0)
    # the live view's chain: the same sampler and steps as its traces take, with many particles
    x = m + s * torch.randn(500, 2)
    tr = model.traces(x, None)
    steps = tr["trajectory"].shape[0] - 1
    live = model.reverse_trajectory(40_000, steps=steps, generator=torch.Generator().manual_seed(1))[-1]
    assert torch.allclose(live.std(0), torch.full((2,), s), rtol=0.05), live.std(0)
    assert torch.allclose(torch.from_numpy(tr["trajectory"]),
                          model.reverse_trajectory(model.TRACE_MAX_POINTS, steps=steps, generator=torch.Generator().manual_seed(0)))
