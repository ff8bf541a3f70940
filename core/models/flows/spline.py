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

On a CPU the tensors of a 2D flow are tiny, so a step costs what its operations
cost to launch (and to differentiate), not their arithmetic. The map is written
to launch few: widths and heights share one softmax and one cumulative sum, one
gather fetches both ends of the bin from the stacked knot tables, only the bin's
numbers are ever computed with, and the clamp that keeps the tails finite also
tells which points are inside.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .elementwise import ElementwiseMap

MIN_BIN_SIZE = 1e-3  # the floor of every width and height, as a fraction of 2B
MIN_DERIVATIVE = 1e-3
# softplus(0 + _DERIVATIVE_OFFSET) + MIN_DERIVATIVE = 1: zero parameters give unit slopes.
_DERIVATIVE_OFFSET = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def spline_tables(raw_sizes: torch.Tensor, raw_derivatives: torch.Tensor, bound: float) -> torch.Tensor:
    """The knots and their derivatives, stacked: (..., 3, K+1) with rows x^k, y^k, delta^k.

    raw_sizes: (..., 2, K), the unconstrained widths (row 0) and heights (row 1);
    raw_derivatives: (..., K-1). Bin sizes are 2B [m + (1 - K m) softmax(raw)] with
    floor m, and the knots their running sum from -B, which ends at B up to rounding.
    """
    K = raw_sizes.shape[-1]
    sizes = torch.softmax(raw_sizes, dim=-1) * (2 * bound * (1 - MIN_BIN_SIZE * K)) + 2 * bound * MIN_BIN_SIZE
    knots = F.pad(sizes, (1, 0), value=-bound).cumsum(-1)  # (..., 2, K+1), x^0 = y^0 = -B
    delta = F.pad(F.softplus(raw_derivatives + _DERIVATIVE_OFFSET) + MIN_DERIVATIVE, (1, 1), value=1.0)
    return torch.cat([knots, delta.unsqueeze(-2)], -2)


@functools.cache
def _bin_ends(row: int, device: torch.device) -> torch.Tensor:
    """Offsets of (x^k, x^{k+1}, y^k, y^{k+1}, delta^k, delta^{k+1}) from k in tables of rows of length `row`."""
    return torch.tensor([0, 1, row, row + 1, 2 * row, 2 * row + 1], device=device)


def spline_from_tables(x: torch.Tensor, tables: torch.Tensor, bound: float, inverse: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """g(x) (or g^{-1}(x) when inverse) and its log|derivative| with the knots given: x (...,), tables (..., 3, K+1)."""
    u = x.clamp(-bound, bound)  # the spline branch sees finite inputs even where the tail is taken
    inside = u == x  # false in the tails, and for nan, which passes through the identity
    knots = tables[..., 1 if inverse else 0, 1:-1]  # the inner knots of the side x lives on
    k = (u.unsqueeze(-1) >= knots).sum(-1)  # bin index in 0..K-1
    # both ends of the bin in all three rows, by one gather from the flattened tables
    at = k.unsqueeze(-1) + _bin_ends(tables.shape[-1], k.device)  # (..., 6)
    x_k, x_k1, y_k, y_k1, d_k, d_k1 = tables.flatten(-2).gather(-1, at).unbind(-1)
    w_k, h_k = x_k1 - x_k, y_k1 - y_k
    s_k = h_k / w_k
    # Products rather than powers and sums rather than doubling: each is one cheap
    # step to differentiate, where a power or a Python-number factor costs several.
    d = d_k1 + d_k - s_k - s_k

    if inverse:
        dy = u - y_k
        a = h_k * (s_k - d_k) + dy * d
        b = h_k * d_k - dy * d
        c = s_k * dy  # minus the c of appendix A, so xi = 2c / (b + sqrt(b^2 + 4ac))
        xi = ((c + c) / (b + torch.sqrt((b * b + 4 * a * c).clamp_min(0)))).clamp(0, 1)
    else:
        xi = (u - x_k) / w_k
    xi2, eta = xi * xi, 1 - xi
    xi_eta = xi * eta
    denominator = s_k + d * xi_eta
    slope_over_denominator = s_k / denominator
    numerator = d_k1 * xi2 + (s_k + s_k) * xi_eta + d_k * (eta * eta)
    log_derivative = torch.log(slope_over_denominator * slope_over_denominator * numerator)  # eq. 5
    if inverse:
        out, log_det = x_k + xi * w_k, -log_derivative
    else:
        out, log_det = y_k + h_k * (s_k * xi2 + d_k * xi_eta) / denominator, log_derivative  # eq. 4
    return torch.where(inside, out, x), torch.where(inside, log_det, 0.0)


def rational_quadratic_spline(x: torch.Tensor, raw_widths: torch.Tensor, raw_heights: torch.Tensor,
                              raw_derivatives: torch.Tensor, bound: float, inverse: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """g(x) (or g^{-1}(x) when inverse) and its log|derivative|, elementwise.

    x: (...,); raw_widths, raw_heights: (..., K); raw_derivatives: (..., K-1).
    """
    tables = spline_tables(torch.stack([raw_widths, raw_heights], -2), raw_derivatives, bound)
    return spline_from_tables(x, tables, bound, inverse)


class RationalQuadratic(ElementwiseMap):
    """The spline as an elementwise map: K widths, K heights, K-1 inner derivatives per dimension."""

    def __init__(self, bins: int = 8, bound: float = 5.0):
        if bins < 2:
            raise ValueError(f"a spline needs at least 2 bins, got {bins}")
        self.bins, self.bound = bins, bound
        self.params_per_dim = 3 * bins - 1

    def _tables(self, theta):
        K = self.bins
        raw_sizes, raw_derivatives = theta.split([2 * K, K - 1], -1)  # one split: one gradient to assemble
        raw_sizes = raw_sizes.unflatten(-1, (2, K))  # widths then heights, a view: no stack
        return spline_tables(raw_sizes, raw_derivatives, self.bound)

    def forward(self, x, theta):
        return spline_from_tables(x, self._tables(theta), self.bound)

    def inverse(self, z, theta):
        return spline_from_tables(z, self._tables(theta), self.bound, inverse=True)
