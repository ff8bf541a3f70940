"""ODE solvers, divergences and the likelihood by the instantaneous change of variables."""

import math

import pytest
import torch

from core.dynamics.ode import divergence, log_likelihood, odeint, rademacher

F64 = torch.float64


def test_divergence_exact_and_hutchinson():
    torch.manual_seed(0)
    W = torch.randn(5, 5, dtype=F64)
    fn = lambda x: torch.tanh(x @ W) + x**3
    x = torch.randn(4, 5, dtype=F64)
    _, div = divergence(fn, x)
    jac_trace = torch.stack([torch.trace(torch.autograd.functional.jacobian(lambda z: fn(z[None])[0], xi)) for xi in x])
    assert torch.allclose(div, jac_trace, rtol=1e-12)
    # Hutchinson: v^T J v with Rademacher v, averaged over many probes -> trace
    reps = 20_000
    xr = x.repeat(reps, 1)
    _, est = divergence(fn, xr, rademacher(xr.shape, xr, torch.Generator().manual_seed(1)))
    est = est.reshape(reps, 4)
    se = est.std(0) / math.sqrt(reps)
    assert torch.all((est.mean(0) - div).abs() < 5 * se + 1e-12)


@pytest.mark.parametrize("method,tol", [("rk4", 1e-9), ("euler", 5e-2)])
def test_odeint_solves_a_linear_ode_and_returns_its_path(method, tol):
    A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=F64)  # a rotation: x(s) = R(s) x(0)
    x0 = torch.randn(5, 2, dtype=F64)
    grid = torch.linspace(0, math.pi / 2, 201, dtype=F64)
    path = odeint(lambda s, x: x @ A.T, x0, grid, method=method, return_intermediates=True)
    assert path.shape == (201, 5, 2) and torch.equal(path[0], x0)
    exact = torch.stack([x0[:, 0] * math.cos(s) + x0[:, 1] * math.sin(s) for s in grid.tolist()])
    assert torch.allclose(path[:, :, 0], exact, atol=tol)
    back = odeint(lambda s, x: x @ A.T, path[-1], grid.flip(0), method=method)  # backwards in time
    assert torch.allclose(back, x0, atol=tol)


def test_log_likelihood_of_a_linear_flow_is_the_change_of_variables():
    # dx/ds = a x carries x to e^a x: log p(x) = log N(e^a x; 0, I) + D a, exactly
    a, D = 0.6, 3
    x = torch.randn(50, D, dtype=F64)
    exact = -0.5 * ((math.exp(a) * x) ** 2).sum(1) - 0.5 * D * math.log(2 * math.pi) + D * a
    got, path = log_likelihood(lambda s, y: a * y, x, torch.linspace(0, 1, 21), return_intermediates=True)
    assert torch.allclose(got, exact, atol=1e-8) and path.shape == (21, 50, D)
    hutch = log_likelihood(lambda s, y: a * y, x, torch.linspace(0, 1, 21), exact=False,
                           generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hutch, exact, atol=1e-8)  # v^T (a I) v = a D for every Rademacher v
    with pytest.raises(ValueError, match="at least 2 times"):
        odeint(lambda s, y: y, x, [0.0])
