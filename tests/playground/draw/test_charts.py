"""Charts over training time: loss terms, metrics across runs, modes covered, the ELBO."""

from __future__ import annotations


import numpy as np

from playground.draw import charts
from tests.playground.views.helpers import HISTORY, RUNS, message, title_of, trace


def test_loss_figure_puts_positive_terms_on_a_log_axis():
    fig = charts.loss_figure(HISTORY, x="step")
    assert {t.name for t in fig.data} == {"loss", "recon", "kl", "elbo"}
    np.testing.assert_allclose(trace(fig, "kl").y, [r["kl"] for r in HISTORY])
    np.testing.assert_allclose(trace(fig, "kl").x, [r["step"] for r in HISTORY])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "linear"
    assert trace(fig, "elbo").yaxis == "y2" and trace(fig, "loss").yaxis in (None, "y")
    fig = charts.loss_figure(HISTORY, x="time")
    np.testing.assert_allclose(trace(fig, "loss").x, [r["time"] for r in HISTORY])
    only_positive = charts.loss_figure([{"step": i, "loss": 1.0 / i} for i in range(1, 5)])
    assert only_positive.layout.yaxis.type == "log" and "yaxis2" not in only_positive.layout.to_plotly_json()


def test_loss_figure_skips_nan_and_handles_empty():
    hist = [dict(r) for r in HISTORY]
    hist[3]["loss"] = float("nan")
    hist[4]["loss"] = float("inf")
    y = trace(charts.loss_figure(hist), "loss").y
    assert np.isnan(y[3]) and np.isnan(y[4]) and np.isfinite(y[5])
    assert message(charts.loss_figure([]))
    assert message(charts.loss_figure([{"step": 1, "loss": float("nan")}]))


def test_metrics_figure_one_line_per_run():
    fig = charts.metrics_figure(RUNS, "kl", x="time")
    assert [t.name for t in fig.data] == ["run A", "run B"]
    np.testing.assert_allclose(fig.data[1].y, [2.0 / i**2 for i in range(1, 5)])
    np.testing.assert_allclose(fig.data[1].x, [2.0 * i for i in range(1, 5)])
    assert fig.layout.yaxis.type == "log"  # positive and spanning 1/64 to 2
    assert message(charts.metrics_figure(RUNS, "mmd"))
    assert message(charts.metrics_figure({}, "kl"))


def test_modes_timeline_shows_collapse_against_all_modes():
    fig = charts.modes_timeline(RUNS)
    a, b = trace(fig, "run A"), trace(fig, "run B")
    np.testing.assert_array_equal(a.y, [min(i, 8) for i in range(1, 9)])
    np.testing.assert_array_equal(b.y, [1] * 4)
    assert fig.layout.shapes[0].y0 == 8 and fig.layout.yaxis.range[1] == 8.5
    np.testing.assert_allclose(trace(fig, "run A: high-quality fraction").y, [0.1 * i for i in range(1, 9)])
    assert message(charts.modes_timeline({"x": [{"step": 1, "kl": 1.0}]}))


def test_elbo_figure_band_is_recon_plus_kl():
    fig = charts.elbo_figure(HISTORY)
    recon, neg_elbo, kl = fig.data
    np.testing.assert_allclose(recon.y, [r["recon"] for r in HISTORY])
    np.testing.assert_allclose(neg_elbo.y, [r["recon"] + r["kl"] for r in HISTORY])
    assert neg_elbo.fill == "tonexty"
    np.testing.assert_allclose(kl.y, [r["kl"] for r in HISTORY])
    assert message(charts.elbo_figure([{"step": 1, "loss": 1.0}]))


def test_metrics_figure_draws_the_noise_floor_and_names_estimates():
    fig = charts.metrics_figure(RUNS, "kl", floors={"kl": 0.05, "mmd": 0.001}, notes={"run B": "IWAE estimate"})
    floor = trace(fig, "true vs true samples")
    assert list(floor.y) == [0.05, 0.05] and floor.line.dash == "dash"
    assert floor.x[0] == 100 and floor.x[1] == 800  # across every run's steps
    assert [t.name for t in fig.data[:2]] == ["run A", "run B (IWAE estimate)"]
    assert "two sets of true samples" in title_of(fig)
    plain = charts.metrics_figure(RUNS, "kl")
    assert [t.name for t in plain.data] == ["run A", "run B"]  # no floor known: no line
    mmd_runs = {"a": [{"step": 1, "time": 1.0, "mmd": 0.01}]}
    assert "(IWAE" not in charts.metrics_figure(mmd_runs, "mmd", notes={"a": "IWAE estimate"}).data[0].name


def test_the_published_figure_is_a_line_beside_the_runs_even_after_one_record():
    from playground.draw import charts

    fig = charts.metrics_figure({"vae": [{"step": 40, "time": 1.0, "nll": 180.0}]}, "nll",
                                references={"nll": (86.76, "Burda et al. 2016")})
    ref = [t for t in fig.data if t.name and t.name.startswith("published")]
    assert len(ref) == 1 and list(ref[0].y) == [86.76, 86.76] and ref[0].x[1] > ref[0].x[0]
    assert "Burda et al. 2016" in fig.layout.annotations[0].text or "Burda et al. 2016" in str(fig.layout)
    none = charts.metrics_figure({"vae": [{"step": 40, "time": 1.0, "nll": 180.0}]}, "nll")
    assert not [t for t in none.data if t.name and t.name.startswith("published")]
