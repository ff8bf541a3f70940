"""Data a person draws: a sketch becomes points in the plane box (y up), a dataset, a link and a file."""

import urllib.parse
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch

from core.data.drawn import MAX_POINTS, DrawnPoints
from core.data.files import PointsFile
from core.errors import DataError
from playground import app as A
from playground.app import drawing as D
from playground.app import wiring
from playground.runs import Session
from tests.playground.tiny import knob_values

N = D.CANVAS  # pixels a side; the box is [-4, 4]^2, 50 pixels a unit



def _text(fig) -> str:
    """The figure's words as read: titles and messages wrap to the panel's width with <br>."""
    return str(fig.layout.annotations).replace("<br>", " ")

def canvas(kind="rgba"):
    """An empty sketch: transparent (with noise under alpha 0, as browsers leave it), white RGB or grey."""
    if kind == "rgba":
        img = np.random.default_rng(0).integers(0, 256, (N, N, 4)).astype(np.uint8)
        img[..., 3] = 0
        return img
    return np.full((N, N, 3) if kind == "rgb" else (N, N), 255, dtype=np.uint8)


def ink(img, rows, cols):
    if img.ndim == 2:
        img[rows, cols] = 0
    else:
        img[rows, cols, :3] = 0
        if img.shape[2] == 4:
            img[rows, cols, 3] = 255
    return img


def two_strokes(kind="rgba"):
    """A horizontal line near the top left (rows 50-54, cols 40-159) and a dab inside one cell near the bottom right."""
    img = ink(canvas(kind), slice(50, 55), slice(40, 160))
    return ink(img, slice(340, 343), slice(340, 343))


@pytest.mark.parametrize("kind", ["rgba", "rgb", "grey"])
def test_ink_becomes_points_in_the_box_with_y_up(kind):
    points, strokes = D.sketch_to_points(two_strokes(kind))
    line, dab = points[strokes == 0], points[strokes == 1]
    assert set(strokes.tolist()) == {0, 1}  # two strokes, numbered left to right
    # pixel (r, c) has its centre at x = -4 + (c + 1/2)/50, y = 4 - (r + 1/2)/50: the top rows are large y
    np.testing.assert_allclose(dab, [[-4 + 341.5 / 50, 4 - 341.5 / 50]], atol=1e-9)
    assert np.all(np.abs(line[:, 1] - (4 - 52.5 / 50)) < 0.05)
    assert line[:, 0].min() == pytest.approx(-4 + 40.5 / 50, abs=D.CELL) and line[:, 0].max() < -4 + 160 / 50
    # one point per inked cell of side 0.08: a 2.4-long line covers about 30 columns of cells
    assert 30 <= len(np.unique(np.floor((line[:, 0] + 4) / D.CELL))) <= 31


def test_the_sketchpads_value_is_read_from_its_composite_or_its_layers():
    img = two_strokes()
    expected = D.sketch_to_points(img)
    for value in ({"composite": img, "background": None, "layers": []},
                  {"composite": None, "background": canvas("rgb"), "layers": [ink(canvas(), slice(50, 55), slice(40, 160)),
                                                                               ink(canvas(), slice(340, 343), slice(340, 343))]}):
        points, strokes = D.sketch_to_points(value)
        np.testing.assert_allclose(points, expected[0])
        np.testing.assert_array_equal(strokes, expected[1])


def test_too_much_ink_is_thinned_to_the_limit_and_still_covers_the_box():
    img = ink(canvas(), slice(0, N), slice(0, N))
    points, strokes = D.sketch_to_points(img)
    assert len(points) <= MAX_POINTS and len(points) > MAX_POINTS // 2 and set(strokes.tolist()) == {0}
    assert points.min(0).tolist() == pytest.approx([-4, -4], abs=0.2) and points.max(0).tolist() == pytest.approx([4, 4], abs=0.2)


def test_an_empty_or_broken_sketch_is_refused_with_the_reason():
    for value in (None, canvas(), canvas("rgb"), {"composite": None, "background": None, "layers": []}):
        with pytest.raises(DataError, match="nothing is drawn yet"):
            D.sketch_to_points(value)
    with pytest.raises(DataError, match="only 1 point"):
        D.sketch_to_points(ink(canvas(), slice(10, 12), slice(10, 12)))
    with pytest.raises(DataError, match="not an image"):
        D.sketch_to_points(np.zeros((4, 4, 7)))


