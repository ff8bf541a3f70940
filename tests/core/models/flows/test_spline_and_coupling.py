"""The spline written for few operations, against the formulas it replaced, and the coupling
layer's index paths (slices, blocks in either order, interleaved dimensions, the kept part splined).

`reference_spline` is the earlier implementation, kept here as the plain reading
of Durkan et al. (2019), eqs. 4-8: a knot table per quantity, one gather each,
powers, both ends pinned at +-B by concatenation.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import core.models.flows as flows
from core.models.flows.coupling import _as_slice
from core.models.flows.spline import MIN_BIN_SIZE, MIN_DERIVATIVE, spline_tables

DTYPE = torch.float64
_OFFSET = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def reference_spline(x, raw_widths, raw_heights, raw_derivatives, bound, inverse=False):
    def knots_of(raw):
        K = raw.shape[-1]
        sizes = MIN_BIN_SIZE + (1 - MIN_BIN_SIZE * K) * torch.softmax(raw, dim=-1)
        knots = 2 * bound * F.pad(torch.cumsum(sizes, dim=-1), (1, 0)) - bound
        edge = torch.full_like(knots[..., :1], bound)
        knots = torch.cat([-edge, knots[..., 1:-1], edge], -1)
        return knots[..., 1:] - knots[..., :-1], knots

    def at(t, k):
        return t.gather(-1, k[..., None])[..., 0]

    widths, x_knots = knots_of(raw_widths)
    heights, y_knots = knots_of(raw_heights)
    ones = torch.ones_like(raw_derivatives[..., :1])
    delta = torch.cat([ones, MIN_DERIVATIVE + F.softplus(raw_derivatives + _OFFSET), ones], -1)
    inside = (x >= -bound) & (x <= bound)
    u = x.clamp(-bound, bound)
    k = (u[..., None] >= (y_knots if inverse else x_knots)[..., 1:-1]).sum(-1)
    x_k, w_k, y_k, h_k = at(x_knots, k), at(widths, k), at(y_knots, k), at(heights, k)
    d_k, d_k1 = at(delta, k), at(delta[..., 1:], k)
    s_k = h_k / w_k
    d = d_k1 + d_k - 2 * s_k
    if inverse:
        dy = u - y_k
        a, b, c = h_k * (s_k - d_k) + dy * d, h_k * d_k - dy * d, -s_k * dy
        xi = ((2 * c) / (-b - torch.sqrt((b**2 - 4 * a * c).clamp_min(0)))).clamp(0, 1)
    else:
        xi = (u - x_k) / w_k
    xi_1m = xi * (1 - xi)
    denominator = s_k + d * xi_1m
    derivative = s_k**2 * (d_k1 * xi**2 + 2 * s_k * xi_1m + d_k * (1 - xi) ** 2) / denominator**2
    out = x_k + xi * w_k if inverse else y_k + h_k * (s_k * xi**2 + d_k * xi_1m) / denominator
    log_det = torch.log(derivative) * (-1 if inverse else 1)
    return torch.where(inside, out, x), torch.where(inside, log_det, torch.zeros_like(log_det))


def random_spline(n: int, K: int, seed: int = 0, scale: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    raw = [scale * torch.randn(n, k, generator=g, dtype=DTYPE) for k in (K, K, K - 1)]
    return raw


@pytest.mark.parametrize("K", [2, 3, 8, 16])
@pytest.mark.parametrize("inverse", [False, True])
def test_spline_equals_the_reference_formulas(K, inverse):
    B, n = 3.0, 4000
    raw = random_spline(n, K, seed=K)
    x = torch.linspace(-4.5, 4.5, n, dtype=DTYPE)
    y, log_det = flows.rational_quadratic_spline(x, *raw, bound=B, inverse=inverse)
    y_ref, log_det_ref = reference_spline(x, *raw, bound=B, inverse=inverse)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det, log_det_ref, rtol=0, atol=1e-11)


def test_spline_gradients_equal_the_reference_ones():
    B, K, n = 2.5, 8, 300
    raw = [r.requires_grad_() for r in random_spline(n, K, seed=5)]
    x = torch.linspace(-3, 3, n, dtype=DTYPE, requires_grad=True)
    grads = []
    for fn in (flows.rational_quadratic_spline, reference_spline):
        y, log_det = fn(x, *raw, bound=B)
        grads.append(torch.autograd.grad((y * y).sum() + log_det.sum(), [x, *raw]))
    for g, g_ref in zip(*grads):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-10)


def test_spline_log_det_is_the_autograd_derivative_and_the_inverse_is_exact():
    B, K, n = 3.0, 8, 2000
    raw = random_spline(n, K, seed=1)
    x = torch.linspace(-B, B, n + 2, dtype=DTYPE)[1:-1].requires_grad_()
    y, log_det = flows.rational_quadratic_spline(x, *raw, bound=B)
    (dy_dx,) = torch.autograd.grad(y.sum(), x)  # elementwise, so the sum's gradient is the derivative
    torch.testing.assert_close(log_det, dy_dx.log(), rtol=0, atol=1e-10)
    assert (dy_dx > 0).all()
    x_back, log_det_back = flows.rational_quadratic_spline(y.detach(), *raw, bound=B, inverse=True)
    torch.testing.assert_close(x_back, x.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det_back, -log_det.detach(), rtol=0, atol=1e-10)


def test_spline_is_monotone_with_identity_tails_and_nan_passes_through():
    B, K, n = 2.0, 5, 3001
    raw = [r[:1].expand(n, -1) for r in random_spline(1, K, seed=2)]
    x = torch.linspace(-4, 4, n, dtype=DTYPE)
    for inverse in (False, True):
        y, log_det = flows.rational_quadratic_spline(x, *raw, bound=B, inverse=inverse)
        assert (y[1:] > y[:-1]).all()
        outside = x.abs() > B
        assert torch.equal(y[outside], x[outside]) and (log_det[outside] == 0).all()
    x_nan = torch.tensor([float("nan"), 0.5], dtype=DTYPE)
    y, log_det = flows.rational_quadratic_spline(x_nan, *[r[:2] for r in raw], bound=B)
    assert y[0].isnan() and torch.isfinite(y[1]) and torch.isfinite(log_det).all()


def test_spline_tables_run_from_minus_b_to_b_with_unit_end_slopes():
    B, K = 4.0, 7
    raw_w, raw_h, raw_d = random_spline(10, K, seed=3, scale=4.0)
    tables = spline_tables(torch.stack([raw_w, raw_h], -2), raw_d, B)  # (10, 3, K+1)
    assert tables.shape == (10, 3, K + 1)
    assert (tables[:, :2, 0] == -B).all()
    torch.testing.assert_close(tables[:, :2, -1], torch.full((10, 2), B, dtype=DTYPE), rtol=0, atol=1e-12)
    assert (tables[:, 2, 0] == 1).all() and (tables[:, 2, -1] == 1).all()
    sizes = tables[:, :2].diff(dim=-1)
    assert (sizes >= 2 * B * MIN_BIN_SIZE * (1 - 1e-9)).all() and (tables[:, 2] >= MIN_DERIVATIVE).all()


def test_zero_parameters_give_the_identity():
    B, K = 3.0, 8
    x = torch.linspace(-5, 5, 101, dtype=DTYPE)
    zeros = [torch.zeros(101, k, dtype=DTYPE) for k in (K, K, K - 1)]
    for inverse in (False, True):
        y, log_det = flows.rational_quadratic_spline(x, *zeros, bound=B, inverse=inverse)
        torch.testing.assert_close(y, x, rtol=0, atol=1e-12)
        torch.testing.assert_close(log_det, torch.zeros_like(x), rtol=0, atol=1e-12)


def test_the_elementwise_map_splits_theta_as_widths_heights_derivatives():
    K, B = 6, 2.0
    tau = flows.RationalQuadratic(K, B)
    theta = torch.randn(50, 3, 3 * K - 1, dtype=DTYPE)
    x = 2 * torch.randn(50, 3, dtype=DTYPE)
    y, log_det = tau.forward(x, theta)
    y_ref, log_det_ref = reference_spline(x, theta[..., :K], theta[..., K:2 * K], theta[..., 2 * K:], B)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det, log_det_ref, rtol=0, atol=1e-11)
    torch.testing.assert_close(tau.inverse(y, theta)[0], x, rtol=0, atol=1e-10)


# ---- the coupling layer --------------------------------------------------

def test_evenly_spaced_indices_become_slices():
    assert _as_slice([3]) == slice(3, 4, 1)
    assert _as_slice([1, 3, 5]) == slice(1, 6, 2)
    assert _as_slice([0, 1, 3]) is None
    x = torch.arange(12.0).view(2, 6)
    assert torch.equal(x[:, _as_slice([1, 3, 5])], x.index_select(1, torch.tensor([1, 3, 5])))


MASKS = {
    "2d, b first": [True, False],
    "2d, a first": [False, True],
    "stripes": [True, False, True, False, True],
    "blocks": [False, False, True, True, True],
    "uneven": [True, False, False, True, True, False],
}


def perturbed_coupling(mask, transform_kept: bool, tau=None, seed: int = 0) -> flows.Coupling:
    torch.manual_seed(seed)
    layer = flows.Coupling(torch.tensor(mask), tau or flows.RationalQuadratic(5, 3.0), hidden=16,
                           transform_kept=transform_kept).to(DTYPE)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return layer


def jacobian(fn, point: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], point)


@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
@pytest.mark.parametrize("transform_kept", [False, True])
def test_coupling_inverts_and_its_log_det_is_the_autograd_one(mask, transform_kept):
    layer = perturbed_coupling(mask, transform_kept)
    x = 1.5 * torch.randn(6, len(mask), dtype=DTYPE)
    z, log_det = layer(x)
    back, log_det_back = layer.inverse(z)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det + log_det_back, torch.zeros(6, dtype=DTYPE), rtol=0, atol=1e-10)
    kept, moved = ~torch.tensor(mask), torch.tensor(mask)
    for point, ld in zip(x, log_det):
        J = jacobian(layer, point)
        torch.testing.assert_close(ld, torch.linalg.slogdet(J)[1], rtol=0, atol=1e-10)
        # block-triangular: the kept part never depends on the transformed part
        assert (J[kept][:, moved] == 0).all()
        if transform_kept:  # and moves on its own, each coordinate by itself
            J_aa = J[kept][:, kept]
            assert torch.equal(J_aa, torch.diag(torch.diagonal(J_aa))) and (torch.diagonal(J_aa) != 1).any()
        else:
            assert torch.equal(J[kept][:, kept], torch.eye(int(kept.sum()), dtype=DTYPE))
            assert torch.equal(z[:, kept], x[:, kept])


@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
def test_a_coupling_splining_its_kept_part_starts_at_the_identity(mask):
    torch.manual_seed(0)
    layer = flows.Coupling(torch.tensor(mask), flows.RationalQuadratic(4, 3.0), hidden=8,
                           transform_kept=True).to(DTYPE)
    x = 2 * torch.randn(9, len(mask), dtype=DTYPE)
    z, log_det = layer(x)
    torch.testing.assert_close(z, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det, torch.zeros(9, dtype=DTYPE), rtol=0, atol=1e-12)


def test_a_coupling_splining_its_kept_part_trains_phi():
    layer = perturbed_coupling(MASKS["stripes"], transform_kept=True)
    (-layer(torch.randn(32, 5, dtype=DTYPE))[1].sum()).backward()
    assert layer.phi.shape == (2, layer.tau.params_per_dim) and layer.phi.grad.abs().max() > 0


def test_affine_coupling_keeps_its_part_bit_for_bit():
    layer = perturbed_coupling(MASKS["uneven"], transform_kept=False, tau=flows.Affine())
    x = torch.randn(7, 6, dtype=DTYPE)
    z, _ = layer(x)
    kept = ~torch.tensor(MASKS["uneven"])
    assert torch.equal(z[:, kept], x[:, kept]) and not torch.equal(z[:, ~kept], x[:, ~kept])


def test_a_coupling_refuses_masks_that_keep_or_move_everything():
    for mask in ([True, True], [False, False], [[True, False]]):
        with pytest.raises(ValueError, match="kept"):
            flows.Coupling(torch.tensor(mask), flows.Affine())
