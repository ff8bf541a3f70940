"""The live views draw the numbers they are given, where they should, and never raise."""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import time

import numpy as np
import plotly.graph_objects as go
import pytest

from playground import equations, views_common
from playground import figures as F
from playground import views_gan

N, G, L, M = 500, 60, 6, 15
BOX = ((-4.0, 4.0), (-3.0, 3.0))
IMAGE_SHAPE = (1, 28, 28)


def plane_grid(box=BOX, g=G):
    xs, ys = np.linspace(*box[0], g), np.linspace(*box[1], g)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def synthetic(family: str, seed: int = 0, d: int = 2) -> dict:
    """A snapshot with the documented trace shapes (D = d, n = N, grid G x G)."""
    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    grid = plane_grid()
    n = N if d == 2 else 70  # digits: enough for an 8 x 8 tile
    if family == "flow":
        tr = {"forward_states": f32(L + 1, n, d), "inverse_states": f32(L + 1, n, d), "log_dets": f32(L)}
        if d == 2:
            tr["grid_states"] = np.stack([grid * (1 + 0.1 * l) for l in range(L + 1)])
            tr["log_density"] = (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32)
    elif family == "gan":
        tr = {"samples": f32(n, d), "noise_grid": plane_grid(((-2, 2), (-2, 2)), M), "warped_grid": f32(M * M, d),
              "critic_grad": f32(n, d)}
        if d == 2:
            tr["critic"] = f32(G * G)
            tr["critic_prob"] = rng.random(G * G).astype(np.float32)
    elif family == "vae":
        tr = {"z_mean": f32(n, 2), "z_var": rng.random((n, 2)).astype(np.float32), "recon": f32(n, d),
              "latent_grid": plane_grid(((-3, 3), (-3, 3)), M), "decoded_grid": f32(M * M, d), "samples": f32(n, d)}
    elif family == "diffusion":
        tr = {"trajectory": f32(41, n, d), "trajectory_t": np.linspace(1, 0, 41).astype(np.float32),
              "forward": f32(6, n, d), "forward_t": np.linspace(0, 1, 6).astype(np.float32)}
        if d == 2:
            tr["eps_field"], tr["score_field"] = f32(G * G, 2), f32(G * G, 2)
    else:
        raise ValueError(family)
    if d != 2:  # digits in [0, 1]
        tr = {k: (1 / (1 + np.exp(-v)) if v.ndim >= 2 and v.shape[-1] == d else v) for k, v in tr.items()}
    data = f32(N, 2) if d == 2 else rng.random((n, *IMAGE_SHAPE)).astype(np.float32)
    return {"step": 7, "time": 1.5, "status": "running", "terms": {}, "traces": tr, "data": data}


def ctx(**kw) -> dict:
    grid = plane_grid()
    c = {"bounds": BOX, "grid_resolution": G, "dataset": "toy", "data_shape": (2,),
         "true_log_density": (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32),
         "modes": np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]), "labels": None, "field_t": 0.3}
    c.update(kw)
    return c


def message(fig) -> str | None:
    for a in fig.layout.annotations:
        if a.name == "message":
            return a.text
    return None


def trace(fig, name: str, type_: str | None = None):
    found = [t for t in fig.data if t.name == name and (type_ is None or t.type == type_)]
    assert found, f"no trace named {name!r}; have {[t.name for t in fig.data]}"
    return found[0]


FAMILIES = list(F.PANELS)


# ---- every panel is drawn ---------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_render_returns_every_panel_drawn(family):
    assert 1 <= len(F.PANELS[family]) <= 4
    figs = F.render(family, synthetic(family), ctx())
    assert list(figs) == [k for k, _ in F.PANELS[family]]
    for key, fig in figs.items():
        assert isinstance(fig, go.Figure), key
        assert message(fig) is None, f"{key}: {message(fig)}"
        assert fig.data, key
        assert fig.layout.uirevision == f"{family}:{key}:toy"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_property_is_valid_plotly(family, monkeypatch):
    # Views skip Plotly's validation for speed; with it on, a misspelt property raises.
    monkeypatch.setattr(views_common, "VALIDATE", True)
    for snap, c in [(synthetic(family), ctx()), (synthetic(family, d=784), ctx(data_shape=IMAGE_SHAPE, bounds=None,
                                                                              true_log_density=None, modes=None))]:
        for key, fig in F.render(family, snap, c).items():
            text = message(fig)
            assert text is None or "drawn for 2D" in text or "2D datasets" in text or "known modes" in text, (key, text)
    for fig in [F.loss_figure(HISTORY), F.metrics_figure(RUNS, "kl"), F.modes_timeline(RUNS), F.elbo_figure(HISTORY),
                F.empty_figure("nothing")]:
        assert isinstance(fig, go.Figure)


