"""The data's exact score, blurred or not: the gradient of a density that integrates to one."""

import math

import pytest
import torch

from core import registry
from core.data.toy2d import plane_grid
from core.metrics import score_error
from core.model import GenerativeModel

TOYS = [n for n in ("eight_gaussians", "twenty_five_gaussians", "two_moons", "swiss_roll", "spirals", "rings",
                    "pinwheel", "checkerboard")]


@pytest.mark.parametrize("name", TOYS)
@pytest.mark.parametrize("sigma", [0.0, 0.25])
def test_score_is_the_gradient_of_the_noised_log_density(name, sigma):
    ds = registry.load_dataset(name)
    x = ds.sample(100, torch.Generator().manual_seed(1)).double() + 0.05
    s = ds.score(x, sigma)
    assert s.shape == (100, 2) and s.dtype == torch.float64
    if name == "checkerboard" and sigma == 0:  # flat on the squares, undefined off them
        inside = torch.isfinite(ds.log_prob(x))
        assert bool((s[inside] == 0).all()) and bool(torch.isnan(s[~inside]).all())
        return
    h = 1e-5
    for d in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[d] = h
        fd = (ds.noised_log_prob(x + e, sigma) - ds.noised_log_prob(x - e, sigma)) / (2 * h)
        assert torch.allclose(s[:, d], fd, atol=1e-5 * (1 + fd.abs().max()))


@pytest.mark.parametrize("name", TOYS)
def test_noised_density_integrates_to_one_and_is_the_density_at_zero(name):
    ds = registry.load_dataset(name)
    grid, xs, ys = plane_grid(((-7, 7), (-7, 7)), 300, torch.float64)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    assert float(ds.noised_log_prob(grid, 0.3).exp().sum()) * cell == pytest.approx(1.0, abs=2e-3)
    if name != "checkerboard":  # its sigma = 0 density is a box, which a grid sum does not see as smooth
        x = ds.sample(50, torch.Generator().manual_seed(2)).double()
        assert torch.allclose(ds.noised_log_prob(x, 0.0), ds.log_prob(x).double(), atol=1e-9)


def test_noised_mixture_is_the_convolution_and_path_score_scales_it():
    ds = registry.load_dataset("eight_gaussians")
    x = torch.randn(64, 2, dtype=torch.float64) * 2
    # x = alpha X + sigma eps is a mixture of N(alpha mu_k, (alpha^2 s^2 + sigma^2) I)
    alpha, sigma = 0.6, 0.7
    std = math.sqrt(alpha**2 * ds.mode_std**2 + sigma**2)
    mu = alpha * ds.modes
    d2 = ((x[:, None] - mu[None]) ** 2).sum(-1)  # (n, K)
    w = torch.softmax(-d2 / (2 * std**2), dim=1)
    exact = ((w[..., None] * (mu[None] - x[:, None])).sum(1)) / std**2
    assert torch.allclose(ds.path_score(x, alpha, sigma), exact, atol=1e-10)


def test_checkerboard_blur_matches_a_monte_carlo_convolution():
    ds = registry.load_dataset("checkerboard")
    x = torch.tensor([[0.5, 0.5], [-0.5, 0.5], [2.3, 0.1], [-3.5, -3.5]], dtype=torch.float64)
    sigma = 0.4
    g = torch.Generator().manual_seed(0)
    y = ds.sample(400_000, g).double()
    # p_sigma(x) = E_y N(x; y, sigma^2 I)
    d2 = ((x[:, None] - y[None]) ** 2).sum(-1)
    mc = (torch.exp(-d2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)).mean(1)
    assert torch.allclose(ds.noised_log_prob(x, sigma).exp(), mc, rtol=0.03, atol=1e-9)


class ExactScore(GenerativeModel):
    """A model whose score is the data's own (scale 1) or a multiple of it."""

    family = "flow"

    def __init__(self, dataset, scale=1.0):
        super().__init__((2,), None)
        self.ds, self.scale = dataset, scale
        self.w = torch.nn.Parameter(torch.zeros(()))

    def score_levels(self):
        return [(1.0, 0.1), (0.8, 0.6)]

    def score_at(self, x, alpha, sigma):
        return self.scale * self.ds.path_score(x, alpha, sigma).float()


def test_score_error_is_zero_for_the_exact_score_and_one_for_the_zero_field():
    ds = registry.load_dataset("two_moons")
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert score_error(ds, ExactScore(ds), 300, g()) < 1e-10
    assert score_error(ds, ExactScore(ds, 0.0), 300, g()) == pytest.approx(1.0)
    assert score_error(ds, ExactScore(ds, 0.5), 300, g()) == pytest.approx(0.25, rel=1e-6)
