"""Wiring: handlers speak in names, Gradio in components.

`UI` holds the named components and turns a handler into a Gradio callback
(`bind`): it collects the inputs by name, maps the returned names back to
components, and turns an error into a warning and a status line, never a
traceback.

The inputs of a callback whose components are all plain values (numbers,
sliders, checkboxes, menus, text, state) are prepared by the callback itself,
in one pass on its own thread, and so are its outputs where they are plain
(those, and markdown, plots, buttons, timers): Gradio would otherwise hand each
input and each output to a worker thread and back, one at a time, and a button
with its model's 80-odd knobs spent seconds in those round trips on a busy
server (BENCHMARKS.md). Such a callback is wired with `preprocess=False` or
`postprocess=False` (`UI.processing`).

`Page` is Gradio's Blocks, but an output a handler leaves as it was (gr.skip())
costs nothing: Gradio builds a whole new component for each on the server's
event loop, and a redraw that changes three of its hundred outputs spent most
of its time there.
"""

from __future__ import annotations

import copy
import inspect
import logging

import gradio as gr
from gradio.blocks import Block
from gradio.data_classes import GradioModel, GradioRootModel

from core.errors import PlaygroundError

from ..runs import Session
from ..runs.session import CLOSED_MESSAGE
from .status import SLOTS, html_text, markdown_text

log = logging.getLogger(__name__)


def _friendly(e: Exception) -> str:
    if isinstance(e, PlaygroundError):
        return str(e)
    log.exception("handler failed")
    return f"Something went wrong ({type(e).__name__}: {e}). The run was left as it was; try Reset."


SKIP = {"__type__": "update"}  # gr.skip(): the output stays as it is


class Page(gr.Blocks):
    """gr.Blocks whose skipped outputs are passed through as they are, not rebuilt.

    Gradio answers an update with no properties by building a copy of the component and
    sending {"__type__": "update"} for it; this sends the same without the copy
    (tests/playground/app/test_wiring.py checks the two agree). Everything else is Gradio's."""

    async def postprocess_data(self, block_fn, predictions, state):
        outputs = getattr(block_fn, "outputs", None)
        if not isinstance(predictions, (list, tuple)) or not outputs or len(outputs) < 2 or \
                len(predictions) != len(outputs) or getattr(block_fn, "batch", True) or \
                getattr(block_fn, "is_validator_function", True):
            return await super().postprocess_data(block_fn, predictions, state)
        keep = [i for i, p in enumerate(predictions) if not (isinstance(p, dict) and p == SKIP)]
        if len(keep) == len(outputs):
            return await super().postprocess_data(block_fn, predictions, state)
        done = [dict(SKIP) for _ in outputs]
        if keep:
            fewer = copy.copy(block_fn)
            fewer.outputs = [outputs[i] for i in keep]
            kept = [predictions[i] for i in keep]
            values = await super().postprocess_data(fewer, kept if len(keep) > 1 else kept[0], state)
            for i, value in zip(keep, values):
                done[i] = value
        return done


# The components whose preprocessing the callback does itself (_prepare): plain values, no files.
MENUS = (gr.Dropdown, gr.Radio, gr.CheckboxGroup)  # Gradio checks their choices, which differ from tab to tab
PLAIN = (gr.State, gr.Number, gr.Slider, gr.Checkbox, gr.Textbox, *MENUS)


def _prepare(comp, value):
    """What Gradio's preprocessing would pass the handler for `value` of `comp`.

    Numbers and sliders: rounded to their precision and held to their bounds (their own
    preprocess). Menus pass their value: their choices can differ from tab to tab (an upload
    adds one), so the handlers check the names they are given (Session.dataset, the registry)."""
    if not isinstance(comp, (gr.Number, gr.Slider, gr.Checkbox, gr.Textbox)):
        return value  # a menu (see above), or state: Gradio passes the tab's own
    try:
        return comp.preprocess(value)
    except (TypeError, ValueError) as e:  # "abc" or [1, 2] for a number
        raise PlaygroundError(f"{comp.label or 'a value'} = {value!r} is not a number ({e})") from None


# ... and the components whose postprocessing it does itself (_finish): those and a few more.
PLAIN_OUT = PLAIN + (gr.Markdown, gr.Plot, gr.Button, gr.Timer, gr.JSON, gr.HTML)


