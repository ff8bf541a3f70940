"""The 2D toy datasets: densities integrate to one, quadrature is accurate,
samples follow the density, closed forms agree with quadrature."""

import functools
import math

import numpy as np
import pytest
import torch

from core.data import toy2d as T
from core.data.base import Dataset
from core.errors import DataError
from core.registry import DATASETS

GAUSSIANS = ["eight_gaussians", "twenty_five_gaussians"]
CURVES = ["two_moons", "swiss_roll", "spirals", "rings", "pinwheel"]
TOY = GAUSSIANS + CURVES + ["checkerboard"]


@functools.lru_cache(maxsize=None)
def build(name):
    return DATASETS[name].factory()  # cached: quadrature nodes are built once


def noise_std(d):
    return d.mode_std if d.modes is not None else getattr(d, "sigma", None)


def test_every_toy_dataset_is_registered_with_a_density_and_a_box():
    for name in TOY:
        d = build(name)
        assert isinstance(d, Dataset) and d.name == name and d.has_density and d.shape == (2,)
        (x0, x1), (y0, y1) = d.bounds
        assert -4.5 <= x0 < x1 <= 4.5 and -4.5 <= y0 < y1 <= 4.5


@pytest.mark.parametrize("name", GAUSSIANS + CURVES)
def test_density_integrates_to_one_over_its_box(name):
    # A sum of Gaussians of std s on a grid of step h <= s: the Riemann sum is
    # exact up to about exp(-2 pi^2 s^2 / h^2) < 1e-8, so what is left is the mass outside the box.
    d = build(name)
    (x0, x1), (y0, y1) = d.bounds
    G = math.ceil(max(x1 - x0, y1 - y0) / noise_std(d)) + 1
    grid, xs, ys = T.plane_grid(d.bounds, G, torch.float64)
    mass = d.log_prob(grid).exp().sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(float(mass) - 1) < 1e-4


def test_checkerboard_integrates_to_exactly_one():
    d = build("checkerboard")
    h = 1 / 64  # cell midpoints never fall on a square's edge
    mids = torch.arange(-2.5 + h / 2, 2.5, h, dtype=torch.float64)
    yy, xx = torch.meshgrid(mids, mids, indexing="ij")
    p = d.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    assert float(p.sum() * h * h) == pytest.approx(1.0, abs=1e-12)
    assert set(torch.unique(d.log_prob(torch.tensor([[-1.5, -1.5], [-0.5, -1.5], [0.5, 0.5], [9.0, 0.0]], dtype=torch.float64))).tolist()) == {-math.log(8), -math.inf}


def _reference_log_prob(d, x, nodes_per_arm=20_000):
    """Brute force (1): midpoint rule, uniform in s, far finer than sigma."""
    lo, hi = d.s_range
    s = lo + (hi - lo) * (torch.arange(nodes_per_arm, dtype=torch.float64) + 0.5) / nodes_per_arm
    pi = torch.tensor(d.arm_weights, dtype=torch.float64)
    log_w = d.log_w(s) - torch.logsumexp(d.log_w(s), 0)
    centres = torch.cat([d.curve(s, torch.full_like(s, k, dtype=torch.long)) for k in range(len(pi))])
    log_a = torch.cat([log_w + torch.log(p / pi.sum()) for p in pi])
    out = [torch.logsumexp(log_a - torch.cdist(x_i, centres).pow(2) / (2 * d.sigma**2), 1) for x_i in x.split(20)]
    return torch.cat(out) - math.log(2 * math.pi * d.sigma**2)


@pytest.mark.parametrize("name", ["two_moons", "swiss_roll", "spirals", "pinwheel"])  # rings: closed form below
def test_curve_quadrature_matches_a_much_finer_one(name):
    d = build(name)
    g = torch.Generator().manual_seed(0)
    (x0, x1), (y0, y1) = d.bounds
    box = torch.rand(50, 2, generator=g, dtype=torch.float64) * torch.tensor([x1 - x0, y1 - y0]) + torch.tensor([x0, y0])
    x = torch.cat([d.sample(100, g).double(), box])
    ref = _reference_log_prob(d, x)
    plausible = ref > ref.max() - 20  # points a model could plausibly put mass on
    assert plausible.sum() > 100
    err = (d.log_prob_quadrature(x) - ref).abs()
    assert err[plausible].max() < 2e-4


