"""ODE solvers, divergences and the likelihood by the instantaneous change of variables."""

import math

import torch

from core.dynamics.ode import divergence, rademacher

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