def test_unknown_family_gets_a_samples_panel():
    snap = synthetic("vae")
    figs = F.render("ebm", snap, ctx())
    assert list(figs) == ["samples"]
    np.testing.assert_array_equal(trace(figs["samples"], "samples").x, snap["traces"]["samples"][:, 0])


# ---- the numbers drawn are the numbers given ------------------------------------------
def test_sample_scatter_equals_samples_and_axes_equal_bounds():
    snap = synthetic("vae")
    fig = F.render_panel("vae", "vae_samples", snap, ctx())
    np.testing.assert_array_equal(trace(fig, "samples").x, snap["traces"]["samples"][:, 0])
    np.testing.assert_array_equal(trace(fig, "samples").y, snap["traces"]["samples"][:, 1])
    np.testing.assert_array_equal(trace(fig, "data").y, snap["data"][:, 1])
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.yaxis.range) == BOX[1]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


@pytest.mark.parametrize("family,key", [("gan", "gan_critic"), ("gan", "gan_warp"), ("vae", "vae_manifold"),
                                        ("vae", "vae_recon"), ("diffusion", "diff_reverse"), ("diffusion", "diff_field")])
def test_plane_panels_use_the_dataset_bounds(family, key):
    fig = F.render_panel(family, key, synthetic(family), ctx())
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.yaxis.range) == BOX[1]
    assert fig.layout.xaxis.constrain == "domain"  # the range is kept exactly; the plot area shrinks instead


def test_colours_are_consistent_across_families():
    for family, key in [("gan", "gan_critic"), ("vae", "vae_samples"), ("diffusion", "diff_reverse")]:
        fig = F.render_panel(family, key, synthetic(family), ctx())
        reals = [t.marker.color for t in fig.data if t.name in ("real", "data")]
        assert reals and all(c == F.REAL for c in reals), key
    fig = F.render_panel("gan", "gan_critic", synthetic("gan"), ctx())
    assert trace(fig, "generated").marker.color == F.GEN


def test_flow_strip_draws_the_layers_in_order_data_to_base():
    snap = synthetic("flow")
    tr = snap["traces"]
    fig = F.render_panel("flow", "flow_layers", snap, ctx())
    # Panel 1 is data space (inverse index L), the last panel is the base (index 0).
    on = lambda s, name: [t for t in fig.data if t.name == name and (t.xaxis or "x") == f"x{s}"][0]  # noqa: E731
    np.testing.assert_array_equal(on("", "samples").x, tr["inverse_states"][L][:, 0])
    np.testing.assert_array_equal(on("", "data").y, tr["forward_states"][0][:, 1])
    last = str(len([a for a in fig.layout if str(a).startswith("xaxis")]))
    np.testing.assert_array_equal(on(last, "samples").x, tr["inverse_states"][0][:, 0])
    np.testing.assert_array_equal(on(last, "data").x, tr["forward_states"][L][:, 0])
    # The base panel's mesh runs along rows of grid_states[0]: its first line is row 0.
    mesh = on(last, "base grid")
    along = views_common.pick(G, 40)  # points kept along each line, ends included
    first_line = np.stack([mesh.x[: len(along)], mesh.y[: len(along)]], 1)
    np.testing.assert_allclose(first_line, tr["grid_states"][0].reshape(G, G, 2)[0][along])
    assert along[0] == 0 and along[-1] == G - 1
    assert np.isnan(mesh.x[len(along)])  # lines are separated by gaps
    assert tuple(fig.layout.xaxis.range) == BOX[0]  # data space uses the dataset's bounds


def test_flow_density_heatmaps_equal_exp_log_density():
    snap = synthetic("flow")
    c = ctx(true_log_density=snap["traces"]["log_density"] - 1.0)
    fig = F.render_panel("flow", "flow_density", snap, c)
    model, true = fig.data
    np.testing.assert_allclose(model.z, np.exp(snap["traces"]["log_density"]).reshape(G, G), rtol=1e-6)
    np.testing.assert_allclose(true.z, np.exp(c["true_log_density"].astype(np.float64)).reshape(G, G), rtol=1e-6)
    np.testing.assert_allclose(model.x, np.linspace(*BOX[0], G))
    np.testing.assert_allclose(model.y, np.linspace(*BOX[1], G))
    assert model.zmax == true.zmax == pytest.approx(float(np.exp(c["true_log_density"].astype(np.float64)).max()))


