"""Every family's view draws the numbers it is given, where it should, and never raises."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from playground import draw as V
from playground.draw import charts, layout
from playground.views import render, render_panel, view_for
from tests.playground.views.helpers import (BOX, EQUATIONS, FAMILIES, HISTORY, IMAGE_SHAPE, PANELS, RUNS, ctx, message, synthetic, title_of, trace)


@pytest.mark.parametrize("family", FAMILIES)
def test_render_returns_every_panel_drawn(family):
    assert 1 <= len(PANELS[family]) <= 6  # the page's slots: two wide, four in the grid
    figs = render(family, synthetic(family), ctx())
    assert list(figs) == [k for k, _ in PANELS[family]]
    for key, fig in figs.items():
        assert isinstance(fig, go.Figure), key
        if "points" not in view_for(family).panel(key).data:  # a panel of digits only says why not
            assert message(fig), key
            continue
        assert message(fig) is None, f"{key}: {message(fig)}"
        assert fig.data, key
        assert fig.layout.uirevision == f"{family}:{key}:toy"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_property_is_valid_plotly(family, monkeypatch):
    # Views skip Plotly's validation for speed; with it on, a misspelt property raises.
    monkeypatch.setattr(layout, "VALIDATE", True)
    for snap, c in [(synthetic(family), ctx()), (synthetic(family, d=784), ctx(data_shape=IMAGE_SHAPE, bounds=None,
                                                                              true_log_density=None, modes=None))]:
        for key, fig in render(family, snap, c).items():
            text = message(fig)
            assert text is None or "drawn for 2D" in text or "2D datasets" in text or "known modes" in text, (key, text)
    for fig in [charts.loss_figure(HISTORY), charts.metrics_figure(RUNS, "kl"), charts.modes_timeline(RUNS), charts.elbo_figure(HISTORY),
                V.empty_figure("nothing")]:
        assert isinstance(fig, go.Figure)


def test_unknown_family_gets_a_samples_panel():
    snap = synthetic("vae")
    figs = render("no_such_family", snap, ctx())
    assert list(figs) == ["samples"]
    np.testing.assert_array_equal(trace(figs["samples"], "samples").x, snap["traces"]["samples"][:, 0])


def test_sample_scatter_equals_samples_and_axes_equal_bounds():
    snap = synthetic("vae")
    fig = render_panel("vae", "vae_samples", snap, ctx())
    np.testing.assert_array_equal(trace(fig, "samples").x, snap["traces"]["samples"][:, 0])
    np.testing.assert_array_equal(trace(fig, "samples").y, snap["traces"]["samples"][:, 1])
    np.testing.assert_array_equal(trace(fig, "data").y, snap["data"][:, 1])
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.yaxis.range) == BOX[1]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


@pytest.mark.parametrize("family,key", [("gan", "gan_critic"), ("gan", "gan_warp"), ("vae", "vae_manifold"),
                                        ("vae", "vae_recon"), ("diffusion", "diff_reverse"), ("diffusion", "diff_field")])
def test_plane_panels_use_the_dataset_bounds(family, key):
    fig = render_panel(family, key, synthetic(family), ctx())
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.yaxis.range) == BOX[1]
    assert fig.layout.xaxis.constrain == "domain"  # the range is kept exactly; the plot area shrinks instead


def test_colours_are_consistent_across_families():
    for family, key in [("gan", "gan_critic"), ("vae", "vae_samples"), ("diffusion", "diff_reverse")]:
        fig = render_panel(family, key, synthetic(family), ctx())
        reals = [t.marker.color for t in fig.data if t.name in ("real", "data")]
        assert reals and all(c == V.REAL for c in reals), key
    fig = render_panel("gan", "gan_critic", synthetic("gan"), ctx())
    assert trace(fig, "generated").marker.color == V.GEN


@pytest.mark.parametrize("family,key,source", [("vae", "vae_samples", "samples"), ("gan", "gan_critic", "samples"),
                                               ("flow", "flow_density", "inverse_states"),
                                               ("diffusion", "diff_reverse", "trajectory")])
def test_image_sample_panels_show_digit_tiles(family, key, source):
    snap = synthetic(family, d=784)
    fig = render_panel(family, key, snap, ctx(data_shape=IMAGE_SHAPE, bounds=None))
    assert message(fig) is None
    tile = fig.data[-1].z
    assert tile.shape == (8 * 28 + 7 * 2, 8 * 28 + 7 * 2)
    first = snap["traces"][source][-1][0] if source != "samples" else snap["traces"]["samples"][0]
    np.testing.assert_array_equal(tile[:28, :28], first.reshape(28, 28))
    assert np.isnan(tile[:28, 28:30]).all()  # gaps between digits
    assert tuple(fig.layout.yaxis.range) == (27.5, -0.5) or fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_all_nan_traces_give_messages_not_errors(family):
    snap = synthetic(family)
    snap["traces"] = {k: np.full_like(v, np.nan) for k, v in snap["traces"].items()}
    for key, fig in render(family, snap, ctx()).items():
        assert isinstance(fig, go.Figure)
        assert message(fig), key


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_keys_and_odd_snapshots_give_messages(family):
    for snap in [None, {}, {"step": 3, "traces": {}}, {"step": 3, "error": "RuntimeError: boom"},
                 {"step": 3, "traces": {"unrelated": np.zeros(3)}}]:
        for key, fig in render(family, snap, ctx()).items():
            assert message(fig), (key, snap)
    figs = render(family, {"step": 3, "error": "RuntimeError: boom"}, ctx())
    assert all("boom" in message(f) for f in figs.values())


def test_inf_and_partial_nan_are_drawn_with_a_note():
    snap = synthetic("vae")
    s = snap["traces"]["samples"]
    s[:3] = np.nan
    s[3] = np.inf
    fig = render_panel("vae", "vae_samples", snap, ctx())
    assert message(fig) is None
    assert "4 of 500 not finite" in title_of(fig)
    assert np.isnan(trace(fig, "samples").x[:4]).all()
    # Bad ctx values fall back to the data's extent rather than failing.
    fig = render_panel("vae", "vae_samples", synthetic("vae"), ctx(bounds="nonsense", grid_resolution=None))
    assert message(fig) is None and fig.layout.xaxis.range[0] < fig.layout.xaxis.range[1]


def test_equations_cover_every_family_and_name_the_terms():
    assert set(EQUATIONS) == set(PANELS)
    terms = {"flow": ["nll", "log_det"], "gan": ["loss_D", "loss_G"], "vae": ["recon", "kl", "elbo"],
             "diffusion": ["loss"], "continuous": ["loss", "cfm", "pair_cost", "nll", "kinetic"],
             "ebm": ["loss", "cd", "E_data", "E_model"], "autoregressive": ["loss", "nll"],
             "mixture": ["loss", "log_likelihood", "objective"], "score": ["loss", "score_error"],
             "sde": ["loss", "dsm", "score_error"]}
    for family, text in EQUATIONS.items():
        assert text.count("$$") >= 2 and text.count("$$") % 2 == 0, family
        assert text.count("$") % 2 == 0, family
        for term in terms[family]:
            assert f"`{term}`" in text, (family, term)


def title_text_lines(fig) -> list[tuple[str, int]]:
    """(plain text, font size) of each line of the panel's title annotation."""
    (a,) = [a for a in fig.layout.annotations if a.name == "title"]
    out = []
    for line in a.text.split("<br>"):
        size = int(re.search(r"font-size:(\d+)px", line).group(1)) if "font-size" in line else a.font.size
        out.append((re.sub(r"<[^>]+>", "", line), size))
    return out


