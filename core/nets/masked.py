"""Masked layers: MADE (Germain et al. 2015, "MADE: Masked Autoencoder for Distribution Estimation").

An MLP whose weights are multiplied by binary masks built from degrees.
Input i gets degree m(i) (its position in the autoregressive order, 1..D),
hidden unit k a degree m(k) in 1..D-1; a weight from j to k survives iff
m(k) >= m(j), and a weight to an output of input i iff m(i) > m(k) (eqs.
12-13). Output i then depends only on inputs of lower degree:
theta_i = theta_i(x_<i), which tests check by backpropagating from each output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import ACTIVATIONS


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
    The output layer starts at zero, so theta = 0 until training moves it.
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
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.out(self.body(x)).view(x.shape[0], self.dim, self.params_per_dim)
