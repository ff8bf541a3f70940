"""The Concepts tab: every figure builds as valid Plotly and draws core's numbers; the handlers answer bad
knobs with a message; the tab builds and wires its knobs."""

import gradio as gr
import numpy as np
import pytest

from core.concepts import classifiers as CL
from core.concepts import gradients as GR
from core.concepts import likelihood_quality as LQ
from playground import concepts as P
from playground.draw import layout
from tests.playground.views.helpers import message, trace


@pytest.fixture(autouse=True)
def validate(monkeypatch):
    monkeypatch.setattr(layout, "VALIDATE", True)  # every property a valid Plotly property


@pytest.mark.parametrize("f,baseline", [("z^2", False), ("z^2", True), ("sin z", True)])
def test_gradient_figures_draw_the_closed_forms_and_the_monte_carlo(f, baseline):
    var_fig, spread_fig, text = P.on_gradients(f, 0.5, 0.8, baseline)
    r = GR.gradient_variance(f, 0.5, 0.8, baseline)
    sf = "score function" + (f" − baseline {r.baseline:.3g}" if baseline else "")
    assert np.allclose(trace(var_fig, f"{sf}: closed form").y, r.exact_sf)
    assert np.allclose(trace(var_fig, "pathwise: closed form").y, r.exact_rp)
    assert np.allclose(trace(var_fig, "pathwise: Monte Carlo").y, r.var_rp)
    assert var_fig.layout.xaxis.type == "log" and var_fig.layout.yaxis.type == "log"
    # the histograms each hold every single-sample estimate once, and the true gradient is marked
    for name in ("score function", "pathwise"):
        assert trace(spread_fig, name, "bar").y.sum() == pytest.approx(1.0)
    assert tuple(trace(spread_fig, "true gradient").x) == (r.grad, r.grad)
    assert f"{r.grad:.4g}" in text and f"{r.exact_sf[0]:.4g}" in text


def test_likelihood_figures_show_the_gap_under_its_bound():
    samples, gap, text = P.on_likelihood("eight_gaussians", 0.05)
    r = LQ.likelihood_gap("eight_gaussians", 0.05)
    assert len(trace(samples, "from the data p").x) == r.from_p.sum()
    assert len(trace(samples, "from the noise u").x) == (~r.from_p).sum()
    bound, curve = trace(gap, "bound log(1/w)"), trace(gap, "gap E_p[log p − log q]")
    assert np.allclose(bound.y, -np.log(bound.x)) and np.all(np.asarray(curve.y) <= np.asarray(bound.y) + 1e-9)
    assert trace(gap, "chosen w").y[0] == pytest.approx(r.gap)
    assert f"{r.gap:.3f}" in text and f"{r.bound:.3f}" in text and "95% of q's samples are noise" in text


def _on_line(fig, name, w, b):
    t = trace(fig, name)
    ends = np.stack([t.x, t.y], 1)
    assert np.allclose(ends @ np.asarray(w) + b, 0.0, atol=1e-9)  # both ends lie on w . x + b = 0


@pytest.mark.parametrize("source", ["correlated Gaussians", "two_moons"])
def test_classifier_figures_draw_each_fitted_line_and_both_learning_curves(source):
    plane, curves_fig, text = P.on_classifiers(source, 0.3, 8)
    rules = CL.decision_rules(source, 0.3, 8)
    _on_line(plane, "logistic regression", *rules.rule_lr)
    _on_line(plane, "naive Bayes", *rules.rule_nb)
    assert len(trace(plane, "class 0").x) == len(trace(plane, "class 1").x) == 8
    curves = P._curves(source, 0.3)
    assert np.allclose(trace(curves_fig, "logistic regression").y, curves.err_lr)
    assert np.allclose(trace(curves_fig, "naive Bayes").y, curves.err_nb)
    if source == "correlated Gaussians":
        _on_line(plane, "best (Bayes) rule", *rules.rule_bayes)
        assert trace(curves_fig, f"Bayes error {curves.bayes_error:.3f}").y[0] == pytest.approx(curves.bayes_error)
    assert f"{curves.err_nb[0]:.3f}" in text


def test_a_vertical_rule_is_drawn_across_the_box():
    xs, ys = P._rule_line(np.array([2.0, 0.0]), -1.0, ((-4, 4), (-3, 3)))
    assert np.allclose(xs, 0.5) and tuple(ys) == (-3, 3)


def test_bad_knobs_give_a_message_in_every_panel_not_an_exception():
    for out in (P.on_gradients("z^2", 1.0, 0.0, False), P.on_likelihood("no_such_data", 0.1),
                P.on_classifiers("correlated Gaussians", 0.99, 10)):
        figs, text = out[:-1], out[-1]
        assert all(message(fig) for fig in figs) and text.startswith("**")
    assert "s > 0" in message(P.on_gradients("z^2", 1.0, 0.0, False)[0])


def test_the_tab_builds_and_each_knob_redraws_its_own_demo():
    with gr.Blocks() as demo:
        with gr.Tabs():
            tab = P.concepts_tab()
    assert isinstance(tab, gr.Tab) and tab.label == "Concepts"
    fns = {fn.name for fn in demo.fns.values()}
    assert {"on_open", "on_gradients", "on_likelihood", "on_classifiers"} <= fns
    opened = [fn for fn in demo.fns.values() if fn.name == "on_open"]
    assert len(opened) == 1 and len(opened[0].inputs) == 9 and len(opened[0].outputs) == 9
    assert len(P.on_open("z^2", 1.0, 1.0, False, "eight_gaussians", 0.01, "correlated Gaussians", 0.3, 10)) == 9
