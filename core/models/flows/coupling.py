"""Coupling layers (Dinh et al. 2014 "NICE", 2016 "RealNVP"; Durkan et al. 2019 "NSF").

Split x by a binary mask into a kept part x_a and a transformed part x_b:

    z_a = x_a,    z_b = tau(x_b; theta(x_a)),    log|det dz/dx| = sum_i log|d tau / d x_b,i|

The Jacobian is block-triangular, so the log-det is the elementwise one of tau,
and the inverse needs theta(x_a) = theta(z_a) only, never an inverse of the
network. One class serves every variant through its elementwise map tau:
Additive (NICE), Affine (RealNVP, Glow) or RationalQuadratic (NSF).

NICE also ends with a diagonal scaling layer (Dinh et al. 2014, section 3.3),
since additive couplings alone preserve volume: `DiagonalScale`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nets import MLP
from .base import Transform
from .elementwise import ElementwiseMap


def alternating_mask(dim: int, parity: int) -> torch.Tensor:
    """True on the dimensions a layer transforms: every other index of the flat vector.

    For 2D points the layers alternate between transforming y given x and x given y;
    for a flattened image this is a stripe pattern over the flat pixel order.
    """
    return torch.arange(dim) % 2 == parity % 2


class Coupling(Transform):
    """z_b = tau(x_b; theta(x_a)), z_a = x_a; theta is an MLP that starts at zero (identity layer)."""

    def __init__(self, mask: torch.Tensor, tau: ElementwiseMap, hidden: int = 64, depth: int = 2,
                 activation: str = "relu", conditioner: nn.Module | None = None):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.all() or not mask.any():
            raise ValueError("a coupling layer needs at least one kept and one transformed dimension")
        self.register_buffer("idx_a", torch.nonzero(~mask)[:, 0], persistent=False)  # kept
        self.register_buffer("idx_b", torch.nonzero(mask)[:, 0], persistent=False)  # transformed
        self.tau = tau
        n_theta = len(self.idx_b) * tau.params_per_dim
        # theta(x_a): (n, d_a) -> (n, d_b * P); the default MLP starts at zero, so the layer at the identity
        self.conditioner = conditioner or MLP(len(self.idx_a), n_theta, hidden, depth, activation).zero_last()

    def _theta(self, h_a: torch.Tensor) -> torch.Tensor:
        return self.conditioner(h_a).view(h_a.shape[0], len(self.idx_b), self.tau.params_per_dim)  # (n, d_b, P)

    def forward(self, x):
        theta = self._theta(x[:, self.idx_a])
        z_b, log_det = self.tau.forward(x[:, self.idx_b], theta)
        return x.index_copy(1, self.idx_b, z_b), log_det.sum(1)

    def inverse(self, z):
        theta = self._theta(z[:, self.idx_a])
        x_b, log_det = self.tau.inverse(z[:, self.idx_b], theta)
        return z.index_copy(1, self.idx_b, x_b), log_det.sum(1)


class DiagonalScale(Transform):
    """z = x * exp(s), one learned log-scale per dimension: log|det| = sum_i s_i."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z):
        return z * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(z.shape[0])