def test_flow_logdet_bars_and_base_moment():
    snap = synthetic("flow")
    fig = F.render_panel("flow", "flow_logdet", snap, ctx())
    np.testing.assert_array_equal(fig.data[0].y, snap["traces"]["log_dets"])
    np.testing.assert_array_equal(fig.data[0].x, np.arange(1, L + 1))
    z = snap["traces"]["forward_states"][-1]
    fig = F.render_panel("flow", "flow_base", snap, ctx())
    assert f"{float((z.astype(np.float64) ** 2).sum(1).mean() / 2):.2f}" in fig.layout.annotations[0].text
    circle = trace(fig, "N(0, I): 1σ, 2σ")
    r = np.hypot(circle.x, circle.y)
    r = r[np.isfinite(r)]
    assert np.all(np.isclose(r, 1) | np.isclose(r, 2)) and np.isclose(r, 1).any() and np.isclose(r, 2).any()


def test_critic_heatmap_is_the_critic_on_the_grid():
    snap = synthetic("gan")
    fig = F.render_panel("gan", "gan_critic", snap, ctx())
    heat = fig.data[0]
    np.testing.assert_array_equal(heat.z, snap["traces"]["critic_prob"].reshape(G, G))
    assert (heat.zmin, heat.zmax) == (0, 1)
    # Plotly puts z[i][j] at (x[j], y[i]); the grid's point i*G + j is (xs[j], ys[i]).
    grid = plane_grid()
    assert (heat.x[5], heat.y[7]) == pytest.approx(tuple(grid[7 * G + 5]))


