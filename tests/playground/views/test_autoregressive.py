"""The autoregressive view: the true conditional is the grid column nearest x1, normalised over x2."""

from __future__ import annotations

import math

import numpy as np

from playground.views import render, render_panel, view_for
from tests.playground.views.helpers import BOX, G, ctx, message, plane_grid, synthetic, trace, title_of
from tests.playground.views.test_views import assert_layout_fits

CORRELATED = np.array([[1.0, 0.6], [0.6, 1.0]])


def correlated_ctx():
    """The true density N(0, C) with correlation 0.6: p(x2 | x1) = N(0.6 x1, 0.64)."""
    grid = plane_grid().astype(np.float64)
    inv = np.linalg.inv(CORRELATED)
    log_p = -0.5 * np.einsum("ni,ij,nj->n", grid, inv, grid) - math.log(2 * math.pi) - 0.5 * math.log(np.linalg.det(CORRELATED))
    return ctx(true_log_density=log_p)


def test_true_conditional_is_the_normalised_column_nearest_x1():
    snap = synthetic("autoregressive")
    snap["traces"]["x1"] = np.array([1.03], np.float32)
    fig = render_panel("autoregressive", "ar_conditional", snap, correlated_ctx())
    assert message(fig) is None
    xs = np.linspace(*BOX[0], G)
    x1 = xs[np.argmin(np.abs(xs - 1.03))]
    assert f"x₁ = {x1:.2f}" in title_of(fig)
    true = trace(fig, "true p(x₂ | x₁)")
    ys = np.asarray(true.x)
    np.testing.assert_allclose(ys, np.linspace(*BOX[1], G))
    expected = np.exp(-0.5 * (ys - 0.6 * x1) ** 2 / 0.64) / math.sqrt(2 * math.pi * 0.64)
    # normalised on the grid over [-3, 3]: equal to the Gaussian up to the mass the box leaves out
    np.testing.assert_allclose(np.asarray(true.y), expected, rtol=0.03)
    assert abs(np.asarray(true.y).sum() * (ys[1] - ys[0]) - 1) < 1e-9
    model = trace(fig, "model q(x₂ | x₁)")
    np.testing.assert_array_equal(model.y, snap["traces"]["conditional"])


def test_true_marginal_is_the_density_summed_over_x2():
    fig = render_panel("autoregressive", "ar_marginal", synthetic("autoregressive"), correlated_ctx())
    true = trace(fig, "true p(x₁)")
    x1 = np.asarray(true.x)
    # N(0, 1) restricted to |x2| <= 3 at correlation 0.6 loses little: within 1% of the standard normal
    np.testing.assert_allclose(np.asarray(true.y), np.exp(-0.5 * x1**2) / math.sqrt(2 * math.pi), rtol=0.02, atol=1e-3)
    assert trace(fig, "chosen x₁").x[0] == 0.5


def test_without_a_true_density_the_model_curves_alone():
    figs = render("autoregressive", synthetic("autoregressive"), ctx(true_log_density=None))
    for key in ("ar_conditional", "ar_marginal", "ar_density", "ar_samples"):
        assert message(figs[key]) is None, key
        assert_layout_fits(figs[key], key)
    assert [t.name for t in figs["ar_conditional"].data] == ["model q(x₂ | x₁)"]


def test_images_show_samples_and_say_why_not_for_the_rest():
    snap = synthetic("autoregressive", d=784)
    figs = render("autoregressive", snap, ctx(data_shape=(1, 28, 28), bounds=None, true_log_density=None))
    assert message(figs["ar_samples"]) is None
    for key in ("ar_conditional", "ar_marginal", "ar_density"):
        assert "drawn for 2D" in message(figs[key]), key


def test_the_x1_control_spans_the_data_box():
    (control,) = view_for("autoregressive").controls
    assert control.name == "x1" and control.lo <= -4 and control.hi >= 4 and control.default == 0.0


# ---- binarized digits ------------------------------------------------------------------------
DIGITS = dict(data_shape=(1, 28, 28), bounds=None, true_log_density=None)


def test_the_drawing_shows_each_canvas_of_the_pass_with_the_undrawn_pixels_grey():
    from playground.views.autoregressive import DRAWING_DIGITS, UNDRAWN

    snap = synthetic("autoregressive", d=784)
    fig = render_panel("autoregressive", "ar_drawing", snap, ctx(**DIGITS))
    assert message(fig) is None
    strip = fig.data[0].z
    F = 8
    assert strip.shape == (DRAWING_DIGITS * 30 - 2, F * 30 - 2)  # a row per digit, a column per canvas
    frames, counts = snap["traces"]["frames"], snap["traces"]["frame_pixels"]
    for d in range(DRAWING_DIGITS):
        for f in range(F):
            cell = strip[d * 30:d * 30 + 28, f * 30:f * 30 + 28].reshape(-1)
            drawn = np.arange(784) < counts[f]
            np.testing.assert_array_equal(cell[drawn], frames[f, d][drawn])
            assert (cell[~drawn] == UNDRAWN).all()


def test_the_conditionals_panel_shows_the_digits_nll_as_the_model_scores_it():
    import re

    import torch

    from core import registry

    torch.manual_seed(0)
    model = registry.build_model("nade", (1, 28, 28), {"hidden": 16}).eval()
    x = torch.rand(4, 1, 28, 28)
    traces = model.traces(x)
    snap = {"step": 3, "traces": traces}
    fig = render_panel("autoregressive", "ar_pixels", snap, ctx(**DIGITS))
    assert message(fig) is None
    digit, p = fig.data[0].z, fig.data[1].z
    np.testing.assert_array_equal(digit, traces["digit"][0])
    np.testing.assert_array_equal(p, traces["p_digit"][0])
    with torch.no_grad():
        nll = -model.log_prob(torch.as_tensor(traces["digit"])[None]).item()
    nats, bits = map(float, re.search(r"= ([\d.]+) nats = ([\d.]+) bits/dim", title_of(fig)).groups())
    assert abs(nats - nll) < 0.05 and abs(bits - nll / (784 * math.log(2))) < 5e-4


def test_the_digit_panels_say_why_not_for_points():
    figs = render("autoregressive", synthetic("autoregressive"), ctx())
    for key in ("ar_drawing", "ar_pixels"):
        assert "2D datasets have no pixels" in message(figs[key]), key
