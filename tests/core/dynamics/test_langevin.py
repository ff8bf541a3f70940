"""Langevin samplers against Gaussians, whose stationary laws are known in closed form."""

import pytest
import torch

from core.dynamics import annealed_langevin, langevin

F64 = torch.float64


def test_langevin_settles_at_the_gaussians_stationary_law():
    # for N(m, s^2) the unadjusted chain's stationary variance is s^2 / (1 - eps / (4 s^2))
    m, s, eps = torch.tensor([1.0, -2.0], dtype=F64), 0.5, 0.01
    score = lambda x: -(x - m) / s**2  # noqa: E731
    x0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    x = langevin(score, x0, eps, 600, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(x.mean(0), m, atol=0.02)
    assert torch.allclose(x.var(0), torch.full((2,), s**2 / (1 - eps / (4 * s**2)), dtype=F64), rtol=0.04)


def test_langevin_returns_its_chain_when_asked():
    x0 = torch.zeros(3, 2)
    chain = langevin(lambda x: -x, x0, 0.1, 5, generator=torch.Generator().manual_seed(0), return_intermediates=True)
    assert chain.shape == (6, 3, 2) and torch.equal(chain[0], x0)
    again = langevin(lambda x: -x, x0, 0.1, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(chain[-1], again)  # the same noise stream: the last state is the sampler's
    with pytest.raises(ValueError):
        langevin(lambda x: -x, x0, 0.0, 5)


def test_annealed_langevin_ends_near_the_least_blurred_data():
    # data N(m, s^2) blurred by sigma is N(m, s^2 + sigma^2), with score -(x - m) / (s^2 + sigma^2)
    m, s2 = 0.5, 0.2**2
    sigmas = [2.0, 1.0, 0.5, 0.25, 0.1]
    score = lambda x, sigma: -(x - m) / (s2 + sigma**2)  # noqa: E731
    x0 = 2.0 * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(2), dtype=F64)
    eps = 5e-3  # the last level relaxes in about 20 of its 200 steps
    out = annealed_langevin(score, x0, sigmas, 200, eps, generator=torch.Generator().manual_seed(3))
    v = s2 + sigmas[-1] ** 2
    assert abs(float(out.mean()) - m) < 0.01
    assert float(out.var()) == pytest.approx(v / (1 - eps / (4 * v)), rel=0.05)
    chain = annealed_langevin(score, x0[:4], sigmas, 3, eps, return_intermediates=True)
    assert chain.shape == (1 + 3 * len(sigmas), 4, 1)
    with pytest.raises(ValueError, match="decreasing"):
        annealed_langevin(score, x0, [0.1, 1.0], 3, eps)
