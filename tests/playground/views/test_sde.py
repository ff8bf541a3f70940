"""The score SDE view: learned and exact score side by side with their error, reverse paths, forward SDE."""

from __future__ import annotations

import numpy as np

from playground.views import all_controls, render_panel, view_for
from playground.draw.fields import relative_error
from tests.playground.views.helpers import BOX, ctx, message, plane_grid, synthetic, trace, title_of


def test_learned_and_exact_score_are_drawn_side_by_side_with_their_relative_error():
    grid = plane_grid()
    snap = synthetic("sde")
    exact = -grid / 0.6**2  # the score of N(0, 0.6^2 I)
    learned = 1.1 * exact  # 10% too long everywhere: relative error 0.01
    snap["traces"]["score_field"] = learned.astype(np.float32)
    snap["true_score_field"] = exact
    fig = render_panel("sde", "sde_field", snap, ctx())
    assert message(fig) is None
    title = title_of(fig)
    assert "t = 0.30" in title and "α_t = 0.8, σ_t = 0.6" in title and "= 0.01;" in title
    for name, axis, vec in [("learned s_θ(x, t)", "x", learned), ("exact ∇ log p_t(x)", "x2", exact)]:
        seg = trace(fig, name, "scatter")
        assert seg.xaxis == axis
        xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2)
        o, d = xy[:, 0].astype(np.float64), (xy[:, 1] - xy[:, 0]).astype(np.float64)
        cos = (d * -o).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(o, axis=1))
        np.testing.assert_allclose(cos, 1.0, atol=1e-5)  # both point at the origin, where the data are
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.xaxis2.range) == BOX[0]
    # without an exact score (a file of points) the learned field is drawn alone and says why
    del snap["true_score_field"]
    fig = render_panel("sde", "sde_field", snap, ctx())
    assert "no exact score" in title_of(fig) and "xaxis2" not in fig.layout.to_plotly_json()
    assert all(t.name != "exact ∇ log p_t(x)" for t in fig.data)


def test_relative_error():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(50, 2))
    assert relative_error(s, s) == 0.0
    assert np.isclose(relative_error(np.zeros_like(s), s), 1.0)
    e = rng.normal(size=(50, 2))
    assert np.isclose(relative_error(s + e, s), (e**2).sum() / (s**2).sum())
    bad = s.copy()
    bad[0] = np.nan  # points without a value are left out
    assert np.isclose(relative_error(bad, s), 0.0)


def test_reverse_paths_run_from_the_prior_to_the_samples():
    snap = synthetic("sde")
    fig = render_panel("sde", "sde_reverse", snap, ctx())
    traj = snap["traces"]["trajectory"]
    k = len(trace(fig, "end: samples").x)
    assert k == 100
    np.testing.assert_array_equal(trace(fig, "end: samples").x, traj[-1][:k, 0])
    np.testing.assert_array_equal(trace(fig, "start: prior x₁").y, traj[0][:k, 1])
    assert "40 steps, t = 1.00 → 0.001" in title_of(fig)
    # a path given data-first is turned around by its times
    rev = {**snap, "traces": {**snap["traces"], "trajectory": traj[::-1], "trajectory_t": snap["traces"]["trajectory_t"][::-1]}}
    np.testing.assert_array_equal(trace(render_panel("sde", "sde_reverse", rev, ctx()), "end: samples").x, traj[-1][:k, 0])


def test_forward_strip_shows_the_requested_times():
    snap = synthetic("sde")
    fig = render_panel("sde", "sde_forward", snap, ctx())
    labels = [fig.layout[f"xaxis{s}"].title.text for s in ["", "2", "3", "4", "5"]]
    assert labels == [f"t = {t:.2f}" for t in np.linspace(0, 1, 6)[[0, 1, 2, 4, 5]]]
    np.testing.assert_array_equal(fig.data[0].x, snap["traces"]["forward"][0][:, 0])


def test_the_time_slider_is_the_diffusion_views():
    assert view_for("sde").controls == tuple(c for c in view_for("diffusion").controls if c.name == "t")
    assert list(all_controls()).count("t") == 1
    eq = view_for("sde").equations
    for needle in ("reverse-time SDE", "probability-flow ODE", "denoising score matching", r"\sigma_t^2", "snr"):
        assert needle in eq


def test_images_get_digit_tiles_and_a_reason_for_the_field():
    snap = synthetic("sde", d=784)
    c = ctx(data_shape=(1, 28, 28), bounds=None)
    assert "2D data" in message(render_panel("sde", "sde_field", snap, c))
    fig = render_panel("sde", "sde_reverse", snap, c)
    assert message(fig) is None and fig.data[-1].type == "heatmap"