@pytest.mark.parametrize("name", TOY)
def test_samples_follow_the_density(name):
    # Histogram of 100k samples vs the density integrated over each bin
    # (Gauss-Legendre, 6 x 6 nodes per bin): Pearson chi^2 per degree of freedom ~ 1.
    d = build(name)
    n, bins = 100_000, (10 if name == "checkerboard" else 16)  # checkerboard: bins aligned with its squares
    x = d.sample(n, torch.Generator().manual_seed(1)).double()
    (x0, x1), (y0, y1) = d.bounds
    t, w = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(6))
    ex, ey = torch.linspace(x0, x1, bins + 1, dtype=torch.float64), torch.linspace(y0, y1, bins + 1, dtype=torch.float64)
    hx, hy = (ex[1] - ex[0]) / 2, (ey[1] - ey[0]) / 2
    px = ((ex[:-1] + hx)[:, None] + hx * t).reshape(-1)  # (bins * 6,)
    py = ((ey[:-1] + hy)[:, None] + hy * t).reshape(-1)
    yy, xx = torch.meshgrid(py, px, indexing="ij")
    p = d.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp().reshape(bins, 6, bins, 6)
    expected = n * torch.einsum("iajb,a,b->ij", p, w * hy, w * hx)  # (bins_y, bins_x)
    ix = torch.bucketize(x[:, 0].contiguous(), ex[1:-1])
    iy = torch.bucketize(x[:, 1].contiguous(), ey[1:-1])
    observed = torch.bincount(iy * bins + ix, minlength=bins * bins).reshape(bins, bins).double()
    assert float(expected.sum()) == pytest.approx(n, rel=1e-4)  # the box holds the mass
    big = expected > 5
    chi2 = ((observed[big] - expected[big]) ** 2 / expected[big]).sum()
    rest_o, rest_e = observed[~big].sum(), expected[~big].sum()
    chi2 += (rest_o - rest_e) ** 2 / max(float(rest_e), 1.0)
    dof = int(big.sum())
    assert float(chi2) / dof < 1.6, f"chi2/dof = {float(chi2) / dof:.2f} over {dof} bins"


def test_ring_bessel_closed_form_matches_quadrature_of_the_same_rings():
    for d in (build("rings"), T.Rings(radii=(0.5, 2.0), sigma=0.4)):
        g = torch.Generator().manual_seed(2)
        grid = T.plane_grid(d.bounds, 50, torch.float64)[0]
        x = torch.cat([grid, d.sample(500, g).double(), torch.zeros(1, 2, dtype=torch.float64)])
        assert torch.allclose(d.log_prob(x), d.log_prob_quadrature(x), rtol=0, atol=5e-5)