def test_a_drawing_restored_as_a_picture_reads_back_as_the_same_points():
    points = np.array([[-3.0, 3.0], [0.0, 0.0], [2.5, -1.25], [3.9, -3.9]])
    back, _ = D.sketch_to_points(D.points_to_image(points))
    assert len(back) == len(points)
    np.testing.assert_allclose(back[np.lexsort(back.T[::-1])], points[np.lexsort(points.T[::-1])], atol=1.5 / 50)


def test_the_preview_shows_the_density_that_will_be_trained_on():
    points, strokes = D.sketch_to_points(two_strokes())
    data = DrawnPoints(points, 0.3, strokes)
    fig = D.preview_figure(data, resolution=50)
    contour = fig.data[0]
    z = np.asarray(contour.z)
    x, y = np.asarray(contour.x), np.asarray(contour.y)
    assert z.shape == (50, 50) and (x[0], x[-1], y[0], y[-1]) == (-4, 4, -4, 4)
    # z[i][j] is the density at (x[j], y[i]); the line's row, near the top, is where the density peaks
    i, _ = np.unravel_index(z.argmax(), z.shape)
    assert abs(y[i] - (4 - 52.5 / 50)) < 0.2
    assert abs(z.sum() * (x[1] - x[0]) * (y[1] - y[0]) - 1) < 0.02
    assert sum(len(t.x) for t in fig.data[1:]) == len(data)
    assert "press Use this drawing" in _text(D.preview_figure(None))


# ---- the handlers --------------------------------------------------------------------
def request_for(query):
    return SimpleNamespace(query_params=dict(urllib.parse.parse_qsl(query)))


def test_using_a_drawing_trains_on_it_and_the_link_reproduces_it(manager):
    s = Session(manager)
    try:
        out = A.on_draw(s, "realnvp", two_strokes(), 0.2, knob_values(batch_size=64))
        name = s.current.dataset_name
        data = s.uploads[name]
        assert name.startswith("drawing 1 (") and out["dataset"]["value"] == name and name in A.dataset_choices(s)
        assert isinstance(data, DrawnPoints) and data.h == 0.2 and len(data) == len(D.sketch_to_points(two_strokes())[0])
        params = dict(urllib.parse.parse_qsl(out["query"]))
        assert params["model"] == "realnvp" and "data" not in params and params["drawn"] == data.encode()
        assert "draw_preview" in out
        # the run trains on samples of the drawing's density: each within a few h of a drawn point
        x = s.current.trainer.data.cpu().double()
        assert x.shape == (s.current.train_cfg.n_data, 2)
        assert torch.cdist(x, data.points).min(dim=1).values.max() < 6 * data.h
        # a page opened from the link trains on exactly the same data
        other = Session(manager)
        try:
            shown = A.on_load(other, request_for(out["query"]))
            again = other.uploads[other.current.dataset_name]
            torch.testing.assert_close(again.points, data.points, rtol=0, atol=0)
            assert again.h == data.h and other.current.model_name == "realnvp"
            assert shown["bandwidth"] == 0.2 and shown["sketch"].shape == (N, N, 4)
            assert D.sketch_to_points(shown["sketch"])[0].shape[0] > 0
        finally:
            other.close()
        # the same drawing used again keeps its name; a new one gets the next
        A.on_draw(s, "realnvp", two_strokes(), 0.2, knob_values(batch_size=64))
        assert s.current.dataset_name == name
        A.on_draw(s, "realnvp", two_strokes(), 0.5, knob_values(batch_size=64))
        assert s.current.dataset_name.startswith("drawing 2 (")
    finally:
        s.close()


def test_a_damaged_link_falls_back_with_a_message(manager, monkeypatch):
    warned = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warned.append(msg))
    s = Session(manager)
    try:
        A.on_load(s, request_for("model=realnvp&drawn=AAAA"))
        assert s.current.dataset_name == "two_moons" and s.uploads == {}
        assert warned and "the drawing in the link was not used" in warned[0] and "damaged" in warned[0]
    finally:
        s.close()