def test_arrows_point_along_the_gradient_with_normalised_length():
    snap = synthetic("gan")
    fig = F.render_panel("gan", "gan_critic", snap, ctx())
    seg = trace(fig, "dD/dx (generator's pull)")
    xy = np.stack([seg.x, seg.y], 1).reshape(-1, 3, 2)  # origin, tip, gap
    assert np.isnan(xy[:, 2]).all()
    k = xy.shape[0]
    assert k == min(views_gan.MAX_ARROWS, N)
    np.testing.assert_allclose(xy[:, 0], snap["traces"]["samples"][:k], rtol=1e-6)
    d = xy[:, 1] - xy[:, 0]
    g = snap["traces"]["critic_grad"][:k].astype(np.float64)
    cos = (d * g).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(g, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    lengths = np.linalg.norm(d, axis=1)
    assert lengths.max() == pytest.approx(views_gan.ARROW_FRACTION * (BOX[0][1] - BOX[0][0]), rel=1e-5)
    np.testing.assert_allclose(lengths / lengths.max(), np.linalg.norm(g, axis=1) / np.linalg.norm(g, axis=1).max(),
                               rtol=1e-4)
    heads = [t for t in fig.data if t.legendgroup == seg.name and t.mode == "markers"][0]
    np.testing.assert_allclose(np.stack([heads.x, heads.y], 1), xy[:, 1], rtol=1e-6)


def test_score_field_arrows_point_at_the_data():
    # The score of N(0, I) is -x: every arrow must point at the origin.
    grid = plane_grid()
    snap = synthetic("diffusion")
    snap["traces"]["score_field"] = -grid
    fig = F.render_panel("diffusion", "diff_field", snap, ctx())
    assert "t = 0.30" in fig.layout.annotations[0].text
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


def test_optimal_discriminator_matches_an_independent_computation():
    # p_data = N(0, s^2 I); smoothed by the KDE kernel it is N(0, (s^2 + h^2) I) in closed form,
    # and p_g is a brute-force sum of Gaussians at the samples.
    s = 0.6
    box = ((-4.0, 4.0), (-4.0, 4.0))
    grid = plane_grid(box)
    rng = np.random.default_rng(3)
    samples = np.clip(rng.normal(size=(200, 2)) * 0.8 + [0.7, -0.4], -2, 2).astype(np.float32)
    snap = synthetic("gan")
    snap["traces"]["samples"] = samples
    log_p = (-0.5 * (grid.astype(np.float64) ** 2).sum(1) / s**2 - math.log(2 * math.pi * s**2))
    fig = F.render_panel("gan", "gan_optimal", snap, ctx(bounds=box, true_log_density=log_p))
    learned, optimal = fig.data
    np.testing.assert_array_equal(learned.z, snap["traces"]["critic_prob"].reshape(G, G))

    h = views_gan.kde_bandwidth(box, G)
    assert f"h = {h:.2f}" in fig.layout.annotations[0].text
    g64 = grid.astype(np.float64)
    v = s**2 + h**2
    p_d = np.exp(-0.5 * (g64**2).sum(1) / v) / (2 * math.pi * v)
    d2 = ((g64[:, None, :] - samples[None].astype(np.float64)) ** 2).sum(-1)
    p_g = (np.exp(-0.5 * d2 / h**2) / (2 * math.pi * h**2)).mean(1)
    expected = (p_d / (p_d + p_g)).reshape(G, G)
    defined = np.isfinite(optimal.z)
    assert defined.mean() > 0.3
    np.testing.assert_allclose(optimal.z[defined], expected[defined], atol=1e-6)
    total = (p_d + p_g).reshape(G, G)
    assert (total[~defined] <= 1e-3 * total.max() * (1 + 1e-6)).all()  # blank only where both vanish


def test_optimal_discriminator_is_one_half_for_a_perfect_generator():
    p = np.random.default_rng(0).random((5, 5))
    np.testing.assert_allclose(views_gan.optimal_discriminator(p, p), 0.5)


def mode_bars(fig) -> tuple[np.ndarray, np.ndarray]:
    """Counts per mode from the covered and not-covered bar traces, and which were not covered."""
    covered, uncovered = trace(fig, "covered", "bar"), trace(fig, "not covered", "bar")
    K = len(covered.x) + len(uncovered.x)
    counts, missing = np.zeros(K, int), np.zeros(K, bool)
    counts[np.asarray(covered.x, int)] = covered.y
    counts[np.asarray(uncovered.x, int)] = uncovered.y
    missing[np.asarray(uncovered.x, int)] = True
    return counts, missing


def test_mode_counts_are_nearest_mode_counts():
    snap = synthetic("gan")
    c = ctx()
    x = snap["traces"]["samples"].astype(np.float64)
    expected = np.bincount(((x[:, None] - c["modes"][None]) ** 2).sum(-1).argmin(1), minlength=4)
    counts, missing = mode_bars(F.render_panel("gan", "gan_modes", snap, c))
    np.testing.assert_array_equal(counts, expected)
    assert not missing.any()
    # Collapse: every sample on mode 0 leaves three modes uncovered, drawn in red.
    snap["traces"]["samples"] = np.tile([[2.0, 0.0]], (N, 1)).astype(np.float32)
    fig = F.render_panel("gan", "gan_modes", snap, c)
    counts, missing = mode_bars(fig)
    assert list(counts) == [N, 0, 0, 0] and list(missing) == [False, True, True, True]
    assert "1 of 4 covered" in fig.layout.annotations[0].text
    assert trace(fig, "not covered").marker.color == views_gan.UNCOVERED


def test_modes_covered_agrees_with_the_core_metric():
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("core.metrics")
    rng = np.random.default_rng(5)
    modes = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0], [3.0, 3.0]])
    k = rng.choice(5, size=N, p=[0.5, 0.3, 0.15, 0.04, 0.01])
    samples = (modes[k] + 0.25 * rng.normal(size=(N, 2))).astype(np.float32)
    samples[:20] = [3.5, -3.5]  # far from every mode
    snap = synthetic("gan")
    snap["traces"]["samples"] = samples
    fig = F.render_panel("gan", "gan_modes", snap, ctx(modes=modes, mode_std=0.2))
    core = metrics.mode_stats(torch.from_numpy(samples), torch.from_numpy(modes), 0.2)
    assert f"{core['modes_covered']} of 5 covered" in fig.layout.annotations[0].text
    off = trace(fig, "off: > 3σ from every mode", "bar")
    assert off.y[0] == round((1 - core["high_quality"]) * N)
    assert mode_bars(fig)[1].sum() == 5 - core["modes_covered"]


