"""The GAN view: the critic, its gradient arrows, the optimal discriminator, the modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from playground.views import render_panel
from tests.playground.views.helpers import (BOX, G, N,
                                            ctx, message, plane_grid, synthetic, title_of, trace)
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
    assert f"h = {h:.2f}" in title_of(fig)
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
    assert "1 of 4 covered" in title_of(fig)
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
    assert f"{core['modes_covered']} of 5 covered" in title_of(fig)
    off = trace(fig, "off: > 3σ from every mode", "bar")
    assert off.y[0] == round((1 - core["high_quality"]) * N)
    assert mode_bars(fig)[1].sum() == 5 - core["modes_covered"]


def test_wrong_grid_size_is_reported():
    snap = synthetic("gan")
    snap["traces"]["critic_prob"] = snap["traces"]["critic_prob"][:-1]
    snap["traces"].pop("critic")
    fig = render_panel("gan", "gan_critic", snap, ctx())
    assert "not square" in message(fig)


# ---- CycleGAN and BiGAN panels ----------------------------------------------------
OLD_PANELS = ["gan_critic", "gan_warp", "gan_optimal", "gan_modes"]


def test_each_model_is_shown_the_panels_its_traces_feed():
    from core import registry
    from playground.app.status import placement
    from playground.views import view_for

    view = view_for("gan")
    for name in ("gan", "nsgan", "wgan_gp", "mmdgan"):
        assert [p.key for p in view.panels_for(name)] == OLD_PANELS, name
        assert [k for k in placement("gan", name) if k] == OLD_PANELS, name
    assert [p.key for p in view.panels_for("cyclegan")] == ["gan_critic", "gan_optimal", "gan_modes", "gan_cycle"]
    assert placement("gan", "cyclegan") == ["gan_cycle", "gan_critic", "gan_optimal", "gan_modes", None, None]
    assert [p.key for p in view.panels_for("bigan")] == OLD_PANELS + ["gan_bigan"]
    assert placement("gan", "bigan") == ["gan_bigan", *OLD_PANELS, None]
    for name in registry.model_names("gan"):  # what a panel needs, the model declares
        cls = registry.model_spec(name).cls
        for p in view.panels_for(name):
            for kind in cls.data_kinds:
                declared = set(getattr(cls, "IMAGE_TRACES", cls.TRACES)) if kind == "images" else set(cls.TRACES)
                assert set(p.needs_for(kind)) <= declared | set(cls.GRID_TRACES), (name, p.key, kind)


def _segments(tr) -> np.ndarray:
    """A line trace of k segments (start, end, gap) -> (k, 2, 2)."""
    xy = np.stack([np.asarray(tr.x, dtype=np.float64), np.asarray(tr.y, dtype=np.float64)], 1).reshape(-1, 3, 2)
    assert np.isnan(xy[:, 2]).all()
    return xy[:, :2]


def test_cycle_panel_links_each_point_to_its_image_and_its_round_trip():
    snap = synthetic("gan")
    tr = snap["traces"]
    fig = render_panel("gan", "gan_cycle", snap, ctx())
    assert message(fig) is None
    k = min(gan_view.LINKS, N)
    for name, start, end in [("a → G(a)", tr["source"], tr["samples"]), ("b → F(b)", snap["data"], tr["back"]),
                             ("a → F(G(a))", tr["source"], tr["round_trip"])]:
        seg = _segments(trace(fig, name))
        assert seg.shape[0] == k, name
        np.testing.assert_allclose(seg[:, 0], start[:k], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(seg[:, 1], end[:k], rtol=1e-6, err_msg=name)
    axes = {t.name: t.xaxis for t in fig.data}
    assert axes["G(a)"] == "x" and axes["F(b)"] == "x2" and axes["F(G(a))"] == "x3"
    np.testing.assert_array_equal(trace(fig, "F(G(a))").x, tr["round_trip"][:, 0])
    assert "0.4" in title_of(fig)  # the cycle error


def test_cycle_panel_box_holds_both_domains():
    snap = synthetic("gan")
    snap["traces"]["source"] = snap["traces"]["source"] + np.float32(9.0)  # A far to the right of B's box
    fig = render_panel("gan", "gan_cycle", snap, ctx())
    lo, hi = fig.layout.xaxis.range
    assert lo <= BOX[0][0] and hi >= float(snap["traces"]["source"][:, 0].max())


def test_cycle_panel_is_for_points_only():
    snap = synthetic("gan", d=784)
    fig = render_panel("gan", "gan_cycle", snap, ctx(data_shape=(1, 28, 28), bounds=None))
    assert "drawn for 2D" in message(fig)


def test_bigan_panel_colours_codes_by_label_and_links_x_to_its_reconstruction():
    snap = synthetic("gan")
    tr = snap["traces"]
    labels = np.arange(N) % 3
    fig = render_panel("gan", "gan_bigan", snap, ctx(labels=labels, labels_name="mode"))
    assert message(fig) is None
    for lab in range(3):
        t = trace(fig, f"E(x), mode {lab}")
        np.testing.assert_array_equal(t.x, tr["codes"][labels == lab, 0])
        np.testing.assert_array_equal(t.y, tr["codes"][labels == lab, 1])
        assert t.xaxis == "x"
    np.testing.assert_array_equal(trace(fig, "z ~ prior").x, tr["prior"][:, 0])
    seg = _segments(trace(fig, "x → G(E(x))"))
    k = min(gan_view.LINKS, N)
    np.testing.assert_allclose(seg[:, 0], snap["data"][:k], rtol=1e-6)
    np.testing.assert_allclose(seg[:, 1], tr["reconstructions"][:k], rtol=1e-6)
    assert trace(fig, "G(E(x))").xaxis == "x2"
    unlabelled = render_panel("gan", "gan_bigan", snap, ctx())
    np.testing.assert_array_equal(trace(unlabelled, "E(x) of data").x, tr["codes"][:, 0])


def test_bigan_panel_shows_digits_beside_their_reconstructions():
    snap = synthetic("gan", d=784)
    fig = render_panel("gan", "gan_bigan", snap, ctx(data_shape=(1, 28, 28), bounds=None, true_log_density=None))
    assert message(fig) is None and fig.data[0].type == "heatmap"
    img = np.asarray(fig.data[0].z)
    assert img.shape[0] > 2 * 28  # two rows: the data, then G(E(x))


# ---- digits: the samples of the fixed noise, the class histogram over the run -------------
DIGITS = dict(data_shape=(1, 28, 28), bounds=None, true_log_density=None, modes=None)


def _records(fractions, steps=None) -> list[dict]:
    steps = steps if steps is not None else [100 * (i + 1) for i in range(len(fractions))]
    return [{"step": s, "time": 0.5 * s, "fd": 30.0, "classes": list(f)} for s, f in zip(steps, fractions)]


def _collapsing(T: int = 6) -> np.ndarray:
    """Class fractions that start uniform and end on digits 1 and 7 (mode collapse): (T, 10)."""
    start, end = np.full(10, 0.1), np.zeros(10)
    end[[1, 7]] = [0.6, 0.4]
    w = np.linspace(0, 1, T)[:, None]
    return (1 - w) * start + w * end


def test_class_histogram_draws_the_records_stacked_and_the_latest_against_uniform(monkeypatch):
    from playground.draw import layout

    monkeypatch.setattr(layout, "VALIDATE", True)  # every property a valid Plotly property
    snap = synthetic("gan", d=784)
    f = _collapsing()
    snap["metric_history"] = _records(f)
    fig = render_panel("gan", "gan_modes", snap, ctx(**DIGITS))
    assert message(fig) is None
    for k in range(10):
        band = trace(fig, f"digit {k}")
        assert band.stackgroup == "classes" and band.xaxis in (None, "x")
        np.testing.assert_allclose(band.x, [100, 200, 300, 400, 500, 600])
        np.testing.assert_allclose(band.y, f[:, k])
    bars = trace(fig, "latest", "bar")
    np.testing.assert_allclose(bars.y, f[-1])
    assert bars.xaxis == "x2"
    uniform = trace(fig, "uniform: 1/10 each")
    np.testing.assert_allclose(uniform.y, [0.1, 0.1])
    assert list(trace(fig, "not covered").x) == [0, 2, 3, 4, 5, 6, 8, 9]
    assert "2 of 10 covered" in title_of(fig)


def test_class_histogram_orders_records_and_skips_those_without_a_histogram():
    snap = synthetic("gan", d=784)
    f = np.full((3, 10), 0.1)
    recs = _records(f, steps=[300, 100, 200])
    recs.insert(1, {"step": 150, "fd": 3.0})  # a record without classes
    recs.append({"step": 250, "classes": [0.5, 0.5]})  # not ten fractions
    recs.append({"step": 260, "classes": [float("nan")] * 10})
    snap["metric_history"] = recs
    fig = render_panel("gan", "gan_modes", snap, ctx(**DIGITS))
    np.testing.assert_allclose(trace(fig, "digit 0").x, [100, 200, 300])
    assert "10 of 10 covered" in title_of(fig)
    assert len(trace(fig, "not covered").x) == 0


def test_class_histogram_takes_the_newest_metrics_when_they_are_newer():
    snap = synthetic("gan", d=784)
    snap["step"] = 900
    snap["metric_history"] = _records(np.full((2, 10), 0.1))
    newest = np.eye(10)[3]
    snap["metrics"] = {"classes": list(newest)}
    fig = render_panel("gan", "gan_modes", snap, ctx(**DIGITS))
    np.testing.assert_allclose(trace(fig, "latest", "bar").y, newest)
    np.testing.assert_allclose(trace(fig, "digit 3").x, [100, 200, 900])


def test_class_histogram_without_records_still_draws_and_says_why_it_is_empty():
    snap = synthetic("gan", d=784)
    for history in (None, [], [{"step": 10, "fd": 2.0}], "not a list"):
        snap["metric_history"] = history
        fig = render_panel("gan", "gan_modes", snap, ctx(**DIGITS))
        assert message(fig) is None and fig.data
        assert "no class histogram yet" in title_of(fig)
        np.testing.assert_allclose(trace(fig, "latest", "bar").y, np.zeros(10))
        np.testing.assert_allclose(trace(fig, "uniform: 1/10 each").y, [0.1, 0.1])


def test_digits_panel_shows_the_data_beside_the_fixed_noise_samples_with_ds_scores():
    snap = synthetic("gan", d=784)
    tr = snap["traces"]
    tr["critic_real"] = np.full(64, 0.8, np.float32)
    tr["critic_fake"] = np.full(64, 0.25, np.float32)
    fig = render_panel("gan", "gan_critic", snap, ctx(**DIGITS))
    assert message(fig) is None and len(fig.data) == 2
    real, fake = (np.asarray(t.z) for t in fig.data)
    np.testing.assert_allclose(fake[:28, :28], tr["samples"][0].reshape(28, 28), rtol=1e-6)
    np.testing.assert_allclose(real[:28, :28], snap["data"][0, 0], rtol=1e-6)
    assert "mean D 0.8" in fig.layout.xaxis.title.text and "mean D 0.25" in fig.layout.xaxis2.title.text
    assert "same z" in title_of(fig)
    tr.pop("critic_real"), tr.pop("critic_fake")  # without scores: the digits alone
    fig = render_panel("gan", "gan_critic", snap, ctx(**DIGITS))
    assert message(fig) is None and "mean D" not in fig.layout.xaxis2.title.text


def test_optimal_discriminator_says_it_is_for_2d_on_digits():
    fig = render_panel("gan", "gan_optimal", synthetic("gan", d=784), ctx(**DIGITS))
    assert "2D datasets only" in message(fig)
