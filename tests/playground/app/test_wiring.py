"""The page's wiring under many sessions: a button's inputs and outputs are prepared in one pass on
its own thread, not handed to a worker thread and back one at a time; skipped outputs cost no
component; and what reaches the handlers and the page is what Gradio's own processing gives."""

import asyncio
import copy

import anyio.to_thread
import gradio as gr
import pytest
from gradio.state_holder import SessionState

from playground import app as A
from playground import controls as K
from playground.app import wiring
from playground.runs import RunManager
from tests.fakes import wait_for


@pytest.fixture(scope="module")
def demo():
    manager = RunManager(2)
    yield A.build_app(manager)
    manager.shutdown()


def _fn(demo, api_name):
    return next(f for f in demo.fns.values() if f.api_name == api_name)


def test_the_buttons_are_wired_to_prepare_their_own_inputs_and_outputs(demo):
    """Every event whose components are plain values does its own processing (preprocess and
    postprocess False); the upload and the drawing, which carry files, keep Gradio's."""
    for name in ("play", "step", "reset", "pause", "state"):
        fn = _fn(demo, name)
        assert not fn.preprocess and not fn.postprocess, name
    files = (gr.UploadButton, gr.File, gr.Sketchpad)
    with_files = [f for f in demo.fns.values() if any(isinstance(b, files) for b in list(f.inputs) + list(f.outputs))]
    knobbed = [f for f in demo.fns.values() if len(f.inputs) > 80 and f not in with_files]  # the page's buttons, knobs
    assert len(knobbed) > 10 and all(not f.preprocess and not f.postprocess for f in knobbed)
    assert with_files and all(f.preprocess for f in with_files if any(isinstance(b, files) for b in f.inputs))
    assert all(f.postprocess for f in with_files if any(isinstance(b, files) for b in f.outputs))


def test_a_button_takes_no_thread_round_trip_per_input(served_api, monkeypatch):
    """The reproduction: /play with the model's 80-odd knobs used to hand each input to a worker
    thread and back (86 round trips, seconds on a busy server); now the handler runs in one."""
    _, client = served_api
    client.predict("realnvp", "two_moons", api_name="/state")  # the session exists
    hops = []
    real = anyio.to_thread.run_sync

    async def counted(fn, *args, **kwargs):
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    client.predict("realnvp", "two_moons", api_name="/play")
    # what remains: the handler itself, and per request (not per input) Gradio's login check
    assert hops.count("callback") == 1 and len(hops) <= 4, hops
    assert not any("preprocess" in h or "postprocess" in h for h in hops), hops


def test_inputs_prepared_by_the_callback_are_those_gradio_would_pass(demo):
    ui_number = next(b for b in demo.blocks.values() if isinstance(b, gr.Number) and b.precision == 0)
    ui_float = next(b for b in demo.blocks.values() if isinstance(b, gr.Number) and b.precision is None)
    slider = next(b for b in demo.blocks.values() if isinstance(b, A.layout.KnobSlider))
    for comp, value in ((ui_number, 3.0), (ui_number, 4), (ui_float, 0.5), (ui_float, 2), (ui_float, None),
                        (slider, 2.0), (slider, None)):
        assert wiring._prepare(comp, value) == comp.preprocess(value)
        assert type(wiring._prepare(comp, value)) is type(comp.preprocess(value))
    with pytest.raises(A.wiring.PlaygroundError, match=f"{ui_number.label} = 'four' is not a number"):
        wiring._prepare(ui_number, "four")
    menu = next(b for b in demo.blocks.values() if isinstance(b, gr.Dropdown))
    assert wiring._prepare(menu, "an upload of this tab") == "an upload of this tab"  # the handlers check names


@pytest.mark.parametrize("name", ["hidden", "layers"])  # a number box, a slider
def test_a_number_that_is_not_one_is_refused_by_name(served_api, name):
    _, client = served_api
    values = {K.knob_key(k): d for k, d in K.knobs_for("realnvp").values()}
    knobs = K.all_knobs()
    args = [values.get(key, K.initial_values()[key][0]) for key in knobs]
    args[list(knobs).index(K.knob_key(K.knobs_for("realnvp")[name][0]))] = "many"
    shown = str(client.predict("realnvp", "two_moons", *args, api_name="/reset"))
    # said by the wiring ("... is not a number") or by the model's config ("... must be a whole number")
    assert f"{name} = 'many' is not a number" in shown or f"{name} must be" in shown, shown[-300:]
    assert "Something went wrong" not in shown and "Traceback" not in shown