def assert_layout_fits(fig, where: str) -> None:
    """The title sits above the plot and fits the app's narrowest usual panel; a legend sits at the foot."""
    lines = title_text_lines(fig)
    for text, size in lines:
        assert V.text_width(text, size) <= V.TITLE_ROOM, (where, text)
    assert fig.layout.margin.t >= V.TOP_MARGIN + V.LINE_PX * (len(lines) - 1), where
    (a,) = [a for a in fig.layout.annotations if a.name == "title"]
    assert (a.yref, a.y, a.yanchor) == ("paper", 1, "bottom") and a.yshift > 0, where  # above the plot area
    if fig.layout.showlegend:
        # anchored to the bottom of the figure: Plotly reserves the rows it wraps onto as bottom margin,
        # however many the browser's width makes, so they can reach neither the title nor the plot
        leg = fig.layout.legend
        assert (leg.yref, leg.y, leg.yanchor, leg.orientation) == ("container", 0, "bottom", "h"), where
        # x-axis ticks and titles claim their own height, so the legend goes below them rather than over
        assert fig.layout.template.layout.xaxis.automargin is True, where


def every_figure():
    image_ctx = ctx(data_shape=IMAGE_SHAPE, bounds=None, true_log_density=None, modes=None)
    nan = synthetic("vae")
    nan["traces"]["samples"][:3] = np.nan
    for family in FAMILIES:
        for label, snap, c in [("2D", synthetic(family), ctx()), ("digits", synthetic(family, d=784), image_ctx),
                               ("no data", {}, ctx())]:
            for key, fig in render(family, snap, c).items():
                yield f"{family}/{key}/{label}", fig
    for family, key in [("vae", "vae_samples"), ("vae", "vae_latent"), ("gan", "gan_critic"),
                        ("diffusion", "diff_reverse")]:
        snap = synthetic(family)
        for k, v in snap["traces"].items():
            if v.ndim == 2 and k != "z_var":
                v[:3] = np.nan
        yield f"{family}/{key}/nan", render_panel(family, key, snap, ctx())
    unbounded, eps = _without(synthetic("gan"), "critic_prob"), _without(synthetic("diffusion"), "score_field")
    yield "gan/gan_optimal/unbounded", render_panel("gan", "gan_optimal", unbounded, ctx())
    yield "diffusion/diff_field/eps", render_panel("diffusion", "diff_field", eps, ctx())
    yield "gan/gan_modes/3σ", render_panel("gan", "gan_modes", synthetic("gan"), ctx(mode_std=0.2))
    yield from [("loss", charts.loss_figure(HISTORY)), ("metrics", charts.metrics_figure(RUNS, "kl")),
                ("modes timeline", charts.modes_timeline(RUNS)), ("elbo", charts.elbo_figure(HISTORY)),
                ("empty", V.empty_figure("nothing", "A title"))]


