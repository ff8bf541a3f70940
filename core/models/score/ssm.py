"""Sliced score matching, sampled by Langevin dynamics.

Song, Garg, Shi & Ermon 2019, "Sliced Score Matching: A Scalable Approach to Density and Score
Estimation" (https://arxiv.org/abs/1905.07088). Hyvarinen's score matching minimises, without
knowing the data's score,

    J(theta) = E_x[ tr(grad_x s_theta(x)) + 1/2 |s_theta(x)|^2 ],

whose trace costs D backward passes. Projecting on random directions v with E[v v^T] = I
(Rademacher or standard Gaussian) gives an unbiased estimate with one Jacobian-vector product each,

    J_SSM(theta) = E_{x, v}[ v^T grad_x s_theta(x) v + 1/2 (v^T s_theta(x))^2 ]        (eq. 7),

and since E_v (v^T s)^2 = |s|^2 exactly, the variance-reduced form (SSM-VR, eq. 8) keeps
the projection only in the trace term:

    J_SSM-VR(theta) = E_{x, v}[ v^T grad_x s_theta(x) v + 1/2 |s_theta(x)|^2 ].

Both are averaged over M projections per point. The data's own score (sigma = 0) is what is
learned; on 2D toys whose modes are tight that score is steep and the objective, which only
sees the data, says nothing between the modes, so by default the model trains on data blurred
by a small sigma (0.05: x + sigma eps), and learns the score of p_sigma; sigma = 0 trains on
the data itself. Samples come from unadjusted Langevin with the learned score.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ...config import param
from ...dynamics import langevin
from ...errors import ConfigError
from ...nets import MLP
from .base import ScoreModel

PROJECTIONS = ("rademacher", "gaussian")
VARIANTS = ("vr", "ssm")


def projections(shape: tuple, distribution: str, like: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Directions v with E[v v^T] = I: Rademacher (+-1) or standard Gaussian, of `shape`."""
    if distribution not in PROJECTIONS:
        raise ConfigError(f"projection={distribution!r} is not allowed; choose one of: {', '.join(PROJECTIONS)}")
    kw = dict(dtype=like.dtype, generator=generator, device=like.device if generator is None else generator.device)
    if distribution == "gaussian":
        v = torch.randn(shape, **kw)
    else:
        v = torch.randint(0, 2, shape, **kw) * 2 - 1
    return v.to(like.device)


def sliced_score_matching(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n_projections: int = 1,
                          distribution: str = "rademacher", variance_reduced: bool = True,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Per point (n,): J_SSM (eq. 7) or J_SSM-VR (eq. 8), averaged over n_projections directions.

    score: s(x) on flat points (n, D) -> (n, D), differentiable in x; the result keeps the graph
    so that it can be minimised.
    """
    n, D = x.shape
    M = int(n_projections)
    x = x.detach().unsqueeze(0).expand(M, n, D).reshape(M * n, D).requires_grad_(True)  # (M*n, D)
    v = projections((M * n, D), distribution, x, generator)      # (M*n, D)
    s = score(x)                                                  # (M*n, D)
    v_s = (v * s).sum(1)                                          # (M*n,) v^T s
    (jtv,) = torch.autograd.grad(v_s.sum(), x, create_graph=True)  # (M*n, D) (grad_x s)^T v
    trace = (jtv * v).sum(1)                                      # v^T grad_x s v
    square = (s**2).sum(1) if variance_reduced else v_s**2        # |s|^2, or (v^T s)^2
    return (trace + 0.5 * square).reshape(M, n).mean(0)


def explicit_score_matching(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Per point (n,): tr(grad_x s(x)) + 1/2 |s(x)|^2 with the exact trace (D backward passes)."""
    x = x.detach().requires_grad_(True)
    s = score(x)                                                   # (n, D)
    trace = sum(torch.autograd.grad(s[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))
    return trace + 0.5 * (s**2).sum(1)


@dataclasses.dataclass
class SSMConfig:
    projection: str = param("rademacher", choices=PROJECTIONS, help="distribution of the projections v")
    variant: str = param("vr", choices=VARIANTS,
                         help="vr: 1/2 |s|^2 exactly (SSM-VR, lower variance); ssm: 1/2 (v^T s)^2")
    n_projections: int = param(1, lo=1, hi=16, help="projections v per point")
    sigma: float = param(0.05, lo=0.0, hi=10.0,
                         help="noise added to the data for stability: the score learned is that of data + sigma eps (0: the data's own)")
    hidden: int = param(128, lo=8, hi=2048, help="width of the score network")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the score network")
    langevin_steps: int = param(200, lo=1, hi=2000, live=True, help="Langevin steps of a sample")
    step_size: float = param(0.01, lo=1e-6, hi=1.0, live=True,
                             help="Langevin step size eps: x += eps/2 s(x) + sqrt(eps) z")


class SSM(ScoreModel):
    def __init__(self, data_shape: tuple, config: SSMConfig):
        super().__init__(data_shape, config)
        self.net = MLP(self.dim, self.dim, config.hidden, config.layers, activation="silu")  # s_theta

    def score(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """s_theta(x) ~ grad log p_sigma(x) at the model's own sigma; x: (n, D) -> (n, D)."""
        return self.net(x)

    def own_sigma(self, sigma: float | None) -> float:
        return float(self.config.sigma)

    def score_levels(self) -> list[tuple[float, float]]:
        return [(1.0, float(self.config.sigma))]

    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The learned score of data + sigma eps; only at the model's own level (1, config.sigma)."""
        if abs(float(alpha) - 1.0) > 1e-9 or abs(float(sigma) - self.config.sigma) > 1e-9 * max(self.config.sigma, 1e-9):
            raise ValueError(f"ssm learns the score at one level, (1, {self.config.sigma}); got ({alpha}, {sigma})")
        return super().score_at(x, 1.0, self.config.sigma)

    def loss(self, x: torch.Tensor) -> dict:
        c = self.config
        x = self.flat(x)                                                  # (n, D)
        if c.sigma > 0:
            x = x + c.sigma * torch.randn_like(x)
        j = sliced_score_matching(self.net, x, c.n_projections, c.projection, c.variant == "vr").mean()
        return {"loss": j, "ssm": j.detach()}

    def chain(self, x_0, generator=None, trajectory=False):
        c = self.config
        out = langevin(self.score, x_0, c.step_size, c.langevin_steps, generator, return_intermediates=trajectory)
        return out, torch.full((c.langevin_steps + 1,), float(c.sigma), dtype=torch.float64)