def _serial(value):
    return value.model_dump() if isinstance(value, (GradioModel, GradioRootModel)) else value


def _finish(comp, value):
    """What Gradio's postprocessing would make of `value` for `comp` (an update's value included)."""
    if isinstance(value, Block):  # a component returned as its own update (gr.Timer(value=1.0))
        value = {**value.constructor_args, "__type__": "update"}
    if isinstance(comp, (gr.State, *MENUS)):
        return value
    if isinstance(value, dict) and value.get("__type__") == "update":
        if "value" in value:
            value = {**value, "value": _serial(comp.postprocess(value["value"]))}
        return value
    return _serial(comp.postprocess(value))


class UI:
    """Named components, and `bind` to turn a handler into a Gradio callback."""

    def __init__(self):
        self.c: dict[str, object] = {}
        self.knob_keys: list[str] = []
        self.control_names: list[str] = []

    def __setitem__(self, name, comp):
        self.c[name] = comp

    def __getitem__(self, name):
        return self.c[name]

    def expand(self, names: list[str]) -> list:
        comps = []
        for n in names:
            if n == "knobs":
                comps += [self.c["knob:" + k] for k in self.knob_keys]
            elif n == "controls":
                comps += [self.c["control:" + k] for k in self.control_names]
            elif n == "slots":
                comps += [self.c[name] for name in SLOTS]
            else:
                comps.append(self.c[n.rpartition("=")[2]])
        return comps

    @staticmethod
    def processing(callback) -> dict:
        """Gradio's preprocess and postprocess flags for `callback`: False where it does that itself."""
        return {"preprocess": not getattr(callback, "prepares_inputs", False),
                "postprocess": not getattr(callback, "finishes_outputs", False)}

    def bind(self, fn, inputs: list[str], outputs: list[str], api: bool = False, **extra):
        """A callback for Gradio: collects inputs by name, maps the returned names to components.

        Errors become a warning and a status line, never a traceback. api: the callback is one of
        the API's endpoints (Session.api_call). Wire it with **UI.processing(callback).
        """
        in_comps = self.expand(inputs)
        prepares = all(isinstance(c, PLAIN) for c in in_comps)
        outputs = list(dict.fromkeys(list(outputs) + ["status"]))
        out_comps = list(dict.fromkeys(self.expand(outputs)))
        finishes = all(isinstance(c, PLAIN_OUT) for c in out_comps)
        n_knobs = len(self.knob_keys)
        slot_comps = [self.c.get(name) for name in SLOTS]
        knob_comp = {k: self.c["knob:" + k] for k in self.knob_keys}
        wants_request = "request" in inspect.signature(fn).parameters

        def callback(request: gr.Request, *values):  # Gradio passes the request first (by annotation)
            kwargs, i = dict(extra), 0
            if prepares:
                try:
                    values = [_prepare(c, v) for c, v in zip(in_comps, values)]
                except Exception as e:  # noqa: BLE001 - a value out of bounds, or not a number
                    log.info("%s: input refused: %s", fn.__name__, e)
                    return _refused(e)
            for name in inputs:
                if name == "knobs":
                    kwargs["knobs"] = dict(zip(self.knob_keys, values[i:i + n_knobs]))
                    i += n_knobs
                else:  # "arg=component" passes a component's value as the handler's `arg`
                    kwargs[name.partition("=")[0]] = values[i]
                    i += 1
            session = kwargs.get("session")
            if isinstance(session, Session) and request is not None and request.session_hash:
                session.owner = request.session_hash
                if session.current is not None:
                    session.current.owner = request.session_hash
                if session.manager is not None and not session.manager.attach(session.owner, session):
                    session.close()  # a request from a tab already gone: it starts nothing
            if wants_request:
                kwargs["request"] = request
            if isinstance(session, Session) and session.closed:
                return _closed(session)
            if isinstance(session, Session):
                session.seen()
                if api:
                    session.api_call()
            try:
                result = fn(**kwargs) or {}
            except Exception as e:  # noqa: BLE001 - shown to the person
                log.info("%s refused: %s", fn.__name__, e, exc_info=True)
                result = _warn(e, session)
            return _values(result)

        def _warn(e: Exception, session) -> dict:
            msg = _friendly(e)
            gr.Warning(html_text(msg))
            if isinstance(session, Session):
                session.notify(f"⚠️ {msg}")  # stays in the status line for a few seconds
            return {"status": f"⚠️ {markdown_text(msg)}", **getattr(e, "outputs", {})}

        def _refused(e: Exception):
            """An input Gradio's own preprocessing would have refused: said as it would say it."""
            return _values(_warn(PlaygroundError(str(e)), None))

        def _values(result: dict):
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
            if finishes:
                values = [_finish(c, v) for c, v in zip(out_comps, values)]
            return values[0] if len(values) == 1 else values

        def _closed(session: Session):
            """The tab closed (or lost its connection) before this request: say so once, start nothing."""
            if not getattr(session, "told_closed", False):
                session.told_closed = True
                gr.Warning(CLOSED_MESSAGE)
            return _values({"status": f"⚠️ {CLOSED_MESSAGE}"})

        callback.prepares_inputs, callback.finishes_outputs = prepares, finishes
        return callback, in_comps, out_comps


