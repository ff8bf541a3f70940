"""Monotonic rational-quadratic splines (Durkan et al. 2019, "Neural Spline Flows").

On [-B, B] the map is made of K bins with knots (x^k, y^k), k = 0..K, and
positive derivatives delta^k at the knots; outside it is the identity, so the
boundary derivatives are delta^0 = delta^K = 1 (linear tails). In bin k, with
w_k = x^{k+1} - x^k, h_k = y^{k+1} - y^k, s_k = h_k / w_k and xi = (x - x^k) / w_k:

    g(x) = y^k + h_k [s_k xi^2 + delta^k xi (1 - xi)] / [s_k + (delta^{k+1} + delta^k - 2 s_k) xi (1 - xi)]   (eq. 4)

    dg/dx = s_k^2 [delta^{k+1} xi^2 + 2 s_k xi (1 - xi) + delta^k (1 - xi)^2]
            / [s_k + (delta^{k+1} + delta^k - 2 s_k) xi (1 - xi)]^2                                      (eq. 5)

The inverse solves a xi^2 + b xi + c = 0 (eqs. 6-8 and appendix A) with
d = delta^{k+1} + delta^k - 2 s_k and y - y^k:

    a = h_k (s_k - delta^k) + (y - y^k) d,   b = h_k delta^k - (y - y^k) d,   c = -s_k (y - y^k),
    xi = 2c / (-b - sqrt(b^2 - 4ac))     (the root in [0, 1], written to avoid cancellation).

Widths, heights and inner derivatives come from unconstrained numbers through a
softmax and a softplus, each with a floor, so no bin collapses and no
derivative reaches zero. All-zero parameters give the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .elementwise import ElementwiseMap

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(0 + _DERIVATIVE_OFFSET) + MIN_DERIVATIVE = 1: zero parameters give unit slopes.
_DERIVATIVE_OFFSET = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def _knots(raw: torch.Tensor, bound: float, min_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes summing to 2B and the K+1 knot positions from -B to B: (..., K), (..., K+1)."""
    K = raw.shape[-1]
    sizes = min_size + (1 - min_size * K) * torch.softmax(raw, dim=-1)
    knots = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
    knots = 2 * bound * knots - bound
    edge = torch.full_like(knots[..., :1], bound)
    knots = torch.cat([-edge, knots[..., 1:-1], edge], -1)  # exact ends despite rounding
    return knots[..., 1:] - knots[..., :-1], knots


def _gather(t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return t.gather(-1, k[..., None])[..., 0]


def rational_quadratic_spline(x: torch.Tensor, raw_widths: torch.Tensor, raw_heights: torch.Tensor,
                              raw_derivatives: torch.Tensor, bound: float, inverse: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """g(x) (or g^{-1}(x) when inverse) and its log|derivative|, elementwise.

    x: (...,); raw_widths, raw_heights: (..., K); raw_derivatives: (..., K-1).
    """
    widths, x_knots = _knots(raw_widths, bound, MIN_BIN_WIDTH)  # (..., K), (..., K+1)
    heights, y_knots = _knots(raw_heights, bound, MIN_BIN_HEIGHT)
    ones = torch.ones_like(raw_derivatives[..., :1])
    delta = torch.cat([ones, MIN_DERIVATIVE + F.softplus(raw_derivatives + _DERIVATIVE_OFFSET), ones], -1)  # (..., K+1)

    inside = (x >= -bound) & (x <= bound)
    u = x.clamp(-bound, bound)  # the spline branch sees finite inputs even where the tail is taken
    knots = y_knots if inverse else x_knots
    k = (u[..., None] >= knots[..., 1:-1]).sum(-1)  # bin index in 0..K-1 (nan falls in bin 0)
    x_k, w_k = _gather(x_knots, k), _gather(widths, k)
    y_k, h_k = _gather(y_knots, k), _gather(heights, k)
    d_k, d_k1 = _gather(delta, k), _gather(delta[..., 1:], k)
    s_k = h_k / w_k

    d = d_k1 + d_k - 2 * s_k
    if inverse:
        dy = u - y_k
        a = h_k * (s_k - d_k) + dy * d
        b = h_k * d_k - dy * d
        c = -s_k * dy
        xi = ((2 * c) / (-b - torch.sqrt((b**2 - 4 * a * c).clamp_min(0)))).clamp(0, 1)
    else:
        xi = (u - x_k) / w_k
    xi_1m = xi * (1 - xi)
    denominator = s_k + d * xi_1m
    derivative = s_k**2 * (d_k1 * xi**2 + 2 * s_k * xi_1m + d_k * (1 - xi) ** 2) / denominator**2  # eq. 5
    if inverse:
        out = x_k + xi * w_k
    else:
        out = y_k + h_k * (s_k * xi**2 + d_k * xi_1m) / denominator  # eq. 4
    log_det = torch.log(derivative) * (-1 if inverse else 1)
    return torch.where(inside, out, x), torch.where(inside, log_det, torch.zeros_like(log_det))


class RationalQuadratic(ElementwiseMap):
    """The spline as an elementwise map: K widths, K heights, K-1 inner derivatives per dimension."""

    def __init__(self, bins: int = 8, bound: float = 5.0):
        if bins < 2:
            raise ValueError(f"a spline needs at least 2 bins, got {bins}")
        self.bins, self.bound = bins, bound
        self.params_per_dim = 3 * bins - 1

    def _split(self, theta):
        K = self.bins
        return theta[..., :K], theta[..., K:2 * K], theta[..., 2 * K:]

    def forward(self, x, theta):
        return rational_quadratic_spline(x, *self._split(theta), self.bound)

    def inverse(self, z, theta):
        return rational_quadratic_spline(z, *self._split(theta), self.bound, inverse=True)