def test_a_path_on_the_server_is_not_a_dataset_through_the_api(served_api, tmp_path):
    """The menus' choices are checked by the handlers, not by Gradio: a file on the server is never
    read as a dataset by name (the CLI reads paths; a page uploads)."""
    manager, client = served_api
    points = tmp_path / "secret.csv"
    points.write_text("x,y\n" + "\n".join(f"{i},{i}" for i in range(50)))
    out = str(client.predict("realnvp", str(points), api_name="/play"))
    assert "unknown dataset" in out and "upload" in out
    state = client.predict(api_name="/state")[0]
    assert state.get("dataset") != str(points) and manager.active == 0


def test_skipped_outputs_are_sent_as_gradio_sends_them(demo):
    """Page.postprocess_data gives what Gradio's own does for a mix of skips, plain values and updates."""
    fn = max(demo.fns.values(), key=lambda f: len(f.outputs))
    outputs = list(fn.outputs)
    preds = [gr.skip()] * len(outputs)
    for i, block in enumerate(outputs):
        if isinstance(block, gr.Markdown) and preds[0] == gr.skip():
            preds[i] = "step 12 · running"
        elif isinstance(block, gr.Number):
            preds[i] = gr.update(value=3, visible=False)
        elif isinstance(block, gr.Dropdown):
            preds[i] = gr.update(choices=["a", "b"], value="b")

    async def both():
        ours = await demo.postprocess_data(fn, copy.deepcopy(preds), SessionState(demo))
        theirs = await gr.Blocks.postprocess_data(demo, fn, copy.deepcopy(preds), SessionState(demo))
        return ours, theirs

    ours, theirs = asyncio.run(both())
    assert len(ours) == len(outputs) and ours == theirs
    assert sum(o == {"__type__": "update"} for o in ours) == sum(p == gr.skip() for p in preds) > 0


def test_outputs_finished_by_the_callback_are_those_gradio_would_send(demo):
    plot = next(b for b in demo.blocks.values() if isinstance(b, gr.Plot))
    text = next(b for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    figure = A.handlers.blank("nothing yet")
    assert wiring._finish(plot, figure) == plot.postprocess(figure).model_dump()
    assert wiring._finish(text, "**step** 3") == text.postprocess("**step** 3")
    update = wiring._finish(text, gr.update(value="a", visible=True))
    assert update == {"__type__": "update", "value": text.postprocess("a"), "visible": True}
    timer = next(b for b in demo.blocks.values() if isinstance(b, gr.Timer))
    assert wiring._finish(timer, gr.Timer(value=1.0))["value"] == 1.0
    assert wiring._finish(text, gr.skip()) == gr.skip()


def test_the_page_still_plays_through_the_wiring(served_api):
    """End to end: the API's Play answers with its outputs processed (a figure as Gradio's JSON)."""
    _, client = served_api
    out = client.predict("realnvp", "two_moons", api_name="/play")
    assert wait_for(lambda: client.predict(api_name="/state")[0]["step"] > 0, timeout=60, every=0.3)
    assert any(isinstance(v, dict) and v.get("type") == "plotly" for v in out) or \
        any(isinstance(v, dict) and "plot" in v for v in out)


def test_the_server_settings_for_many_sessions():
    """python app.py hands the interpreter lock on sooner and keeps what lives as long as the
    server out of the garbage collector's full passes."""
    import gc
    import sys

    before = sys.getswitchinterval()
    try:
        A.serve_many()
        assert sys.getswitchinterval() == pytest.approx(A.layout.SWITCH_INTERVAL) and A.layout.SWITCH_INTERVAL < before
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)


def test_the_queue_rebuilds_its_monitoring_summary_seldom(monkeypatch):
    """Gradio's queue rebuilt a pandas summary of up to 10,000 recorded events after every event
    (most of a /state call's cost on the server); the app's queue does it every 500 events from
    the last 2,000, unless the person who runs it set those themselves."""
    for name in A.layout.ANALYTICS:
        monkeypatch.delenv(name, raising=False)
    queue = A.build_app(RunManager(1))._queue
    assert (queue.ANAYLTICS_CACHE_FREQUENCY, queue.ANALYTICS_MAX_EVENTS) == (500, 2000)
    monkeypatch.setenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", "7")
    assert A.build_app(RunManager(1))._queue.ANAYLTICS_CACHE_FREQUENCY == 7