def test_vae_latent_colours_by_label_and_recon_links():
    snap = synthetic("vae")
    labels = np.arange(N) % 3
    fig = F.render_panel("vae", "vae_latent", snap, ctx(labels=labels, labels_name="component"))
    for lab in range(3):
        t = trace(fig, f"component {lab}")
        np.testing.assert_array_equal(t.x, snap["traces"]["z_mean"][labels == lab, 0])
    assert tuple(fig.layout.xaxis.range) == (-4.0, 4.0)
    fig = F.render_panel("vae", "vae_recon", snap, ctx())
    links = trace(fig, "x → recon")
    xy = np.stack([links.x, links.y], 1).reshape(-1, 3, 2)
    np.testing.assert_array_equal(xy[:, 0], snap["data"][: xy.shape[0]])
    np.testing.assert_array_equal(xy[:, 1], snap["traces"]["recon"][: xy.shape[0]])


def test_vae_manifold_mesh_follows_the_decoded_grid():
    snap = synthetic("vae")
    fig = F.render_panel("vae", "vae_manifold", snap, ctx())
    mesh = trace(fig, "decoder(latent grid)")
    row0 = np.stack([mesh.x[:M], mesh.y[:M]], 1)
    np.testing.assert_array_equal(row0, snap["traces"]["decoded_grid"].reshape(M, M, 2)[0])


def test_diffusion_strips_show_the_requested_times():
    snap = synthetic("diffusion")
    fig = F.render_panel("diffusion", "diff_forward", snap, ctx())
    labels = [fig.layout[f"xaxis{s}"].title.text for s in ["", "2", "3", "4", "5"]]
    assert labels == [f"t = {t:.2f}" for t in np.linspace(0, 1, 6)[[0, 1, 2, 4, 5]]]
    np.testing.assert_array_equal(fig.data[0].x, snap["traces"]["forward"][0][:, 0])
    fig = F.render_panel("diffusion", "diff_film", snap, ctx())
    assert fig.data[-1].marker.color == F.GEN  # the last frame is the samples
    np.testing.assert_array_equal(fig.data[-1].x, snap["traces"]["trajectory"][-1][:, 0])
    # A chain given data-first is turned around using its times.
    rev = {**snap, "traces": {**snap["traces"], "trajectory": snap["traces"]["trajectory"][::-1],
                              "trajectory_t": snap["traces"]["trajectory_t"][::-1]}}
    fig = F.render_panel("diffusion", "diff_reverse", rev, ctx())
    k = len(trace(fig, "end: samples x₀").x)
    assert k == 100
    np.testing.assert_array_equal(trace(fig, "end: samples x₀").x, snap["traces"]["trajectory"][-1][:k, 0])
    np.testing.assert_array_equal(trace(fig, "start: noise x_T").y, snap["traces"]["trajectory"][0][:k, 1])


# ---- digits -------------------------------------------------------------------------
@pytest.mark.parametrize("family,key,source", [("vae", "vae_samples", "samples"), ("gan", "gan_critic", "samples"),
                                               ("flow", "flow_density", "inverse_states"),
                                               ("diffusion", "diff_reverse", "trajectory")])
def test_image_sample_panels_show_digit_tiles(family, key, source):
    snap = synthetic(family, d=784)
    fig = F.render_panel(family, key, snap, ctx(data_shape=IMAGE_SHAPE, bounds=None))
    assert message(fig) is None
    tile = fig.data[-1].z
    assert tile.shape == (8 * 28 + 7 * 2, 8 * 28 + 7 * 2)
    first = snap["traces"][source][-1][0] if source != "samples" else snap["traces"]["samples"][0]
    np.testing.assert_array_equal(tile[:28, :28], first.reshape(28, 28))
    assert np.isnan(tile[:28, 28:30]).all()  # gaps between digits
    assert tuple(fig.layout.yaxis.range) == (27.5, -0.5) or fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]


# ---- never raise ------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_all_nan_traces_give_messages_not_errors(family):
    snap = synthetic(family)
    snap["traces"] = {k: np.full_like(v, np.nan) for k, v in snap["traces"].items()}
    for key, fig in F.render(family, snap, ctx()).items():
        assert isinstance(fig, go.Figure)
        assert message(fig), key


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_keys_and_odd_snapshots_give_messages(family):
    for snap in [None, {}, {"step": 3, "traces": {}}, {"step": 3, "error": "RuntimeError: boom"},
                 {"step": 3, "traces": {"unrelated": np.zeros(3)}}]:
        for key, fig in F.render(family, snap, ctx()).items():
            assert message(fig), (key, snap)
    figs = F.render(family, {"step": 3, "error": "RuntimeError: boom"}, ctx())
    assert all("boom" in message(f) for f in figs.values())


