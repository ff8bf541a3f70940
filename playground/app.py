"""The live playground: pick a model and a dataset, press Play, watch it learn.

Read top to bottom: pure functions that turn settings and runs into control
updates and status text; then the handlers (each takes the session and plain
values and returns {output name: value}, so it can be tested without a
browser); then one Blocks layout with the event wiring at the bottom.

Knobs and links come from playground.controls, training and snapshots from
playground.session, pictures from playground.figures and playground.export.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading

import gradio as gr
import torch

from core import checkpoint, process, registry
from core.data.files import PointsFile
from core.errors import PlaygroundError

from . import figures
from . import presets as P
from .controls import (DEFAULT_DATASET, DEFAULT_MODEL, UPLOAD_PREFIX, Knob, all_knobs, decode_query, encode_query,
                       initial_values, knob_key, knobs_for, non_default, settings_from)
from .equations import EQUATIONS
from .export import history_gif, snapshot_png
from .session import RunManager, Session, thin

log = logging.getLogger(__name__)

# Places for the family's panels: a full-width one above the 2x2 grid, the grid, a full-width one below.
SLOTS = ("wide0", "slot0", "slot1", "slot2", "slot3", "wide1")
WIDE_PANELS = {"flow_layers", "diff_forward", "diff_film"}  # strips of small multiples need the full width
DEFAULT_FIELD_T = 0.1  # the diffusion field's time until the slider moves (DDPM draws it at 0.1)
REDRAW = {"0.15 s": 0.15, "0.5 s": 0.5, "1 s": 1.0}  # timer periods the page offers
DEFAULT_REDRAW = "0.15 s"
MAX_CHART_POINTS = 1000
METRIC_CHOICES = ("auto", "kl", "mmd", "energy", "hist_kl", "hist_js", "modes_covered", "high_quality")


# ---------------------------------------------------------------------------
# Pure functions: what the controls and the status line should show
# ---------------------------------------------------------------------------
def knob_updates(model_name: str, settings: dict | None = None) -> dict[str, dict]:
    """gr.update per control: the model's knobs visible with its defaults (or `settings`), the rest hidden."""
    settings = settings or {}
    mine = {knob_key(k): (k, settings.get(name, default)) for name, (k, default) in knobs_for(model_name).items()}
    out = {}
    for key in all_knobs():
        if key not in mine:
            out[key] = gr.update(visible=False)
            continue
        knob, value = mine[key]
        upd = {"visible": True, "value": value, "info": knob.info()}
        if knob.choices:
            upd["choices"] = list(knob.choices)
        if knob.slider:
            upd.update(minimum=knob.lo, maximum=knob.hi)
        out[key] = gr.update(**upd)
    return out


def family_of(model_name: str) -> str:
    return registry.model_spec(model_name).family


def placement(family: str) -> list[str | None]:
    """The panel key shown in each of SLOTS (None: hidden): strips full width, the rest in the grid."""
    keys = [k for k, _ in figures.panels(family)]
    wide = [k for k in keys if k in WIDE_PANELS][:2]
    grid = [k for k in keys if k not in wide][:4]
    return [wide[0] if wide else None, *(grid + [None] * 4)[:4], wide[1] if len(wide) > 1 else None]


def panel_updates(family: str) -> list:
    return [gr.update(visible=key is not None, value=figures.empty_figure("press Play") if key else None)
            for key in placement(family)]


def model_info(model_name: str) -> str:
    return registry.model_spec(model_name).summary


def dataset_choices(session: Session | None = None) -> list[str]:
    return registry.dataset_names() + (list(session.uploads) if session else [])


