"""q = w p + (1 - w) u: a density, within -log w of the truth pointwise and on average, mostly noise to sample."""

import math

import numpy as np
import pytest
import torch

from core import registry
from core.concepts import likelihood_quality as L
from core.errors import ConfigError, DataError


@pytest.mark.parametrize("dataset", ["eight_gaussians", "two_moons"])
@pytest.mark.parametrize("w", [0.01, 0.3, 1.0])
def test_the_bound_holds_at_every_point_and_on_average(dataset, w):
    r = L.likelihood_gap(dataset, w, n=1000, m=500)
    assert r.log_p.shape == r.log_q.shape == (1000,) and np.isfinite(r.log_q).all()
    assert np.all(r.log_q >= r.log_p + math.log(w) - 1e-12)  # log q >= log p - log(1/w) pointwise
    assert 0.0 <= r.gap <= r.bound + 1e-12 and r.bound == pytest.approx(-math.log(w))
    assert r.gap == pytest.approx(np.mean(r.log_p - r.log_q))
    if w == 1.0:
        assert r.gap == 0.0
    # the curve over w obeys the same bound at every weight, and the knob's weight sits on it
    assert np.all(r.curve_gap <= -np.log(r.curve_w) + 1e-12) and np.all(r.curve_gap >= 0)
    assert np.interp(math.log(w), np.log(r.curve_w), r.curve_gap) == pytest.approx(r.gap, abs=0.05 + 0.05 * r.gap)


def test_the_gap_is_the_kl_of_the_mixture_from_the_truth_by_quadrature():
    """For eight Gaussians, KL(p || q) by a fine grid agrees with the Monte Carlo gap, and q integrates to 1."""
    ds = registry.load_dataset("eight_gaussians")
    (x0, x1), (y0, y1) = ds.bounds
    h = 0.025  # midpoints of square cells that tile the box exactly and a margin of 1 around it
    xs, ys = np.arange(x0 - 1, x1 + 1, h) + h / 2, np.arange(y0 - 1, y1 + 1, h) + h / 2
    cell = h * h
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    log_p = ds.log_prob(torch.from_numpy(grid)).numpy()
    log_q = L.log_mixture(log_p, L.log_uniform(grid, ds.bounds), 0.05)
    assert np.exp(log_q).sum() * cell == pytest.approx(1.0, abs=2e-3)
    assert np.exp(L.log_uniform(grid, ds.bounds)).sum() * cell == pytest.approx(1.0, abs=1e-9)
    kl = (np.exp(log_p) * (log_p - log_q)).sum() * cell
    r = L.likelihood_gap("eight_gaussians", 0.05, n=4000)
    se = np.std(r.log_p - r.log_q) / math.sqrt(4000)
    assert abs(r.gap - kl) < 5 * se and kl < -math.log(0.05)


def test_uniform_noise_is_a_density_on_the_box_and_zero_outside():
    box = ((-1.0, 3.0), (0.0, 2.0))
    x = np.array([[0.0, 1.0], [3.0, 2.0], [3.1, 1.0], [0.0, -0.01]])
    assert np.allclose(np.exp(L.log_uniform(x, box)), [1 / 8, 1 / 8, 0, 0])


def test_samples_are_a_fraction_w_of_data_and_the_rest_uniform_noise():
    w, m = 0.2, 4000
    r = L.likelihood_gap("eight_gaussians", w, n=2000, m=m)
    assert r.samples.shape == (m, 2) and r.from_p.shape == (m,)
    assert abs(r.from_p.mean() - w) < 5 * math.sqrt(w * (1 - w) / m)
    noise = r.samples[~r.from_p]
    (x0, x1), (y0, y1) = r.bounds
    assert noise[:, 0].min() >= x0 and noise[:, 0].max() <= x1 and noise[:, 1].min() >= y0 and noise[:, 1].max() <= y1
    # uniform on a square box: each coordinate has mean at the centre and variance width^2 / 12
    assert np.allclose(noise.mean(0), [(x0 + x1) / 2, (y0 + y1) / 2], atol=5 * (x1 - x0) / math.sqrt(12 * len(noise)))
    assert np.allclose(noise.var(0), [(x1 - x0)**2 / 12, (y1 - y0)**2 / 12], rtol=0.08)
    # the data's share lies near the eight modes, as no noise point is bound to
    ds = registry.load_dataset("eight_gaussians")
    near = torch.cdist(torch.from_numpy(r.samples[r.from_p]), ds.modes).min(1).values
    assert float(near.max()) < 6 * ds.mode_std


def test_bad_settings_are_refused_with_a_message():
    for w in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
            L.likelihood_gap("eight_gaussians", w)
    with pytest.raises(DataError, match="unknown dataset"):
        L.likelihood_gap("no_such_data", 0.1)
