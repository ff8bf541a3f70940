"""The page: one Blocks layout, then the event wiring at the bottom.

The family's panels fill six slots (playground.app.status.SLOTS), its view
controls are sliders under them, and every knob of every registered model is
one control, shown when the chosen model has it.
"""

from __future__ import annotations

import os
import threading
import time

import gradio as gr
import torch

from core import registry
from core.train import warm_up

from .. import presets as P
from ..concepts import concepts_tab
from ..controls import DEFAULT_DATASET, DEFAULT_MODEL, Knob, all_knobs, initial_values
from ..runs import RunManager, Session
from ..views import all_controls, view_for
from . import drawing as D
from .knob_slider import KnobSlider
from .thumbnails import thumbnail_files
from .handlers import (apply_preset, on_dataset, on_draw, on_draw_download, on_draw_preview, on_family, on_knob, on_load,
                       on_model, on_upload, on_view_control, pause, play, redraw_charts, reset, set_redraw, step,
                       step_phase, pulse, tick)
from .handlers import LIVE, MAX_PHASES, PACE, SPEEDS, on_live, on_replay
from .share import (close_session, compare, compare_choices, compare_live, export_gif, export_png, export_weights,
                    run_state)
from .status import DEFAULT_REDRAW, METRIC_CHOICES, REDRAW, SLOTS, dataset_choices, family_of, model_info, placement
from .wiring import JS_LOAD, JS_PULSE, JS_REPLACE_STATE, TICK_ID, UI, Page

CSS = """
#status { min-height: 3.2em; }
#model_info { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin-top: -0.6em; }
/* the status line says what the run does; Gradio's "processing 3.2/1.9s" of an event that also
   updates it (an export, a redraw under load) would cover it */
#status [data-testid="status-tracker"] { display: none !important; }
/* the datasets as small thumbnails, five to a row in the controls' column (the menu above names
   the one picked) */
#thumbnails, #thumbnails .grid-wrap { height: auto !important; min-height: 0 !important; max-height: none !important; }
#thumbnails .grid-container { grid-template-columns: repeat(5, minmax(0, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; gap: 4px !important; }
#thumbnails .caption-label { display: none; }
#watch { border-left: 3px solid var(--color-accent); padding-left: 0.6em; }
"""

COMPARE_EVERY = 1.0  # seconds between Compare's redraws while it is shown
REDRAW_WORKERS = 2  # redraws drawn at once: they share one interpreter, so more only queue inside it

INTRO = ("## Generative Playground\n"
         "Pick a model and a dataset and press **Play**: it trains here, and every panel redraws from its current "
         "weights. Knobs marked *live* act at once; the others on **Reset**.")


def _pace_component(knob: Knob, value, visible: bool):
    """The speed, beside Play: from slow motion (every step a picture) to full speed."""
    return gr.Dropdown(SPEEDS, value=value, label="speed", allow_custom_value=True, visible=visible,
                       interactive=True, info="live: slow motion shows every step; full speed trains as fast as "
                                              "the machine goes")


def _knob_component(knob: Knob, value, visible: bool):
    """A control for one knob; `value` is the default model's (or any model's) default."""
    common = {"label": knob.name, "info": knob.info(), "visible": visible, "interactive": True, "value": value}
    if knob.kind == "choice":  # choices change with the model: as for sliders, the config checks the value
        return gr.Dropdown(list(knob.choices), allow_custom_value=True, **common)
    if knob.kind == "bool":
        return gr.Checkbox(**common)
    if knob.slider:
        return KnobSlider(knob.lo, knob.hi, step=1, **common)
    return gr.Number(precision=0 if knob.kind == "int" else None, **common)


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------
def use_one_thread_per_run() -> None:
    """One torch thread per operation (PLAYGROUND_TORCH_THREADS to change).

    Each run trains in a child process that takes this setting with it, while
    this process draws every run's pictures and metrics and serves the page;
    torch's intra-op threads on top of that oversubscribe the cores, and
    spinning OpenMP threads then starve each other (on a busy 2-core machine,
    2 intra-op threads trained 25x slower than 1). Small MLPs gain little from
    intra-op threads anyway.
    """
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))


def patient_startup_check(seconds: float = 120.0) -> None:
    """Let launch() wait for its own page on a busy machine.

    Gradio's launch() fetches its own page before it returns, with a 3-second timeout, and
    refuses to start ("When localhost is not accessible...") when that is slow: on a loaded
    2-core machine (a classroom's server starting its replicas, a CPU Space) it often is. The
    check is kept, with a timeout that suits such a machine.
    """
    import httpx
    from gradio import networking

    if getattr(networking.url_ok, "patient", False):
        return

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                r = httpx.head(url, timeout=min(30.0, seconds), verify=False)
                if r.status_code in (200, 401, 301, 302, 303, 307, 308):
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        return False

    url_ok.patient = True
    networking.url_ok = url_ok


