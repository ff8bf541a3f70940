"""Masked autoregressive flows (Papamakarios et al. 2017 "MAF") and their inverse
(Kingma et al. 2016 "IAF"), conditioned by MADE (Germain et al. 2015).

MADE: an MLP whose weights are multiplied by binary masks built from degrees.
Input i gets degree m(i) (its position in the autoregressive order, 1..D), hidden
unit k a degree m(k) in 1..D-1; a weight from j to k survives iff m(k) >= m(j),
and a weight to an output of input i iff m(i) > m(k) (eqs. 12-13). Output i then
depends only on inputs of lower degree: theta_i = theta_i(x_<i).

MAF, data -> base in one pass, every dimension at once (eq. 3, with tau affine):

    z_i = tau(x_i; theta_i(x_<i)),     log|det dz/dx| = sum_i log|d tau / d x_i|.

base -> data is sequential: x_i needs x_<i first, so D passes of the network.
IAF is the same layer run the other way round, `Inverse(MaskedAutoregressive)`:
sampling takes one pass and the density takes D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import ACTIVATIONS
from .base import Transform
from .elementwise import ElementwiseMap


class MaskedLinear(nn.Linear):
    """A linear layer with a fixed binary mask on its weight (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """x (n, D) -> theta (n, D, P) with theta[:, i] a function of the x_j, m(j) < m(i) only.

    order: a permutation of 0..D-1; order[i] is the 0-based autoregressive position of input i.
    """

    def __init__(self, dim: int, params_per_dim: int, hidden: int = 64, depth: int = 2,
                 order: torch.Tensor | None = None, activation: str = "relu"):
        super().__init__()
        self.dim, self.params_per_dim = dim, params_per_dim
        order = torch.arange(dim) if order is None else torch.as_tensor(order)
        self.register_buffer("degrees", order + 1)  # m(i) in 1..D
        # Hidden degrees cycle through 1..D-1 (deterministic, so every degree is present).
        hidden_degrees = torch.arange(hidden) % max(dim - 1, 1) + 1
        layers, d_in = [], self.degrees
        for _ in range(depth):
            mask = hidden_degrees[:, None] >= d_in[None, :]  # (hidden, in)
            layers += [MaskedLinear(len(d_in), hidden, mask), ACTIVATIONS[activation]()]
            d_in = hidden_degrees
        d_out = self.degrees.repeat_interleave(params_per_dim)  # output (i, p) has degree m(i)
        self.out = MaskedLinear(len(d_in), dim * params_per_dim, d_out[:, None] > d_in[None, :])
        nn.init.zeros_(self.out.weight)  # theta = 0: the layer starts as the identity
        nn.init.zeros_(self.out.bias)
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.out(self.body(x)).view(x.shape[0], self.dim, self.params_per_dim)


class MaskedAutoregressive(Transform):
    """z_i = tau(x_i; theta_i(x_<i)) in one pass; its inverse in D passes."""

    def __init__(self, dim: int, tau: ElementwiseMap, hidden: int = 64, depth: int = 2,
                 order: torch.Tensor | None = None, activation: str = "relu"):
        super().__init__()
        self.tau = tau
        self.made = MADE(dim, tau.params_per_dim, hidden, depth, order, activation)

    def forward(self, x):
        z, log_det = self.tau.forward(x, self.made(x))
        return z, log_det.sum(1)

    def inverse(self, z):
        # After pass k the first k dimensions in the order are exact (they only
        # needed x_<k, exact from earlier passes); D passes finish the vector.
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):
            x, log_det = self.tau.inverse(z, self.made(x))
        return x, log_det.sum(1)