def format_status(session: Session) -> str:
    """The status line: step, speed, state, queue place, then any message or note."""
    run = session.current
    if run is None:
        return "Choose a model and a dataset, then press **Play**."
    status = run.status
    hist = run.trainer.history
    rate = 0.0
    if len(hist) >= 2:
        a, b = hist[max(0, len(hist) - 20)], hist[-1]
        if b["time"] > a["time"]:
            rate = (b["step"] - a["step"]) / (b["time"] - a["time"])
    parts = [f"**step {run.step:,}** / {run.train_cfg.steps:,}", f"{rate:,.0f} steps/s" if rate else "",
             f"{run.trainer.elapsed:.1f} s", f"`{status}`", f"device {run.trainer.train_device.type}"]
    if status == "waiting":
        total = session.manager.max_runs if session.manager else 0
        parts.append(f"{total} runs are training; you are **#{run.queue_position()}** in the queue "
                     "and start on your own when a slot frees")
    text = " · ".join(p for p in parts if p)
    msg = run.trainer.message or (run.latest or {}).get("error", "")
    if msg:
        text += f"\n\n⚠️ {msg}"
    elif status == "done":
        text += "\n\nFinished. Press **Reset** for a fresh model, or raise *steps* and Reset."
    note = session.note()
    return text + (f"\n\n{note}" if note else "")


def _pick_metric(metric: str, records: list[dict]) -> str:
    if metric != "auto":
        return metric
    keys = set().union(*(r.keys() for r in records)) if records else set()
    for m in ("kl", "mmd", "energy"):
        if m in keys:
            return m
    return "mmd"


