"""What the controls and the status line show: pure functions of settings and runs.

Panels and view controls come from the family's view (playground.views), knobs
from the registry's config metadata (playground.controls); nothing here names
a family.
"""

from __future__ import annotations

import html
import re

import gradio as gr

from core import registry

from ..controls import all_knobs, knob_key, knobs_for, shown
from ..draw import blank
from ..runs import Session
from ..views import all_controls, view_for

# Places for the family's panels: a full-width one above the 2x2 grid, the grid, a full-width one below.
SLOTS = ("wide0", "slot0", "slot1", "slot2", "slot3", "wide1")
REDRAW = {"0.15 s": 0.15, "0.5 s": 0.5, "1 s": 1.0}  # timer periods the page offers
DEFAULT_REDRAW = "0.15 s"
MAX_CHART_POINTS = 1000
METRIC_CHOICES = ("auto", "kl", "mmd", "energy", "hist_kl", "hist_js", "modes_covered", "high_quality", "score_error",
                  "nll", "bits_per_dim", "fd", "confidence")


def knob_updates(model_name: str, settings: dict | None = None, kind: str = "points") -> dict[str, dict]:
    """gr.update per control: the model's knobs visible with its defaults on data of `kind`
    (or `settings`), the rest hidden."""
    settings = settings or {}
    mine = {knob_key(k): (k, settings.get(name, default)) for name, (k, default) in knobs_for(model_name, kind).items()}
    visible = shown(model_name, settings)
    out = {}
    for key in all_knobs():
        if key not in mine:
            out[key] = gr.update(visible=False)
            continue
        knob, value = mine[key]
        upd = {"visible": knob.name in visible, "value": value, "info": knob.info()}
        if knob.choices:
            upd["choices"] = list(knob.choices)
        if knob.slider:
            upd.update(minimum=knob.lo, maximum=knob.hi)
        out[key] = gr.update(**upd)
    return out


def family_of(model_name: str) -> str:
    return registry.model_spec(model_name).family


def placement(family: str, model: str | None = None, kind: str | None = None) -> list[str | None]:
    """The panel key shown in each of SLOTS (None: hidden): wide panels full width, the rest in the grid;
    with a model, only the panels it feeds (FamilyView.panels_for); with a kind of data, only the
    panels drawn for it (no plane's field beside digits)."""
    panels = [p for p in view_for(family).panels_for(model) if kind is None or kind in p.data]
    wide = [p.key for p in panels if p.wide][:2]
    grid = [p.key for p in panels if p.key not in wide][:4]
    return [wide[0] if wide else None, *(grid + [None] * 4)[:4], wide[1] if len(wide) > 1 else None]


def panel_updates(family: str, model: str | None = None, kind: str | None = None) -> list:
    return [gr.update(visible=key is not None, value=blank("press Play") if key else None)
            for key in placement(family, model, kind)]


def control_updates(family: str, values: dict | None = None, kind: str = "points") -> dict[str, dict]:
    """gr.update per view control ("control:<name>"): the family's controls for data of `kind`
    shown at their value or default (a field's time t moves nothing on digits), the rest hidden."""
    mine = {c.name: c for c in view_for(family).controls if kind in c.data}
    values = values or {}
    return {f"control:{name}": gr.update(visible=name in mine, value=values.get(name, c.default))
            if name in mine else gr.update(visible=False) for name, c in all_controls().items()}


def model_info(model_name: str) -> str:
    return registry.model_spec(model_name).summary


def dataset_choices(session: Session | None = None) -> list[str]:
    return registry.dataset_names() + (list(session.uploads) if session else [])


_MARKDOWN = re.compile(r"([\\`*_\[\]|~$])")  # emphasis, code, links, tables, strike, maths
_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+(?=[.)]))", re.MULTILINE)  # headings, quotes, lists


def html_text(text) -> str:
    """Text for a toast: anything taken from a link or a file name shows as text, never as HTML."""
    return html.escape(str(text), quote=False)


def markdown_text(text) -> str:
    """Text for a Markdown component (the status line): HTML escaped, and Markdown's own marks
    (links, bare addresses, emphasis, headings) shown as the characters they are."""
    text = _MARKDOWN.sub(r"\\\1", html.escape(str(text), quote=False)).replace("://", ":\\/\\/")
    return _LINE_START.sub(lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), text)


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
    place = run.queue_position() if status == "waiting" else 0
    if status == "waiting" and not place:  # promoted a moment ago; the run is starting
        parts.append("a slot is free: your run is starting")
    elif status == "waiting":
        total = session.manager.max_runs if session.manager else 0
        parts.append(f"{total} runs are training; you are **#{place}** in the queue "
                     "and start on your own when a slot frees. Meanwhile the panels show your model as it "
                     "starts, beside the data, and **Equations** below says what it will learn")
    text = " · ".join(p for p in parts if p)
    msg = run.trainer.message or (run.latest or {}).get("error", "")
    if msg:
        text += f"\n\n⚠️ {markdown_text(msg)}"
    elif status == "done":
        text += "\n\nFinished. Press **Reset** for a fresh model, or raise *steps* and Reset."
    elif run.step == 0 and getattr(run, "cost_note", ""):  # too slow to watch: said before Play
        text += f"\n\n🐢 {markdown_text(run.cost_note)}"
    note = session.note()
    data_note = getattr(run.dataset, "note", "")
    return text + (f"\n\n{markdown_text(note)}" if note else "") + \
        (f"\n\n{markdown_text(data_note)}." if data_note else "")


def pick_metric(metric: str, records: list[dict], prefer: str | None = None) -> str:
    """The metric a chart shows: the one chosen, else `prefer` (the metric of the model's
    published figure) where recorded, else the first recorded of KL, NLL, the digit Fréchet
    distance, MMD and energy."""
    if metric != "auto":
        return metric
    keys = set().union(*(r.keys() for r in records)) if records else set()
    for m in ((prefer,) if prefer else ()) + ("kl", "nll", "fd", "mmd", "energy"):
        if m in keys:
            return m
    return "mmd"
