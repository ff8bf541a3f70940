"""A continuous normalizing flow trained by maximum likelihood, FFJORD-style.

Grathwohl et al. 2019, "FFJORD: Free-form Continuous Dynamics for Scalable Reversible
Generative Models" (https://arxiv.org/abs/1810.01367), on Chen et al. 2018's
instantaneous change of variables. Time runs the house way (core.dynamics): t = 0 is
the data, t = 1 the base N(0, I). With dx/dt = v_theta(x, t) and x_0 = x,

    log p(x) = log N(x_1; 0, I) + int_0^1 div v_theta(x_t, t) dt,

and training minimises -E_data[log p(x)], back-propagating through the solver's steps
(discretise-then-optimise; FFJORD uses the adjoint, which costs a second solve). The
divergence in training is Hutchinson's unbiased estimate with one Rademacher probe
eps per point, held fixed over the solve (FFJORD, eq. 7):

    div v = E_eps[eps^T (dv/dx) eps],      eps_i = +-1,

one vector-Jacobian product per evaluation. An optional kinetic-energy penalty
(Finlay et al. 2020, "How to train your neural ODE", https://arxiv.org/abs/2002.02798)

    loss = -log p(x) + lambda int_0^1 |v_theta(x_t, t)|^2 dt

prefers straight, slow paths, which a coarse solver follows well. log_prob (base.py)
uses the exact divergence in 2D with `log_prob_steps` steps: exact up to the solver's error.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ...config import param
from ...dynamics.ode import METHODS, odeint, rademacher
from .base import ContinuousFlow


@dataclasses.dataclass
class CNFConfig:
    hidden: int = param(64, lo=8, hi=1024, help="width of the velocity network v_theta")
    layers: int = param(3, lo=1, hi=8, help="hidden layers of the velocity network")
    train_steps: int = param(8, lo=1, hi=100, help="solver steps of the differentiable solve in training")
    kinetic: float = param(0.01, lo=0.0, hi=10.0, help="weight lambda of the kinetic-energy penalty int |v|^2 dt (Finlay et al.)", live=True)
    solver: str = param("rk4", choices=METHODS, help="ODE solver of training, sampling and log_prob")
    steps: int = param(20, lo=1, hi=500, help="solver steps of sampling", live=True)
    log_prob_steps: int = param(20, lo=1, hi=500, help="solver steps of log_prob", live=True)


def augmented_field(v, probe: torch.Tensor | None):
    """f(t, (x, l, k)) = (v, div v, |v|^2): the ODE of the state, its log-density change and its
    kinetic energy, kept differentiable (create_graph) so that a loss can back-propagate
    through a solve. probe None: the exact divergence (D vector-Jacobian products)."""

    def f(t: float, state):
        x = state[0]
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.clone().requires_grad_(True)
            dx = v(t, x)  # (n, D)
            if probe is not None:
                vjp = torch.autograd.grad(dx, x, probe, create_graph=True)[0]  # eps^T dv/dx
                div = (vjp * probe).sum(1)
            else:
                div = sum(torch.autograd.grad(dx[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))
        return dx, div, (dx**2).sum(1)

    return f


def differentiable_log_prob(v, x: torch.Tensor, steps: int, method: str = "rk4",
                            probe: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x) (n,), kinetic energy int_0^1 |v|^2 dt (n,)) by a solve from t = 0 to 1 that keeps the graph."""
    n, D = x.shape
    zero = x.new_zeros(n)
    grid = [k / steps for k in range(steps + 1)]
    x_1, integral, kinetic = odeint(augmented_field(v, probe), (x, zero, zero), grid, method)
    log_base = -0.5 * (x_1**2).sum(1) - 0.5 * D * math.log(2 * math.pi)  # log N(x_1; 0, I)
    return log_base + integral, kinetic


class CNF(ContinuousFlow):
    log_prob_is_exact = True  # up to the ODE solver's error, which density_note names
    DENSITY = "exact divergence in 2D, up to the error of the fixed-step ODE solve"

    def loss(self, x: torch.Tensor) -> dict:
        x = self.flat(x)  # (n, D)
        probe = rademacher(x.shape, x)
        log_p, kinetic = differentiable_log_prob(self.v, x, self.config.train_steps, self.config.solver, probe)
        nll = -log_p.mean()
        ke = kinetic.mean()
        loss = nll + self.config.kinetic * ke
        return {"loss": loss, "nll": nll.detach(), "kinetic": ke.detach()}
