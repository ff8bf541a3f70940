"""Noise schedules: the DDPM chain's coefficients, its continuous-time view, and the conversions
between eps, x_0, score and velocity."""

import math

import pytest
import torch

from core.config import make
from core.dynamics import LinearPath, NoiseSchedule
from core.errors import ConfigError
from core.models.diffusion import DDPMConfig

F64 = torch.float64


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [10, 100, 1000])
def test_schedule_is_a_cumulative_product_ending_near_noise(kind, T):
    s = NoiseSchedule(T, kind)
    assert s.alpha_bar[0] == 1 and s.betas[0] == 0
    for t in (1, 2, T // 2, T):
        assert torch.allclose(s.alpha_bar[t], torch.prod(1 - s.betas[1 : t + 1]), rtol=1e-12, atol=0)
    assert torch.all(s.betas[1:] > 0) and torch.all(s.betas <= 0.999)
    assert torch.all(s.betas[2:] >= s.betas[1:-1])          # noise added grows along the chain
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])    # alpha_bar strictly decreasing
    assert s.alpha_bar[-1] < 1e-4                            # x_T is nearly pure noise
    assert torch.allclose(s.sqrt_alpha_bar**2 + s.sqrt_one_minus_alpha_bar**2, torch.ones(T + 1, dtype=F64))


def test_schedule_kinds_follow_their_definitions():
    lin = NoiseSchedule(100, "linear")
    assert math.isclose(lin.betas[1], 1e-3) and math.isclose(lin.betas[-1], 0.2)  # Ho et al.'s range x 1000/T
    cos = NoiseSchedule(100, "cosine")
    f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (1, 30, 70, 99):  # before the final beta is clipped at 0.999
        assert math.isclose(cos.alpha_bar[t], f(t) / f(0), rel_tol=1e-10)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_continuous_time_view(kind):
    s = NoiseSchedule(50, kind)
    nodes = torch.arange(51, dtype=F64) / 50
    assert torch.allclose(s.alpha_bar_at(nodes), s.alpha_bar, rtol=1e-12)
    assert torch.allclose(s.sigma_at(nodes) ** 2, 1 - s.alpha_bar, rtol=1e-10, atol=1e-15)
    # beta(t) = -d/dt log alpha_bar(t), by central differences inside the intervals
    t = (torch.arange(50, dtype=F64) + torch.rand(50, dtype=F64).clamp(0.1, 0.9)) / 50
    h = 1e-6
    fd = -(s.log_alpha_bar_at(t + h) - s.log_alpha_bar_at(t - h)) / (2 * h)
    assert torch.allclose(s.beta_at(t), fd, rtol=1e-6)
    # VP SDE marginal: alpha_bar(t) = exp(-int_0^t beta), here by a fine midpoint rule
    grid = (torch.arange(50_000, dtype=F64) + 0.5) / 50_000
    integral = torch.cumsum(s.beta_at(grid), 0) / 50_000
    assert torch.allclose(torch.exp(-integral[9999::10000]), s.alpha_bar_at(torch.tensor([.2, .4, .6, .8, 1.], dtype=F64)), rtol=1e-8)
    # t(log alpha_bar) inverts log alpha_bar(t); log-SNR falls with t
    assert torch.allclose(s.t_at_log_alpha_bar(s.log_alpha_bar_at(t)), t, atol=1e-12)
    lam = s.log_snr_at(t)
    assert torch.all(lam[1:] < lam[:-1])


def test_schedule_refuses_bad_settings():
    with pytest.raises(ConfigError):
        NoiseSchedule(1)
    with pytest.raises(ConfigError):
        NoiseSchedule(10, "quadratic")
    with pytest.raises(ConfigError):
        make(DDPMConfig, {"eta": 1.5})
    with pytest.raises(ConfigError):
        make(DDPMConfig, {"sampler": "euler"})


# ---- the conversions between what a network can predict ------------------------------------
PATHS = [pytest.param(NoiseSchedule(100, "linear"), id="vp-linear"), pytest.param(NoiseSchedule(100, "cosine"), id="vp-cosine"),
         pytest.param(LinearPath(), id="straight")]


@pytest.mark.parametrize("path", PATHS)
def test_eps_x0_score_and_velocity_determine_each_other(path):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 3, generator=g, dtype=F64), torch.randn(64, 3, generator=g, dtype=F64)
    t = torch.rand(64, generator=g, dtype=F64) * 0.9 + 0.05
    x_t = path.marginal_sample(x0, t, eps)
    assert torch.allclose(path.x0_from_eps(x_t, eps, t), x0, atol=1e-9)
    assert torch.allclose(path.eps_from_x0(x_t, x0, t), eps, atol=1e-9)
    assert torch.allclose(path.eps_from_score(path.score_from_eps(eps, t), t), eps, atol=1e-12)
    v = path.velocity_from_eps(x_t, eps, t)
    assert torch.allclose(path.eps_from_velocity(x_t, v, t), eps, atol=1e-8)
    # v is d x_t / dt along the path with x_0 and eps held fixed: central differences
    h = 1e-6
    fd = (path.marginal_sample(x0, t + h, eps) - path.marginal_sample(x0, t - h, eps)) / (2 * h)
    assert torch.allclose(v, fd, rtol=1e-5, atol=1e-6)


def test_the_straight_path_is_rectified_flow():
    path, g = LinearPath(), torch.Generator().manual_seed(1)
    x0, eps, t = torch.randn(8, 2, generator=g), torch.randn(8, 2, generator=g), torch.rand(8, generator=g)
    assert torch.allclose(path.marginal_sample(x0, t, eps), (1 - t[:, None]) * x0 + t[:, None] * eps)
    assert torch.allclose(path.velocity_from_eps(path.marginal_sample(x0, t, eps), eps, t), eps - x0, atol=1e-5)


def test_the_vp_velocity_is_the_probability_flow_ode():
    # Song et al. 2021: dx/dt = -beta/2 (x + score) = -beta/2 (x - eps / sigma) for the VP SDE
    s, g = NoiseSchedule(100, "linear"), torch.Generator().manual_seed(2)
    x, eps = torch.randn(16, 2, generator=g, dtype=F64), torch.randn(16, 2, generator=g, dtype=F64)
    t = torch.rand(16, generator=g, dtype=F64) * 0.9 + 0.05
    beta, sigma = s.beta_at(t)[:, None], s.sigma_at(t)[:, None]
    assert torch.allclose(s.velocity_from_eps(x, eps, t), -0.5 * beta * (x - eps / sigma), rtol=1e-9)


@pytest.mark.parametrize("path", PATHS)
def test_the_score_of_gaussian_data_from_its_exact_eps(path):
    # x_0 ~ N(m, s^2): x_t ~ N(alpha m, alpha^2 s^2 + sigma^2), and Tweedie's E[eps | x_t] gives its score
    m, s2 = 0.7, 0.15**2
    t = torch.tensor([0.1, 0.4, 0.8], dtype=F64)
    x = torch.linspace(-2, 2, 5, dtype=F64)[None, :].expand(3, 5)
    a, sig = path.alpha(t)[:, None], path.sigma(t)[:, None]
    var = a**2 * s2 + sig**2
    eps = sig * (x - a * m) / var
    assert torch.allclose(path.score_from_eps(eps, t), -(x - a * m) / var, rtol=1e-12)