def test_inf_and_partial_nan_are_drawn_with_a_note():
    snap = synthetic("vae")
    s = snap["traces"]["samples"]
    s[:3] = np.nan
    s[3] = np.inf
    fig = F.render_panel("vae", "vae_samples", snap, ctx())
    assert message(fig) is None
    assert "4 of 500 not finite" in fig.layout.annotations[0].text
    assert np.isnan(trace(fig, "samples").x[:4]).all()
    # Bad ctx values fall back to the data's extent rather than failing.
    fig = F.render_panel("vae", "vae_samples", synthetic("vae"), ctx(bounds="nonsense", grid_resolution=None))
    assert message(fig) is None and fig.layout.xaxis.range[0] < fig.layout.xaxis.range[1]


def test_wrong_grid_size_is_reported():
    snap = synthetic("gan")
    snap["traces"]["critic_prob"] = snap["traces"]["critic_prob"][:-1]
    snap["traces"].pop("critic")
    fig = F.render_panel("gan", "gan_critic", snap, ctx())
    assert "not square" in message(fig)


# ---- charts over time ---------------------------------------------------------------------
HISTORY = [{"step": 10 * i, "time": 0.5 * i, "loss": 2.0 / (i + 1), "recon": 1.5 - 0.1 * i, "kl": 0.2 + 0.01 * i,
            "elbo": -(1.7 - 0.09 * i)} for i in range(1, 30)]
RUNS = {"run A": [{"step": 100 * i, "time": float(i), "kl": 1.0 / i**2, "modes_covered": min(i, 8), "n_modes": 8,
                   "high_quality": 0.1 * i} for i in range(1, 9)],
        "run B": [{"step": 100 * i, "time": 2.0 * i, "kl": 2.0 / i**2, "modes_covered": 1, "n_modes": 8}
                  for i in range(1, 5)]}


def test_loss_figure_puts_positive_terms_on_a_log_axis():
    fig = F.loss_figure(HISTORY, x="step")
    assert {t.name for t in fig.data} == {"loss", "recon", "kl", "elbo"}
    np.testing.assert_allclose(trace(fig, "kl").y, [r["kl"] for r in HISTORY])
    np.testing.assert_allclose(trace(fig, "kl").x, [r["step"] for r in HISTORY])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "linear"
    assert trace(fig, "elbo").yaxis == "y2" and trace(fig, "loss").yaxis in (None, "y")
    fig = F.loss_figure(HISTORY, x="time")
    np.testing.assert_allclose(trace(fig, "loss").x, [r["time"] for r in HISTORY])
    only_positive = F.loss_figure([{"step": i, "loss": 1.0 / i} for i in range(1, 5)])
    assert only_positive.layout.yaxis.type == "log" and "yaxis2" not in only_positive.layout.to_plotly_json()


def test_loss_figure_skips_nan_and_handles_empty():
    hist = [dict(r) for r in HISTORY]
    hist[3]["loss"] = float("nan")
    hist[4]["loss"] = float("inf")
    y = trace(F.loss_figure(hist), "loss").y
    assert np.isnan(y[3]) and np.isnan(y[4]) and np.isfinite(y[5])
    assert message(F.loss_figure([]))
    assert message(F.loss_figure([{"step": 1, "loss": float("nan")}]))


def test_metrics_figure_one_line_per_run():
    fig = F.metrics_figure(RUNS, "kl", x="time")
    assert [t.name for t in fig.data] == ["run A", "run B"]
    np.testing.assert_allclose(fig.data[1].y, [2.0 / i**2 for i in range(1, 5)])
    np.testing.assert_allclose(fig.data[1].x, [2.0 * i for i in range(1, 5)])
    assert fig.layout.yaxis.type == "log"  # positive and spanning 1/64 to 2
    assert message(F.metrics_figure(RUNS, "mmd"))
    assert message(F.metrics_figure({}, "kl"))


def test_modes_timeline_shows_collapse_against_all_modes():
    fig = F.modes_timeline(RUNS)
    a, b = trace(fig, "run A"), trace(fig, "run B")
    np.testing.assert_array_equal(a.y, [min(i, 8) for i in range(1, 9)])
    np.testing.assert_array_equal(b.y, [1] * 4)
    assert fig.layout.shapes[0].y0 == 8 and fig.layout.yaxis.range[1] == 8.5
    np.testing.assert_allclose(trace(fig, "run A: high-quality fraction").y, [0.1 * i for i in range(1, 9)])
    assert message(F.modes_timeline({"x": [{"step": 1, "kl": 1.0}]}))


