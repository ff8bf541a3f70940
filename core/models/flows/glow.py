"""Glow's two extra layers (Kingma & Dhariwal 2018), on flat vectors.

One Glow step is ActNorm -> invertible linear mixing -> affine coupling.

ActNorm (section 3.1): z = (x - b) * exp(-log_sigma), a per-dimension affine
map whose b and log_sigma are set from the first batch so that its outputs have
zero mean and unit variance; log|det| = -sum_i log_sigma_i.

Invertible 1x1 convolution (section 3.2), which for a flat vector is a learned
D x D matrix, z = W x, LU-parameterised so its determinant is cheap (eq. 10):

    W = P L (U + diag(sign * exp(log_s))),    log|det W| = sum_i log_s_i,

with P a fixed permutation, L unit lower-triangular and U strictly upper-triangular.
W starts as a random rotation.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Transform


class ActNorm(Transform):
    """Per-dimension affine normalisation with data-dependent initialisation."""

    def __init__(self, dim: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        # Saved with the weights, so a loaded model is not re-initialised.
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        if self.initialized:
            return
        self.loc.copy_(x.mean(0))
        # floor: a constant dimension (an always-black pixel) would otherwise get an infinite scale
        self.log_scale.copy_(torch.log(x.std(0, unbiased=False).clamp_min(1e-3)))
        self.initialized.fill_(True)

    def forward(self, x):
        return (x - self.loc) * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z):
        return z * torch.exp(self.log_scale) + self.loc, self.log_scale.sum().expand(z.shape[0])


class InvertibleLinear(Transform):
    """z = W x with W = P L (U + diag(sign * exp(log_s)))."""

    def __init__(self, dim: int):
        super().__init__()
        rotation = torch.linalg.qr(torch.randn(dim, dim))[0]
        P, L, U = torch.linalg.lu(rotation)
        diag = torch.diagonal(U)
        self.register_buffer("P", P)
        self.register_buffer("sign", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.lower = nn.Parameter(L * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(U, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def _factors(self):
        eye = torch.eye(self.P.shape[0], dtype=self.P.dtype, device=self.P.device)
        L = self.lower * self.lower_mask + eye
        U = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return L, U

    def weight(self) -> torch.Tensor:
        L, U = self._factors()
        return self.P @ L @ U

    def forward(self, x):
        return x @ self.weight().T, self.log_s.sum().expand(x.shape[0])

    def inverse(self, z):
        # x = U^{-1} L^{-1} P^T z, by two triangular solves on column vectors
        L, U = self._factors()
        y = torch.linalg.solve_triangular(L, self.P.T @ z.T, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(U, y, upper=True)
        return x.T, (-self.log_s.sum()).expand(z.shape[0])