def test_gaussian_mixture_density_matches_torch_distributions():
    for name in GAUSSIANS:
        d = build(name)
        K = d.modes.shape[0]
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(torch.ones(K, dtype=torch.float64)),
            torch.distributions.Independent(torch.distributions.Normal(d.modes, d.mode_std), 1))
        x = torch.randn(300, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2.5
        assert torch.allclose(d.log_prob(x), mix.log_prob(x), rtol=0, atol=1e-10)


def test_mixture_modes_are_the_documented_ones():
    d8 = build("eight_gaussians")
    assert d8.modes.shape == (8, 2) and d8.mode_std == pytest.approx(0.5 / math.sqrt(2))
    assert torch.allclose(d8.modes.norm(dim=1), torch.full((8,), 2 * math.sqrt(2), dtype=torch.float64))
    angles = torch.atan2(d8.modes[:, 1], d8.modes[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles, torch.arange(8, dtype=torch.float64) * math.pi / 4, atol=1e-12)
    d25 = build("twenty_five_gaussians")
    assert d25.mode_std == 0.1
    assert {tuple(m) for m in d25.modes.tolist()} == {(a, b) for a in (-3, -1.5, 0, 1.5, 3) for b in (-3, -1.5, 0, 1.5, 3)}


@pytest.mark.parametrize("name", TOY)
def test_same_seed_same_samples(name):
    d = build(name)
    a, la = d.sample_with_labels(300, torch.Generator().manual_seed(7))
    b, lb = d.sample_with_labels(300, torch.Generator().manual_seed(7))
    c = d.sample(300, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)
    assert a.shape == (300, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(d.training_set(300, 7), a)


def test_labels_name_the_component_each_sample_came_from():
    g = torch.Generator().manual_seed(4)
    for name in GAUSSIANS:
        d = build(name)
        x, k = d.sample_with_labels(2000, g)
        assert ((x.double() - d.modes[k]).norm(dim=1) < 6 * d.mode_std).all()
        assert set(k.tolist()) == set(range(d.modes.shape[0]))
    d = build("checkerboard")
    x, k = d.sample_with_labels(2000, g)
    assert ((x.double() >= d.corners[k]) & (x.double() <= d.corners[k] + 1)).all()
    for name in ["two_moons", "spirals", "rings", "pinwheel"]:
        d = build(name)
        x, k = d.sample_with_labels(1000, g)
        s = torch.linspace(*d.s_range, 5_000, dtype=torch.float64)
        for arm in range(len(d.arm_weights)):
            curve = d.curve(s, torch.full_like(s, arm, dtype=torch.long))
            dist = torch.cdist(x[k == arm].double(), curve).min(dim=1).values
            assert (dist < 6 * d.sigma).all(), f"{name} arm {arm}"
        assert set(k.tolist()) == set(range(len(d.arm_weights)))


def test_ring_weights_are_proportional_to_radius():
    d = build("rings")
    _, k = d.sample_with_labels(100_000, torch.Generator().manual_seed(5))
    freq = torch.bincount(k, minlength=4).double() / k.numel()
    r = torch.tensor(d.radii, dtype=torch.float64)
    assert torch.allclose(freq, r / r.sum(), atol=0.006)


def test_plane_grid_is_row_major_with_y_along_rows():
    grid, xs, ys = T.plane_grid(((-1.0, 3.0), (-2.0, 2.0)), 5)
    assert grid.shape == (25, 2) and xs.tolist() == [-1, 0, 1, 2, 3] and ys.tolist() == [-2, -1, 0, 1, 2]
    img = grid.reshape(5, 5, 2)
    assert torch.equal(img[3, 1], torch.tensor([xs[1], ys[3]]))
    assert torch.equal(img[:, :, 0], xs.expand(5, 5)) and torch.equal(img[:, :, 1], ys[:, None].expand(5, 5))


def test_bad_parameters_are_refused_with_a_reason():
    with pytest.raises(DataError, match="sigma"):
        T.TwoMoons(sigma=0.001)
    with pytest.raises(DataError, match="radii"):
        T.Rings(radii=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        build("two_moons").log_prob(torch.zeros(3, 3))


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians"])
def test_a_seeded_draw_is_the_same_at_every_call_and_each_caller_gets_its_own_copy(name):
    """training_set(n, seed) is kept after its first draw (Reset on the same data draws nothing):
    it equals a fresh draw with that seed, a caller changing its copy changes no one else's, and
    a draw too large to keep is drawn again each time."""
    d = DATASETS[name].factory()
    fresh = d.sample(300, torch.Generator().manual_seed(7))
    first = d.training_set(300, 7)
    assert torch.equal(first, fresh)
    first.mul_(0.0)  # the trainer's copy is its own
    again = d.training_set(300, 7)
    assert torch.equal(again, fresh) and again.data_ptr() != first.data_ptr()
    x, y = d.labelled_training_set(300, 7)
    x2, y2 = d.sample_with_labels(300, torch.Generator().manual_seed(7))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(d.training_set(300, 8), fresh)  # another seed, other points
    from core.data import base

    for seed in range(10):  # a handful kept, the oldest let go
        d.training_set(50, seed)
    assert len(d._kept_draws) == base.KEPT_DRAWS
    big = base.KEPT_NUMBERS // 2 + 1
    a, b = d.training_set(big, 1), d.training_set(big, 1)
    assert torch.equal(a, b) and ("x", big, 1) not in d._kept_draws
