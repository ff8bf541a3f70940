"""PNG and GIF export: files decode, have the promised size and frames, and draw points where they are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from playground import export as E
from playground import draw as V
from tests.playground.views.helpers import BOX, G, IMAGE_SHAPE, ctx, synthetic


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def near(pixel, color: str, tol: int = 40) -> bool:
    return bool(np.abs(np.asarray(pixel[:3], float) - E._rgb(color)).max() <= tol)


@pytest.mark.parametrize("family", ["flow", "gan", "vae", "diffusion"])
def test_png_decodes_with_size_and_content(family):
    png = E.snapshot_png(family, synthetic(family), ctx(), size=300)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = decode(png).convert("RGB")
    assert img.size == (300, 300)
    px = np.asarray(img).reshape(-1, 3).astype(int)
    is_gen = (np.abs(px - E._rgb(V.GEN)).max(1) <= 30).mean()
    is_real = (np.abs(px - E._rgb(V.REAL)).max(1) <= 30).mean()
    assert is_gen > 0.005 and is_real > 0.005  # both point clouds are visible
    assert len(np.unique(px, axis=0)) > 20  # not a blank canvas


def test_points_land_where_their_coordinates_say():
    size = 401
    snap = {"step": 12, "traces": {"samples": np.array([[0.0, 0.0], [3.0, -2.0]], np.float32)},
            "data": np.array([[-2.0, 1.5]], np.float32)}
    img = decode(E.snapshot_png("vae", snap, ctx(true_log_density=None), size=size)).convert("RGB")

    def pixel(x, y):  # the bounds map onto the whole image, y upwards
        (x0, x1), (y0, y1) = BOX
        return img.getpixel((round((x - x0) / (x1 - x0) * (size - 1)), round((y1 - y) / (y1 - y0) * (size - 1))))

    assert near(pixel(0.0, 0.0), V.GEN) and near(pixel(3.0, -2.0), V.GEN)
    assert near(pixel(-2.0, 1.5), V.REAL)
    assert pixel(1.0, 1.0) == (255, 255, 255)


def test_critic_background_follows_the_grid_orientation():
    # D = 1 on the top half of the plane, 0 below: green on top, purple below.
    snap = synthetic("gan")
    ys = np.repeat(np.linspace(*BOX[1], G), G)
    snap["traces"]["critic_prob"] = (ys > 0).astype(np.float32)
    snap["traces"]["samples"] = np.zeros((0, 2), np.float32)
    snap["data"] = np.zeros((0, 2), np.float32)
    img = decode(E.snapshot_png("gan", snap, ctx(), size=200)).convert("RGB")
    assert near(img.getpixel((100, 150)), V.CRITIC_SCALE[0][1], tol=8)
    assert near(img.getpixel((100, 50)), V.CRITIC_SCALE[-1][1], tol=8)


def test_step_label_is_drawn():
    snap = synthetic("vae")
    blank = decode(E.snapshot_png("vae", {"step": 5, "traces": {}}, ctx(true_log_density=None), size=240)).convert("L")
    corner = np.asarray(blank)[4:24, 4:120]
    assert corner.min() < 100  # dark text in the corner
    one = np.asarray(decode(E.snapshot_png("vae", {**snap, "step": 1}, ctx(), size=240)).convert("L"))
    two = np.asarray(decode(E.snapshot_png("vae", {**snap, "step": 987654}, ctx(), size=240)).convert("L"))
    assert (one[:30] != two[:30]).any() and (one[40:] == two[40:]).all()


def test_digits_png():
    snap = synthetic("vae", d=784)
    img = decode(E.snapshot_png("vae", snap, ctx(data_shape=IMAGE_SHAPE, bounds=None), size=300)).convert("L")
    assert img.size == (300, 300)
    a = np.asarray(img)
    assert a[60:, :].std() > 20  # digits, not a flat page


@pytest.mark.parametrize("bad", [None, {}, {"step": 1, "traces": {"samples": np.full((5, 2), np.nan)}},
                                 {"step": 1, "traces": {"critic_prob": np.ones(7)}, "data": "nonsense"}])
def test_png_never_fails(bad):
    img = decode(E.snapshot_png("gan", bad, ctx(), size=128))
    assert img.size == (128, 128)


def test_gif_has_one_frame_per_snapshot_and_is_capped():
    base = synthetic("gan")
    frames = [{**base, "step": i, "traces": {**base["traces"], "samples": base["traces"]["samples"] + 0.05 * i}}
              for i in range(7)]
    gif = decode(E.history_gif(frames, "gan", ctx(), fps=5, size=96))
    assert gif.format == "GIF" and gif.n_frames == 7 and gif.size == (96, 96)
    assert gif.info["duration"] == 200 and gif.info.get("loop") == 0
    many = [{"step": i, "traces": {"samples": np.array([[np.sin(i), np.cos(i)]], np.float32)}} for i in range(150)]
    capped = decode(E.history_gif(many, "vae", ctx(true_log_density=None), size=64, max_frames=20))
    assert capped.n_frames == 20
    assert decode(E.history_gif([], "vae", ctx(), size=64)).n_frames == 1


def test_colormap_endpoints_and_nan():
    rgb = E.colormap(np.array([0.0, 1.0, np.nan, 2.0]), V.DENSITY_SCALE)
    assert tuple(rgb[0]) == (255, 255, 255)
    assert tuple(rgb[1]) == tuple(E._rgb(V.DENSITY_SCALE[-1][1]).astype(int))
    assert tuple(rgb[2]) == (255, 255, 255) and tuple(rgb[3]) == tuple(rgb[1])


# ---- the whole run: every shown panel with its axes, titles and legends -------------------------
def _dark(a: np.ndarray) -> bool:
    return bool((np.asarray(a.convert("L") if isinstance(a, Image.Image) else a) < 110).any())


def test_a_figure_is_drawn_with_its_points_where_the_axes_say():
    layout = V.base_layout("Where the points are", "t", legend=True)
    V.plane_axes(layout, ((-4.0, 4.0), (-4.0, 4.0)))
    fig = V.figure([V.scatter(np.array([[0.0, 0.0]]), V.GEN, "samples", 10, 1.0),
                    V.scatter(np.array([[3.0, 3.0]]), V.REAL, "data", 10, 1.0)], layout)
    img = E.figure_image(fig, 400).convert("RGB")
    assert img.size == (400, V.HEIGHT)
    (x0, y0, x1, y1), _ = E.figure_areas(fig, 400)["x"]
    px = lambda x, y: (round(x0 + (x + 4) / 8 * (x1 - x0)), round(y1 - (y + 4) / 8 * (y1 - y0)))  # noqa: E731
    assert near(img.getpixel(px(0, 0)), V.GEN) and near(img.getpixel(px(3, 3)), V.REAL)
    assert img.getpixel(px(-2, 2)) != img.getpixel(px(0, 0))
    a = np.asarray(img.convert("L"))
    assert (a[: int(y0), :] < 110).any()  # the title above the plot
    assert (a[:, : int(x0)] < 140).any()  # tick labels left of it
    foot = np.asarray(img)[int(y1) + 12:].reshape(-1, 3).astype(int)
    assert (np.abs(foot - E._rgb(V.GEN)).max(1) <= 30).any()  # the legend's swatches at the foot
    assert (np.abs(foot - E._rgb(V.REAL)).max(1) <= 30).any()


@pytest.mark.parametrize("family,kind", [("flow", "points"), ("gan", "points"), ("vae", "images"),
                                         ("diffusion", "points")])
def test_the_run_png_holds_every_shown_panel_in_the_pages_order(family, kind):
    from playground.app.status import placement
    from playground.views import render

    snap = synthetic(family) if kind == "points" else synthetic(family, d=784)
    c = ctx() if kind == "points" else ctx(data_shape=IMAGE_SHAPE, bounds=None, true_log_density=None)
    keys = placement(family, kind=kind)
    png = E.run_png(family, snap, c, keys, width=800)
    img = decode(png).convert("RGB")
    figures = render(family, snap, c)
    tiles = E.panel_tiles(keys, figures, 800)
    assert len(tiles) == len([k for k in keys if k]) >= 3
    assert img.size == (800, max(y + fig.layout.height for _, (x, y, w), fig in tiles) + E.HEADER)
    plain = np.asarray(img.convert("L"))
    for key, (x, y, w), fig in tiles:
        top = y + E.HEADER
        assert (plain[top:top + 30, x:x + w] < 110).any(), key  # its title
        assert plain[top:top + fig.layout.height, x:x + w].std() > 10, key  # something drawn
    assert (plain[:E.HEADER] < 110).any()  # the run named at the top


def test_the_run_png_adds_the_charts_and_never_fails():
    from playground.draw import charts

    snap = synthetic("vae")
    loss = charts.loss_figure([{"step": i, "time": 0.1 * i, "loss": 1.0 / (i + 1)} for i in range(20)])
    with_charts = decode(E.run_png("vae", snap, ctx(), ["vae_manifold", "vae_latent"], [loss], width=600))
    without = decode(E.run_png("vae", snap, ctx(), ["vae_manifold", "vae_latent"], width=600))
    assert with_charts.height > without.height
    for bad in (None, {}, {"step": 3, "traces": {"z_mean": np.full((4, 2), np.nan)}}):
        assert decode(E.run_png("vae", bad, ctx(), ["vae_latent", None], width=300)).width == 300


def test_the_png_is_named_after_the_model_the_data_and_the_step(tmp_path):
    from types import SimpleNamespace

    from playground.app import share

    run = SimpleNamespace(family="flow", model_name="realnvp", dataset_name="two_moons", label="realnvp@two_moons#3",
                          latest={**synthetic("flow"), "step": 1234}, ctx=ctx(), metric_history=[],
                          trainer=SimpleNamespace(history=[{"step": 1, "time": 0.1, "loss": 2.0}], metric_history=[]))
    session = SimpleNamespace(current=run, tmpdir=lambda: str(tmp_path))
    out = share.export_png(session)
    path = out["export_file"]["value"]
    assert path.endswith("/realnvp-two_moons-step1234.png")
    img = decode(open(path, "rb").read())
    assert img.width >= 800 and img.height > 2 * V.HEIGHT  # the panels, not one raster of the main one