def build_app(manager: RunManager | None = None) -> gr.Blocks:
    """The Blocks app. One RunManager per process caps the runs training at once."""
    patient_startup_check()
    use_one_thread_per_run()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: now, not on a visit
    threading.Thread(target=warm_up, daemon=True).start()  # the server training processes fork from
    manager = manager or RunManager()
    knobs = all_knobs()
    start = initial_values()
    ui = UI()
    ui.knob_keys = list(knobs)
    view_controls = all_controls()
    ui.control_names = list(view_controls)
    families = registry.families()
    default_family = family_of(DEFAULT_MODEL)

    with Page(title="Generative Playground") as demo:
        session = gr.State(lambda: Session(manager), delete_callback=lambda s: s.close())
        ui["session"] = session
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Train") as train_tab:
                with gr.Row():
                    with gr.Column(scale=1, min_width=330):
                        ui["preset"] = gr.Dropdown([p["title"] for p in P.PRESETS], value=None,
                                                   label="Presets: one click sets model, data and settings")
                        with gr.Row():
                            ui["family"] = gr.Dropdown(families, value=default_family, label="Family", min_width=120)
                            ui["model"] = gr.Dropdown(registry.model_names(default_family), value=DEFAULT_MODEL,
                                                      label="Model", min_width=120, elem_id="model",
                                                      # any registered model through the API, whatever family the
                                                      # page shows; the handlers refuse an unknown one by name
                                                      allow_custom_value=True)
                        ui["model_info"] = gr.Markdown(model_info(DEFAULT_MODEL), elem_id="model_info")
                        ui["dataset"] = gr.Dropdown(dataset_choices(), value=DEFAULT_DATASET, label="Dataset")
                        ui["thumbnails"] = gr.Gallery(list(thumbnail_files()), columns=5, rows=2, height="auto", allow_preview=False,
                                                      show_label=False, object_fit="contain", elem_id="thumbnails",
                                                      buttons=[], preview=False)
                        with gr.Row():
                            ui["play"] = gr.Button("Play", variant="primary", min_width=60, elem_id="play")
                            ui["pause"] = gr.Button("Pause", min_width=60, elem_id="pause")
                            ui["step"] = gr.Button("Step", min_width=60, elem_id="step")
                            ui["reset"] = gr.Button("Reset", variant="stop", min_width=60, elem_id="reset")
                        ui["status"] = gr.Markdown("Loading…", elem_id="status")
                        with gr.Row():  # GAN Lab's habit: step the discriminator alone, or the generator
                            for i in range(MAX_PHASES):
                                ui[f"phase{i}"] = gr.Button("", visible=False, size="sm", min_width=60,
                                                            elem_id=f"phase{i}")
                        ui["knob:" + PACE] = _pace_component(knobs[PACE], *start[PACE])
                        with gr.Row(equal_height=True):
                            ui["replay"] = gr.Slider(0, LIVE, value=LIVE, step=1, label="replay", scale=4,
                                                     info="drag back through the run's recorded pictures",
                                                     elem_id="replay")
                            ui["live"] = gr.Button("Live", size="sm", scale=1, min_width=50, elem_id="live")
                        ui["watch"] = gr.Markdown("", elem_id="watch")  # a preset's what-to-watch-for, under the buttons
                        with gr.Accordion("Model settings", open=True):
                            for key, knob in knobs.items():
                                if knob.scope == "model":
                                    ui["knob:" + key] = _knob_component(knob, *start[key])
                        with gr.Accordion("Training settings", open=False):
                            for key, knob in knobs.items():
                                if knob.scope == "train" and key != PACE:
                                    ui["knob:" + key] = _knob_component(knob, *start[key])
                        with gr.Accordion("Your own data: upload or draw", open=False):
                            ui["upload"] = gr.UploadButton("Upload your own points (.csv or .npy, N x 2)", size="sm",
                                                           file_types=[".csv", ".npy"])
                            with gr.Accordion("Draw your own data", open=True):
                                gr.Markdown("Pick the brush ✎ in the pad, then draw strokes or dab points: the pad is the "
                                            "box [-4, 4]², y up.")
                                ui["sketch"] = gr.Sketchpad(
                                    label="the box [-4, 4]²", type="numpy",
                                    image_mode="RGBA", canvas_size=(D.CANVAS, D.CANVAS), fixed_canvas=True, layers=False,
                                    transforms=(), format="png",  # lossless: a restored drawing reads back exactly
                                    brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=6))
                                ui["bandwidth"] = gr.Slider(0.02, 1.0, value=D.DEFAULT_BANDWIDTH, step=0.01, label="bandwidth h",
                                                            info="each drawn point becomes a Gaussian of this std")
                                with gr.Row():
                                    ui["draw_use"] = gr.Button("Use this drawing", variant="primary", size="sm")
                                    ui["draw_download"] = gr.Button("Download .csv", size="sm")
                                ui["draw_preview"] = gr.Plot(show_label=False)
                                ui["draw_file"] = gr.File(label="Your drawing", interactive=False, visible=False)
                        with gr.Accordion("Share and export", open=False):
                            ui["link"] = gr.Textbox(label="Link to this configuration", buttons=["copy"], interactive=False,
                                                    elem_id="link")
                            ui["query"] = gr.Textbox(visible=False)
                            with gr.Row():
                                ui["png"] = gr.Button("PNG", min_width=60)
                                ui["gif"] = gr.Button("GIF", min_width=60)
                                ui["weights"] = gr.Button("Weights", min_width=60)
                            ui["export_file"] = gr.File(label="Download", interactive=False, visible=False)
                    with gr.Column(scale=3):
                        shown = dict(zip(SLOTS, placement(default_family)))
                        ui["wide0"] = gr.Plot(show_label=False, visible=shown["wide0"] is not None)
                        # the curves next, so that at 1280 x 800 the family's signature panel, the loss and
                        # the metric are on one screen with the controls
                        with gr.Row():
                            ui["loss_plot"] = gr.Plot(show_label=False)
                            ui["metrics_plot"] = gr.Plot(show_label=False)
                        for row in (("slot0", "slot1"), ("slot2", "slot3")):
                            with gr.Row():
                                for name in row:
                                    ui[name] = gr.Plot(show_label=False, visible=shown[name] is not None)
                        ui["wide1"] = gr.Plot(show_label=False, visible=shown["wide1"] is not None)
                        mine = {c.name for c in view_for(default_family).controls}
                        for name, c in view_controls.items():
                            ui["control:" + name] = gr.Slider(c.lo, c.hi, value=c.default, step=c.step, label=c.label,
                                                              info=c.info, visible=name in mine)
                        with gr.Row():
                            ui["x_axis"] = gr.Radio(["step", "time"], value="step", label="x axis", scale=1)
                            ui["redraw"] = gr.Radio(list(REDRAW), value=DEFAULT_REDRAW, label="redraw every", scale=1,
                                                    info="slower suits a slow computer or connection")
                            ui["metric"] = gr.Dropdown(list(METRIC_CHOICES), value="auto", label="metric", scale=1)
                        with gr.Accordion("Equations", open=False):
                            ui["equations"] = gr.Markdown(view_for(default_family).equations, latex_delimiters=[
                                {"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}])
            with gr.Tab("Compare") as compare_tab:
                gr.Markdown("This tab's runs side by side: the one training now (its curve grows as it "
                            "trains) and those you reset or finished.")
                with gr.Row():
                    ui["compare_runs"] = gr.CheckboxGroup([], label="Runs", scale=3)
                    ui["compare_metric"] = gr.Dropdown(list(METRIC_CHOICES), value="auto", label="metric", scale=1)
                    ui["compare_x"] = gr.Radio(["step", "time"], value="step", label="x axis", scale=1)
                ui["compare_plot"] = gr.Plot(show_label=False)
                ui["modes_plot"] = gr.Plot(show_label=False)
            concepts = concepts_tab()
        ui["visible"] = gr.Textbox(value="visible", visible=False)  # the tab's document.visibilityState
        ui["api_state"] = gr.JSON(visible=False)
        ui["state_button"] = gr.Button(visible=False)
        for name in ("play", "step", "reset"):  # the API's buttons: a script names the model and data itself
            ui["api_" + name] = gr.Button(visible=False)
        # the timer presses the hidden tick button, whose event is a redraw, at every tick while the
        # page's run moves ("busy"), and while it waits ("still") only when the hidden "pulse"
        # endpoint says one is due (wiring.JS_PULSE)
        ui["pace"] = gr.Textbox(value="busy", visible=False)  # as Session.timer_mode starts
        ui["pulse"] = gr.Textbox(visible=False)
        ui["pulse_button"] = gr.Button(visible=False)
        ui["tick_button"] = gr.Button(visible="hidden", elem_id=TICK_ID)
        ui["timer"] = timer = gr.Timer(REDRAW[DEFAULT_REDRAW])
        ui["compare_timer"] = gr.Timer(COMPARE_EVERY, active=False)  # runs while Compare is shown

        # ---- wiring ----------------------------------------------------------
        controls = ["family", "model", "model_info", "dataset", "knobs", "slots", "equations"] + [f"phase{i}" for i in range(MAX_PHASES)]
        view = ["loss_plot", "metrics_plot", "query", "controls", "replay"]

        def on(event, fn, inputs, outputs, api_name=None, extra=None, **kw):
            callback, ins, outs = ui.bind(fn, inputs, outputs, api=api_name is not None, **(extra or {}))
            visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
            return event(callback, ins, outs, show_progress=kw.pop("show_progress", "hidden"),
                         **ui.processing(callback), **visibility, **kw)

        ctl = ["session", "model", "dataset", "knobs"]
        drawn = ["sketch", "bandwidth", "draw_preview"]
        on(demo.load, on_load, ["session"], controls + view + ["watch", "preset"] + drawn)
        on(ui["family"].input, on_family, ["session", "family", "dataset"], controls + view)
        on(ui["model"].input, on_model, ["session", "model", "dataset"], controls + view)
        on(ui["dataset"].input, on_dataset, ctl, controls + view)
        def picked(evt: gr.SelectData):  # a thumbnail picked is the dataset menu moved
            return gr.update(value=registry.dataset_names()[evt.index])

        picked_then = ui["thumbnails"].select(picked, None, [ui["dataset"]], api_visibility="private",
                                              show_progress="hidden").then
        on(picked_then, on_dataset, ctl, controls + view)
        on(ui["upload"].upload, on_upload, ["session", "model", "upload", "knobs"], controls + view + drawn)
        on(ui["draw_use"].click, on_draw, ["session", "model", "sketch", "bandwidth", "knobs"],
           controls + view + ["draw_preview"])
        on(ui["bandwidth"].release, on_draw_preview, ["session", "sketch", "bandwidth"], ["draw_preview"])
        on(ui["draw_download"].click, on_draw_download, ["session", "sketch", "bandwidth"], ["draw_file"],
           show_progress="minimal")
        on(ui["preset"].input, apply_preset, ["session", "preset"], controls + view + ["watch", "preset"])
        # The page's buttons act on the run the session holds, and bring a page that is behind it up
        # to date (handlers._from_page); the API's take the model and data they are given.
        for name, fn in (("play", play), ("step", step), ("reset", reset)):
            on(ui[name].click, fn, ctl, controls + view + ["timer", "pace"], extra={"page": True})
            on(ui["api_" + name].click, fn, ctl, view, api_name=name)
        on(ui["pause"].click, pause, ["session"], [], api_name="pause")
        on(ui["replay"].input, on_replay, ["session", "replay"], ["slots"], trigger_mode="always_last")
        on(ui["live"].click, on_live, ["session"], ["replay"])
        for i in range(MAX_PHASES):
            on(ui[f"phase{i}"].click, step_phase, ctl, controls + view + ["timer", "pace"], extra={"index": i})
        for key in knobs:
            comp = ui["knob:" + key]
            events = [comp.release] if isinstance(comp, gr.Slider) else \
                [comp.blur, comp.submit] if isinstance(comp, gr.Number) else [comp.input]
            for event in events:
                on(event, on_knob, ctl, controls + view, extra={"key": key})
        everything = ["slots", "loss_plot", "metrics_plot", "timer", "pace"] + controls + view
        # Redraws wait in a queue of their own, so that a button never waits behind thirty tabs'
        # pictures (the buttons' queue is the default one); a tab drops a tick while its last is
        # pending, and says whether it is in the foreground and how busy its browser is. While the
        # page only waits, the server hears from it over plain HTTP instead (the pulse, answered
        # outside the queue): an event of Gradio's costs the browser the same whatever it carries.
        timer.tick(None, [ui["pace"]], None, js=JS_PULSE, show_progress="hidden")
        beat, ins, outs = ui.bind(pulse, ["session", "visible"], ["pulse"])  # the page's, not the API's
        ui["pulse_button"].click(beat, ins, outs, api_name="pulse", api_visibility="undocumented", queue=False,
                                 show_progress="hidden", **ui.processing(beat))
        on(ui["tick_button"].click, tick, ["session", "x_axis", "metric", "visible"], everything, trigger_mode="once",
           concurrency_id="redraw", concurrency_limit=REDRAW_WORKERS, js=JS_LOAD)
        on(ui["redraw"].input, set_redraw, ["session", "redraw"], ["timer", "pace"])
        for comp in (ui["x_axis"], ui["metric"]):
            on(comp.input, redraw_charts, ["session", "x_axis", "metric"], everything)
        for name in view_controls:
            on(ui["control:" + name].release, on_view_control, ["session", "value=control:" + name], ["slots"],
               extra={"name": name})
        on(ui["png"].click, export_png, ["session"], ["export_file"], show_progress="minimal")
        on(ui["gif"].click, export_gif, ["session"], ["export_file"], show_progress="minimal")
        on(ui["weights"].click, export_weights, ["session"], ["export_file"], show_progress="minimal")
        compared = ["session", "compare_runs", "compare_metric", "compare_x"]
        on(compare_tab.select, compare_choices, ["session"], ["compare_runs"])
        compare_tab.select(lambda: gr.Timer(active=True), None, [ui["compare_timer"]], api_visibility="private",
                           show_progress="hidden")
        for tab in (train_tab, concepts):
            tab.select(lambda: gr.Timer(active=False), None, [ui["compare_timer"]], api_visibility="private",
                       show_progress="hidden")
        on(ui["compare_timer"].tick, compare_live, compared, ["compare_runs", "compare_plot", "modes_plot"],
           trigger_mode="once", concurrency_id="redraw")
        for event in (ui["compare_runs"].input, ui["compare_metric"].input, ui["compare_x"].input):
            on(event, compare, compared, ["compare_plot", "modes_plot"])
        on(ui["state_button"].click, run_state, ["session"], ["api_state"], api_name="state")
        # Whatever changes the configuration (a control, a preset's next run, a link) sets the hidden
        # query; the address bar and the link follow it here, in the browser.
        ui["query"].change(None, [ui["query"]], [ui["link"]], js=JS_REPLACE_STATE, show_progress="hidden",
                           api_visibility="private")

        def on_close(request: gr.Request):
            close_session(manager, request, demo)

        demo.unload(on_close)
    # Gradio's own queue estimates go to every waiting event whenever any event ends; the page
    # shows its run's place in the training queue instead, so they come once a minute.
    for name, value in ANALYTICS.items():  # read by the queue as it is made; a setting of one's own wins
        os.environ.setdefault(name, str(value))
    demo.queue(default_concurrency_limit=8, status_update_rate=60)
    return demo


# Gradio's queue keeps a record of each of the last GRADIO_ANALYTICS_MAX_EVENTS events (10,000 by
# default) for its monitoring summary, and by default rebuilds that summary (a pandas table of
# every record, grouped by function) after every single event. With a class polling the server
# that was most of each request's cost on the server (a /state call: 15 ms of CPU, 5 ms without),
# and it grew with every event recorded. The summary is still kept, rebuilt every 500 events from
# the last 2,000.
ANALYTICS = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": 500, "GRADIO_ANALYTICS_MAX_EVENTS": 2000}


SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the interpreter lock while another waits (Python's default 0.005)


def serve_many() -> None:
    """Settings of a server process for many sessions at once; `python app.py` applies them.

    - The interpreter lock passes sooner between threads: a request thread gives it up at every
      call into torch or the system and, on a busy server, waited up to 5 ms to get it back each
      time, which made building a run take half a second.
    - What exists now (the page's components, the registry, torch's modules) is set aside from the
      cyclic garbage collector: it lives as long as the server, and each full collection scanned
      all of it while every session waited (about half a second, every 10 to 15 s, under load).
    - The C heap gives back the pictures' large buffers once they are freed (share.tune_malloc).
    """
    import gc
    import sys

    from .share import tune_malloc

    tune_malloc()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()


# Seconds the server keeps a connection that has gone idle (uvicorn's default, as Gradio starts it: 5).
# A client that reuses connections drops its idle ones after a time of its own (httpx, and so
# Gradio's Python client: 5 s, counted from when it read the answer). The server's time must be
# the longer: else a client that read its answer late, as on a busy machine, sends its next request
# on a connection the server is closing at that moment, and the request is lost with a reset.
# (Chrome retries a request that a reused connection refused; httpx does not.) An idle connection
# costs a few kilobytes.
KEEP_ALIVE = 75.0


def keep_idle_connections(demo: gr.Blocks, seconds: float = KEEP_ALIVE) -> None:
    """Once `demo` is launched, keep every connection accepted from now on for `seconds` idle.

    Gradio builds its server's settings inside launch() without this one; uvicorn reads it for
    each connection as it is accepted, so setting it on the running server's settings is enough.
    """
    if getattr(demo, "server", None) is None:
        raise RuntimeError("keep_idle_connections: launch the app first")
    demo.server.config.timeout_keep_alive = seconds
