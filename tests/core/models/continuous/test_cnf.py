"""The CNF: its log-density against closed forms and brute-force Jacobians, normalisation, and training.

A linear field v(x, t) = a x has the flow x_t = e^{a t} x, so with t = 0 the data and
t = 1 the base, log p(x) = log N(e^a x; 0, I) + D a, d log p / da = D - e^{2a} |x|^2,
and the kinetic energy is int_0^1 |a e^{a t} x|^2 dt = a^2 |x|^2 (e^{2a} - 1) / (2a).
For a Rademacher probe eps, eps^T (a I) eps = a D exactly, so Hutchinson's estimate is
exact for it too.
"""

import math

import pytest
import torch
from torch import nn

from core import registry
from core.dynamics.ode import odeint, rademacher
from core.models.continuous import differentiable_log_prob

F64 = torch.float64


class Linear(nn.Module):
    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=F64))

    def forward(self, t, x):
        return self.a * x


def log_normal(x):
    return -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


@pytest.mark.parametrize("exact", [True, False])
def test_a_linear_field_gives_the_closed_form_density_kinetic_energy_and_gradient(exact):
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    v = Linear(0.7)
    probe = None if exact else rademacher(x.shape, x)
    log_p, kinetic = differentiable_log_prob(v, x, steps=20, probe=probe)
    a = 0.7
    assert torch.allclose(log_p, log_normal(math.exp(a) * x) + 2 * a, atol=1e-6)
    assert torch.allclose(kinetic, a**2 * (x**2).sum(1) * (math.exp(2 * a) - 1) / (2 * a), rtol=1e-6)
    log_p.sum().backward()
    grad = (2 - math.exp(2 * a) * (x**2).sum(1)).sum()
    assert float(v.a.grad) == pytest.approx(float(grad), rel=1e-5)


def small_cnf(**overrides):
    """A CNF whose random field is far from zero, so that its map is not nearly the identity."""
    torch.manual_seed(0)
    model = registry.build_model("cnf", (2,), {"hidden": 16, "layers": 2, **overrides}).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def test_the_integrated_divergence_is_the_log_det_of_the_ode_maps_jacobian():
    model = small_cnf(log_prob_steps=64)
    grid = [k / 64 for k in range(65)]
    flow = lambda x: odeint(model.v, x[None], grid, "rk4")[0]  # noqa: E731 - the map x_0 -> x_1
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x_1 = odeint(model.v, x, grid, "rk4")
        integral = model.log_prob(x) - log_normal(x_1)
    log_dets = torch.stack([torch.linalg.slogdet(torch.autograd.functional.jacobian(flow, xi))[1] for xi in x])
    assert float(log_dets.abs().max()) > 0.2  # a map that changes volume
    assert torch.allclose(integral, log_dets, atol=1e-5)
    # the differentiable solve of training gives the same numbers, exactly or on average over probes
    log_p, _ = differentiable_log_prob(model.v, x, 64)
    assert torch.allclose(log_p.detach(), model.log_prob(x), atol=1e-10)
    R = 400
    reps = x.repeat(R, 1)
    torch.manual_seed(2)
    exact, _ = differentiable_log_prob(model.v, x, 16)
    hutchinson, _ = differentiable_log_prob(model.v, reps, 16, probe=rademacher(reps.shape, reps))
    hutchinson = hutchinson.detach().reshape(R, 6)
    standard_error = hutchinson.std(0) / math.sqrt(R)
    assert bool(((hutchinson.mean(0) - exact.detach()).abs() < 4 * standard_error + 1e-9).all())
    assert float(hutchinson.std(0).max()) > 0  # a real estimate, not the exact trace


def test_log_prob_integrates_to_one():
    model = small_cnf(log_prob_steps=20)
    h, half = 0.1, 7.0
    xs = torch.arange(-half, half + h / 2, h, dtype=F64)
    grid = torch.cartesian_prod(xs, xs)  # (141^2, 2)
    with torch.no_grad():
        log_p = model.log_prob(grid)
    mass = float(log_p.exp().sum() * h * h)
    assert mass == pytest.approx(1.0, abs=0.01)
    assert float((log_p - log_normal(grid)).abs().max()) > 0.5  # and it is not the base's density


def test_training_raises_the_held_out_likelihood():
    dataset = registry.load_dataset("eight_gaussians")
    data = dataset.training_set(2000, 0)
    held = dataset.sample(500, torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    model = registry.build_model("cnf", (2,), {"hidden": 32, "train_steps": 4})
    with torch.no_grad():
        before = float(model.log_prob(held).mean())
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(40):
        out = model.loss(data[torch.randint(0, 2000, (128,), generator=g)])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert set(out) == {"loss", "nll", "kinetic"}
    assert float(out["loss"].detach()) == pytest.approx(float(out["nll"] + model.config.kinetic * out["kinetic"]), rel=1e-5)
    with torch.no_grad():
        after = float(model.log_prob(held).mean())
    assert after > before + 0.5, (before, after)
