"""The flow view: the layer strip, the density heatmaps, the log-determinants."""

from __future__ import annotations


import numpy as np
import pytest

from playground import draw as V
from playground.views import render_panel
from tests.playground.views.helpers import BOX, G, IMAGE_SHAPE, L, ctx, message, synthetic, trace, title_of


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
    assert f"{float((z.astype(np.float64) ** 2).sum(1).mean() / 2):.2f}" in title_of(fig)
    circle = trace(fig, "N(0, I): 1σ, 2σ")
    r = np.hypot(circle.x, circle.y)
    r = r[np.isfinite(r)]
    assert np.all(np.isclose(r, 1) | np.isclose(r, 2)) and np.isclose(r, 1).any() and np.isclose(r, 2).any()


# ---- digits: the multi-scale flow's pictures ---------------------------------------------------

def multiscale_snapshot(k: int = 8, s: int = 32, L: int = 15, seed: int = 0) -> dict:
    """Traces shaped as core.models.flows.multiscale sends them for 1 x 28 x 28 digits."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    y = rng.uniform(size=(k, 1, 28, 28)).astype(np.float32)
    tr = {"forward_states": f32(L + 1, k, 784), "inverse_states": f32(L + 1, s, 784), "log_dets": f32(L),
          "latents": f32(k, 784), "latent_shapes": np.array([[2, 14, 14], [8, 7, 7]], np.float32),
          "latent_digits": y}
    tr["forward_states"][0] = y.reshape(k, 784)
    tr["inverse_states"][-1] = rng.uniform(size=(s, 784)).astype(np.float32)
    return {"step": 7, "traces": tr, "data": y}


def digit_ctx():
    return ctx(data_shape=IMAGE_SHAPE, bounds=None)


def phi(z):
    from math import erf, sqrt
    return np.vectorize(lambda v: 0.5 * (1 + erf(v / sqrt(2))))(z.astype(np.float64))


def test_the_scales_panel_draws_each_digit_and_its_latents_at_each_scale():
    snap = multiscale_snapshot()
    tr = snap["traces"]
    fig = render_panel("flow", "flow_scales", snap, digit_ctx())
    assert message(fig) is None
    digits, z1, z2, pulled = (t.z for t in fig.data)
    k = 4  # rows drawn
    assert digits.shape == (k * 30 - 2, 28)
    np.testing.assert_array_equal(digits[30:58], tr["latent_digits"][1, 0])
    # z_1: the first 2 x 14 x 14 coordinates, its two channels side by side, drawn as Phi(z)
    first = tr["latents"][0, :392].reshape(2, 14, 14)
    np.testing.assert_allclose(z1[:14, :14], phi(first[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z1[:14, 15:29], phi(first[1]), rtol=1e-5, atol=1e-6)
    # z_2: the next 8 x 7 x 7, its channels tiled 3 a row (ceil(sqrt(8)))
    second = tr["latents"][0, 392:].reshape(8, 7, 7)
    np.testing.assert_allclose(z2[:7, 16:23], phi(second[2]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z2[8:15, :7], phi(second[3]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pulled[:28], phi(tr["forward_states"][-1, 0].reshape(28, 28)), rtol=1e-5, atol=1e-6)
    labels = [fig.layout[f"xaxis{s}"].title.text for s in ("", "2", "3", "4")]
    assert "2 × 14×14" in labels[1] and "8 × 7×7" in labels[2] and "final" in labels[2]
    # shapes that do not add up to the latents give a message, not an error
    tr["latent_shapes"] = np.array([[2, 14, 14]], np.float32)
    assert "do not add up" in message(render_panel("flow", "flow_scales", snap, digit_ctx()))
    assert message(render_panel("flow", "flow_scales", synthetic("flow"), ctx()))  # 2D flows send no latents


def test_on_digits_the_base_panel_is_a_density_histogram_of_z_against_n01():
    snap = multiscale_snapshot()
    z = snap["traces"]["forward_states"][-1]
    fig = render_panel("flow", "flow_base", snap, digit_ctx())
    assert message(fig) is None
    bars, pdf = trace(fig, "z = f(x)"), trace(fig, "N(0, 1)")
    inside = np.mean(np.abs(z) <= 4.5)
    assert np.sum(np.asarray(bars.y) * bars.width) == pytest.approx(inside, rel=1e-6)
    np.testing.assert_allclose(pdf.y, np.exp(-0.5 * np.asarray(pdf.x) ** 2) / np.sqrt(2 * np.pi))
    assert f"{float(np.mean(z.astype(np.float64) ** 2)):.2f}" in title_of(fig)


def test_on_digits_the_layer_strip_draws_states_off_the_data_through_phi():
    snap = multiscale_snapshot()
    inv = snap["traces"]["inverse_states"]
    fig = render_panel("flow", "flow_layers", snap, digit_ctx())
    img = fig.data[0].z
    np.testing.assert_array_equal(img[:28, :28], inv[-1, 0].reshape(28, 28))  # the data column as it is
    np.testing.assert_allclose(img[:28, -28:], phi(inv[0, 0].reshape(28, 28)), rtol=1e-5, atol=1e-6)  # the base


def test_the_scales_panel_of_a_flat_flow_shows_the_digit_and_its_noise_and_says_why_not_on_points():
    snap = multiscale_snapshot()
    for key in ("latents", "latent_shapes", "latent_digits"):
        del snap["traces"][key]
    fig = render_panel("flow", "flow_scales", snap, digit_ctx())
    assert message(fig) is None and len(fig.data) == 2
    np.testing.assert_array_equal(fig.data[0].z[:28], snap["traces"]["forward_states"][0, 0].reshape(28, 28))
    assert "2D datasets" in message(render_panel("flow", "flow_scales", synthetic("flow"), ctx()))