JS_REPLACE_STATE = """(q) => {
  const url = window.location.pathname + (q ? "?" + q : "");
  try { window.history.replaceState(null, "", url); } catch (e) {}
  return window.location.origin + url;
}"""


# How the page reports in: whether it is in the foreground, then how busy its browser was, the
# milliseconds of long tasks (50 ms or more of the main thread) over the last few seconds and the
# milliseconds they were counted over. A background tab costs the server no pictures
# (handlers.tick); a browser that is slow to draw is sent fewer of them (playground.runs.browser).
# Where the browser does not report long tasks, a 100 ms interval that fires late measures the
# same thing.
_REPORT = """() => {
  const span = 5000, now = performance.now();
  let m = window.__playgroundLoad;
  if (!m) {
    m = window.__playgroundLoad = {tasks: [], start: now};
    const keep = (end, ms) => { m.tasks.push([end, ms]); if (m.tasks.length > 500) m.tasks.shift(); };
    if ((PerformanceObserver.supportedEntryTypes || []).includes("longtask")) {
      const seen = (list) => list.getEntries().forEach((e) => keep(e.startTime + e.duration, e.duration));
      new PerformanceObserver(seen).observe({type: "longtask"});
    } else {
      let last = performance.now();
      setInterval(() => {
        const t = performance.now(), late = t - last - 100;
        last = t;
        if (late >= 50 && document.visibilityState === "visible") keep(t, late);
      }, 100);
    }
  }
  m.tasks = m.tasks.filter((e) => e[0] > now - span);
  const busy = m.tasks.reduce((sum, e) => sum + Math.min(e[1], e[0] - (now - span)), 0);
  const counted = Math.min(span, now - m.start);
  return document.visibilityState + " " + Math.round(busy) + " " + Math.round(counted);
}"""

# The redraw's last input (the hidden "visible" box) becomes the report.
JS_LOAD = """(...args) => {
  args[args.length - 1] = (REPORT)();
  return args;
}""".replace("REPORT", _REPORT)

TICK_ID = "playground-tick"  # the hidden button whose click is a redraw (handlers.tick)

# The timer. While the page's run moves ("busy", the page's hidden "pace" box, set by the redraws)
# a redraw is due at nearly every tick: press the tick button. While it waits, first ask the
# server, outside Gradio's queue, whether one is due (handlers.pulse), and press it only when one
# is. One pulse at a time; an answer not understood (an error, a server that does not know the
# pulse) asks for the redraw, as every tick did before.
JS_PULSE = """async (pace) => {
  const hash = window.__gradio_session_hash__, el = document.getElementById("TICK_ID");
  const button = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
  if (!button) return [];
  if (pace === "busy" || !hash) { button.click(); return []; }
  if (window.__playgroundPulse) return [];
  window.__playgroundPulse = true;
  let due = true;
  try {
    const root = ((window.gradio_config || {}).root || window.location.origin).replace(/\\/+$/, "");
    const answer = await fetch(root + "/gradio_api/run/pulse", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({data: [null, (REPORT)()], session_hash: hash})});
    const data = answer.ok ? (await answer.json()).data : null;
    due = !(Array.isArray(data) && data[0] === "");
  } catch (e) {
    due = true;
  } finally {
    window.__playgroundPulse = false;
  }
  if (due) button.click();
  return [];
}""".replace("TICK_ID", TICK_ID).replace("REPORT", _REPORT)
