"""Drawn points as a kernel density estimate: its density, samples, exact score and its text form."""

import math

import numpy as np
import pytest
import torch

from core.data.drawn import MAX_POINTS, DrawnPoints
from core.data.toy2d import plane_grid
from core.errors import DataError


def two_strokes():
    """A left arc (stroke 0) and a right segment (stroke 1)."""
    s = torch.linspace(0, math.pi, 12, dtype=torch.float64)
    arc = torch.stack([-2 + torch.cos(s), torch.sin(s)], dim=1)
    seg = torch.stack([torch.full((8,), 2.0), torch.linspace(-1.5, 1.5, 8, dtype=torch.float64)], dim=1)
    return torch.cat([arc, seg]), torch.cat([torch.zeros(12), torch.ones(8)]).long()


def kde(x, points, s):
    """(1/m) sum_j N(x; p_j, s^2 I) written out in numpy."""
    d2 = ((x[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * s**2)).mean(1) / (2 * np.pi * s**2)


def integral(f, bounds, resolution=401):
    grid, xs, ys = plane_grid(bounds, resolution, torch.float64)
    z = f(grid).reshape(resolution, resolution)
    return torch.trapezoid(torch.trapezoid(z, ys, dim=0), xs).item(), grid, z


@pytest.mark.parametrize("sigma", [0.0, 0.4])
def test_the_density_and_its_blurred_versions_integrate_to_one(sigma):
    points, strokes = two_strokes()
    data = DrawnPoints(points, 0.25, strokes)
    (x0, x1), (y0, y1) = data.bounds
    wide = ((x0 - 2, x1 + 2), (y0 - 2, y1 + 2))  # the blurred density spreads past the bounds
    total, _, _ = integral(lambda g: data.noised_log_prob(g, sigma).exp(), wide)
    assert total == pytest.approx(1.0, abs=2e-4)
    inside, _, _ = integral(lambda g: data.log_prob(g).exp(), data.bounds)
    assert inside > 0.99  # the bounds hold the mass


def test_the_blurred_density_is_the_kde_with_a_wider_kernel():
    points, _ = two_strokes()
    data = DrawnPoints(points, 0.2)
    x = torch.randn(64, 2, dtype=torch.float64) * 2
    for sigma in (0.0, 0.3, 1.5):
        expected = np.log(kde(x.numpy(), points.numpy(), math.sqrt(0.2**2 + sigma**2)))
        np.testing.assert_allclose(data.noised_log_prob(x, sigma).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(data.log_prob(x.float()).numpy(), np.log(kde(x.numpy(), points.numpy(), 0.2)),
                               rtol=1e-5)


def test_the_score_is_the_gradient_of_the_blurred_density():
    """grad log p_sigma(x) = sum_j w_j(x) (p_j - x) / s^2 with w the kernels' posterior weights."""
    points, _ = two_strokes()
    data = DrawnPoints(points, 0.3)
    x = torch.randn(50, 2, dtype=torch.float64) * 2
    for sigma in (0.0, 0.5):
        s2 = 0.3**2 + sigma**2
        w = torch.softmax(-torch.cdist(x, points).pow(2) / (2 * s2), dim=1)  # (n, m)
        expected = (w @ points - x) / s2
        got = data.score(x, sigma)
        assert got.dtype == torch.float64 and got.shape == (50, 2)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    # alpha X + sigma eps is the mixture of N(alpha p_j, (alpha^2 h^2 + sigma^2) I)
    alpha, sigma = 0.6, 0.7
    s2 = alpha**2 * 0.3**2 + sigma**2
    w = torch.softmax(-torch.cdist(x, alpha * points).pow(2) / (2 * s2), dim=1)
    torch.testing.assert_close(data.path_score(x, alpha, sigma), (w @ (alpha * points) - x) / s2, rtol=1e-9, atol=1e-9)


def test_samples_follow_the_density_and_carry_their_stroke():
    points, strokes = two_strokes()
    data = DrawnPoints(points, 0.2, strokes)
    n = 40_000
    x, label = data.sample_with_labels(n, torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and label.shape == (n,)
    # each sample's label is the stroke it came from: the arc lies left of x = -0.5, the segment right
    left = x[:, 0] < 0
    assert (label[left] == 0).float().mean() > 0.999 and (label[~left] == 1).float().mean() > 0.999
    assert (label == 0).float().mean().item() == pytest.approx(12 / 20, abs=0.01)
    # histogram on 10 x 10 cells against the density's mass in each cell
    (x0, x1), (y0, y1) = data.bounds
    edges_x, edges_y = np.linspace(x0, x1, 11), np.linspace(y0, y1, 11)
    counts, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), [edges_x, edges_y])
    freq = counts / n
    mass = np.zeros((10, 10))
    for i in range(10):
        for j in range(10):
            cell = ((edges_x[i], edges_x[i + 1]), (edges_y[j], edges_y[j + 1]))
            mass[i, j] = integral(lambda g: data.log_prob(g).exp(), cell, 41)[0]
    se = np.sqrt(mass * (1 - mass) / n)
    assert np.all(np.abs(freq - mass) < 5 * se + 2e-4)
    # deterministic given the generator
    again = data.sample(100, torch.Generator().manual_seed(3))
    torch.testing.assert_close(again, data.sample(100, torch.Generator().manual_seed(3)))


def test_a_drawing_round_trips_through_its_text():
    points, strokes = two_strokes()
    data = DrawnPoints(points, 0.137, strokes)
    code = data.encode()
    assert all(c.isalnum() or c in "-_" for c in code)  # safe in a URL without escaping
    back = DrawnPoints.decode(code)
    assert back.h == 0.137 and len(back) == len(data)
    torch.testing.assert_close(back.points, torch.round(points * 100) / 100, rtol=0, atol=1e-12)
    torch.testing.assert_close(back.strokes, strokes)
    assert back.encode() == code


def test_a_large_drawing_stays_short_enough_for_a_link():
    """2000 points along strokes, as a page would produce them, need only a few thousand characters."""
    t = np.linspace(0, 20 * np.pi, MAX_POINTS)
    points = np.stack([3.5 * np.cos(t) * t / t.max(), 3.5 * np.sin(t) * t / t.max()], 1)
    code = DrawnPoints(points, 0.1, (t // (2 * np.pi)).astype(int)).encode()
    assert len(code) < 8000
    np.testing.assert_allclose(DrawnPoints.decode(code).points.numpy(), points, atol=0.005 + 1e-9)


def test_strokes_given_out_of_order_are_kept_with_their_points():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    back = DrawnPoints.decode(DrawnPoints(points, 0.1, [1, 0, 1, 0]).encode())
    pairs = {(tuple(p), int(s)) for p, s in zip(back.points.tolist(), back.strokes.tolist())}
    assert pairs == {((1.0, 1.0), 0), ((3.0, 3.0), 0), ((0.0, 0.0), 1), ((2.0, 2.0), 1)}


def test_damaged_or_foreign_text_is_refused_with_the_reason():
    import base64
    import struct
    import zlib

    good = DrawnPoints(torch.randn(30, 2), 0.2).encode()

    def pack(raw):
        return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")

    cases = {
        "": "empty",
        "  ": "empty",
        "not*base64!": "damaged",
        base64.urlsafe_b64encode(b"hello world").decode(): "damaged",
        good[: len(good) // 2]: "damaged|cut short",
        pack(struct.pack("<BHHH", 7, 200, 2, 1)): "unknown format",
        pack(struct.pack("<BHHH", 1, 200, 3, 1) + struct.pack("<H", 3) + b"\0" * 8): "cut short",
        pack(struct.pack("<BHHH", 1, 200, 2, 1) + struct.pack("<H", 3) + b"\0" * 8): "inconsistent",
        pack(struct.pack("<BHHH", 1, 5000, 2, 1) + struct.pack("<H", 2) + b"\0" * 8): "bandwidth",
        pack(struct.pack("<BHHH", 1, 200, 1, 1) + struct.pack("<H", 1) + b"\0" * 4): "between 2 and 2000",
        pack(b"\1" * 20_000): "more than 2000",
        "A" * 30_000: "at most",
    }
    for code, reason in cases.items():
        with pytest.raises(DataError, match=reason):
            DrawnPoints.decode(code)


def test_bad_points_and_bandwidths_are_refused():
    ok = torch.randn(10, 2)
    for h in (0.01, 1.5, float("nan"), "wide", None):
        with pytest.raises(DataError, match="bandwidth must be a number between 0.02 and 1"):
            DrawnPoints(ok, h)
    with pytest.raises(DataError, match="between 2 and 2000 points, got 1; draw a little more"):
        DrawnPoints(ok[:1], 0.1)
    with pytest.raises(DataError, match="got 2001; draw less"):
        DrawnPoints(torch.zeros(2001, 2), 0.1)
    with pytest.raises(DataError, match="shape m x 2"):
        DrawnPoints(torch.zeros(5, 3), 0.1)
    with pytest.raises(DataError, match="finite"):
        DrawnPoints(torch.tensor([[0.0, 0.0], [float("inf"), 1.0]]), 0.1)
    with pytest.raises(DataError, match="within"):
        DrawnPoints(torch.tensor([[0.0, 0.0], [500.0, 1.0]]), 0.1)
    with pytest.raises(DataError, match="one non-negative integer per point"):
        DrawnPoints(ok, 0.1, strokes=[0, 1])
