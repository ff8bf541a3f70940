"""The EBM view draws the numbers it is sent: the energy and its chains, the buffer, the density."""

import numpy as np

from playground import draw as V
from playground.export import snapshot_png
from playground.views import render, render_panel
from playground.views.ebm import _export_density, _export_samples
from tests.playground.views.helpers import BOX, G, IMAGE_SHAPE, ctx, message, synthetic, trace


def test_the_energy_panel_draws_the_energy_and_the_chains_ends():
    snap = synthetic("ebm")
    tr = snap["traces"]
    fig = render_panel("ebm", "ebm_energy", snap, ctx())
    assert message(fig) is None
    np.testing.assert_array_equal(trace(fig, "E(x)", "heatmap").z, tr["energy"].reshape(G, G))
    np.testing.assert_array_equal(trace(fig, "negatives x⁻").x, tr["chains"][-1, :, 0])
    np.testing.assert_array_equal(trace(fig, "chain starts").y, tr["chains"][0, :, 1])
    paths = trace(fig, "Langevin chains")
    assert np.isnan(paths.x).sum() == 100  # one polyline per chain
    np.testing.assert_array_equal(paths.x[:21], tr["chains"][:, 0, 0])
    assert tuple(fig.layout.xaxis.range) == BOX[0] and tuple(fig.layout.yaxis.range) == BOX[1]


def test_the_negatives_panel_draws_the_buffer_beside_the_data_and_the_box():
    snap = synthetic("ebm")
    fig = render_panel("ebm", "ebm_negatives", snap, ctx())
    buf = trace(fig, "buffer negatives x⁻ (pushed up)")
    np.testing.assert_array_equal(buf.x, snap["traces"]["buffer"][:, 0])
    assert buf.marker.color == V.GEN
    data = trace(fig, "data x⁺ (energy pushed down)")
    np.testing.assert_array_equal(data.y, snap["data"][:, 1])
    assert data.marker.color == V.REAL
    box = trace(fig, "grid box (normaliser)")
    assert set(box.x) == {-4, 4} and set(box.y) == {-3, 3}


def test_the_density_panel_shows_the_grid_normalised_density_on_the_datas_scale():
    snap = synthetic("ebm")
    c = ctx()
    fig = render_panel("ebm", "ebm_density", snap, c)
    heat = trace(fig, "p(x)", "heatmap")
    np.testing.assert_allclose(heat.z, np.exp(snap["traces"]["log_density"]).reshape(G, G), rtol=1e-6)
    assert heat.zmax == np.exp(c["true_log_density"]).max()
    text = " ".join(a.text for a in fig.layout.annotations)
    assert "grid normalisation" in text and "log Z = 1.5" in text


def test_the_film_strip_shows_frames_from_start_to_last_step():
    snap = synthetic("ebm")
    fig = render_panel("ebm", "ebm_film", snap, ctx())
    frames = [t for t in fig.data if t.name.startswith("step ")]
    assert [t.name for t in frames][0] == "step 0/20" and frames[-1].name == "step 20/20" and len(frames) == 6
    np.testing.assert_array_equal(frames[-1].x, snap["traces"]["chains"][-1, :, 0])
    assert frames[-1].marker.color == V.GEN and frames[0].marker.color == V.NEUTRAL


def test_digits_get_a_reason_not_a_figure():
    snap = synthetic("ebm", d=784)
    for key, fig in render("ebm", snap, ctx(data_shape=IMAGE_SHAPE, bounds=None)).items():
        assert "drawn for 2D" in message(fig), key


def test_the_export_picture_is_the_negatives_over_the_density():
    snap = synthetic("ebm")
    np.testing.assert_array_equal(_export_samples(snap["traces"]), snap["traces"]["chains"][-1])
    values, scale = _export_density(snap["traces"], ctx())
    assert values.shape == (G * G,) and np.isclose(values.max(), 1.0) and values.min() >= 0
    assert scale == V.DENSITY_SCALE
    assert snapshot_png("ebm", snap, ctx(), size=64)[:4] == b"\x89PNG"
