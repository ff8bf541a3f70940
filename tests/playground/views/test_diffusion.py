"""The diffusion view: the score field and the strips of the forward and reverse processes."""

from __future__ import annotations


import numpy as np
import pytest

from playground import draw as V
from playground.views import render_panel
from tests.playground.views.helpers import BOX, ctx, message, plane_grid, synthetic, trace, title_of


def test_score_field_arrows_point_at_the_data():
    # The score of N(0, I) is -x: every arrow must point at the origin.
    grid = plane_grid()
    snap = synthetic("diffusion")
    snap["traces"]["score_field"] = -grid
    fig = render_panel("diffusion", "diff_field", snap, ctx())
    assert "t = 0.30" in title_of(fig)
    seg = trace(fig, "score ∇ log p_t(x)", "scatter")
    xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2)
    o, d = xy[:, 0].astype(np.float64), (xy[:, 1] - xy[:, 0]).astype(np.float64)
    assert xy.shape[0] == 15 * 15  # a coarse 15 x 15 subgrid; no grid point sits exactly on the origin
    cos = (d * -o).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(o, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    # Lengths grow as the square root of |score| = |x|, the longest spanning 0.9 of the arrow spacing.
    r = np.linalg.norm(o, axis=1)
    spacing = (BOX[0][1] - BOX[0][0]) / 14
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 0.9 * spacing * np.sqrt(r / r.max()), rtol=1e-4)


def test_diffusion_strips_show_the_requested_times():
    snap = synthetic("diffusion")
    fig = render_panel("diffusion", "diff_forward", snap, ctx())
    labels = [fig.layout[f"xaxis{s}"].title.text for s in ["", "2", "3", "4", "5"]]
    assert labels == [f"t = {t:.2f}" for t in np.linspace(0, 1, 6)[[0, 1, 2, 4, 5]]]
    np.testing.assert_array_equal(fig.data[0].x, snap["traces"]["forward"][0][:, 0])
    fig = render_panel("diffusion", "diff_film", snap, ctx())
    assert fig.data[-1].marker.color == V.GEN  # the last frame is the samples
    np.testing.assert_array_equal(fig.data[-1].x, snap["traces"]["trajectory"][-1][:, 0])
    # A chain given data-first is turned around using its times.
    rev = {**snap, "traces": {**snap["traces"], "trajectory": snap["traces"]["trajectory"][::-1],
                              "trajectory_t": snap["traces"]["trajectory_t"][::-1]}}
    fig = render_panel("diffusion", "diff_reverse", rev, ctx())
    k = len(trace(fig, "end: samples x₀").x)
    assert k == 100
    np.testing.assert_array_equal(trace(fig, "end: samples x₀").x, snap["traces"]["trajectory"][-1][:k, 0])
    np.testing.assert_array_equal(trace(fig, "start: noise x_T").y, snap["traces"]["trajectory"][0][:k, 1])


def test_digits_get_a_film_strip_labelled_with_t_and_a_reason_for_the_field():
    snap = synthetic("diffusion", d=784)
    c = ctx(data_shape=(1, 28, 28), bounds=None)
    assert "2D data" in message(render_panel("diffusion", "diff_field", snap, c))
    fig = render_panel("diffusion", "diff_film", snap, c)
    assert message(fig) is None and fig.data[-1].type == "heatmap"
    traj, t = snap["traces"]["trajectory"], snap["traces"]["trajectory_t"]
    idx = V.pick(traj.shape[0], 6)
    assert fig.layout.xaxis.title.text == "columns: " + ", ".join(f"t = {t[i]:.2f}" for i in idx)
    assert "40-step chain" in title_of(fig)  # the live chain is labelled with its length
    tile = fig.data[-1].z  # 4 digits down, the frames across: noise first, x_0 last
    assert tile.shape == (4 * 28 + 3 * 2, 6 * 28 + 5 * 2)
    np.testing.assert_array_equal(tile[:28, :28], traj[0, 0].reshape(28, 28))
    np.testing.assert_array_equal(tile[30:58, -28:], traj[-1, 1].reshape(28, 28))
    fig = render_panel("diffusion", "diff_reverse", snap, c)
    assert "40-step reverse chain" in title_of(fig)


@pytest.mark.parametrize("family,key", [("diffusion", "diff_field"), ("continuous", "cont_field"), ("sde", "sde_field")])
def test_the_field_title_shows_the_t_the_slider_is_at(family, key):
    """The slider moved to 0.5 while a picture of the old weights at t = 0.1 was being drawn: the
    title names the slider's t, and the note says that this field is still the one from 0.1."""
    snap = synthetic(family)
    snap["traces"]["field_t"] = np.array([0.1], np.float32)
    fig = render_panel(family, key, snap, ctx(options={"t": 0.5}))
    heading = title_of(fig)
    assert "t = 0.50" in heading and "drawn at t = 0.10" in heading, heading
    snap["traces"]["field_t"] = np.array([0.5], np.float32)  # the next picture is drawn at the slider's t
    heading = title_of(render_panel(family, key, snap, ctx(options={"t": 0.5})))
    assert "t = 0.50" in heading and "drawn at" not in heading and "0.10" not in heading, heading