def test_elbo_figure_band_is_recon_plus_kl():
    fig = F.elbo_figure(HISTORY)
    recon, neg_elbo, kl = fig.data
    np.testing.assert_allclose(recon.y, [r["recon"] for r in HISTORY])
    np.testing.assert_allclose(neg_elbo.y, [r["recon"] + r["kl"] for r in HISTORY])
    assert neg_elbo.fill == "tonexty"
    np.testing.assert_allclose(kl.y, [r["kl"] for r in HISTORY])
    assert message(F.elbo_figure([{"step": 1, "loss": 1.0}]))


def test_equations_cover_every_family_and_name_the_terms():
    assert set(equations.EQUATIONS) == set(F.PANELS)
    terms = {"flow": ["nll", "log_det"], "gan": ["loss_D", "loss_G"], "vae": ["recon", "kl", "elbo"],
             "diffusion": ["loss"]}
    for family, text in equations.EQUATIONS.items():
        assert text.count("$$") >= 2 and text.count("$$") % 2 == 0, family
        assert text.count("$") % 2 == 0, family
        for term in terms[family]:
            assert f"`{term}`" in text, (family, term)


# ---- layout: titles fit the panel, legends stay clear of them ------------------------------------
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
        assert views_common.text_width(text, size) <= views_common.TITLE_ROOM, (where, text)
    assert fig.layout.margin.t >= views_common.TOP_MARGIN + views_common.LINE_PX * (len(lines) - 1), where
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
            for key, fig in F.render(family, snap, c).items():
                yield f"{family}/{key}/{label}", fig
    for family, key in [("vae", "vae_samples"), ("vae", "vae_latent"), ("gan", "gan_critic"),
                        ("diffusion", "diff_reverse")]:
        snap = synthetic(family)
        for k, v in snap["traces"].items():
            if v.ndim == 2 and k != "z_var":
                v[:3] = np.nan
        yield f"{family}/{key}/nan", F.render_panel(family, key, snap, ctx())
    unbounded, eps = _without(synthetic("gan"), "critic_prob"), _without(synthetic("diffusion"), "score_field")
    yield "gan/gan_optimal/unbounded", F.render_panel("gan", "gan_optimal", unbounded, ctx())
    yield "diffusion/diff_field/eps", F.render_panel("diffusion", "diff_field", eps, ctx())
    yield "gan/gan_modes/3σ", F.render_panel("gan", "gan_modes", synthetic("gan"), ctx(mode_std=0.2))
    yield from [("loss", F.loss_figure(HISTORY)), ("metrics", F.metrics_figure(RUNS, "kl")),
                ("modes timeline", F.modes_timeline(RUNS)), ("elbo", F.elbo_figure(HISTORY)),
                ("empty", F.empty_figure("nothing", "A title"))]


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
    # These three ran off a 425 px panel as one line; the details now go on a note line under the title.
    snap, c = synthetic("gan"), ctx(mode_std=1.0)
    for family, key, snapshot, title, note in [
            ("gan", "gan_optimal", snap, "Learned vs optimal discriminator", "Gaussian KDE of 500 samples"),
            ("gan", "gan_modes", snap, "Samples nearest each mode: 4 of 4 covered", "within 3σ of the mode"),
            ("diffusion", "diff_field", synthetic("diffusion"), "Learned score ∇ log p_t(x) at t = 0.30",
             "arrow length ∝ √|field|")]:
        lines = title_text_lines(F.render_panel(family, key, snapshot, c))
        assert lines[0] == (title, views_common.TITLE_SIZE), key
        assert len(lines) == 2 and note in lines[1][0] and lines[1][1] == views_common.NOTE_SIZE, key


def test_text_width_agrees_with_the_browser():
    # Widths in px of bold 13 px text as Chromium draws it with Liberation Sans (Arial's metrics),
    # measured with getComputedTextLength(); the estimate that decides where titles wrap must agree.
    measured = {"Samples": 53.5, "Latent space: encoder means vs the prior": 257.2,
                "Optimal discriminator; p_g: Gaussian KDE of 500 samples, h = 0.27": 415.1,
                "Samples nearest each mode: 4 of 4 covered (≥ 20% of a uniform share)": 436.3,
                "Learned score ∇ log p_t(x) at t = 0.30; arrow length ∝ √|field|, shade ∝ |field|": 465.4,
                "Data ← … ← base: the flow bends the base grid into the data": 375.6,
                "WWWWWWWWWWMMMMMMMMMM": 231.0, "iiiiiiiiiilllllllll": 68.6}
    for text, px in measured.items():
        assert views_common.text_width(text, 13) == pytest.approx(px, rel=0.05), text


