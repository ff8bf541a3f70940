"""NCSN: its ladder, its score at any level of a Gaussian path, a trained score against the exact
one, and annealed Langevin with the exact scores sampling the mixture."""

from __future__ import annotations

import math

import pytest
import torch

from core import registry
from core.errors import ConfigError
from core.metrics import mmd, score_error
from tests.core.models.score.test_dsm import _train


def test_the_ladder_is_geometric_from_sigma_max_to_sigma_min():
    model = registry.build_model("ncsn", (2,), {"sigma_max": 4.0, "sigma_min": 0.04, "L": 5})
    s = model.sigmas()
    assert s[0] == pytest.approx(4.0) and s[-1] == pytest.approx(0.04)
    torch.testing.assert_close(s[1:] / s[:-1], torch.full((4,), 0.1 ** 0.5, dtype=torch.float64))
    assert model.score_levels() == [(1.0, pytest.approx(4.0)), (1.0, pytest.approx(0.4)), (1.0, pytest.approx(0.04))]
    with pytest.raises(ConfigError, match="sigma_min=5.0 must be smaller than sigma_max=4.0"):
        registry.build_model("ncsn", (2,), {"sigma_max": 4.0, "sigma_min": 5.0})


def test_score_at_a_point_of_a_gaussian_path_rescales_the_noise_conditional_score():
    # With the exact blurred scores in place of the network, score_at(x, alpha, sigma) must be
    # the exact score of alpha X + sigma eps: (1 / alpha) grad log p_{sigma / alpha}(x / alpha).
    dataset = registry.load_dataset("eight_gaussians")
    model = registry.build_model("ncsn", (2,), {"hidden": 16, "layers": 1})
    model.score = lambda x, sigma: dataset.score(x, sigma).to(x.dtype)
    x = 2 * torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    for alpha, sigma in [(1.0, 0.3), (0.6, 0.5), (0.9, 0.1)]:
        torch.testing.assert_close(model.score_at(x, alpha, sigma).double(), dataset.path_score(x, alpha, sigma),
                                   rtol=1e-4, atol=1e-4)


def test_the_loss_weights_every_level_to_order_one():
    # With s_theta = 0 every level's sigma^2-weighted DSM term is (1/D) E|eps|^2 = 1.
    model = registry.build_model("ncsn", (2,), {"hidden": 16, "layers": 1})
    with torch.no_grad():
        model.net.out.weight.zero_()
        model.net.out.bias.zero_()
    x = torch.randn(50_000, 2)
    assert float(model.loss(x)["loss"]) == pytest.approx(1.0, rel=0.02)


def test_a_trained_ncsn_score_approaches_the_exact_mixture_score():
    dataset = registry.load_dataset("eight_gaussians")
    torch.manual_seed(0)
    model = registry.build_model("ncsn", (2,), {"hidden": 64, "layers": 2, "sigma_min": 0.2, "L": 6})
    model.init_from_data(dataset.sample(256, torch.Generator().manual_seed(1)))
    before = score_error(dataset, model, 600, torch.Generator().manual_seed(5))
    _train(model, dataset, 300)
    after = score_error(dataset, model, 600, torch.Generator().manual_seed(5))
    assert before > 0.8 and after < 0.3 * before, (before, after)


def test_annealed_langevin_with_the_exact_scores_samples_the_mixture():
    # The model's own sampler and defaults, with the exact blurred scores for s_theta(x, sigma).
    dataset = registry.load_dataset("eight_gaussians")
    g = torch.Generator().manual_seed(2)
    truth, other = dataset.sample(800, g), dataset.sample(800, g)
    model = registry.build_model("ncsn", (2,), {"hidden": 16, "layers": 1})
    model.init_from_data(truth)
    model.score = lambda x, sigma: dataset.score(x, sigma).to(x.dtype)
    torch.manual_seed(3)
    right = model.sample(800)
    model.score = lambda x, sigma: dataset.score(x, max(sigma, 0.6)).to(x.dtype)  # stops annealing at 0.6
    torch.manual_seed(3)
    wrong = model.sample(800)
    floor = mmd(truth, other)
    assert mmd(right, truth) < 2 * floor + 1e-3
    assert mmd(wrong, truth) > 3 * mmd(right, truth)


def test_the_field_follows_the_slider_and_the_chain_anneals():
    model = registry.build_model("ncsn", (2,), {"hidden": 16, "layers": 1, "L": 4, "steps_per_level": 5})
    grid = torch.randn(9, 2)
    tr = model.traces(torch.randn(8, 2), grid, sigma=0.7)
    assert tr["field_level"].tolist() == pytest.approx([1.0, 0.7])
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(tr["score_field"]), model.score(grid, 0.7))
    assert tr["chain"].shape == (4 * 5 + 1, 8, 2)
    levels = tr["chain_sigma"]
    assert levels[0] == pytest.approx(model.config.sigma_max) and levels[-1] == pytest.approx(model.config.sigma_min)
    assert (levels[1:] <= levels[:-1] + 1e-6).all() and math.isfinite(float(tr["chain"].sum()))
