"""The continuous-flow view: the velocity field's arrows, the particle paths and their straightness, the frames."""

from __future__ import annotations

import numpy as np

from playground import draw as V
from playground.export import snapshot_png
from playground.views import render_panel, view_for
from tests.playground.views.helpers import BOX, ctx, message, plane_grid, synthetic, trace, title_of


def test_the_field_arrows_point_where_sampling_moves():
    # v(x) = x (noise lies outward at t = 1), so sampling moves along -v: every arrow points at the origin.
    grid = plane_grid()
    snap = synthetic("continuous")
    snap["traces"]["velocity_field"] = grid.copy()
    fig = render_panel("continuous", "cont_field", snap, ctx())
    assert message(fig) is None
    assert "t = 0.30" in title_of(fig)
    seg = trace(fig, "−v_θ(x, t)", "scatter")
    xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2)
    o, d = xy[:, 0].astype(np.float64), (xy[:, 1] - xy[:, 0]).astype(np.float64)
    assert xy.shape[0] == 15 * 15
    cos = (d * -o).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(o, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    r = np.linalg.norm(o, axis=1)
    spacing = (BOX[0][1] - BOX[0][0]) / 14
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 0.9 * spacing * np.sqrt(r / r.max()), rtol=1e-4)
    # the shade is |v| on the whole grid
    heat = trace(fig, "|v|", "heatmap")
    np.testing.assert_allclose(np.asarray(heat.z), np.linalg.norm(grid, axis=1).reshape(60, 60), rtol=1e-5)


def test_paths_run_from_noise_to_samples_and_show_their_straightness():
    snap = synthetic("continuous")
    tr = snap["traces"]
    fig = render_panel("continuous", "cont_paths", snap, ctx())
    assert "straightness 0.250" in title_of(fig)
    np.testing.assert_array_equal(trace(fig, "start: noise x₁").x, tr["paths"][0][:100, 0])
    np.testing.assert_array_equal(trace(fig, "end: samples x₀").y, tr["paths"][-1][:100, 1])
    # paths given data-first are turned around by their times
    rev = {**snap, "traces": {**tr, "paths": tr["paths"][::-1], "paths_t": tr["paths_t"][::-1]}}
    fig = render_panel("continuous", "cont_paths", rev, ctx())
    np.testing.assert_array_equal(trace(fig, "end: samples x₀").y, tr["paths"][-1][:100, 1])
    # without a straightness the panel still draws, without the number
    del tr["straightness"]
    fig = render_panel("continuous", "cont_paths", snap, ctx())
    assert message(fig) is None and "straightness 0" not in title_of(fig)


def test_the_film_strip_shows_the_times_and_ends_on_the_samples():
    snap = synthetic("continuous")
    fig = render_panel("continuous", "cont_film", snap, ctx())
    t = snap["traces"]["paths_t"]
    idx = V.pick(31, 6)
    labels = [fig.layout[f"xaxis{s}"].title.text for s in ["", "2", "3", "4", "5", "6"]]
    assert labels == [f"t = {t[i]:.2f}" for i in idx]
    assert fig.data[-1].marker.color == V.GEN
    np.testing.assert_array_equal(fig.data[-1].x, snap["traces"]["paths"][-1][:, 0])


def test_the_field_is_refused_for_digits_and_the_export_draws_the_samples():
    digits = synthetic("continuous", d=784)
    fig = render_panel("continuous", "cont_field", digits, ctx(data_shape=(1, 28, 28), bounds=None))
    assert "drawn for 2D" in message(fig)
    snap = synthetic("continuous")
    np.testing.assert_array_equal(view_for("continuous").export.samples(snap["traces"]), snap["traces"]["paths"][-1])
    assert view_for("continuous").export.samples({}) is None
    assert snapshot_png("continuous", snap, ctx(), size=80)[:4] == b"\x89PNG"


def test_digits_get_the_flow_frame_by_frame_and_a_reason_for_the_field():
    snap = synthetic("continuous", d=784)
    c = ctx(data_shape=(1, 28, 28), bounds=None)
    assert "2D data" in message(render_panel("continuous", "cont_field", snap, c))
    fig = render_panel("continuous", "cont_film", snap, c)
    assert message(fig) is None and fig.data[-1].type == "heatmap"
    paths, t = snap["traces"]["paths"], snap["traces"]["paths_t"]
    idx = V.pick(paths.shape[0], 6)
    assert fig.layout.xaxis.title.text == "columns: " + ", ".join(f"t = {t[i]:.2f}" for i in idx)
    assert "30 solver steps" in title_of(fig)
    tile = fig.data[-1].z
    np.testing.assert_array_equal(tile[:28, :28], paths[0, 0].reshape(28, 28))   # noise x_1 first
    np.testing.assert_array_equal(tile[:28, -28:], paths[-1, 0].reshape(28, 28))  # the digit x_0 last
    fig = render_panel("continuous", "cont_paths", snap, c)
    assert message(fig) is None and "30-step ODE solve" in title_of(fig)
