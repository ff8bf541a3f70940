"""The mixture view: contours at the Mahalanobis radii, colours mixed by responsibility, the EM chart."""

from __future__ import annotations

import numpy as np

from playground import draw as V
from playground.views import render, render_panel
from playground.views.mixture import PALETTE, ellipse, mixed_colours
from tests.playground.views.helpers import ctx, message, synthetic, trace, title_of
from tests.playground.views.test_views import assert_layout_fits


def test_ellipse_points_lie_on_the_mahalanobis_contour():
    mean, cov = np.array([1.0, -2.0]), np.array([[0.5, 0.3], [0.3, 0.4]])
    for radius in (1.0, 2.0):
        pts = ellipse(mean, cov, radius)
        d = pts - mean
        np.testing.assert_allclose(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d), radius**2, rtol=1e-9)


def test_colours_mix_the_components_by_responsibility():
    r = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    colours = mixed_colours(r)
    as_rgb = lambda c: np.array([int(v) for v in c[4:-1].split(",")])  # noqa: E731
    np.testing.assert_array_equal(as_rgb(colours[0]), PALETTE[0])
    np.testing.assert_array_equal(as_rgb(colours[1]), PALETTE[1])
    np.testing.assert_allclose(as_rgb(colours[2]), (PALETTE[0] + PALETTE[1]) / 2, atol=0.5)


def test_components_panel_draws_contours_means_and_coloured_data():
    snap = synthetic("mixture")
    fig = render_panel("mixture", "gmm_components", snap, ctx())
    assert message(fig) is None
    data = trace(fig, "data, by responsibility")
    assert len(data.marker.color) == len(snap["data"])
    assert data.marker.color == tuple(mixed_colours(snap["traces"]["responsibilities"]))
    contours = trace(fig, "1σ and 2σ contours")
    assert np.isnan(np.asarray(contours.x, dtype=float)).sum() == 3 * 2  # one polyline per component and radius
    means = trace(fig, "means (size ∝ √weight)")
    np.testing.assert_array_equal(means.x, snap["traces"]["means"][:, 0])
    assert means.marker.size[0] > means.marker.size[2]  # w = 0.5 drawn larger than w = 0.2


def test_log_likelihood_chart_plots_the_history_against_the_em_steps():
    snap = synthetic("mixture")
    fig = render_panel("mixture", "gmm_loglik", snap, ctx())
    line = fig.data[0]
    np.testing.assert_array_equal(line.x, snap["traces"]["ll_steps"])
    np.testing.assert_array_equal(line.y, snap["traces"]["ll_history"])
    assert "fall" not in title_of(fig)
    snap["traces"]["ll_history"][5] -= 1.0  # a fall is pointed out
    assert "1 fall" in render_panel("mixture", "gmm_loglik", snap, ctx()).layout.annotations[0].text


def test_every_panel_fits_and_images_say_why_not():
    for key, fig in render("mixture", synthetic("mixture"), ctx()).items():
        assert message(fig) is None, key
        assert_layout_fits(fig, key)
    figs = render("mixture", synthetic("mixture", d=784), ctx(data_shape=(1, 28, 28), bounds=None, true_log_density=None))
    assert "drawn for 2D" in message(figs["gmm_components"]) and "drawn for 2D" in message(figs["gmm_density"])
    assert V.is_image(ctx(data_shape=(1, 28, 28)))
