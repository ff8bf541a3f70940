"""Denoising score matching at one noise level, sampled by Langevin dynamics.

Vincent 2011, "A Connection Between Score Matching and Denoising Autoencoders".
Blurring the data with x~ = x + sigma eps, eps ~ N(0, I), gives p_sigma = p_data * N(0, sigma^2 I),
and the score of the blur kernel, grad log q(x~ | x) = -(x~ - x) / sigma^2 = -eps / sigma, is a
regression target whose minimiser is grad log p_sigma (eq. 11 there):

    J_DSM(theta) = E_{x, eps} | s_theta(x + sigma eps) + eps / sigma |^2.

Weighted by sigma^2 and taken per dimension it is O(1) whatever sigma,

    loss = (1 / D) E | sigma s_theta(x + sigma eps) + eps |^2,

and with s_theta(x) = f_theta(x) / sigma (the network predicts -eps) it is
(1 / D) E |f_theta(x~) + eps|^2: an untrained f ~ 0 scores about 1.
Samples come from unadjusted Langevin with the learned score (core.dynamics.langevin),
which targets p_sigma, the data blurred by sigma: a small sigma is close to the data but
its score is learned only near the data, where the noisy points fall.
"""

from __future__ import annotations

import dataclasses

import torch

from ...config import param
from ...dynamics import langevin
from ...nets import MLP
from .base import ScoreModel


@dataclasses.dataclass
class DSMConfig:
    sigma: float = param(0.2, lo=1e-3, hi=10.0, help="noise level sigma of the blurred data whose score is learned")
    hidden: int = param(128, lo=8, hi=2048, help="width of the score network")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the score network")
    langevin_steps: int = param(200, lo=1, hi=2000, live=True, help="Langevin steps of a sample")
    step_size: float = param(0.01, lo=1e-6, hi=1.0, live=True,
                             help="Langevin step size eps: x += eps/2 s(x) + sqrt(eps) z; small against sigma^2 + the data's spread^2")


class DSM(ScoreModel):
    def __init__(self, data_shape: tuple, config: DSMConfig):
        super().__init__(data_shape, config)
        self.net = MLP(self.dim, self.dim, config.hidden, config.layers, activation="silu")  # f_theta ~ -eps

    def score(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """s_theta(x) = f_theta(x) / sigma at the model's own sigma; x: (n, D) -> (n, D)."""
        return self.net(x) / self.config.sigma

    def own_sigma(self, sigma: float | None) -> float:
        return float(self.config.sigma)  # one level only: the view's slider does not move it

    def score_levels(self) -> list[tuple[float, float]]:
        return [(1.0, float(self.config.sigma))]

    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The learned score of p_sigma; only at the model's own level (alpha, sigma) = (1, config.sigma)."""
        if abs(float(alpha) - 1.0) > 1e-9 or abs(float(sigma) - self.config.sigma) > 1e-9 * self.config.sigma:
            raise ValueError(f"dsm learns the score at one level, (1, {self.config.sigma}); got ({alpha}, {sigma})")
        return super().score_at(x, 1.0, self.config.sigma)

    def loss(self, x: torch.Tensor) -> dict:
        x = self.flat(x)                                 # (n, D)
        eps = torch.randn_like(x)
        x_tilde = x + self.config.sigma * eps            # x~ ~ q(x~ | x) = N(x, sigma^2 I)
        mse = ((self.net(x_tilde) + eps) ** 2).mean()    # (1/D) E|sigma s_theta(x~) + eps|^2
        return {"loss": mse, "dsm": mse.detach()}

    def chain(self, x_0, generator=None, trajectory=False):
        c = self.config
        out = langevin(self.score, x_0, c.step_size, c.langevin_steps, generator, return_intermediates=trajectory)
        levels = torch.full((c.langevin_steps + 1,), float(c.sigma), dtype=torch.float64)
        return out, levels