def test_a_bad_click_keeps_the_last_good_drawing_and_shows_no_traceback(manager):
    with gr.Blocks():
        ui = wiring.UI()
        for name in ("status", "query"):
            ui[name] = gr.Markdown()
        ui["dataset"], ui["draw_preview"] = gr.Dropdown(), gr.Plot()  # as on the page
        ui["session"], ui["model"], ui["sketch"], ui["bandwidth"] = gr.State(), gr.Dropdown(), gr.Sketchpad(), gr.Slider()
    callback, _, outs = ui.bind(A.on_draw, ["session", "model", "sketch", "bandwidth", "knobs"],
                                ["dataset", "query", "draw_preview"])
    s = Session(manager)
    try:
        callback(None, s, "realnvp", two_strokes(), 0.2)
        good, run = s.current.dataset_name, s.current
        for sketch, bandwidth, reason in ((canvas(), 0.2, "nothing is drawn yet"),
                                          (two_strokes(), 5.0, "bandwidth must be a number between 0.02 and 1")):
            result = callback(None, s, "realnvp", sketch, bandwidth)
            status = result[outs.index(ui["status"])]
            assert status.startswith("⚠️") and reason in status and "Traceback" not in status
            assert result[outs.index(ui["dataset"])] == gr.skip()
            assert s.current is run and list(s.uploads) == [good]
    finally:
        s.close()


def test_a_downloaded_drawing_uploads_back_as_the_same_drawing(manager, tmp_path):
    s = Session(manager)
    try:
        out = A.on_draw_download(s, two_strokes(), 0.25)
        path = out["draw_file"]["value"]
        assert path.endswith(".csv") and out["draw_file"]["visible"]
        plain = PointsFile.from_path(path)  # an ordinary points file too: x,y per line
        drawn = D.read_csv(path)
        np.testing.assert_allclose(plain.points.numpy(), drawn.points.numpy(), atol=1e-6)
        assert drawn.h == 0.25 and set(drawn.strokes.tolist()) == {0, 1}
        up = A.on_upload(s, "realnvp", path, knob_values(batch_size=64))
        data = s.uploads[s.current.dataset_name]
        assert isinstance(data, DrawnPoints) and data.encode() == drawn.encode()
        assert "drawn=" in up["query"] and up["bandwidth"] == 0.25 and "sketch" in up
        # an ordinary .csv of points still uploads as the points themselves
        other = tmp_path / "mine.csv"
        other.write_text("x,y\n" + "\n".join(f"{i / 10},{-i / 10}" for i in range(20)) + "\n")
        A.on_upload(s, "realnvp", str(other), knob_values(batch_size=16))
        assert s.current.dataset_name == "upload: mine.csv" and isinstance(s.uploads["upload: mine.csv"], PointsFile)
    finally:
        s.close()


def test_the_bandwidth_slider_previews_without_training(manager):
    s = Session(manager)
    try:
        fig = A.on_draw_preview(s, two_strokes(), 0.4)["draw_preview"]
        assert "h = 0.4" in _text(fig) and s.current is None
        assert "press Use this drawing" in _text(A.on_draw_preview(s, canvas(), 0.4)["draw_preview"])
    finally:
        s.close()


def test_the_page_wires_the_drawing_to_its_handlers():
    from gradio.components.image_editor import EditorData

    from playground.runs import RunManager

    demo = A.build_app(RunManager(1))

    def handler(dep):  # the handler a bound callback calls
        fn = dep.fn
        if fn is None or not getattr(fn, "__closure__", None):  # a cached value of the page has none
            return None
        return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__))).get("fn")

    wired = {handler(dep): dep for dep in demo.fns.values() if handler(dep) is not None}
    sketch = next(b for b in demo.blocks.values() if isinstance(b, gr.Sketchpad))
    bandwidth = next(b for b in demo.blocks.values() if getattr(b, "label", None) == "bandwidth h")
    assert (bandwidth.minimum, bandwidth.maximum, bandwidth.value) == (0.02, 1.0, D.DEFAULT_BANDWIDTH)
    for fn in (A.on_draw, A.on_draw_preview, A.on_draw_download):
        assert sketch in wired[fn].inputs and bandwidth in wired[fn].inputs
    dataset = next(b for b in demo.blocks.values() if getattr(b, "label", None) == "Dataset")
    assert dataset in wired[A.on_draw].outputs
    for fn in (A.on_load, A.on_upload):  # a link or a file restores the sketch and its bandwidth
        assert sketch in wired[fn].outputs and bandwidth in wired[fn].outputs
    # a drawing restored from a link goes through the sketchpad's own files and reads back as its points
    points = np.array([[-3.0, 3.0], [0.0, 0.0], [2.5, -1.25], [3.9, -3.9]])
    shown = sketch.postprocess(D.points_to_image(points))
    value = sketch.preprocess(EditorData(background=shown.background, layers=[], composite=shown.composite))
    back, _ = D.sketch_to_points(value)
    assert len(back) == len(points)
    np.testing.assert_allclose(back[np.lexsort(back.T[::-1])], points[np.lexsort(points.T[::-1])], atol=1.5 / 50)
