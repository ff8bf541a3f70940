"""The score view: the learned field beside the exact one with their error, and the chains."""

from __future__ import annotations

import re

import numpy as np
import pytest

from playground.views import all_controls, render_panel, view_for
from playground.draw.fields import relative_error
from tests.playground.views.helpers import BOX, G, N, ctx, message, plane_grid, trace, title_of


def snapshot(chain_sigma=None, exact=None, level=(1.0, 0.3), d: int = 2, metrics=None) -> dict:
    rng = np.random.default_rng(0)
    grid = plane_grid()
    S = 21
    tr = {"chain": rng.normal(size=(S, 120, d)).astype(np.float32),
          "chain_sigma": (np.full(S, 0.2) if chain_sigma is None else chain_sigma).astype(np.float32),
          "field_level": np.array(level, dtype=np.float32)}
    if d == 2:
        tr["score_field"] = -grid  # the score of N(0, I)
    snap = {"step": 5, "time": 1.0, "status": "running", "terms": {}, "traces": tr,
            "data": rng.normal(size=(N, 2)).astype(np.float32) if d == 2 else rng.random((70, 1, 28, 28)).astype(np.float32)}
    if exact is not None:
        snap["true_score_field"] = exact
    if metrics is not None:
        snap["metrics"] = metrics
    return snap


def _title(fig) -> str:
    """The title and its note as one line of plain text (the page wraps them in HTML)."""
    return " ".join(re.sub(r"<[^>]+>", " ", title_of(fig)).split())


def _arrow_cosines(fig, name: str, axis: str) -> np.ndarray:
    seg = next(t for t in fig.data if t.name == name and t.type == "scatter" and t.mode == "lines" and t.xaxis == axis)
    xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2).astype(np.float64)
    o, d = xy[:, 0], xy[:, 1] - xy[:, 0]
    return (d * -o).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(o, axis=1))


def test_the_field_panel_draws_learned_beside_exact_with_their_relative_error():
    grid = plane_grid()
    fig = render_panel("score", "score_field", snapshot(exact=-0.8 * grid), ctx())
    assert message(fig) is None
    title = _title(fig)
    assert "σ = 0.3" in title
    # sum |-x + 0.8 x|^2 / sum |0.8 x|^2 = 0.2^2 / 0.8^2
    assert f"{0.04 / 0.64:.3g}" in title
    np.testing.assert_allclose(_arrow_cosines(fig, "learned s_θ(x)", "x"), 1.0, atol=1e-5)
    np.testing.assert_allclose(_arrow_cosines(fig, "exact ∇ log p_σ(x)", "x2"), 1.0, atol=1e-5)
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range == tuple(BOX[0])


def test_the_field_panel_says_when_there_is_no_exact_score():
    fig = render_panel("score", "score_field", snapshot(metrics={"score_error": 0.125}), ctx())
    title = _title(fig)
    assert message(fig) is None and "no exact score" in title and "beside exact" not in title and "score_error over the data = 0.125" in title
    assert not any(t.name == "exact ∇ log p_σ(x)" for t in fig.data)
    trace(fig, "learned s_θ(x)", "scatter")


def test_relative_error_skips_points_without_an_exact_score():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    b = np.array([[2.0, 0.0], [0.0, 2.0], [np.nan, np.nan]])
    assert relative_error(a, b) == pytest.approx(1.0 / 8.0)


def test_the_chains_panel_names_its_sampler_and_ends_at_the_samples():
    snap = snapshot(chain_sigma=np.repeat(np.geomspace(3.0, 0.05, 4), 5)[np.r_[0, np.arange(20)]])
    fig = render_panel("score", "score_chains", snap, ctx())
    assert "annealed Langevin, σ 3 → 0.05" in _title(fig)
    end = trace(fig, "end: samples")
    assert len(end.x) == 100
    np.testing.assert_array_equal(end.x, snap["traces"]["chain"][-1][:100, 0])
    fig = render_panel("score", "score_chains", snapshot(), ctx())
    assert "Langevin at σ = 0.2" in _title(fig)


def test_digits_get_chains_and_a_reason_for_no_field():
    c = ctx(data_shape=(1, 28, 28), true_log_density=None, modes=None)
    snap = snapshot(d=28 * 28)
    snap["traces"]["chain"] = snap["traces"]["chain"].reshape(21, 120, 1, 28, 28) * 0 + 0.5
    assert "2D data" in message(render_panel("score", "score_field", snap, c))
    fig = render_panel("score", "score_chains", snap, c)
    assert message(fig) is None and fig.data


def test_the_sigma_control_and_the_equations():
    view = view_for("score")
    sigma = all_controls()["sigma"]
    assert sigma.lo <= 0.05 and sigma.hi >= 2.0 and sigma.lo <= sigma.default <= sigma.hi
    assert [c.name for c in view.controls] == ["sigma"]
    for term in ("dsm", "ssm", "ncsn", r"\operatorname{tr}", "score_error"):
        assert term in view.equations
    s = snapshot()
    np.testing.assert_array_equal(view.export.samples(s["traces"]), s["traces"]["chain"][-1])
    assert G == 60


def _digit_snapshot(levels=(2.0, 1.0, 0.5, 0.25), per_level=3):
    """A chain of len(levels) * per_level + 1 digit states, the start at the first level."""
    from tests.playground.views.helpers import synthetic

    snap = synthetic("score", d=784)
    sig = np.concatenate([[levels[0]], np.repeat(levels, per_level)]).astype(np.float32)
    rng = np.random.default_rng(0)
    snap["traces"]["chain"] = rng.random((sig.size, 8, 784)).astype(np.float32)
    snap["traces"]["chain_sigma"] = sig
    return snap


def test_digits_get_the_annealed_langevin_strip_at_the_end_of_each_level():
    snap = _digit_snapshot()
    c = ctx(data_shape=(1, 28, 28), bounds=None)
    fig = render_panel("score", "score_strip", snap, c)
    assert message(fig) is None and fig.data[-1].type == "heatmap"
    # the start (0), then the last state of each level: 3, 6, 9, 12; five frames
    assert fig.layout.xaxis.title.text == "columns: start, σ = 2, σ = 1, σ = 0.5, σ = 0.25"
    tile, chain = fig.data[-1].z, snap["traces"]["chain"]
    assert tile.shape == (4 * 28 + 3 * 2, 5 * 28 + 4 * 2)
    for col, i in enumerate([0, 3, 6, 9, 12]):
        np.testing.assert_array_equal(tile[:28, col * 30: col * 30 + 28], chain[i, 0].reshape(28, 28))
    assert "(12 steps)" in title_of(fig)
    # more levels than frames: six, evenly among the start and the ten levels' ends, the last level among them
    levels = np.geomspace(3, 0.05, 10)
    snap = _digit_snapshot(levels=tuple(levels), per_level=2)
    label = render_panel("score", "score_strip", snap, c).layout.xaxis.title.text
    assert label == "columns: start, " + ", ".join(f"σ = {levels[j]:.2g}" for j in (1, 3, 5, 7, 9))


def test_the_strip_says_why_not_on_the_plane_and_the_field_says_why_not_on_digits():
    from tests.playground.views.helpers import synthetic

    assert "digits" in message(render_panel("score", "score_strip", synthetic("score"), ctx()))
    c = ctx(data_shape=(1, 28, 28), bounds=None)
    assert "2D data" in message(render_panel("score", "score_field", _digit_snapshot(), c))
