"""Ordinary differential equations: fixed-step solvers, divergences and likelihoods.

    odeint(f, x, times)                    dx/ds = f(s, x) over the grid `times`, by RK4 or Euler;
                                           with return_intermediates, every state (S+1, n, ...)
    log_likelihood(f, x, times, ...)       log p(x) of the flow dx/ds = f(s, x) that carries data
                                           at times[0] to a prior at times[-1]
    divergence(fn, x, probe)               fn(x) and sum_i d fn_i / d x_i, exact or Hutchinson's

The likelihood is the instantaneous change of variables (Chen et al. 2018,
"Neural ODEs", thm. 1): along a solution d log p_s(x_s)/ds = -div f(s, x_s), so

    log p_{s_0}(x) = log p_{s_1}(x_{s_1}) + int_{s_0}^{s_1} div f(s, x_s) ds,   x_{s_0} = x,

whatever the direction or the parametrisation of s (DDPM integrates in its
log-SNR). The divergence is exact (one backward pass per dimension) or
Hutchinson's estimator div f = E_v[v^T (df/dx) v] with one Rademacher probe v
per point held fixed over the whole solve (Grathwohl et al. 2019, FFJORD),
which keeps the integral unbiased.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

Field = Callable[[float, torch.Tensor], torch.Tensor]  # f(s, x (n, ...)) -> dx/ds (n, ...)
METHODS = ("rk4", "euler")


def divergence(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               probe: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """fn(x) and its divergence sum_i d fn_i / d x_i, per point; x: (n, D).

    probe None: exact, D backward passes. probe (n, D) of +-1 entries: Hutchinson's
    unbiased estimate v^T (d fn/dx) v, one backward pass.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = fn(x)  # (n, D)
        if probe is not None:
            vjp = torch.autograd.grad(y, x, grad_outputs=probe)[0]  # v^T J, (n, D)
            return y.detach(), (vjp * probe).sum(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            div = div + torch.autograd.grad(y[:, i].sum(), x, retain_graph=i < x.shape[1] - 1)[0][:, i]
        return y.detach(), div


def rademacher(shape: tuple, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Entries +-1 with probability 1/2 each, so E[v v^T] = I."""
    bits = torch.randint(0, 2, shape, generator=generator, device="cpu" if generator is None else generator.device)
    return (2 * bits - 1).to(like)


def _step(f, s: float, h: float, x, method: str):
    """One step of size h from (s, x): classical RK4 or forward Euler. x may be a tuple of tensors."""
    add = (lambda a, b, c: tuple(ai + c * bi for ai, bi in zip(a, b))) if isinstance(x, tuple) else (lambda a, b, c: a + c * b)
    k1 = f(s, x)
    if method == "euler":
        return add(x, k1, h)
    k2 = f(s + h / 2, add(x, k1, h / 2))
    k3 = f(s + h / 2, add(x, k2, h / 2))
    k4 = f(s + h, add(x, k3, h))
    if isinstance(x, tuple):
        return tuple(xi + h / 6 * (a + 2 * b + 2 * c + d) for xi, a, b, c, d in zip(x, k1, k2, k3, k4))
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _grid(times) -> list[float]:
    grid = [float(s) for s in (times.tolist() if isinstance(times, torch.Tensor) else times)]
    if len(grid) < 2:
        raise ValueError(f"an ODE solve needs a grid of at least 2 times, got {len(grid)}")
    return grid


def odeint(f: Field, x: torch.Tensor, times: Sequence[float] | torch.Tensor, method: str = "rk4",
           return_intermediates: bool = False) -> torch.Tensor:
    """Solve dx/ds = f(s, x) from x at times[0] over the grid; x at times[-1], or every state
    (len(times), n, ...) with return_intermediates. The grid may decrease (integrating backwards)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    grid = _grid(times)
    states = [x]
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = _step(f, s, s_next - s, x, method)
        if return_intermediates:
            states.append(x)
    return torch.stack(states) if return_intermediates else x


def log_likelihood(f: Field, x: torch.Tensor, times: Sequence[float] | torch.Tensor, method: str = "rk4",
                   exact: bool = True, generator: torch.Generator | None = None,
                   log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   return_intermediates: bool = False):
    """log p(x) of the flow dx/ds = f(s, x) from the data at times[0] to the prior at times[-1].

    x: (n, D). exact=False uses Hutchinson's divergence with one probe per point.
    log_prior(x_end) -> (n,) defaults to log N(x_end; 0, I). Returns (n,), and with
    return_intermediates also the states (len(times), n, D).
    """
    n, D = x.shape
    probe = None if exact else rademacher((n, D), x, generator)

    def augmented(s: float, state):
        y, div = divergence(lambda z: f(s, z), state[0], probe)
        return y, div

    grid = _grid(times)
    state = (x.detach(), torch.zeros(n, dtype=x.dtype, device=x.device))
    states = [state[0]]
    for s, s_next in zip(grid[:-1], grid[1:]):
        state = _step(augmented, s, s_next - s, state, method)
        if return_intermediates:
            states.append(state[0])
    x_end, integral = state
    if log_prior is None:
        log_p_end = -0.5 * (x_end**2).sum(1) - 0.5 * D * math.log(2 * math.pi)  # log N(x_end; 0, I)
    else:
        log_p_end = log_prior(x_end)
    out = (log_p_end + integral).detach()
    return (out, torch.stack(states)) if return_intermediates else out
