"""The monotone one-dimensional maps that coupling and autoregressive layers apply.

A conditioner network predicts P numbers theta per transformed dimension; the
map then moves each coordinate on its own, so the Jacobian is triangular and its
log-determinant is the sum of the elementwise log-derivatives:

    additive (NICE, Dinh et al. 2014, eq. 4):        z = x + t                 log|dz/dx| = 0
    affine (RealNVP, Dinh et al. 2016, eq. 6; MAF):  z = x * exp(s) + t        log|dz/dx| = s
    rational-quadratic spline (NSF): see spline.py

All theta = 0 gives the identity, so zero-initialised conditioners start every
layer at the identity.
"""

from __future__ import annotations

import torch


class ElementwiseMap:
    """z_i = tau(x_i; theta_i). x: (n, d), theta: (n, d, params_per_dim)."""

    params_per_dim: int = 0

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|dz/dx|), both (n, d)."""
        raise NotImplementedError

    def inverse(self, z: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, log|dx/dz|), both (n, d)."""
        raise NotImplementedError


class Additive(ElementwiseMap):
    """Volume-preserving shift: z = x + t."""

    params_per_dim = 1

    def forward(self, x, theta):
        return x + theta[..., 0], torch.zeros_like(x)

    def inverse(self, z, theta):
        return z - theta[..., 0], torch.zeros_like(z)


class Affine(ElementwiseMap):
    """z = x * exp(s) + t with a soft-clamped log-scale s = c * tanh(s_raw / c).

    The clamp keeps exp(s) within [e^-c, e^c] so one bad conditioner output
    cannot blow up a layer (the role of RealNVP's tanh on the scale).
    """

    params_per_dim = 2

    def __init__(self, max_log_scale: float = 3.0):
        self.max_log_scale = max_log_scale

    def _shift_log_scale(self, theta):
        c = self.max_log_scale
        return theta[..., 0], c * torch.tanh(theta[..., 1] / c)

    def forward(self, x, theta):
        t, s = self._shift_log_scale(theta)
        return x * torch.exp(s) + t, s

    def inverse(self, z, theta):
        t, s = self._shift_log_scale(theta)
        return (z - t) * torch.exp(-s), -s
