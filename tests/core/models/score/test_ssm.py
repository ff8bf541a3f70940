"""Sliced score matching against the explicit score-matching objective, with analytic scores."""

from __future__ import annotations

import math

import pytest
import torch

from core import registry
from core.errors import ConfigError
from core.models.score import explicit_score_matching, sliced_score_matching
from core.models.score.ssm import projections

W = torch.tensor([[0.8, -0.5, 0.3], [0.4, 1.2, -0.7], [-0.6, 0.2, 0.9]], dtype=torch.float64)


def coupled(x):
    """s(x) = -x + tanh(W x): a score with a full Jacobian, tr grad s = -D + sum_i W_ii (1 - tanh^2(Wx)_i)."""
    return -x + torch.tanh(x @ W.T)


def coupled_objective(x):
    h = torch.tanh(x @ W.T)
    trace = -x.shape[1] + ((1 - h**2) * torch.diagonal(W)).sum(1)
    return trace + 0.5 * (coupled(x) ** 2).sum(1)


def separable(x):
    """s_i(x) = -x_i^3 + sin x_i: a diagonal Jacobian, so v^T grad s v = tr grad s for every v in {-1, 1}^D."""
    return -x**3 + torch.sin(x)


def test_the_explicit_objective_has_the_closed_form_trace():
    x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(explicit_score_matching(coupled, x), coupled_objective(x))
    diag = (-3 * x**2 + torch.cos(x)).sum(1) + 0.5 * (separable(x) ** 2).sum(1)
    torch.testing.assert_close(explicit_score_matching(separable, x), diag)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
@pytest.mark.parametrize("variance_reduced", [True, False])
def test_sliced_objective_equals_the_explicit_one_in_expectation(distribution, variance_reduced):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, dtype=torch.float64, generator=g)
    M = 20_000
    sliced = sliced_score_matching(coupled, x, M, distribution, variance_reduced, generator=g)
    exact = coupled_objective(x)
    # per point, the standard error of a mean of M projections is well under 0.05 here
    assert (sliced - exact).abs().max() < 0.08, (sliced, exact)
    # one projection is far noisier: the average really is what brings it to the explicit value
    single = sliced_score_matching(coupled, x, 1, distribution, variance_reduced, generator=g)
    assert (single - exact).abs().max() > (sliced - exact).abs().max()


def test_the_variance_reduced_form_is_the_explicit_objective_when_the_trace_is_exact():
    # With Rademacher v and a diagonal Jacobian, v^T grad s v is the exact trace, so SSM-VR with
    # one projection is the explicit objective point by point, while plain SSM's (v^T s)^2 is not |s|^2.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 3, dtype=torch.float64, generator=g)
    exact = explicit_score_matching(separable, x)
    vr = sliced_score_matching(separable, x, 1, "rademacher", True, generator=g)
    torch.testing.assert_close(vr, exact)
    plain = sliced_score_matching(separable, x, 1, "rademacher", False, generator=g)
    assert (plain - exact).abs().max() > 0.1


def test_projections_have_identity_second_moment():
    v = projections((200_000, 3), "gaussian", torch.zeros(1, dtype=torch.float64), torch.Generator().manual_seed(3))
    torch.testing.assert_close(v.T @ v / v.shape[0], torch.eye(3, dtype=torch.float64), atol=0.02, rtol=0)
    r = projections((10, 3), "rademacher", torch.zeros(1), torch.Generator().manual_seed(3))
    assert set(r.unique().tolist()) == {-1.0, 1.0}
    with pytest.raises(ConfigError, match="rademacher, gaussian"):
        projections((2, 2), "uniform", torch.zeros(1))


def test_the_ssm_loss_is_minimised_by_the_gaussian_score():
    # For data N(0, s^2 I) over scores s_c(x) = -x / c, J(c) = -D / c + E|x|^2 / (2 c^2) is least at c = s^2.
    model = registry.build_model("ssm", (2,), {"sigma": 0.0, "n_projections": 4})
    x = 0.7 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(4))
    values = {}
    for c in (0.25, 0.49, 0.9):
        with torch.no_grad():
            model.net = torch.nn.Linear(2, 2, bias=False)
            model.net.weight.copy_(-torch.eye(2) / c)
        values[c] = float(model.loss(x)["loss"])
        assert values[c] == pytest.approx(-2 / c + float((x**2).sum(1).mean()) / (2 * c**2), abs=0.15)
    assert values[0.49] < min(values[0.25], values[0.9])
    assert values[0.49] == pytest.approx(-1 / 0.49, abs=0.1)  # J(s^2) = -D / (2 s^2)


def test_ssm_score_levels_are_its_own_noise():
    model = registry.build_model("ssm", (2,), {"sigma": 0.05})
    assert model.score_levels() == [(1.0, 0.05)]
    with pytest.raises(ValueError, match="one level"):
        model.score_at(torch.zeros(3, 2), 1.0, 0.5)
    assert math.isclose(float(model.traces(torch.zeros(4, 2), None, sigma=1.5)["field_level"][1]), 0.05, rel_tol=1e-6)
