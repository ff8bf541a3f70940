"""The page's handlers: (session, plain values) -> {output name: value}.

Each can be called without a browser (the tests do). An output name is a
component's name in the layout, "knob:<key>" for a knob, "control:<name>"
for a view control, or "slots" for the list of panels in SLOTS order.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import urllib.parse

import gradio as gr

from core import registry
from core.data.drawn import DrawnPoints
from core.data.files import PointsFile
from core.errors import DataError, PlaygroundError
from core.train.budget import METRICS_EVERY, estimate
from core.train.views import yield_to_training

from .. import presets as P
from ..controls import (DEFAULT_DATASET, DEFAULT_MODEL, UPLOAD_PREFIX, all_knobs, data_kind, decode_query, dependents,
                        encode_query, initial_values, knob_key, knobs_for, non_default, settings_from, shown)
from ..draw import blank, charts
from ..runs import Session, thin
from ..runs.browser import read_page
from ..views import render, view_for
from . import drawing as D
from .status import (MAX_CHART_POINTS, REDRAW, DEFAULT_REDRAW, control_updates, dataset_choices, family_of,
                     format_status, html_text, knob_updates, model_info, panel_updates, pick_metric, placement)


def _retarget(session: Session, model: str, dataset: str, knobs: dict) -> tuple[dict, dict]:
    """Moving between points and digits: training knobs left at the defaults of the data before
    take the defaults of the new data (smaller batches for a conv net); changed ones stay.
    Returns (knob values, updates of the controls that changed)."""
    before = session.current
    old = data_kind(before.dataset_name) if before is not None else "points"
    new = data_kind(dataset)
    if old == new:
        return knobs, {}
    knobs, updates = dict(knobs), {}
    new_defaults = knobs_for(model, new)
    for name, (knob, old_default) in knobs_for(model, old).items():
        key = knob_key(knob)
        if knob.scope == "train" and key in knobs and knob.coerce(knobs[key]) == old_default:
            knobs[key] = new_defaults[name][1]
            if new_defaults[name][1] != old_default:
                updates["knob:" + key] = gr.update(value=new_defaults[name][1])
    return knobs, updates


MAX_PHASES = 3  # buttons that step one phase alone (CycleGAN has three: G, D_A, D_B)
PHASE_NAMES = {"D": "discriminator", "G": "generator", "GE": "generator and encoder",
               "D_A": "critic of A", "D_B": "critic of B"}
PACE = knob_key(knobs_for(DEFAULT_MODEL)["pace"][0])  # the speed control's knob
SPEEDS = [("full speed", 0.0), ("slow motion: 1 step a second", 1.0), ("2 steps a second", 2.0),
          ("5 steps a second", 5.0), ("20 steps a second", 20.0), ("100 steps a second", 100.0)]


def phase_buttons(run) -> dict:
    """A "Step <phase> only" button per phase of a model with two or more (a GAN's D and G)."""
    phases = run.phases if run is not None and len(run.phases) > 1 else []
    return {f"phase{i}": gr.update(visible=i < len(phases),
                                   value=f"Step {PHASE_NAMES.get(phases[i], phases[i])} only" if i < len(phases) else "")
            for i in range(MAX_PHASES)}


def _fresh_run(session: Session, model: str, dataset: str, knobs: dict, retarget: bool = True) -> dict:
    """Build a new run from the controls; returns the outputs that show it. retarget: the knobs
    are those of the data before (a new dataset), not already this data's."""
    knobs, moved = _retarget(session, model, dataset, knobs) if retarget else (knobs, {})
    model_s, train_s = settings_from(model, knobs)
    run = session.new_run(model, dataset, model_s, train_s)
    if run.note:
        session.notify(run.note)
    _say_cost(run)
    session.chain = []  # a preset's queued runs end when the person takes over
    query = _query(session, model, dataset, non_default(model, model_s, train_s, data_kind(dataset)))
    empty = blank("the curves appear as it trains")
    out = {"status": format_status(session), "query": query, "loss_plot": empty, "metrics_plot": empty, **moved}
    out.update(control_updates(family_of(model), kind=data_kind(dataset)))
    out.update(phase_buttons(run))
    out["replay"] = gr.update(value=LIVE)
    session.replaying = False
    return out


# ---- what a combination costs, said before Play ---------------------------------------------
_COSTS: dict = {}  # (model, dataset, settings) -> the estimate's sentence, once per process
_COSTING = threading.Lock()  # one estimate at a time: each spends seconds of a core


def _say_cost(run) -> None:
    """On digits, where one model's picture can take seconds, estimate the combination's cost off
    the request thread (core.train.budget.estimate) and put its sentence in the status line before
    Play (run.cost_note). Points are cheap for every model: nothing to say there."""
    if data_kind(run.dataset_name) != "images":
        return
    key = (run.model_name, run.dataset_name,
           tuple(sorted(non_default(run.model_name, run.model_settings, run.train_settings, "images").items())))
    if key in _COSTS:
        run.cost_note = _COSTS[key]
        return

    def work():
        yield_to_training()
        with _COSTING:
            if key not in _COSTS:
                try:
                    _COSTS[key] = estimate(run.model_name, run.dataset_name,
                                           {**run.model_settings, **run.train_settings})["message"]
                except Exception:  # noqa: BLE001 - an estimate that fails says nothing
                    _COSTS[key] = ""
        run.cost_note = _COSTS[key]

    threading.Thread(target=work, daemon=True, name="cost estimate").start()


def _query(session: Session, model: str, dataset: str, settings: dict) -> str:
    """The link's query: a drawn dataset travels as its text (drawn=...), not by its name."""
    query = encode_query(model, dataset, settings)
    data = session.uploads.get(dataset)
    if not isinstance(data, DrawnPoints):
        return query
    items = [(k, v) for k, v in urllib.parse.parse_qsl(query) if k != "data"] + [(D.QUERY_KEY, data.encode())]
    return urllib.parse.urlencode(items)


def _knobs_from(model: str, settings: dict | None = None, kind: str = "points") -> dict:
    """Control values (keyed like the controls) for the model's defaults on data of `kind`
    with `settings` changed."""
    settings = settings or {}
    return {knob_key(k): settings.get(name, d) for name, (k, d) in knobs_for(model, kind).items()}


def _show(session: Session, model: str, dataset: str, settings: dict | None = None) -> dict:
    """Every control set to this configuration, and a fresh run built from it."""
    out = _controls(session, model, dataset, settings)
    out.update(_fresh_run(session, model, dataset, _knobs_from(model, settings, data_kind(dataset)), retarget=False))
    return out


def _same_settings(run, model: str, dataset: str, knobs: dict) -> bool:
    model_s, train_s = settings_from(model, knobs)
    return (run.model_name, run.dataset_name) == (model, dataset) and \
        non_default(model, model_s, train_s) == non_default(model, run.model_settings, run.train_settings)


def in_turn(fn=None, *, resync: bool = False):
    """A change of configuration: made after the tab's earlier changes, never beside them (Session.turn).

    resync: the page moved a menu before asking (a model, a family, a dataset); if the change is
    refused (iaf on digits), the page is sent the run it still has with the warning."""
    if fn is None:
        return functools.partial(in_turn, resync=resync)

    @functools.wraps(fn)
    def changed(session: Session, *args, **kwargs):
        with session.turn():
            try:
                return fn(session, *args, **kwargs)
            except PlaygroundError as e:
                if resync and session.current is not None and not session.closed and not hasattr(e, "outputs"):
                    e.outputs = _resync(session)
                raise
    return changed


def _run_knobs(run) -> dict:
    """The control values of the run's own settings."""
    kind = data_kind(run.dataset_name)
    return _knobs_from(run.model_name, non_default(run.model_name, run.model_settings, run.train_settings, kind), kind)


def _behind(session: Session, model: str, dataset: str | None = None) -> bool:
    """The page has not shown the tab's last change yet: it still names another model (or data)
    than the run the session holds. Its knob values then belong to that other model."""
    run = session.current
    return run is not None and (run.model_name != model or (dataset is not None and run.dataset_name != dataset))


def _model_of(session: Session, model: str, knobs: dict) -> tuple[str, dict, bool]:
    """(model, knobs, behind) for new data: the page's, or the run's where the page is behind it."""
    if not _behind(session, model):
        return model, knobs, False
    return session.current.model_name, _run_knobs(session.current), True


def _resync(session: Session) -> dict:
    """Every control, the panels and the link as the session's run has them: the page caught up."""
    run = session.current
    kind = data_kind(run.dataset_name)
    settings = non_default(run.model_name, run.model_settings, run.train_settings, kind)
    out = _controls(session, run.model_name, run.dataset_name, settings)
    out["query"] = _query(session, run.model_name, run.dataset_name, settings)
    out.update(control_updates(family_of(run.model_name), kind=kind))
    out.update(phase_buttons(run))
    session.shown_seq = session.shown_history = session.shown_metrics = -1  # the panels were blanked: redraw them
    return out


@in_turn
def on_load(session: Session, request: gr.Request | None = None) -> dict:
    """Page opened: read the configuration from the URL, build the first run."""
    session.page_loaded()
    params = dict(request.query_params) if request is not None else {}
    preset = params.get("preset")
    if preset is not None:
        if P.find(preset) is not None:
            return apply_preset(session, preset)
        msg = f"preset={preset!r} is unknown; valid presets: {', '.join(p['slug'] for p in P.PRESETS)}"
        gr.Warning(html_text(msg))
        session.notify(f"⚠️ {msg}", seconds=20)
    code = params.pop(D.QUERY_KEY, None)
    model, dataset, settings, problems = decode_query(params)
    kinds = registry.model_spec(model).cls.data_kinds
    if data_kind(dataset) not in kinds:  # ?model=iaf&data=mnist: refused by name, not built and frozen
        fallback = DEFAULT_DATASET if "points" in kinds else \
            next(d for d in registry.dataset_names() if data_kind(d) in kinds)
        problems.append(f"{model} is built for {' and '.join(kinds)}, not {dataset}, so it trains on {fallback} "
                        f"here; models for {dataset}: {', '.join(registry.models_for(data_kind(dataset)))}")
        dataset = fallback
    restored = {}
    if code is not None:
        try:
            data = DrawnPoints.decode(code)
        except DataError as e:
            problems.append(f"the drawing in the link was not used: {e}")
        else:
            dataset = _keep_drawing(session, data)
            restored = _drawing_shown(data)
    out = _show(session, model, dataset, settings)
    out.update(restored)
    if problems:
        msg = "Some settings in the link were not used: " + "; ".join(problems)
        gr.Warning(html_text(msg))
        session.notify(f"⚠️ {msg}", seconds=20)
        out["status"] = format_status(session)
    return out


def _controls(session: Session, model: str, dataset: str, settings: dict | None = None) -> dict:
    """Every control set for this model, dataset and settings."""
    family = family_of(model)
    out = {"family": gr.update(value=family), "model": gr.update(choices=registry.model_names(family), value=model),
           "model_info": model_info(model),
           "dataset": gr.update(choices=dataset_choices(session), value=dataset),
           "equations": view_for(family).equations}
    out.update({"knob:" + k: v for k, v in knob_updates(model, settings, data_kind(dataset)).items()})
    out["slots"] = panel_updates(family, model, data_kind(dataset))
    return out


# Each change below changes one thing, and takes everything else from the session's run rather
# than from the page: a page may send a change before it has shown the one before (a family
# picked, then a dataset 0.3 s later), and would then name the model before. Whatever order two
# quick changes arrive in, both are kept.
@in_turn(resync=True)
def on_family(session: Session, family: str, dataset: str) -> dict:
    """A new family: its first model with default settings, on the same data."""
    model = registry.model_names(family)[0]
    return on_model(session, model, dataset)


@in_turn(resync=True)
def on_model(session: Session, model: str, dataset: str) -> dict:
    """A new model: default settings and a fresh run on the same data."""
    if session.current is not None:
        dataset = session.current.dataset_name
    return _show(session, model, dataset)


@in_turn(resync=True)
def on_dataset(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """New data: a fresh run of the same model and settings."""
    model, knobs, behind = _model_of(session, model, knobs)
    out = _fresh_run(session, model, dataset, knobs)
    if behind:
        out.update(_resync(session))
    return out


@in_turn
def on_upload(session: Session, model: str, upload, knobs: dict) -> dict:
    """A .csv/.npy file of points becomes a dataset of this session."""
    if upload is None:
        return {}
    model, knobs, _ = _model_of(session, model, knobs)
    path = upload if isinstance(upload, str) else getattr(upload, "name", str(upload))
    drawn = D.read_csv(path)  # a drawing downloaded from this page comes back as the drawing
    if drawn is not None:
        return _use_drawing(session, model, drawn, knobs, show_sketch=True)
    data = PointsFile.from_path(path)
    name = UPLOAD_PREFIX + os.path.basename(path)
    session.uploads[name] = data
    out = _fresh_run(session, model, name, knobs)
    out["dataset"] = gr.update(choices=dataset_choices(session), value=name)
    return out


# ---- data a person draws ----------------------------------------------------------
@in_turn
def on_draw(session: Session, model: str, sketch, bandwidth: float, knobs: dict) -> dict:
    """"Use this drawing": the sketch's points, smoothed with bandwidth h, become the run's data.

    A sketch that cannot be used is refused with the reason, and the last good
    drawing stays a dataset of this tab.
    """
    points, strokes = D.sketch_to_points(sketch)
    model, knobs, _ = _model_of(session, model, knobs)
    return _use_drawing(session, model, DrawnPoints(points, float(bandwidth), strokes), knobs)


def on_draw_preview(session: Session, sketch, bandwidth: float) -> dict:
    """The bandwidth moved: show the density the sketch would make (nothing is trained yet)."""
    try:
        points, strokes = D.sketch_to_points(sketch)
    except DataError:
        return {"draw_preview": D.preview_figure(None)}
    return {"draw_preview": D.preview_figure(DrawnPoints(points, float(bandwidth), strokes))}


def on_draw_download(session: Session, sketch, bandwidth: float) -> dict:
    """The sketch as a .csv of points (x,y per line), which the upload button takes back."""
    points, strokes = D.sketch_to_points(sketch)
    data = DrawnPoints.decode(DrawnPoints(points, float(bandwidth), strokes).encode())  # as "Use" and a link keep it
    path = D.write_csv(data, os.path.join(session.tmpdir(), f"drawing-{len(data)}-points.csv"))
    return {"draw_file": gr.update(value=str(path), visible=True)}


def _use_drawing(session: Session, model: str, data: DrawnPoints, knobs: dict, show_sketch: bool = False) -> dict:
    name = _keep_drawing(session, data)
    out = _fresh_run(session, model, name, knobs)
    out["dataset"] = gr.update(choices=dataset_choices(session), value=name)
    shown = _drawing_shown(session.uploads[name])
    out.update(shown if show_sketch else {"draw_preview": shown["draw_preview"]})
    return out


def _keep_drawing(session: Session, data: DrawnPoints) -> str:
    """The drawing as a dataset of this tab, stored as its link decodes it (points on the 0.01 grid),
    so a link trains on exactly the same data; the same drawing again keeps its name (and cached pictures)."""
    code = data.encode()
    drawings = {name: d for name, d in session.uploads.items() if isinstance(d, DrawnPoints)}
    for name, d in drawings.items():
        if d.encode() == code:
            return name
    data = DrawnPoints.decode(code)
    data.name = D.dataset_name(data, len(drawings) + 1)
    session.uploads[data.name] = data
    return data.name


def _drawing_shown(data: DrawnPoints) -> dict:
    """The sketchpad, bandwidth and preview showing a drawing (from a link or a file)."""
    return {"sketch": D.points_to_image(data.points.numpy()), "bandwidth": data.h,
            "draw_preview": D.preview_figure(data)}


def _own_knobs(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """The knob values for `model`. The page's controls always show the current model's (the
    model menu resets them), but a script calling the API names any model, and sends the values
    the page opened with for knobs it did not set: those take this model's defaults."""
    if session.current is not None and session.current.model_name == model:
        return knobs
    if model not in registry.model_names():
        return knobs  # refused by name further on
    opened = initial_values()
    own = _knobs_from(model, kind=data_kind(dataset))
    return {key: own[key] if key in own and key in opened and value == opened[key][0] else value
            for key, value in knobs.items()}


def _from_page(session: Session, model: str, dataset: str, knobs: dict) -> tuple[str, str, dict, dict]:
    """What a button on the page acts on: the session's run, if the page is behind it (and the
    outputs that bring the page up to date); else what the page shows."""
    if not _behind(session, model, dataset):
        return model, dataset, knobs, {}
    run = session.current
    return run.model_name, run.dataset_name, _run_knobs(run), _resync(session)


@in_turn
def play(session: Session, model: str, dataset: str, knobs: dict, page: bool = False) -> dict:
    """Start (or resume). A run that has not taken a step picks up changed settings first.

    page: pressed on the page, whose controls may be behind the run (_from_page); else an API
    call, which may name any model and data."""
    out = {}
    if page:
        model, dataset, knobs, out = _from_page(session, model, dataset, knobs)
    knobs = _own_knobs(session, model, dataset, knobs)
    run = session.current
    lost = run is not None and run.status == "error" and run.trainer.lost  # its training process was killed
    other = run is not None and (run.model_name, run.dataset_name) != (model, dataset)  # an API call naming another
    if run is None or lost or other or \
            (run.step == 0 and run.status == "ready" and not _same_settings(run, model, dataset, knobs)):
        out.update(_fresh_run(session, model, dataset, knobs))
        run = session.current
    note = run.play()
    if note:
        session.notify(note)
    out["status"] = format_status(session)
    if page:
        out.update(wake(session))
    return out


def pause(session: Session) -> dict:
    """Pause within a step; the run gives its training slot to whoever waits."""
    if session.current is not None:
        session.current.pause()
    return {"status": format_status(session)}


@in_turn
def step(session: Session, model: str, dataset: str, knobs: dict, page: bool = False) -> dict:
    """One optimisation step (pausing first if it was training)."""
    out = {}
    if page:
        model, dataset, knobs, out = _from_page(session, model, dataset, knobs)
    knobs = _own_knobs(session, model, dataset, knobs)
    run = session.current
    if run is None or run.finished:
        out.update(_fresh_run(session, model, dataset, knobs))
        run = session.current
    run.step_once(1)
    out["status"] = format_status(session)
    if page:
        out.update(wake(session))
    return out


@in_turn
def step_phase(session: Session, model: str, dataset: str, knobs: dict, index: int) -> dict:
    """One step of one phase alone (the page's "Step discriminator only"), pausing first."""
    model, dataset, knobs, out = _from_page(session, model, dataset, knobs)
    run = session.current
    if run is None or run.finished:
        out.update(_fresh_run(session, model, dataset, knobs))
        run = session.current
    if index < len(run.phases):
        run.step_once(1, run.phases[index])
        session.notify(f"one step of the {PHASE_NAMES.get(run.phases[index], run.phases[index])} alone")
    out["status"] = format_status(session)
    out.update(wake(session))
    return out


@in_turn
def reset(session: Session, model: str, dataset: str, knobs: dict, page: bool = False) -> dict:
    """Stop the run (its curves go to Compare) and build a fresh model with the current settings."""
    out = {}
    if page:
        model, dataset, knobs, out = _from_page(session, model, dataset, knobs)
    out.update(_fresh_run(session, model, dataset, _own_knobs(session, model, dataset, knobs)))
    return out


@in_turn
def on_knob(session: Session, model: str, dataset: str, knobs: dict, key: str) -> dict:
    """A knob moved: apply it now if it is live, and keep the link in step."""
    if _behind(session, model, dataset):  # a knob of the model before: the page shows the run's own now
        return _resync(session)
    model_s, train_s = settings_from(model, knobs)
    knob = all_knobs()[key]
    run = session.current
    note = ""
    if knob.live and run is not None and run.model_name == model and run.finished:
        note = (f"This run is {run.status}, so {knob.name} = {knobs[key]} changes nothing now; "
                "press Reset to train a new run with it.")
    elif knob.live and run is not None and run.model_name == model:
        run.set_live(knob.name, (model_s if knob.scope == "model" else train_s)[knob.name])
        note = f"{knob.name} = {knobs[key]} applied to the running model."
    elif run is not None and run.step > 0:
        note = f"{knob.name} takes effect when you press Reset."
    out = {"query": _query(session, model, dataset, non_default(model, model_s, train_s, data_kind(dataset)))}
    follows = dependents(model, knob.name)
    if follows:  # settings that matter only for some values of this one (DDIM's eta, for sampler)
        visible = shown(model, {**model_s, **train_s})
        keys = {name: knob_key(k) for name, (k, _) in knobs_for(model).items()}
        out.update({"knob:" + keys[name]: gr.update(visible=name in visible) for name in follows})
    if note:
        session.notify(note)
        out["status"] = format_status(session)
    return out


IDLE_TICK = 1.0  # the page's timer, in seconds, while nothing it shows can change fast
TICKS = (0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # the periods it takes: few, so that it seldom changes
LIVELY = 2.0  # seconds after Play or Step that a page ticks at its pace, before its run has moved


def _pace(session: Session, now: float) -> tuple[float, str]:
    """The period the page's timer should tick at, and its mode: "busy" redraws at each tick,
    "still" asks the pulse first (wiring.JS_PULSE). A page whose run trains ticks as often as its
    redraws may come (the person's choice, or longer when the server's picture budget is shared:
    RunManager.redraw_interval); a page with nothing that can change fast (a run paused, queued or
    finished and drawn, a background tab) ticks once a second: it still sees its place in the
    queue move, a Resume from elsewhere and its return to the foreground within a second, but it
    no longer sends the server six requests a second that answer nothing."""
    # a browser slow to draw is sent fewer pictures, but its status line still moves every second
    wanted = max(_server_interval(session), min(session.browser.interval(), IDLE_TICK))
    busy = next((t for t in TICKS if t >= wanted - 1e-9), TICKS[-1])
    return (max(busy, IDLE_TICK), "still") if _still(session, now) else (busy, "busy")


def _still(session: Session, now: float) -> bool:
    """Whether nothing the page shows can change fast: no run, a background tab, or a run that is
    not training, past the seconds after a button, whose newest picture and curves are shown."""
    run = session.current
    return run is None or not session.visible or (
        run.status != "running" and now >= session.lively_until and not _unshown(session, run))


def _unshown(session: Session, run, picture: bool = True) -> bool:
    """Whether the page has yet to be sent its run's newest picture (unless `picture` is False)
    or the newest points of its curves."""
    return (picture and run.seq != session.shown_seq) or len(run.trainer.history) != session.shown_history \
        or len(run.trainer.metric_history) != session.shown_metrics


def _redraw_interval(session: Session) -> float:
    """The least seconds between two pictures for this page: the person's choice, stretched where
    the server's picture budget is shared (RunManager.redraw_interval) or where the tab's own
    browser would spend more than its share of its time drawing (playground.runs.browser)."""
    return max(_server_interval(session), session.browser.interval())


def _server_interval(session: Session) -> float:
    manager = session.manager
    return session.redraw_period if manager is None else manager.redraw_interval(session.redraw_period)


def _retime(session: Session, now: float | None = None) -> dict:
    """The timer's new period and mode (_pace), if they should change (the page's "timer" and "pace")."""
    period, mode = _pace(session, time.monotonic() if now is None else now)
    if (period, mode) == (session.timer_period, session.timer_mode):
        return {}
    session.timer_period, session.timer_mode = period, mode
    return {"timer": gr.Timer(value=period), "pace": mode}


def wake(session: Session) -> dict:
    """A button that moves the run (Play, Step) was pressed on the page: tick at its pace again."""
    session.lively_until = time.monotonic() + LIVELY
    return _retime(session)


def tick(session: Session, x_axis: str, metric: str, visible: str = "visible") -> dict:
    """The timer: redraw only what changed since the last tick, as often as the server's picture
    budget allows (RunManager.redraw_interval); a background tab costs no pictures, and a page with
    nothing new to show ticks slowly (_pace)."""
    out = _redraw(session, x_axis, metric, visible)
    out.update(_retime(session))
    return out


def pulse(session: Session, visible: str = "visible") -> dict:
    """The page's timer while it waits (its "pace" is "still"): what the tab reports (in front or
    not, how busy its browser is) is recorded, and the answer says whether a redraw is due ("1")
    or not (""). The page asks for the redraw itself (`tick`) only when one is: a redraw is one of
    Gradio's events, and every event costs the tab's browser the same handling, a fifth of a core
    at one a second for a page that only waits (BENCHMARKS.md), where this is a plain request."""
    now = _heard(session, visible)
    return {"pulse": "1" if _due(session, now) else ""}


def _heard(session: Session, visible: str) -> float:
    """The tab reported in (a tick or a pulse): whether it is in front and how busy its browser is."""
    now = time.monotonic()
    shown, busy, span = read_page(visible)
    session.seen(shown)
    session.browser.measured(busy, span, now)
    manager = session.manager
    if manager is not None and session.owner:
        (manager.watching if session.visible else manager.unwatched)(session.owner)
    return now


def _due(session: Session, now: float) -> bool:
    """Whether a tick now would send the page anything: its timer's period, the status line, a
    picture or a curve (the same tests as `_redraw`, without drawing)."""
    if session.changing():
        return False  # the change answers for itself
    if _pace(session, now) != (session.timer_period, session.timer_mode):
        return True
    run = session.current
    if run is None or not session.visible:  # a background tab's status line waits until it is seen
        return False
    if format_status(session) != session.shown_status:
        return True
    return _picture_due(session, run, now) and _unshown(session, run, picture=not session.replaying)


def _picture_due(session: Session, run, now: float) -> bool:
    """Whether the page may be sent pictures now: it is in front, and its run's final picture is
    still to be shown or the page's redraw interval has passed since the last."""
    final = run.finished and session.shown_seq != run.seq
    return session.visible and (final or now - session.last_redraw >= _redraw_interval(session))


def _redraw(session: Session, x_axis: str, metric: str, visible: str) -> dict:
    run, generation = session.current, session.generation
    out = {}
    now = _heard(session, visible)
    manager = session.manager
    if run is None:
        return out
    status = format_status(session)
    if status != session.shown_status:
        out["status"] = session.shown_status = status
    if not _picture_due(session, run, now):
        return out
    if session.replaying:  # the panels show a recorded picture; the curves still follow
        seq, snap = run.seq, None
    else:
        seq, snap = run.snapshot_now()
    session.last_redraw = now
    cpu = time.thread_time()
    if snap is not None and seq != session.shown_seq:
        session.shown_seq = seq
        out.update(_panels(run, snap))
        session.browser.picture_sent(now)
        if snap.get("status") in ("diverged", "error") and session.warned_run != run.label:
            session.warned_run = run.label
            gr.Warning(html_text(run.trainer.message or snap.get("message", "training stopped")))
    hist, mets = run.trainer.history, run.trainer.metric_history
    if len(hist) != session.shown_history:
        session.shown_history = len(hist)
        out["loss_plot"] = charts.loss_figure(thin(hist, MAX_CHART_POINTS), x_axis)
    if len(mets) != session.shown_metrics:
        session.shown_metrics = len(mets)
        out["metrics_plot"] = _metrics_chart(run, mets, metric, x_axis)
    if manager is not None and len(out) > 1:
        manager.redrawn(time.thread_time() - cpu)
    if session.generation != generation or session.changing():
        # the configuration changed while this was drawn: its pictures are of the run before
        session.shown_seq = session.shown_history = session.shown_metrics = -1
        session.shown_status, session.last_redraw = "", -1e9  # nothing was sent
        return {}
    if run.finished and session.chain and run.status == "done":
        out.update(_next_in_chain(session, run))
    return out


METRIC_HISTORY_SHOWN = 200  # metric records a view may draw over time


def _panels(run, snap: dict) -> dict:
    if "traces" not in snap:
        return {}
    if run.trainer.metric_history:  # a view may draw the metrics over time (a GAN's digit classes)
        upto = [r for r in run.trainer.metric_history if r.get("step", 0) <= snap.get("step", 0)]  # a replay's too
        snap = {**snap, "metric_history": thin(upto, METRIC_HISTORY_SHOWN)}
    drawn = render(run.family, snap, run.ctx)
    return {"slots": [drawn.get(key, gr.skip()) if key else gr.skip() for key in placement(run.family, run.model_name, data_kind(run.dataset_name))]}


# ---- replay: back through the run's recorded pictures --------------------------------
LIVE = 100  # the replay slider's end: follow training


def on_replay(session: Session, position: float) -> dict:
    """The replay slider moved: show the recorded picture at `position` (0 the first, LIVE the
    newest and training followed again), so a class can go back to the moment a GAN collapsed."""
    run = session.current
    frames = list(run.frames) if run is not None else []
    if run is None or position >= LIVE or not frames:
        return on_live(session)
    index = min(len(frames) - 1, int(round(position / LIVE * (len(frames) - 1))))
    frame = frames[index]
    session.replaying = True
    session.notify(f"⏪ replaying step {frame.get('step', 0):,} (picture {index + 1} of {len(frames)} recorded); "
                   "press **Live** or drag to the end to follow training", seconds=3600)
    out = _panels(run, frame)
    out["status"] = format_status(session)
    return out


def on_live(session: Session) -> dict:
    """Follow training again: the next redraw draws the newest picture."""
    session.replaying = False
    session.notify("")
    session.shown_seq, session.last_redraw = -1, -1e9
    return {"replay": gr.update(value=LIVE), "status": format_status(session)}


def _metrics_chart(run, mets: list[dict], metric: str, x_axis: str):
    if not mets:
        return blank(f"metrics appear every {METRICS_EVERY:g} s")
    ref = run.literature
    references = {ref.metric: (ref.value, ref.source)} if ref is not None else None
    chosen = pick_metric(metric, mets, ref.metric if ref is not None else None)
    fig = charts.metrics_figure({run.label: thin(mets, MAX_CHART_POINTS)},
                                 chosen, x_axis,
                                 # the floor of the size the newest point was evaluated on (fewer samples
                                 # when an evaluation would overrun its share: core.train.budget.Cadence)
                                 floors=run.trainer.floors(mets[-1].get("n"), compute=False),
                                 notes={run.label: run.kl_note}, references=references)
    return _with_modes(fig, thin(mets, MAX_CHART_POINTS), chosen, x_axis)


def _with_modes(fig, mets: list[dict], metric: str, x_axis: str):
    """On data made of modes (the Gaussian mixtures), modes covered over training on the right-hand
    axis of the metric chart: a GAN that collapses shows it here as it happens, beside its KL or MMD."""
    points = [(r.get(x_axis if x_axis in ("step", "time") else "step"), r["modes_covered"]) for r in mets
              if r.get("modes_covered") is not None]
    if metric == "modes_covered" or not points or not fig.data:
        return fig
    n_modes = max(float(r.get("n_modes") or 0) for r in mets) or max(y for _, y in points)
    xs, ys = zip(*points)
    fig.add_trace(dict(type="scatter", mode="lines", x=list(xs), y=list(ys), yaxis="y2", name="modes covered",
                       line=dict(color="#7f7f7f", width=1.5, shape="hv"),
                       hovertemplate="modes covered %{y:.0f} of " + f"{n_modes:.0f}<extra></extra>"))
    fig.data[-1].name = f"modes covered (of {n_modes:.0f}, right axis)"
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, n_modes + 0.5], showgrid=False,
                                  zeroline=False))
    return fig


def redraw_charts(session: Session, x_axis: str, metric: str) -> dict:
    """The axis or the metric changed: draw the charts again now."""
    session.shown_history = session.shown_metrics = -1
    return tick(session, x_axis, metric)


def set_redraw(session: Session, redraw: str) -> dict:
    session.redraw_period = REDRAW.get(redraw, REDRAW[DEFAULT_REDRAW])
    session.lively_until = time.monotonic() + LIVELY  # the choice shows at once
    session.timer_period, session.timer_mode = -1.0, ""  # sent whatever it was
    return _retime(session)


def on_view_control(session: Session, name: str, value: float) -> dict:
    """A view control moved (a field's time t): redraw the panels with it from the newest weights."""
    run = session.current
    if run is None or name not in {c.name for c in view_for(run.family).controls}:
        return {}
    snap = run.set_view_option(name, float(value))
    if snap is None:
        return {}
    session.shown_seq = run.seq
    return _panels(run, snap)


@in_turn
def apply_preset(session: Session, preset: str) -> dict:
    """One click: model, data and settings of a preset, a fresh run, and what to watch for."""
    preset = P.find(preset)
    if preset is None:
        return {}
    first = preset["runs"][0] if "runs" in preset else preset
    out = _show(session, first["model"], first["dataset"], first.get("settings"))
    session.chain = [dict(r) for r in preset.get("runs", [])[1:]]
    out["watch"] = f"**{preset['title']}**\n\n{preset['watch']}"
    out["preset"] = gr.update(value=preset["title"])
    return out


@in_turn
def _next_in_chain(session: Session, finished) -> dict:
    """A preset with several runs: the next one starts when the previous finishes."""
    if session.current is not finished or not session.chain:  # a change came first
        return {}
    nxt, rest = session.chain[0], session.chain[1:]
    out = _show(session, nxt["model"], nxt["dataset"], nxt.get("settings"))
    session.chain = rest
    session.current.play()
    return out
