"""Flow matching: its exact minimiser for Gaussian data, the ODE's law and density, OT and reflow pairs, training.

For data N(m, s^2 I) and independent noise, x_t = (1 - t) x_0 + t x_1 is Gaussian and
the minimiser of the CFM loss is known in closed form,

    v*(x, t) = E[x_1 - x_0 | x_t = x] = c(t) (x - (1 - t) m) - m,
    c(t) = (t - (1 - t) s^2) / ((1 - t)^2 s^2 + t^2),

so the ODE it defines must carry N(0, I) at t = 1 to N(m, s^2 I) at t = 0, and
log_prob must be log N(x; m, s^2 I).
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from core import registry
from core.dynamics.ode import odeint
from core.metrics import mmd
from core.models.continuous import straightness

F64 = torch.float64
M, S = torch.tensor([1.0, -0.5], dtype=F64), 0.6


class GaussianOracle(nn.Module):
    """v*(x, t) for data N(m, s^2 I) and independent N(0, I) noise."""

    def __init__(self, m=M, s=S, scale=1.0):
        super().__init__()
        self.m, self.s, self.scale = m, s, scale

    def forward(self, x, t):
        t = t.to(x)[:, None]
        c = (t - (1 - t) * self.s**2) / ((1 - t) ** 2 * self.s**2 + t**2)
        return self.scale * (c * (x - (1 - t) * self.m.to(x)) - self.m.to(x))


def build(**overrides):
    torch.manual_seed(0)
    return registry.build_model("flow_matching", (2,), {"hidden": 32, **overrides})


def gaussian_log_prob(x, m=M, s=S):
    return (-0.5 * ((x - m) / s) ** 2 - math.log(math.sqrt(2 * math.pi) * s)).sum(1)


def test_the_exact_velocity_carries_the_base_to_the_data_and_gives_its_density():
    model = build(steps=40, log_prob_steps=40).double()
    model.velocity = GaussianOracle()
    torch.manual_seed(1)
    x = model.sample(40_000)
    n = x.shape[0]
    assert torch.allclose(x.mean(0), M, atol=5 * S / math.sqrt(n))
    assert torch.allclose(x.var(0), torch.full((2,), S**2, dtype=F64), rtol=5 * math.sqrt(2 / n))
    pts = M + S * torch.randn(200, 2, dtype=F64) * 1.5
    assert torch.allclose(model.log_prob(pts), gaussian_log_prob(pts), atol=1e-4)


def test_the_score_from_the_exact_velocity_is_the_noised_datas_score():
    # alpha X + sigma eps for X ~ N(m, s^2 I) is N(alpha m, (alpha^2 s^2 + sigma^2) I)
    model = build().double()
    model.velocity = GaussianOracle()
    assert model.score_levels() == [(0.8, 0.2), (0.5, 0.5), (pytest.approx(0.2), 0.8)]
    x = torch.randn(100, 2, dtype=F64) * 2
    for alpha, sigma in model.score_levels():
        exact = -(x - alpha * M) / (alpha**2 * S**2 + sigma**2)
        assert torch.allclose(model.score_at(x, alpha, sigma), exact, atol=1e-10)
    with pytest.raises(ValueError, match="alpha = 1 - t"):
        model.score_at(x, 1.0, 0.5)
    assert build(coupling="ot").score_levels() == [] and build(reflow=10).score_levels() == []


def test_the_cfm_loss_is_smallest_at_the_exact_velocity():
    model = build().double()
    x_0 = M + S * torch.randn(20_000, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    losses = {}
    for scale in (0.9, 1.0, 1.1):
        model.velocity = GaussianOracle(scale=scale)
        torch.manual_seed(3)  # the same t and x_1 for each
        losses[scale] = float(model.loss(x_0)["loss"])
    assert losses[1.0] < losses[0.9] and losses[1.0] < losses[1.1]


class Recorder(nn.Module):
    def forward(self, x, t):
        self.seen = (x.detach().clone(), t.detach().clone())
        return torch.zeros_like(x)


def test_the_loss_regresses_the_straight_line_velocity():
    # With v = 0 the loss is E|x_1 - x_0|^2 / D; x_t must lie on the segment from x_0 to a standard normal x_1.
    model = build()
    model.velocity = Recorder()
    x_0 = torch.randn(4000, 2) * 0.1 + 3.0
    out = model.loss(x_0)
    x_t, t = model.velocity.seen
    x_1 = (x_t - (1 - t[:, None]) * x_0) / t[:, None]
    assert abs(float(x_1.mean())) < 0.1 and abs(float(x_1.std()) - 1) < 0.1
    assert float(out["loss"]) == pytest.approx(float(((x_1 - x_0) ** 2).mean()), rel=1e-3)
    assert float(out["pair_cost"]) == pytest.approx(float(((x_1 - x_0) ** 2).sum(1).mean()), rel=1e-3)


def test_ot_pairs_cost_less_than_independent_pairs():
    # data N(0, I / 4): independent pairs cost E|x_1 - x_0|^2 = 2.5, the optimal plan W_2^2 = 2 (1 - 1/2)^2 = 0.5
    x_0 = 0.5 * torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    costs = {}
    for coupling in ("independent", "ot"):
        model = build(coupling=coupling)
        torch.manual_seed(1)  # the same noise for both; OT only reorders it
        costs[coupling] = float(model.loss(x_0)["pair_cost"])
    assert costs["independent"] == pytest.approx(2.5, rel=0.2)
    assert costs["ot"] < 0.4 * costs["independent"]


def test_reflow_trains_on_the_models_own_ode_pairs_renewed_every_n_steps():
    model = build(reflow=3, steps=8).double()
    data = torch.full((64, 2), 100.0, dtype=F64)  # far from anything the model makes: reflow must ignore it
    pairs = []
    for _ in range(7):
        model.loss(data)
        pairs.append(model._pairs)
    # drawn at the first step, then renewed at steps 3 and 6 (counting from 0)
    assert [pairs[i] is pairs[i - 1] for i in range(1, 7)] == [True, True, False, True, True, False]
    x_0, x_1 = model.couple(data)
    again = odeint(model.v, x_1, [1 - k / 8 for k in range(9)], "rk4")  # where the model's ODE takes x_1
    assert torch.allclose(x_0, again, atol=1e-10)
    assert float(x_0.abs().max()) < 50


def test_straightness_of_known_paths():
    t = torch.linspace(0, 1, 201)[:, None, None]
    line = torch.tensor([[0.0, 0.0]]) + t * torch.tensor([[3.0, 4.0]])  # (201, 1, 2)
    assert abs(float(straightness(line))) < 1e-6
    angle = math.pi * torch.linspace(0, 1, 2001)
    half_circle = torch.stack([torch.cos(angle), torch.sin(angle)], -1)[:, None]  # length pi, chord 2
    assert float(straightness(half_circle)) == pytest.approx(math.pi / 2 - 1, rel=1e-4)


def test_traces_draw_the_ode_from_fixed_noise_and_the_field_at_the_chosen_time():
    model = build().eval()
    grid = torch.randn(49, 2)
    tr = model.traces(torch.randn(300, 2), grid, t=0.3)
    assert tr["paths"].shape == (model.TRACE_STEPS + 1, model.TRACE_MAX_POINTS, 2)
    assert tr["paths_t"][0] == 1 and tr["paths_t"][-1] == 0 and float(tr["field_t"][0]) == pytest.approx(0.3)
    with torch.no_grad():
        expected = model.v(0.3, grid).numpy()
    np.testing.assert_allclose(tr["velocity_field"], expected, rtol=1e-5, atol=1e-6)
    again = model.traces(torch.randn(300, 2), grid)  # the same particles each time
    np.testing.assert_array_equal(again["paths"], tr["paths"])
    with torch.no_grad():
        steps = model.trajectory(torch.from_numpy(tr["paths"][0]), steps=model.TRACE_STEPS)
    np.testing.assert_allclose(tr["paths"], steps.numpy(), atol=1e-5)
    p = tr["paths"].astype(np.float64)
    length = np.linalg.norm(np.diff(p, axis=0), axis=-1).sum(0)
    assert float(tr["straightness"][0]) == pytest.approx((length / np.linalg.norm(p[-1] - p[0], axis=-1)).mean() - 1, rel=1e-4)


@pytest.fixture(scope="module")
def trained():
    """Both couplings, the same seed, batches and budget, on eight_gaussians."""
    dataset = registry.load_dataset("eight_gaussians")
    data = dataset.training_set(4000, 0)
    reference = dataset.sample(1000, torch.Generator().manual_seed(9))
    x_1 = torch.randn(200, 2, generator=torch.Generator().manual_seed(2))
    out = {}
    for coupling in ("independent", "ot"):
        model = build(coupling=coupling, hidden=64)
        before = model.trajectory(x_1, steps=10)[-1]
        opt = torch.optim.Adam(model.parameters(), 2e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(200):
            loss = model.loss(data[torch.randint(0, data.shape[0], (64,), generator=g)])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[coupling] = (model, mmd(before, reference), model.trajectory(x_1, steps=20), reference)
    return out


def test_the_learned_velocity_carries_the_base_to_the_data(trained):
    for coupling, (model, mmd_before, paths, reference) in trained.items():
        after = mmd(paths[-1], reference)
        assert after < 0.25 * mmd_before, (coupling, mmd_before, after)


def test_minibatch_ot_gives_straighter_paths_than_independent_pairs(trained):
    s = {coupling: float(straightness(paths)) for coupling, (_, _, paths, _) in trained.items()}
    assert s["ot"] < 0.5 * s["independent"], s
