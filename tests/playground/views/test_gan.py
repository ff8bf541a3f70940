"""The GAN view: the critic, its gradient arrows, the optimal discriminator, the modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from playground.views import render_panel
from tests.playground.views.helpers import (BOX, G, N,
                                            ctx, message, plane_grid, synthetic, trace)
from playground.views import gan as gan_view


def test_critic_heatmap_is_the_critic_on_the_grid():
    snap = synthetic("gan")
    fig = render_panel("gan", "gan_critic", snap, ctx())
    heat = fig.data[0]
    np.testing.assert_array_equal(heat.z, snap["traces"]["critic_prob"].reshape(G, G))
    assert (heat.zmin, heat.zmax) == (0, 1)
    # Plotly puts z[i][j] at (x[j], y[i]); the grid's point i*G + j is (xs[j], ys[i]).
    grid = plane_grid()
    assert (heat.x[5], heat.y[7]) == pytest.approx(tuple(grid[7 * G + 5]))


def test_arrows_point_along_the_gradient_with_normalised_length():
    snap = synthetic("gan")
    fig = render_panel("gan", "gan_critic", snap, ctx())
    seg = trace(fig, "dD/dx (generator's pull)")
    xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2)  # origin, tip, gap
    assert np.isnan(xy[:, 2]).all()
    k = xy.shape[0]
    assert k == min(gan_view.MAX_ARROWS, N)
    np.testing.assert_allclose(xy[:, 0], snap["traces"]["samples"][:k], rtol=1e-6)
    d = xy[:, 1] - xy[:, 0]
    g = snap["traces"]["critic_grad"][:k].astype(np.float64)
    cos = (d * g).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(g, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    lengths = np.linalg.norm(d, axis=1)
    assert lengths.max() == pytest.approx(gan_view.ARROW_FRACTION * (BOX[0][1] - BOX[0][0]), rel=1e-5)
    np.testing.assert_allclose(lengths / lengths.max(), np.linalg.norm(g, axis=1) / np.linalg.norm(g, axis=1).max(),
                               rtol=1e-4)
    heads = [t for t in fig.data if t.legendgroup == seg.name and t.mode == "markers"][0]
    np.testing.assert_allclose(np.stack([heads.x, heads.y], 1), xy[:, 1], rtol=1e-6)


def test_optimal_discriminator_matches_an_independent_computation():
    # p_data = N(0, s^2 I); smoothed by the KDE kernel it is N(0, (s^2 + h^2) I) in closed form,
    # and p_g is a brute-force sum of Gaussians at the samples.
    s = 0.6
    box = ((-4.0, 4.0), (-4.0, 4.0))
    grid = plane_grid(box)
    rng = np.random.default_rng(3)
    samples = np.clip(rng.normal(size=(200, 2)) * 0.8 + [0.7, -0.4], -2, 2).astype(np.float32)
    snap = synthetic("gan")
    snap["traces"]["samples"] = samples
    log_p = (-0.5 * (grid.astype(np.float64) ** 2).sum(1) / s**2 - math.log(2 * math.pi * s**2))
    fig = render_panel("gan", "gan_optimal", snap, ctx(bounds=box, true_log_density=log_p))
    learned, optimal = fig.data
    np.testing.assert_array_equal(learned.z, snap["traces"]["critic_prob"].reshape(G, G))

    h = gan_view.kde_bandwidth(box, G)
    assert f"h = {h:.2f}" in fig.layout.annotations[0].text
    g64 = grid.astype(np.float64)
    v = s**2 + h**2
    p_d = np.exp(-0.5 * (g64**2).sum(1) / v) / (2 * math.pi * v)
    d2 = ((g64[:, None, :] - samples[None].astype(np.float64)) ** 2).sum(-1)
    p_g = (np.exp(-0.5 * d2 / h**2) / (2 * math.pi * h**2)).mean(1)
    expected = (p_d / (p_d + p_g)).reshape(G, G)
    defined = np.isfinite(optimal.z)
    assert defined.mean() > 0.3
    np.testing.assert_allclose(optimal.z[defined], expected[defined], atol=1e-6)
    total = (p_d + p_g).reshape(G, G)
    assert (total[~defined] <= 1e-3 * total.max() * (1 + 1e-6)).all()  # blank only where both vanish


def test_optimal_discriminator_is_one_half_for_a_perfect_generator():
    p = np.random.default_rng(0).random((5, 5))
    np.testing.assert_allclose(gan_view.optimal_discriminator(p, p), 0.5)


def mode_bars(fig) -> tuple[np.ndarray, np.ndarray]:
    """Counts per mode from the covered and not-covered bar traces, and which were not covered."""
    covered, uncovered = trace(fig, "covered", "bar"), trace(fig, "not covered", "bar")
    K = len(covered.x) + len(uncovered.x)
    counts, missing = np.zeros(K, int), np.zeros(K, bool)
    counts[np.asarray(covered.x, int)] = covered.y
    counts[np.asarray(uncovered.x, int)] = uncovered.y
    missing[np.asarray(uncovered.x, int)] = True
    return counts, missing


def test_mode_counts_are_nearest_mode_counts():
    snap = synthetic("gan")
    c = ctx()
    x = snap["traces"]["samples"].astype(np.float64)
    expected = np.bincount(((x[:, None] - c["modes"][None]) ** 2).sum(-1).argmin(1), minlength=4)
    counts, missing = mode_bars(render_panel("gan", "gan_modes", snap, c))
    np.testing.assert_array_equal(counts, expected)
    assert not missing.any()
    # Collapse: every sample on mode 0 leaves three modes uncovered, drawn in red.
    snap["traces"]["samples"] = np.tile([[2.0, 0.0]], (N, 1)).astype(np.float32)
    fig = render_panel("gan", "gan_modes", snap, c)
    counts, missing = mode_bars(fig)
    assert list(counts) == [N, 0, 0, 0] and list(missing) == [False, True, True, True]
    assert "1 of 4 covered" in fig.layout.annotations[0].text
    assert trace(fig, "not covered").marker.color == gan_view.UNCOVERED


def test_modes_covered_agrees_with_the_core_metric():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("core.metrics")
    rng = np.random.default_rng(5)
    modes = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0], [3.0, 3.0]])
    k = rng.choice(5, size=N, p=[0.5, 0.3, 0.15, 0.04, 0.01])
    samples = (modes[k] + 0.25 * rng.normal(size=(N, 2))).astype(np.float32)
    samples[:20] = [3.5, -3.5]  # far from every mode
    snap = synthetic("gan")
    snap["traces"]["samples"] = samples
    fig = render_panel("gan", "gan_modes", snap, ctx(modes=modes, mode_std=0.2))
    core = metrics.mode_stats(torch.from_numpy(samples), torch.from_numpy(modes), 0.2)
    assert f"{core['modes_covered']} of 5 covered" in fig.layout.annotations[0].text
    off = trace(fig, "off: > 3σ from every mode", "bar")
    assert off.y[0] == round((1 - core["high_quality"]) * N)
    assert mode_bars(fig)[1].sum() == 5 - core["modes_covered"]


def test_wrong_grid_size_is_reported():
    snap = synthetic("gan")
    snap["traces"]["critic_prob"] = snap["traces"]["critic_prob"][:-1]
    snap["traces"].pop("critic")
    fig = render_panel("gan", "gan_critic", snap, ctx())
    assert "not square" in message(fig)