def test_wrap_breaks_between_words_outside_brackets():
    text = "Data pulled back to the base (first 2 of 784 dims): E|z|²/D = 0.29 (1 for N(0, I))"
    lines = views_common.wrap(text)
    assert len(lines) == 2 and " ".join(lines) == text
    assert all(views_common.text_width(line) <= views_common.TITLE_ROOM for line in lines)
    assert "(first 2 of 784 dims):" in lines[0] and lines[1].endswith("(1 for N(0, I))")  # brackets stay whole
    assert views_common.wrap("Samples") == ["Samples"] and views_common.wrap("") == []


# ---- speed ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_views_are_fast(family):
    snap, c = synthetic(family), ctx()
    F.render(family, snap, c)
    for key, _ in F.PANELS[family]:
        best = min(_timed(lambda: F.render_panel(family, key, snap, c)) for _ in range(3))
        assert best < 0.15, f"{key} took {best * 1000:.0f} ms"  # ~5-40 ms on an idle core


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- real snapshots from the core models --------------------------------------------------------
FAMILY_MODULES = {"flow": "core.flows", "vae": "core.vae", "gan": "core.gan", "diffusion": "core.diffusion"}


def real_snapshot(family: str, dataset: str = "eight_gaussians", steps: int = 5):
    """A snapshot of a briefly trained registered model, as the Trainer streams it."""
    torch = pytest.importorskip("torch")
    try:
        importlib.import_module(FAMILY_MODULES[family])
        toy2d = importlib.import_module("core.data.toy2d")
    except ImportError as e:
        pytest.skip(f"{FAMILY_MODULES[family]} is not available yet ({e})")
    from core.config import TrainConfig, make
    from core.registry import DATASETS, MODELS

    name = next((n for n, s in MODELS.items() if s.family == family), None)
    if name is None:
        pytest.skip(f"no {family} model is registered")
    spec = MODELS[name]
    ds = DATASETS[dataset].factory()
    small = {f.name: 16 for f in dataclasses.fields(spec.config_cls) if f.name == "hidden"}
    model = spec.cls(ds.shape, make(spec.config_cls, small, **spec.defaults))
    try:
        from core.trainer import Trainer
    except ImportError:
        Trainer = None
    torch.manual_seed(0)
    if Trainer is not None:
        cfg = make(TrainConfig, {"n_data": 1000, "batch_size": 64, "steps": steps})
        trainer = Trainer(model, ds, cfg, "cpu", n_reference=200, n_eval=200)
        trainer.fit(steps, log_every=5)
        snap = trainer.snapshot(with_metrics=False, n=200, grid_resolution=G)
    else:  # the trainer's snapshot, by hand: the model's traces on the data and the plane grid
        x = ds.training_set(200, 0)
        model.init_from_data(x)
        model.eval()
        snap = {"step": 0, "time": 0.0, "status": "ready", "traces": model.traces(x, toy2d.plane_grid(ds.bounds, G)[0]),
                "data": x.numpy()}
    grid = toy2d.plane_grid(ds.bounds, G)[0]
    c = {"bounds": ds.bounds, "grid_resolution": G, "dataset": dataset, "data_shape": ds.shape,
         "true_log_density": ds.log_prob(grid).numpy(), "modes": ds.modes.numpy(), "mode_std": ds.mode_std,
         "labels": None, "field_t": 0.2}
    return snap, c


@pytest.mark.parametrize("family", FAMILIES)
def test_real_snapshots_render(family):
    snap, c = real_snapshot(family)
    figs = F.render(family, snap, c)
    for key, fig in figs.items():
        assert message(fig) is None, f"{key}: {message(fig)}"
        assert_layout_fits(fig, key)
    if family == "flow":
        heat = figs["flow_density"].data[0]
        np.testing.assert_allclose(heat.z, np.exp(snap["traces"]["log_density"]).reshape(G, G), rtol=1e-5)
    if family in ("gan", "vae"):
        key = "gan_critic" if family == "gan" else "vae_samples"
        samples = [t for t in figs[key].data if t.name in ("generated", "samples")][0]
        np.testing.assert_array_equal(samples.x, snap["traces"]["samples"][:, 0])
