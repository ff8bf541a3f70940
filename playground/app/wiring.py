"""Wiring: handlers speak in names, Gradio in components.

`UI` holds the named components and turns a handler into a Gradio callback
(`bind`): it collects the inputs by name, maps the returned names back to
components, and turns an error into a warning and a status line, never a
traceback.
"""

from __future__ import annotations

import inspect
import logging

import gradio as gr

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

    def bind(self, fn, inputs: list[str], outputs: list[str], api: bool = False, **extra):
        """A callback for Gradio: collects inputs by name, maps the returned names to components.

        Errors become a warning and a status line, never a traceback. api: the callback is one of
        the API's endpoints (Session.api_call).
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
                msg = _friendly(e)
                gr.Warning(html_text(msg))
                if isinstance(session, Session):
                    session.notify(f"⚠️ {msg}")  # stays in the status line for a few seconds
                result = {"status": f"⚠️ {markdown_text(msg)}", **getattr(e, "outputs", {})}
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

        def _closed(session: Session):
            """The tab closed (or lost its connection) before this request: say so once, start nothing."""
            if not getattr(session, "told_closed", False):
                session.told_closed = True
                gr.Warning(CLOSED_MESSAGE)
            values = [gr.skip() for _ in out_comps]
            values[out_comps.index(self.c["status"])] = f"⚠️ {CLOSED_MESSAGE}"
            return values[0] if len(values) == 1 else values

        return callback, self.expand(inputs), out_comps


JS_REPLACE_STATE = """(q) => {
  const url = window.location.pathname + (q ? "?" + q : "");
  try { window.history.replaceState(null, "", url); } catch (e) {}
  return window.location.origin + url;
}"""


# The timer's last input (the hidden "visible" box) becomes the tab's visibility: a background
# tab's tick then costs the server no pictures (handlers.tick).
JS_VISIBILITY = """(...args) => {
  args[args.length - 1] = document.visibilityState;
  return args;
}"""