# ---------------------------------------------------------------------------
# Handlers: (session, plain values) -> {output name: value}
# ---------------------------------------------------------------------------
def _fresh_run(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """Build a new run from the controls; returns the outputs that show it."""
    model_s, train_s = settings_from(model, knobs)
    session.new_run(model, dataset, model_s, train_s)
    session.chain = []  # a preset's queued runs end when the person takes over
    query = encode_query(model, dataset, non_default(model, model_s, train_s))
    empty = figures.empty_figure("the curves appear as it trains")
    return {"status": format_status(session), "query": query,
            "loss_plot": empty, "metrics_plot": empty,
            "field_t": gr.update(value=DEFAULT_FIELD_T, visible=family_of(model) == "diffusion")}


def _knobs_from(model: str, settings: dict | None = None) -> dict:
    """Control values (keyed like the controls) for the model's defaults with `settings` changed."""
    settings = settings or {}
    return {knob_key(k): settings.get(name, d) for name, (k, d) in knobs_for(model).items()}


def _show(session: Session, model: str, dataset: str, settings: dict | None = None) -> dict:
    """Every control set to this configuration, and a fresh run built from it."""
    out = _controls(session, model, dataset, settings)
    out.update(_fresh_run(session, model, dataset, _knobs_from(model, settings)))
    return out


def _same_settings(run, model: str, dataset: str, knobs: dict) -> bool:
    model_s, train_s = settings_from(model, knobs)
    return (run.model_name, run.dataset_name) == (model, dataset) and \
        non_default(model, model_s, train_s) == non_default(model, run.model_settings, run.train_settings)


def on_load(session: Session, request: gr.Request | None = None) -> dict:
    """Page opened: read the configuration from the URL, build the first run."""
    params = dict(request.query_params) if request is not None else {}
    preset = params.get("preset")
    if preset is not None:
        if P.find(preset) is not None:
            return apply_preset(session, preset)
        msg = f"preset={preset!r} is unknown; valid presets: {', '.join(p['slug'] for p in P.PRESETS)}"
        gr.Warning(msg)
        session.notify(f"⚠️ {msg}", seconds=20)
    model, dataset, settings, problems = decode_query(params)
    out = _show(session, model, dataset, settings)
    if problems:
        msg = "Some settings in the link were not used: " + "; ".join(problems)
        gr.Warning(msg)
        session.notify(f"⚠️ {msg}", seconds=20)
        out["status"] = format_status(session)
    return out


def _controls(session: Session, model: str, dataset: str, settings: dict | None = None) -> dict:
    """Every control set for this model, dataset and settings."""
    family = family_of(model)
    out = {"family": gr.update(value=family), "model": gr.update(choices=registry.model_names(family), value=model,
                                                                  info=model_info(model)),
           "dataset": gr.update(choices=dataset_choices(session), value=dataset),
           "equations": EQUATIONS.get(family, "")}
    out.update({"knob:" + k: v for k, v in knob_updates(model, settings).items()})
    out["slots"] = panel_updates(family)
    return out


def on_family(session: Session, family: str, dataset: str) -> dict:
    """A new family: its first model with default settings, on the same data."""
    model = registry.model_names(family)[0]
    return on_model(session, model, dataset)


def on_model(session: Session, model: str, dataset: str) -> dict:
    """A new model: default settings and a fresh run on the same data."""
    return _show(session, model, dataset)


def on_dataset(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """New data: a fresh run of the same model and settings."""
    return _fresh_run(session, model, dataset, knobs)


def on_upload(session: Session, model: str, upload, knobs: dict) -> dict:
    """A .csv/.npy file of points becomes a dataset of this session."""
    if upload is None:
        return {}
    path = upload if isinstance(upload, str) else getattr(upload, "name", str(upload))
    data = PointsFile.from_path(path)
    name = UPLOAD_PREFIX + os.path.basename(path)
    session.uploads[name] = data
    out = _fresh_run(session, model, name, knobs)
    out["dataset"] = gr.update(choices=dataset_choices(session), value=name)
    return out


def play(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """Start (or resume). A run that has not taken a step picks up changed settings first."""
    run = session.current
    out = {}
    if run is None or (run.step == 0 and run.status == "ready" and not _same_settings(run, model, dataset, knobs)):
        out = _fresh_run(session, model, dataset, knobs)
        run = session.current
    note = run.play()
    if note:
        session.notify(note)
    out["status"] = format_status(session)
    return out


def pause(session: Session) -> dict:
    """Pause within a step; the run gives its training slot to whoever waits."""
    if session.current is not None:
        session.current.pause()
    return {"status": format_status(session)}


def step(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """One optimisation step (pausing first if it was training)."""
    run = session.current
    out = {}
    if run is None or run.finished:
        out = _fresh_run(session, model, dataset, knobs)
        run = session.current
    run.step_once(1)
    out["status"] = format_status(session)
    return out


def reset(session: Session, model: str, dataset: str, knobs: dict) -> dict:
    """Stop the run (its curves go to Compare) and build a fresh model with the current settings."""
    return _fresh_run(session, model, dataset, knobs)


def on_knob(session: Session, model: str, dataset: str, knobs: dict, key: str) -> dict:
    """A knob moved: apply it now if it is live, and keep the link in step."""
    model_s, train_s = settings_from(model, knobs)
    knob = all_knobs()[key]
    run = session.current
    note = ""
    if knob.live and run is not None and run.model_name == model:
        run.set_live(knob.name, (model_s if knob.scope == "model" else train_s)[knob.name])
        note = f"{knob.name} = {knobs[key]} applied to the running model."
    elif run is not None and run.step > 0:
        note = f"{knob.name} takes effect when you press Reset."
    out = {"query": encode_query(model, dataset, non_default(model, model_s, train_s))}
    if note:
        session.notify(note)
        out["status"] = format_status(session)
    return out


def tick(session: Session, x_axis: str, metric: str) -> dict:
    """The timer: redraw only what changed since the last tick."""
    run = session.current
    out = {}
    if run is None:
        return out
    seq, snap = run.snapshot_now()
    status = format_status(session)
    if status != session.shown_status:
        out["status"] = session.shown_status = status
    if snap is not None and seq != session.shown_seq:
        session.shown_seq = seq
        out.update(_panels(run, snap))
        if snap.get("status") in ("diverged", "error") and session.warned_run != run.label:
            session.warned_run = run.label
            gr.Warning(run.trainer.message or snap.get("message", "training stopped"))
    hist, mets = run.trainer.history, run.trainer.metric_history
    if len(hist) != session.shown_history:
        session.shown_history = len(hist)
        out["loss_plot"] = figures.loss_figure(thin(hist, MAX_CHART_POINTS), x_axis)
    if len(mets) != session.shown_metrics:
        session.shown_metrics = len(mets)
        out["metrics_plot"] = _metrics_chart(run.label, mets, metric, x_axis)
    if run.finished and session.chain and run.status == "done":
        out.update(_next_in_chain(session))
    return out


def _panels(run, snap: dict) -> dict:
    if "traces" not in snap:
        return {}
    drawn = figures.render(run.family, snap, run.ctx)
    return {"slots": [drawn.get(key, gr.skip()) if key else gr.skip() for key in placement(run.family)]}


def _metrics_chart(label: str, mets: list[dict], metric: str, x_axis: str):
    if not mets:
        return figures.empty_figure("metrics appear about once a second")
    return figures.metrics_figure({label: thin(mets, MAX_CHART_POINTS)}, _pick_metric(metric, mets), x_axis)


def redraw_charts(session: Session, x_axis: str, metric: str) -> dict:
    """The axis or the metric changed: draw the charts again now."""
    session.shown_history = session.shown_metrics = -1
    return tick(session, x_axis, metric)


def set_redraw(redraw: str) -> dict:
    return {"timer": gr.Timer(value=REDRAW.get(redraw, REDRAW[DEFAULT_REDRAW]))}


def on_field_t(session: Session, field_t: float) -> dict:
    """The diffusion time slider: redraw the fields at t from the newest weights."""
    run = session.current
    if run is None or run.family != "diffusion":
        return {}
    snap = run.set_field_t(float(field_t))
    if snap is None:
        return {}
    session.shown_seq = run.seq
    return _panels(run, snap)


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


def _next_in_chain(session: Session) -> dict:
    """A preset with several runs: the next one starts when the previous finishes."""
    nxt, rest = session.chain[0], session.chain[1:]
    out = _show(session, nxt["model"], nxt["dataset"], nxt.get("settings"))
    session.chain = rest
    session.current.play()
    return out


def export_png(session: Session) -> dict:
    run = _need_snapshot(session)
    path = os.path.join(session.tmpdir(), f"{_slug(run.label)}-step{run.latest['step']}.png")
    with open(path, "wb") as f:
        f.write(snapshot_png(run.family, run.latest, run.ctx))
    return {"export_file": gr.update(value=path, visible=True)}


def export_gif(session: Session) -> dict:
    run = _need_snapshot(session)
    frames = list(run.frames) or [run.latest]
    path = os.path.join(session.tmpdir(), f"{_slug(run.label)}-history.gif")
    with open(path, "wb") as f:
        f.write(history_gif(frames, run.family, run.ctx))
    return {"export_file": gr.update(value=path, visible=True)}


def export_weights(session: Session) -> dict:
    """model.safetensors, loadable by `python -m core sample DIR`."""
    run = session.current
    if run is None:
        raise PlaygroundError("Nothing to export yet: press Play first.")
    folder = os.path.join(session.tmpdir(), f"{_slug(run.label)}-step{run.step}")
    file = checkpoint.save(folder, run.model_name, run.export_model(), run.train_cfg, dataset=run.dataset_name
                           if not run.dataset_name.startswith(UPLOAD_PREFIX) else "")
    return {"export_file": gr.update(value=str(file), visible=True)}


def _need_snapshot(session: Session):
    run = session.current
    if run is None or run.latest is None or "traces" not in run.latest:
        raise PlaygroundError("Nothing to export yet: press Play and wait for the first picture.")
    return run


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def compare_choices(session: Session) -> dict:
    labels = list(session.runs_for_compare())
    return {"compare_runs": gr.update(choices=labels, value=labels[-4:])}


def compare(session: Session, compare_runs: list[str], compare_metric: str, compare_x: str) -> dict:
    """The chosen runs' metric on one chart, and which modes each covered over time."""
    runs = session.runs_for_compare()
    chosen = {label: runs[label].metric_history for label in compare_runs or [] if label in runs}
    if not chosen:
        empty = figures.empty_figure("finish or reset a run, then choose it here")
        return {"compare_plot": empty, "modes_plot": empty}
    records = [r for h in chosen.values() for r in h]
    return {"compare_plot": figures.metrics_figure(chosen, _pick_metric(compare_metric, records), compare_x),
            "modes_plot": figures.modes_timeline(chosen)}


def run_state(session: Session) -> dict:
    """The run as plain data (step, status, queue place): for scripts and tests via the API."""
    run = session.current
    if run is None:
        return {"api_state": {"step": 0, "status": "none", "label": "", "queue": 0}}
    return {"api_state": {"step": run.step, "status": run.status, "label": run.label, "queue": run.queue_position(),
            "snapshots": run.seq, "model": run.model_name, "dataset": run.dataset_name,
            "message": run.trainer.message}}


def close_session(manager: RunManager, request: gr.Request) -> None:
    """The tab closed: free its training slot at once."""
    if manager is not None and request is not None and request.session_hash:
        stopped = manager.release_owner(request.session_hash)
        log.info("session %s closed; stopped %d run(s)", request.session_hash, stopped)


# ---------------------------------------------------------------------------
# Wiring helpers: handlers speak in names, Gradio in components
# ---------------------------------------------------------------------------
def _friendly(e: Exception) -> str:
    if isinstance(e, PlaygroundError):
        return str(e)
    log.exception("handler failed")
    return f"Something went wrong ({type(e).__name__}: {e}). The run was left as it was; try Reset."


class UI:
    """Named components, and `bind` to turn a handler into a Gradio callback."""

    def __init__(self):
        self.c: dict[str, object] = {}
        self.knob_keys: list[str] = []

    def __setitem__(self, name, comp):
        self.c[name] = comp

    def __getitem__(self, name):
        return self.c[name]

    def expand(self, names: list[str]) -> list:
        comps = []
        for n in names:
            if n == "knobs":
                comps += [self.c["knob:" + k] for k in self.knob_keys]
            elif n == "slots":
                comps += [self.c[name] for name in SLOTS]
            else:
                comps.append(self.c[n])
        return comps

    def bind(self, fn, inputs: list[str], outputs: list[str], **extra):
        """A callback for Gradio: collects inputs by name, maps the returned names to components.

        Errors become a warning and a status line, never a traceback.
        """
        outputs = list(dict.fromkeys(list(outputs) + ["status"]))
        out_comps = list(dict.fromkeys(self.expand(outputs)))
        n_knobs = len(self.knob_keys)
        slot_comps = [self.c.get(name) for name in SLOTS]
        knob_comp = {k: self.c["knob:" + k] for k in self.knob_keys}
        wants_request = "request" in inspect.signature(fn).parameters

        def callback(request: gr.Request, *values):  # Gradio passes the request first (by annotation)
            kwargs, i = dict(extra), 0
            for name in inputs:
                if name == "knobs":
                    kwargs["knobs"] = dict(zip(self.knob_keys, values[i:i + n_knobs]))
                    i += n_knobs
                else:
                    kwargs[name] = values[i]
                    i += 1
            session = kwargs.get("session")
            if isinstance(session, Session) and request is not None and request.session_hash:
                session.owner = request.session_hash
                if session.current is not None:
                    session.current.owner = request.session_hash
            if wants_request:
                kwargs["request"] = request
            try:
                result = fn(**kwargs) or {}
            except Exception as e:  # noqa: BLE001 - shown to the person
                log.info("%s refused: %s", fn.__name__, e, exc_info=True)
                msg = _friendly(e)
                gr.Warning(msg)
                if isinstance(session, Session):
                    session.notify(f"⚠️ {msg}")  # stays in the status line for a few seconds
                result = {"status": f"⚠️ {msg}"}
            mapped = {}
            for name, value in result.items():
                if name == "slots":
                    mapped.update({c: v for c, v in zip(slot_comps, value)})
                elif name.startswith("knob:") and name[5:] in knob_comp:
                    mapped[knob_comp[name[5:]]] = value
                elif name in self.c and self.c[name] in out_comps:
                    mapped[self.c[name]] = value
            # a full list (gr.skip() where nothing changed): an empty dict would read as one value
            values = [mapped.get(c, gr.skip()) for c in out_comps]
            return values[0] if len(values) == 1 else values

        return callback, self.expand(inputs), out_comps


JS_REPLACE_STATE = """(q) => {
  const url = window.location.pathname + (q ? "?" + q : "");
  try { window.history.replaceState(null, "", url); } catch (e) {}
  return window.location.origin + url;
}"""

CSS = """
#status { min-height: 3.2em; }
#watch { border-left: 3px solid var(--color-accent); padding-left: 0.6em; }
"""

INTRO = ("# Generative Playground\n"
         "Pick a model and a dataset and press **Play**: the model trains here, and every panel redraws "
         "a few times a second from its current weights. Knobs marked *live* act at once; the others on **Reset**.")


def _knob_component(knob: Knob, value, visible: bool):
    """A control for one knob; `value` is the default model's (or any model's) default."""
    common = {"label": knob.name, "info": knob.info(), "visible": visible, "interactive": True, "value": value}
    if knob.kind == "choice":
        return gr.Dropdown(list(knob.choices), **common)
    if knob.kind == "bool":
        return gr.Checkbox(**common)
    if knob.slider:
        return gr.Slider(knob.lo, knob.hi, step=1, **common)
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


def build_app(manager: RunManager | None = None) -> gr.Blocks:
    """The Blocks app. One RunManager per process caps the runs training at once."""
    use_one_thread_per_run()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo: now, not on a visit
    threading.Thread(target=process.warm_up, daemon=True).start()  # the server training processes fork from
    manager = manager or RunManager()
    knobs = all_knobs()
    start = initial_values()
    ui = UI()
    ui.knob_keys = list(knobs)
    families = registry.families()
    default_family = family_of(DEFAULT_MODEL)

    with gr.Blocks(title="Generative Playground") as demo:
        session = gr.State(lambda: Session(manager), delete_callback=lambda s: s.close())
        ui["session"] = session
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Train"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=330):
                        ui["preset"] = gr.Dropdown([p["title"] for p in P.PRESETS], value=None, label="Presets",
                                                   info="one click sets model, data and settings")
                        ui["watch"] = gr.Markdown("", elem_id="watch")
                        ui["family"] = gr.Dropdown(families, value=default_family, label="Family")
                        ui["model"] = gr.Dropdown(registry.model_names(default_family), value=DEFAULT_MODEL, label="Model",
                                                  info=model_info(DEFAULT_MODEL))
                        ui["dataset"] = gr.Dropdown(dataset_choices(), value=DEFAULT_DATASET, label="Dataset")
                        ui["upload"] = gr.UploadButton("Upload your own points (.csv or .npy, N x 2)", size="sm",
                                                       file_types=[".csv", ".npy"])
                        with gr.Row():
                            ui["play"] = gr.Button("Play", variant="primary", min_width=60, elem_id="play")
                            ui["pause"] = gr.Button("Pause", min_width=60, elem_id="pause")
                            ui["step"] = gr.Button("Step", min_width=60, elem_id="step")
                            ui["reset"] = gr.Button("Reset", variant="stop", min_width=60, elem_id="reset")
                        ui["status"] = gr.Markdown("Loading…", elem_id="status")
                        with gr.Accordion("Model settings", open=True):
                            for key, knob in knobs.items():
                                if knob.scope == "model":
                                    ui["knob:" + key] = _knob_component(knob, *start[key])
                        with gr.Accordion("Training settings", open=False):
                            for key, knob in knobs.items():
                                if knob.scope == "train":
                                    ui["knob:" + key] = _knob_component(knob, *start[key])
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
                        for row in (("slot0", "slot1"), ("slot2", "slot3")):
                            with gr.Row():
                                for name in row:
                                    ui[name] = gr.Plot(show_label=False, visible=shown[name] is not None)
                        ui["wide1"] = gr.Plot(show_label=False, visible=shown["wide1"] is not None)
                        ui["field_t"] = gr.Slider(0.01, 1.0, value=DEFAULT_FIELD_T, step=0.01, visible=default_family == "diffusion",
                                                  label="diffusion time t of the field panels",
                                                  info="0 is data, 1 is noise; the field is recomputed from the newest weights")
                        with gr.Row():
                            ui["x_axis"] = gr.Radio(["step", "time"], value="step", label="x axis", scale=1)
                            ui["redraw"] = gr.Radio(list(REDRAW), value=DEFAULT_REDRAW, label="redraw every", scale=1,
                                                    info="slower suits a slow computer or connection")
                            ui["metric"] = gr.Dropdown(list(METRIC_CHOICES), value="auto", label="metric", scale=1)
                        with gr.Row():
                            ui["loss_plot"] = gr.Plot(show_label=False)
                            ui["metrics_plot"] = gr.Plot(show_label=False)
                        with gr.Accordion("Equations", open=False):
                            ui["equations"] = gr.Markdown(EQUATIONS.get(default_family, ""), latex_delimiters=[
                                {"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}])
            with gr.Tab("Compare") as compare_tab:
                gr.Markdown("Runs you reset or finished in this tab, side by side.")
                with gr.Row():
                    ui["compare_runs"] = gr.CheckboxGroup([], label="Runs", scale=3)
                    ui["compare_metric"] = gr.Dropdown(list(METRIC_CHOICES), value="auto", label="metric", scale=1)
                    ui["compare_x"] = gr.Radio(["step", "time"], value="step", label="x axis", scale=1)
                ui["compare_refresh"] = gr.Button("Refresh the list of runs")
                ui["compare_plot"] = gr.Plot(show_label=False)
                ui["modes_plot"] = gr.Plot(show_label=False)
        ui["api_state"] = gr.JSON(visible=False)
        ui["state_button"] = gr.Button(visible=False)
        ui["timer"] = timer = gr.Timer(REDRAW[DEFAULT_REDRAW])

        # ---- wiring ----------------------------------------------------------
        controls = ["family", "model", "dataset", "knobs", "slots", "equations"]
        view = ["loss_plot", "metrics_plot", "query", "field_t"]

        def on(event, fn, inputs, outputs, link=False, api_name=None, key=None, **kw):
            callback, ins, outs = ui.bind(fn, inputs, outputs, **({"key": key} if key else {}))
            visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
            dep = event(callback, ins, outs, show_progress=kw.pop("show_progress", "hidden"), **visibility, **kw)
            if link:
                dep.then(None, [ui["query"]], [ui["link"]], js=JS_REPLACE_STATE, api_visibility="private")
            return dep

        ctl = ["session", "model", "dataset", "knobs"]
        on(demo.load, on_load, ["session"], controls + view + ["watch", "preset"], link=True)
        on(ui["family"].input, on_family, ["session", "family", "dataset"], controls + view, link=True)
        on(ui["model"].input, on_model, ["session", "model", "dataset"], controls + view, link=True)
        on(ui["dataset"].input, on_dataset, ctl, view, link=True)
        on(ui["upload"].upload, on_upload, ["session", "model", "upload", "knobs"], view + ["dataset"], link=True)
        on(ui["preset"].input, apply_preset, ["session", "preset"], controls + view + ["watch", "preset"], link=True)
        on(ui["play"].click, play, ctl, view, api_name="play")
        on(ui["pause"].click, pause, ["session"], [], api_name="pause")
        on(ui["step"].click, step, ctl, view, api_name="step")
        on(ui["reset"].click, reset, ctl, view, link=True, api_name="reset")
        for key in knobs:
            comp = ui["knob:" + key]
            events = [comp.release] if isinstance(comp, gr.Slider) else \
                [comp.blur, comp.submit] if isinstance(comp, gr.Number) else [comp.input]
            for event in events:
                on(event, on_knob, ctl, ["query"], link=True, key=key)
        everything = ["slots", "loss_plot", "metrics_plot"] + controls + view
        on(timer.tick, tick, ["session", "x_axis", "metric"], everything, concurrency_limit=None, trigger_mode="once")
        on(ui["redraw"].input, set_redraw, ["redraw"], ["timer"])
        for comp in (ui["x_axis"], ui["metric"]):
            on(comp.input, redraw_charts, ["session", "x_axis", "metric"], everything)
        on(ui["field_t"].release, on_field_t, ["session", "field_t"], ["slots"])
        on(ui["png"].click, export_png, ["session"], ["export_file"], show_progress="minimal")
        on(ui["gif"].click, export_gif, ["session"], ["export_file"], show_progress="minimal")
        on(ui["weights"].click, export_weights, ["session"], ["export_file"], show_progress="minimal")
        on(compare_tab.select, compare_choices, ["session"], ["compare_runs"])
        on(ui["compare_refresh"].click, compare_choices, ["session"], ["compare_runs"])
        for event in (ui["compare_runs"].change, ui["compare_metric"].input, ui["compare_x"].input):
            on(event, compare, ["session", "compare_runs", "compare_metric", "compare_x"], ["compare_plot", "modes_plot"])
        on(ui["state_button"].click, run_state, ["session"], ["api_state"], api_name="state")

        def on_close(request: gr.Request):
            close_session(manager, request)

        demo.unload(on_close)
    demo.queue(default_concurrency_limit=8)
    return demo
