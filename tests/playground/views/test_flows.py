"""The flow view: the layer strip, the density heatmaps, the log-determinants."""

from __future__ import annotations


import numpy as np
import pytest

from playground import draw as V
from playground.views import render_panel
from tests.playground.views.helpers import (BOX, G, L, ctx, synthetic, trace)


def test_flow_strip_draws_the_layers_in_order_data_to_base():
    snap = synthetic("flow")
    tr = snap["traces"]
    fig = render_panel("flow", "flow_layers", snap, ctx())
    # Panel 1 is data space (inverse index L), the last panel is the base (index 0).
    on = lambda s, name: [t for t in fig.data if t.name == name and (t.xaxis or "x") == f"x{s}"][0]  # noqa: E731
    np.testing.assert_array_equal(on("", "samples").x, tr["inverse_states"][L][:, 0])
    np.testing.assert_array_equal(on("", "data").y, tr["forward_states"][0][:, 1])
    last = str(len([a for a in fig.layout if str(a).startswith("xaxis")]))
    np.testing.assert_array_equal(on(last, "samples").x, tr["inverse_states"][0][:, 0])
    np.testing.assert_array_equal(on(last, "data").x, tr["forward_states"][L][:, 0])
    # The base panel's mesh runs along rows of grid_states[0]: its first line is row 0.
    mesh = on(last, "base grid")
    along = V.pick(G, 40)  # points kept along each line, ends included
    first_line = np.stack([mesh.x[: len(along)], mesh.y[: len(along)]], 1)
    np.testing.assert_allclose(first_line, tr["grid_states"][0].reshape(G, G, 2)[0][along])
    assert along[0] == 0 and along[-1] == G - 1
    assert np.isnan(mesh.x[len(along)])  # lines are separated by gaps
    assert tuple(fig.layout.xaxis.range) == BOX[0]  # data space uses the dataset's bounds


def test_flow_density_heatmaps_equal_exp_log_density():
    snap = synthetic("flow")
    c = ctx(true_log_density=snap["traces"]["log_density"] - 1.0)
    fig = render_panel("flow", "flow_density", snap, c)
    model, true = fig.data
    np.testing.assert_allclose(model.z, np.exp(snap["traces"]["log_density"]).reshape(G, G), rtol=1e-6)
    np.testing.assert_allclose(true.z, np.exp(c["true_log_density"].astype(np.float64)).reshape(G, G), rtol=1e-6)
    np.testing.assert_allclose(model.x, np.linspace(*BOX[0], G))
    np.testing.assert_allclose(model.y, np.linspace(*BOX[1], G))
    assert model.zmax == true.zmax == pytest.approx(float(np.exp(c["true_log_density"].astype(np.float64)).max()))


def test_flow_logdet_bars_and_base_moment():
    snap = synthetic("flow")
    fig = render_panel("flow", "flow_logdet", snap, ctx())
    np.testing.assert_array_equal(fig.data[0].y, snap["traces"]["log_dets"])
    np.testing.assert_array_equal(fig.data[0].x, np.arange(1, L + 1))
    z = snap["traces"]["forward_states"][-1]
    fig = render_panel("flow", "flow_base", snap, ctx())
    assert f"{float((z.astype(np.float64) ** 2).sum(1).mean() / 2):.2f}" in fig.layout.annotations[0].text
    circle = trace(fig, "N(0, I): 1σ, 2σ")
    r = np.hypot(circle.x, circle.y)
    r = r[np.isfinite(r)]
    assert np.all(np.isclose(r, 1) | np.isclose(r, 2)) and np.isclose(r, 1).any() and np.isclose(r, 2).any()
