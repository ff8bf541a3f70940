"""Noise schedules: the DDPM chain's coefficients, its continuous-time view, and the conversions
between eps, x_0, score and velocity."""

import math

import pytest
import torch

from core.config import make
from core.dynamics import NoiseSchedule
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
