"""The EBM view draws the numbers it is sent: the energy and its chains, the buffer, the density;
on digits the energies of data and negatives, the buffer as digits and chains from noise."""

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


def test_digits_without_their_traces_get_a_reason_not_a_figure():
    snap = synthetic("ebm", d=784)
    for key in ("energy_data", "energy_buffer", "noise_chains", "noise_steps"):
        del snap["traces"][key]  # left: the 2D trace keys shaped as digits, of which the digit panels read only buffer
    figures = render("ebm", snap, ctx(data_shape=IMAGE_SHAPE, bounds=None))
    assert "energy_data" in message(figures["ebm_energy"]) and "noise_chains" in message(figures["ebm_film"])
    assert "No density on digits" in message(figures["ebm_density"])
    assert message(figures["ebm_negatives"]) is None  # the buffer, drawn as digits


def test_the_export_picture_is_the_negatives_over_the_density():
    snap = synthetic("ebm")
    np.testing.assert_array_equal(_export_samples(snap["traces"]), snap["traces"]["chains"][-1])
    values, scale = _export_density(snap["traces"], ctx())
    assert values.shape == (G * G,) and np.isclose(values.max(), 1.0) and values.min() >= 0
    assert scale == V.DENSITY_SCALE
    assert snapshot_png("ebm", snap, ctx(), size=64)[:4] == b"\x89PNG"


# ---- digits -------------------------------------------------------------------------------------
def digits_snapshot(seed: int = 0) -> dict:
    """An EBM snapshot on 28 x 28 digits with the image trace shapes: buffer (64, 1, 28, 28),
    its energies (64,), the data's (50,), chains from noise (7, 8, 1, 28, 28) at steps 0..60."""
    rng = np.random.default_rng(seed)
    tr = {"buffer": rng.random((64, *IMAGE_SHAPE)).astype(np.float32),
          "energy_buffer": (1.0 + rng.normal(size=64)).astype(np.float32),
          "energy_data": (-1.0 + 0.5 * rng.normal(size=50)).astype(np.float32),
          "noise_chains": rng.random((7, 8, *IMAGE_SHAPE)).astype(np.float32),
          "noise_steps": np.arange(0, 61, 10, dtype=np.float32)}
    data = rng.random((50, *IMAGE_SHAPE)).astype(np.float32)
    return {"step": 12, "time": 1.0, "status": "running", "terms": {}, "traces": tr, "data": data}


def digits_ctx() -> dict:
    return ctx(data_shape=IMAGE_SHAPE, bounds=None, true_log_density=None, modes=None)


def test_on_digits_the_buffer_is_drawn_as_a_grid_of_digits():
    snap = digits_snapshot()
    fig = render_panel("ebm", "ebm_negatives", snap, digits_ctx())
    assert message(fig) is None
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    assert z.shape == (8 * 30 - 2, 8 * 30 - 2)  # 8 x 8 tiles of 28 with gaps of 2
    np.testing.assert_allclose(z[:28, :28], snap["traces"]["buffer"][0, 0], rtol=1e-6)
    np.testing.assert_allclose(z[30:58, 60:88], snap["traces"]["buffer"][10, 0], rtol=1e-6)  # row 1, column 2


def test_on_digits_the_energy_panel_is_a_histogram_of_data_and_negatives_with_their_gap():
    snap = digits_snapshot()
    tr = snap["traces"]
    fig = render_panel("ebm", "ebm_energy", snap, digits_ctx())
    assert message(fig) is None
    data, neg = trace(fig, "data x⁺ (pushed down)", "bar"), trace(fig, "buffer negatives x⁻ (pushed up)", "bar")
    assert np.isclose(sum(data.y), 1) and np.isclose(sum(neg.y), 1)  # shares of each set
    centres = np.asarray(data.x)
    assert np.isclose(np.dot(centres, data.y), tr["energy_data"].mean(), atol=np.diff(centres)[0])  # the binned mean
    assert np.isclose(np.dot(centres, neg.y), tr["energy_buffer"].mean(), atol=np.diff(centres)[0])
    text = " ".join(a.text for a in fig.layout.annotations)
    gap = tr["energy_buffer"].mean() - tr["energy_data"].mean()
    assert f"{gap:.3g}" in text and f"{tr['energy_data'].mean():.3g}" in text


def test_on_digits_the_film_strip_shows_chains_from_noise_by_step():
    snap = digits_snapshot()
    fig = render_panel("ebm", "ebm_film", snap, digits_ctx())
    assert message(fig) is None
    z = np.asarray(fig.data[0].z, dtype=np.float64)
    chains = snap["traces"]["noise_chains"]
    assert z.shape == (4 * 30 - 2, 7 * 30 - 2)  # 4 chains (rows) x 7 frames (columns)
    np.testing.assert_allclose(z[:28, 30:58], chains[1, 0, 0], rtol=1e-6)  # chain 0 at the second frame
    np.testing.assert_allclose(z[60:88, 180:208], chains[6, 2, 0], rtol=1e-6)  # chain 2 at the last frame
    assert "step 0, 10, 20, 30, 40, 50, 60" in fig.layout.xaxis.title.text


def test_on_digits_the_density_panel_says_there_is_none():
    fig = render_panel("ebm", "ebm_density", digits_snapshot(), digits_ctx())
    assert "No density on digits" in message(fig) and "784 pixels" in message(fig)


def test_on_digits_the_export_picture_is_the_buffer():
    snap = digits_snapshot()
    np.testing.assert_array_equal(_export_samples(snap["traces"]), snap["traces"]["buffer"])
    assert snapshot_png("ebm", snap, digits_ctx(), size=64)[:4] == b"\x89PNG"