def _without(snap: dict, key: str) -> dict:
    del snap["traces"][key]
    return snap


def test_every_title_fits_and_every_legend_sits_below_the_plot():
    figs = list(every_figure())
    assert len(figs) > 50
    for where, fig in figs:
        assert_layout_fits(fig, where)
    legends = [where for where, fig in figs if fig.layout.showlegend]
    assert {"gan/gan_modes/2D", "vae/vae_latent/2D", "diffusion/diff_reverse/2D"} <= set(legends)


def test_long_titles_are_split_into_notes():
    # These three ran off a panel as one line; the details now go on a note line under the title.
    snap, c = synthetic("gan"), ctx(mode_std=1.0)
    for family, key, snapshot, title, note in [
            ("gan", "gan_optimal", snap, "Learned vs optimal discriminator", "Gaussian KDE of 500 samples"),
            ("gan", "gan_modes", snap, "Samples nearest each mode: 4 of 4 covered", "within 3σ of the mode"),
            ("diffusion", "diff_field", synthetic("diffusion"), "Learned score ∇ log p_t(x) at t = 0.30",
             "arrow length ∝ √|field|")]:
        lines = title_text_lines(render_panel(family, key, snapshot, c))
        heads = [text for text, size in lines if size == V.TITLE_SIZE]
        notes = [text for text, size in lines if size == V.NOTE_SIZE]
        assert " ".join(heads) == title and len(heads) + len(notes) == len(lines), key
        assert note in " ".join(notes), key
