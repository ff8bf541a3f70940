"""A real-valued autoregressive density: MADE with a mixture of Gaussians per conditional.

RNADE (Uria, Murray & Larochelle 2013, "RNADE: The real-valued neural autoregressive
density-estimator", https://arxiv.org/abs/1306.0186), with its conditioner a MADE
(Germain et al. 2015; core.nets.MADE). The chain rule writes any density as

    p(x) = prod_{i=1}^{D} p(x_i | x_<i),

and each conditional is a K-component mixture of Gaussians whose parameters come from
x_<i only:

    p(x_i | x_<i) = sum_k pi_ik N(x_i; mu_ik, sigma_ik^2),
    (logit pi_i, mu_i, log sigma_i) = theta_i(x_<i)         (MADE, 3K outputs per dimension).

log p(x) is exact and takes one pass of the network; sampling draws x_1, then x_2 given
x_1, and so on: D passes. The model learns by maximum likelihood, loss = -E[log p(x)].
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...config import param
from ...model import GenerativeModel, to_numpy
from ...nets import MADE

LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass
class MADEMoGConfig:
    K: int = param(8, lo=1, hi=64, help="Gaussian components K of each conditional p(x_i | x_<i)")
    hidden: int = param(128, lo=8, hi=4096, help="width of the MADE's hidden layers")
    depth: int = param(2, lo=1, hi=8, help="hidden layers of the MADE")


class MADEMoG(GenerativeModel):
    family = "autoregressive"
    has_log_prob = True
    log_prob_is_exact = True
    live_kl = True  # one pass of the network per batch of points

    # sigma_ik >= e^-7: on data with a constant coordinate (an image's border) a component
    # could otherwise shrink onto it and the likelihood grow without bound
    LOG_SIGMA_MIN = -7.0
    TRACE_MAX_IMAGES = 6  # D passes each (784 on a digit): samples drawn for a live picture of images, within budget.PICTURE_SECONDS

    TRACES = {"samples": ("m", "x")}
    GRID_TRACES = {"log_density": ("G",), "x1": (1,), "x2_values": ("S",), "conditional": ("S",),
                   "x1_values": ("S",), "marginal": ("S",)}

    def __init__(self, data_shape: tuple, config: MADEMoGConfig):
        super().__init__(data_shape, config)
        K = config.K
        self.made = MADE(self.dim, 3 * K, config.hidden, config.depth)
        # The MADE's last layer starts at zero, so theta_i is its bias alone: give the K components
        # different means from the start (identical ones would receive identical gradients forever).
        self._set_start(torch.zeros(self.dim), torch.ones(self.dim))

    @torch.no_grad()
    def _set_start(self, centre: torch.Tensor, scale: torch.Tensor) -> None:
        """theta at zero hidden weights: equal weights, means spread over centre +- 1.5 scale and
        sigma = scale / K, per dimension (centre, scale: (D,))."""
        K = self.config.K
        spread = torch.linspace(-1.5, 1.5, K) if K > 1 else torch.zeros(1)
        bias = torch.zeros(self.dim, 3 * K)
        bias[:, K:2 * K] = centre[:, None] + scale[:, None] * spread[None, :]
        bias[:, 2 * K:] = torch.log(scale / K).clamp_min(self.LOG_SIGMA_MIN + 1)[:, None]
        self.made.out.bias.copy_(bias.reshape(-1))

    def init_from_data(self, x: torch.Tensor) -> None:
        x = self.flat(x).detach().to("cpu", torch.float32)
        self._set_start(x.mean(0), x.std(0).clamp_min(1e-2) if x.shape[0] > 1 else torch.ones(self.dim))

    # ---- the conditionals -------------------------------------------------
    def conditionals(self, x: torch.Tensor):
        """log pi (n, D, K), mu (n, D, K), log sigma (n, D, K) of p(x_i | x_<i) at flat x (n, D)."""
        K = self.config.K
        theta = self.made(x)  # (n, D, 3K)
        log_pi = F.log_softmax(theta[..., :K], dim=-1)
        mu = theta[..., K:2 * K]
        log_sigma = self.LOG_SIGMA_MIN + F.softplus(theta[..., 2 * K:] - self.LOG_SIGMA_MIN)
        return log_pi, mu, log_sigma

    @staticmethod
    def mixture_log_prob(v: torch.Tensor, log_pi, mu, log_sigma) -> torch.Tensor:
        """log sum_k pi_k N(v; mu_k, sigma_k^2) for v (...,) and parameters (..., K)."""
        z = (v[..., None] - mu) * torch.exp(-log_sigma)
        return torch.logsumexp(log_pi - 0.5 * z**2 - log_sigma - 0.5 * LOG_2PI, dim=-1)

    # ---- density and training ------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = sum_i log p(x_i | x_<i): (n, *data_shape) -> (n,)."""
        if x.dim() < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        x = self.flat(x).to(self.device, self.made.out.weight.dtype)
        return self.mixture_log_prob(x, *self.conditionals(x)).sum(1)

    def loss(self, x: torch.Tensor) -> dict:
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "nll": nll.detach()}

    # ---- sampling ----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_1 ~ p(x_1), x_2 ~ p(x_2 | x_1), ...: after pass i the first i coordinates are final,
        since theta_i reads only x_<i."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n}")
        dtype = self.made.out.weight.dtype
        x = torch.zeros(int(n), self.dim, device=self.device, dtype=dtype)
        for i in range(self.dim):
            log_pi, mu, log_sigma = (p[:, i] for p in self.conditionals(x))  # (n, K) each
            at = x.device if generator is None else generator.device  # a generator draws on its own device
            k = torch.multinomial(log_pi.exp().to(at), 1, generator=generator).to(x.device)  # (n, 1)
            eps = torch.randn(int(n), generator=generator, device=at, dtype=dtype).to(x.device)
            x[:, i] = mu.gather(1, k)[:, 0] + log_sigma.gather(1, k)[:, 0].exp() * eps
        return self.unflat(x)

    # ---- live views ----------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, x1: float | None = None) -> dict[str, np.ndarray]:
        """"samples" (m, *data_shape): m = len(x) model samples for 2D data, at most 16 images.

        For 2D data with a plane grid (G*G, 2) of side S: "log_density" (G*G,) log p on the grid;
        "x1" (1,) the chosen x1 (default: the middle of the grid's x range); "conditional" (S,)
        p(x2 | x1) at x2 = "x2_values" (S,), the grid's y values; "marginal" (S,) p(x1) at
        x1 = "x1_values" (S,), the grid's x values.
        """
        m = x.shape[0] if self.dim <= 16 else min(x.shape[0], self.TRACE_MAX_IMAGES)
        out = {"samples": to_numpy(self.sample(max(m, 1)))}
        if grid is None or self.data_shape != (2,):
            return out
        dtype = self.made.out.weight.dtype
        grid = grid.to(self.device, dtype)
        side = int(round(math.sqrt(grid.shape[0])))
        xs, ys = grid[:side, 0], grid[::side, 1]  # plane_grid's layout: row i is y = ys[i]
        x1 = float(0.5 * (xs[0] + xs[-1])) if x1 is None else float(x1)
        out["log_density"] = to_numpy(self.log_prob(grid))
        # p(x2 | x1): the second conditional of the points (x1, x2), x2 along the grid's y values
        at_x1 = torch.stack([torch.full_like(ys, x1), ys], 1)  # (S, 2)
        log_pi, mu, log_sigma = (p[:, 1] for p in self.conditionals(at_x1))
        out["conditional"] = to_numpy(self.mixture_log_prob(ys, log_pi, mu, log_sigma).exp())
        # p(x1): the first conditional reads nothing, so any point gives it
        log_pi, mu, log_sigma = (p[:1, 0] for p in self.conditionals(grid[:1]))
        out["marginal"] = to_numpy(self.mixture_log_prob(xs[:, None], log_pi, mu, log_sigma)[:, 0].exp())
        out.update(x1=np.array([x1], dtype=np.float32), x2_values=to_numpy(ys), x1_values=to_numpy(xs))
        return out

