"""The students: API clients calling the app's named endpoints, and Chromium tabs clicking its buttons.

Both follow one classroom script (`Student.cycle`) with think time. Each action is timed
from the call (or the click) until the answer: an API call until it returns; a click until
the tab's status line shows what the click asked for. Every status either one sees is an
observation (readings.Obs), the stuff the queue figures are read from.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from typing import TYPE_CHECKING

from .readings import STATES, Obs, parse_status
from .wire import AppError, Wire

if TYPE_CHECKING:
    from .classroom import LoadTest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ACTIONS = ("open", "play", "pause", "step", "switch", "reset")  # every script's; "state" is an API client's look
OVER = ("done", "diverged", "error", "stopped")
API_CASES = [("realnvp", "two_moons"), ("vae", "eight_gaussians"), ("nsgan", "two_moons"), ("ddpm", "rings")]
# for a server whose model input takes only the default family's models (its dropdown's first choices)
FLOW_CASES = [("realnvp", "two_moons"), ("nice", "eight_gaussians"), ("maf", "two_moons"), ("realnvp", "rings")]
TAB_FAMILIES = ["vae", "diffusion", "gan", "flow"]  # the Family dropdown; each opens with its first model
REOPEN_AFTER = 10.0  # seconds before a session that failed to open tries again
# A tab's click, from the load test's call to the answer on its status line: until the page
# dispatched the click (the browser driver and the page's input handling); until Gradio's client
# posted the event; until the server accepted it; until it started (the wait in its queue); until
# it was done (the handler, with Gradio's preparation of inputs and outputs); until the page showed
# the answer. The last four include the page's delay in reading what arrived.
PHASES = ("dispatch", "post", "accept", "queue", "handle", "show")
POLL = 1.0  # seconds between an API client's looks at /state while it watches or waits


class Student:
    """One session: what it did, how long each answer took, and what it saw."""

    kind = ""

    def __init__(self, index: int, test: LoadTest):
        self.index, self.test = index, test
        self.rng = random.Random(test.args.seed * 1000 + index)
        self.obs: list[Obs] = []
        self.actions: list[dict] = []  # {kind, t, latency, error}
        self.connected = False  # open now
        self.ever_connected = False
        self.answering = False  # its last action was answered
        self.opened = 0
        self.last_open = -math.inf

    def now(self) -> float:
        return time.time() - self.test.t0

    def record(self, kind: str, t: float, latency: float | None, error: str | None = None) -> None:
        self.actions.append({"kind": kind, "t": round(t, 2), "latency": None if latency is None else round(latency, 3),
                             "error": error})
        self.answering = error is None

    def observe(self, t0: float, t1: float, status: dict) -> None:
        if status["state"] or status["step"] is not None:
            self.obs.append(Obs(t0, t1, status["state"], status["step"], status["queue"]))

    @property
    def state(self) -> str | None:
        return self.obs[-1].state if self.obs else None

    def guard(self) -> float:
        """How late its last observation of a run's training may be: none for an API answer."""
        return 0.0

    def due(self, kind: str) -> bool:
        """Whether to click now. Until the time is up, always; after it, Play (the state the next
        clicks start from) and an action this session has not had answered yet (so that each is
        measured), and nothing once the grace is over; as the class leaves, always."""
        late = -self.test.remaining()
        if late <= 0 or self.test.leaving:
            return True
        done = any(a["kind"] == kind and a["error"] is None for a in self.actions)
        return late < self.test.grace and (kind == "play" or not done)

    async def ensure_open(self) -> bool:
        """Open again after a failure, at most every REOPEN_AFTER seconds and not once the time is up."""
        if not self.connected and self.test.remaining() > 0 and self.now() - self.last_open >= REOPEN_AFTER:
            await self.open()
        return self.connected

    async def think(self, scale: float = 1.0) -> None:
        """About `scale` think times; none once the time is up."""
        t = self.test.args.think * scale * self.rng.uniform(0.5, 1.5)
        await asyncio.sleep(max(0.0, min(t, self.test.remaining())))

    # ---- the classroom script ----------------------------------------------
    async def script(self) -> None:
        """Cycles until the time is up (then `due` says which of the last cycle's clicks still happen)."""
        await asyncio.sleep(self.rng.uniform(0, self.test.stagger))  # a class opens the page within seconds
        await self.open()
        while True:
            await (self.soak_cycle() if self.test.args.soak else self.cycle())
            if self.test.remaining() <= 0:
                return
            if self.test.args.soak:
                await self.close()
                await self.think()
                await self.open()

    async def cycle(self) -> None:
        await self.play_and_watch()
        await self.pause()
        await self.think()
        await self.step()
        await self.think()
        await self.play_and_watch()
        await self.switch()
        await self.think(0.5)
        await self.play_and_watch()
        await self.reset()
        await self.think()

    async def soak_cycle(self) -> None:
        await self.play_and_watch()
        await self.reset()
        await self.think(0.5)
        await self.switch()
        await self.think(0.5)
        await self.play_and_watch()

    async def play_and_watch(self) -> None:
        since = self.now()
        await self.play()
        await self.wait_turn(since)
        await self.watch(self.test.args.think * self.rng.uniform(1.5, 3.0))

    # each kind of student says how
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def play(self) -> None: ...
    async def pause(self) -> None: ...
    async def step(self) -> None: ...
    async def switch(self) -> None: ...
    async def reset(self) -> None: ...
    async def wait_turn(self, since: float) -> None: ...
    async def watch(self, seconds: float) -> None: ...


def error_kind(e: BaseException) -> str:
    """An exception as a kind of error: its type and the start of its message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return type(e).__name__ + (f" ({_short(text)})" if text else "")


def refusal(kind: str, status: dict) -> str:
    return f"{kind}: refused: {_short(status['text'].removeprefix('⚠️').strip())}"


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " …"


def gone(status: dict) -> bool:
    """The server has closed this session (it lost its connection) and says to reload the page."""
    return status["refused"] and "reload the page" in status["text"].lower()


# ---------------------------------------------------------------------------
# API clients
# ---------------------------------------------------------------------------
async def api_cases(test: LoadTest) -> tuple[list, str]:
    """The (model, dataset) pairs API clients use, and why if fewer families than API_CASES.

    Some versions of the page refuse, through the API, a model outside the dropdown's first
    choices ("not in the list of choices"); one throwaway session asks /reset for each case
    once, before the class, and keeps the cases the server takes."""
    wire = Wire(test.http, test.url, test.endpoints)
    await wire.open(test.args.timeout)
    try:
        taken, refused = [], []
        for model, dataset in dict.fromkeys(API_CASES + FLOW_CASES):
            try:
                result = await wire.call("/reset", model, dataset, *test.knob_values(model), timeout=test.args.timeout)
                status = status_in(result)
                if status is not None and status["refused"]:
                    raise AppError(status["text"])
                taken.append((model, dataset))
            except Exception as e:  # noqa: BLE001 - a refusal says which models the endpoint takes
                refused.append(f"{model}: {error_kind(e)}")
        cases = [c for c in API_CASES if c in taken] or [c for c in FLOW_CASES if c in taken]
        if len(cases) < len(API_CASES):
            cases += [c for c in FLOW_CASES if c in taken and c not in cases][:len(API_CASES) - len(cases)]
        return cases or API_CASES, "; ".join(refused)
    finally:
        await wire.close()


def status_in(result) -> dict | None:
    """The status among an endpoint's outputs: /state's plain data, or the status line (the last
    output of every page callback)."""
    values = result if isinstance(result, (list, tuple)) else [result]
    for v in values:
        if isinstance(v, dict) and "status" in v and "step" in v:
            return {"step": v["step"], "state": v["status"] if v["status"] in STATES else None,
                    "queue": int(v.get("queue") or 0), "refused": False, "text": ""}
    for v in reversed(values):
        if isinstance(v, str) and ("step" in v or v.startswith("⚠️")):
            return parse_status(v)
    return None


class ApiStudent(Student):
    """A script with a session of its own (a Wire: Gradio's protocol as a page speaks it), calling
    /play, /pause, /step, /reset (another model: what the page's model dropdown does) and /state.

    Opening reads the app's /config, as a page or a client does, and opens the session's
    heartbeat stream; closing ends it, and the server frees the session's run."""

    kind = "api"

    def __init__(self, index: int, test: LoadTest):
        super().__init__(index, test)
        self.wire: Wire | None = None
        self.case = index

    async def open(self) -> None:
        t = self.last_open = self.now()
        timeout = self.test.args.timeout
        try:
            response = await self.test.http.get(f"{self.test.url}config", timeout=timeout)
            response.raise_for_status()
            wire = Wire(self.test.http, self.test.url, self.test.endpoints)
            await wire.open(timeout)
        except Exception as e:  # noqa: BLE001 - counted; the session tries again later
            self.record("open", t, None, f"open: {error_kind(e)}")
            return
        self.wire = wire
        self.record("open", t, self.now() - t)
        self.connected = self.ever_connected = True
        self.opened += 1

    async def close(self) -> None:
        wire, self.wire = self.wire, None
        self.connected = False
        if wire is not None:
            await wire.close()  # ends its heartbeat: the server sees the session go

    async def call(self, kind: str, api_name: str, *args) -> None:
        """One endpoint call, timed; the status it answers with is an observation."""
        if not self.due(kind) or not await self.ensure_open():
            return
        t0 = self.now()
        try:
            result = await self.wire.call(api_name, *args, timeout=self.test.args.timeout)
        except TimeoutError:
            self.record(kind, t0, None, f"{kind}: no answer within {self.test.args.timeout:g} s")
            return
        except Exception as e:  # noqa: BLE001 - counted by kind
            self.record(kind, t0, None, f"{kind}: {error_kind(e)}")
            return
        t1 = self.now()
        status = status_in(result)
        if status is not None and status["refused"]:
            self.record(kind, t0, t1 - t0, refusal(kind, status))
            if gone(status):  # as a person would: reload, a new session
                await self.close()
            return
        self.record(kind, t0, t1 - t0)
        if status is not None:
            self.observe(t0, t1, status)

    def inputs(self) -> list:
        model, dataset = self.test.api_cases[self.case % len(self.test.api_cases)]
        return [model, dataset, *self.test.knob_values(model)]

    async def play(self) -> None:
        await self.call("play", "/play", *self.inputs())

    async def pause(self) -> None:
        await self.call("pause", "/pause")

    async def step(self) -> None:
        await self.call("step", "/step", *self.inputs())

    async def reset(self) -> None:
        await self.call("reset", "/reset", *self.inputs())

    async def switch(self) -> None:
        self.case += 1
        await self.call("switch", "/reset", *self.inputs())

    async def look(self) -> None:
        await self.call("state", "/state")

    async def wait_turn(self, since: float) -> None:
        end = self.now() + min(self.test.args.patience, self.test.remaining())
        while self.state == "waiting" and self.now() < end:
            await asyncio.sleep(POLL)
            await self.look()

    async def watch(self, seconds: float) -> None:
        end = self.now() + min(seconds, self.test.remaining())
        while self.now() < end:
            await asyncio.sleep(min(POLL, max(0.0, end - self.now())))
            await self.look()

    async def linger(self, stop: asyncio.Event) -> None:
        """After the test: while in the queue, keep looking (twice a second) until it trains or `stop`."""
        while not stop.is_set() and self.state == "waiting" and self.wire is not None:
            await self.look()
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


# ---------------------------------------------------------------------------
# Chromium tabs
# ---------------------------------------------------------------------------
# Runs in the page before its own scripts: every change of the status line with its time, and
# every burst of changes inside Plotly's plots (mutations closer than 50 ms are one redraw).
TAB_SCRIPT = """
(() => {
  const STATES = __STATES__;
  const lt = window.__loadtest = {status: [], redraws: [], last: null, model: null, lastMutation: 0};
  lt.parse = (text) => {
    const line = (text || '').trim().split('\\n')[0];
    const m = line.match(/step ([\\d,]+)/);
    const parts = line.split('·').map(p => p.trim());
    const q = line.match(/#(\\d+)\\s+in the queue/);
    return {step: m ? parseInt(m[1].replace(/,/g, ''), 10) : null, state: parts.find(p => STATES.includes(p)) || null,
            queue: q ? parseInt(q[1], 10) : 0, refused: line.startsWith('⚠️') && !m};
  };
  // the first status shown at or after `since` whose state is one of `states` and whose step is
  // above `step` (or is 0 for step "zero"), beside a model other than `unlike` if given; a
  // refusal answers anything
  lt.find = ({since, states, step, unlike}) => {
    for (const [t, text, model] of lt.status) {
      if (t < since) continue;
      const p = lt.parse(text);
      if (p.refused) return [t, text, model];
      if (unlike && model === unlike) continue;
      if (states && !states.includes(p.state)) continue;
      if (step === 'zero' ? p.step !== 0 : (step !== null && !(p.step !== null && p.step > step))) continue;
      return [t, text, model];
    }
    return null;
  };
  const seen = (muts) => {
    const now = Date.now();
    const el = document.querySelector('#status [data-testid="markdown"]');
    // a switch of model from a run at step 0 to another leaves the status line's text as it was:
    // the model beside it tells the two apart
    const model = (document.querySelector('#model input') || {}).value || '';
    if (el && (el.textContent !== lt.last || model !== lt.model)) {
      lt.last = el.textContent;
      lt.model = model;
      lt.status.push([now, lt.last, model]);
    }
    for (let i = 0; i < muts.length && i < 50; i++) {  // a redraw's batch is Plotly's from its start
      const node = muts[i].target.nodeType === 1 ? muts[i].target : muts[i].target.parentElement;
      const plot = (n) => n.nodeType === 1 && (n.matches('.js-plotly-plot') || n.querySelector('.js-plotly-plot'));
      if ((node && node.closest && node.closest('.js-plotly-plot')) || [...muts[i].addedNodes].some(plot)) {
        if (now - lt.lastMutation > 50) lt.redraws.push(now);
        lt.lastMutation = now;
        break;
      }
    }
  };
  new MutationObserver(seen).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});

  // Where a click's time goes: when the page dispatched it, when Gradio's client posted its event
  // to the queue and heard it accepted, and when the event's start and end came down the
  // session's event stream (read as it arrives, beside the client's own reading of it).
  lt.clicks = []; lt.joins = []; lt.msgs = [];
  document.addEventListener('click', (e) => {
    const el = e.target && e.target.closest ? e.target.closest('[id]') : null;
    lt.clicks.push([Date.now(), el ? el.id : '']);
    if (lt.clicks.length > 2000) lt.clicks.shift();
  }, true);
  const elemOf = (id) => {
    const c = ((window.gradio_config || {}).components || []).find(c => c.id === id);
    return (c && c.props && c.props.elem_id) || '';
  };
  const urlOf = (r) => typeof r === 'string' ? r : (r instanceof URL ? r.href : (r && r.url) || '');
  const MSG = /"msg":"(process_starts|process_completed)","event_id":"([^"]+)"/g;
  const scan = async (stream) => {
    const reader = stream.getReader(), dec = new TextDecoder();
    let tail = '';
    for (;;) {
      const {done, value} = await reader.read();
      if (done) return;
      const now = Date.now(), text = tail + dec.decode(value, {stream: true});
      let m, end = 0;
      MSG.lastIndex = 0;
      while ((m = MSG.exec(text))) { lt.msgs.push([now, m[2], m[1]]); end = MSG.lastIndex; }
      if (lt.msgs.length > 20000) lt.msgs.splice(0, 10000);
      tail = text.slice(Math.max(end, text.length - 200));  // a message split between two chunks
    }
  };
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = urlOf(input), method = ((init && init.method) || (input && input.method) || 'GET').toUpperCase();
    if (url.includes('/queue/join')) {
      let body = init && init.body, fn = null, trigger = null;
      if (body == null && input instanceof Request) body = await input.clone().text();
      try { const b = JSON.parse(body); fn = b.fn_index; trigger = b.trigger_id; } catch (e) {}
      const rec = {t0: Date.now(), t1: null, fn, elem: elemOf(trigger), event: null};
      lt.joins.push(rec);
      if (lt.joins.length > 5000) lt.joins.shift();
      const r = await fetch0(input, init);
      rec.t1 = Date.now();
      r.clone().json().then((j) => { rec.event = j.event_id || null; }).catch(() => {});
      return r;
    }
    if (url.includes('/queue/data') && method === 'GET') {
      const r = await fetch0(input, init);
      if (!r.body) return r;
      const [mine, theirs] = r.body.tee();
      scan(mine).catch(() => {});
      return new Response(theirs, {status: r.status, statusText: r.statusText, headers: r.headers});
    }
    return fetch0(input, init);
  };
  // the first click and the first event other than a redraw since `since` (ms), with its times
  lt.trace = (since) => {
    const click = lt.clicks.find(c => c[0] >= since);
    const join = lt.joins.find(j => j.t0 >= since && j.elem !== '__TICK__' && j.t1 !== null);
    if (!join) return null;
    const at = (kind) => { const m = join.event && lt.msgs.find(m => m[1] === join.event && m[2] === kind);
                           return m ? m[0] : null; };
    return {click: click ? click[0] : null, join: join.t0, joined: join.t1, started: at('process_starts'),
            completed: at('process_completed'), elem: join.elem};
  };
})();
""".replace("__STATES__", json.dumps(list(STATES))).replace("__TICK__", "playground-tick")  # wiring.TICK_ID
OUTSIDE = re.compile(r"^(https?|wss?)://(?!(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/)")  # refused: loopback only
TAB_GUARD = 1.0  # the least a tab's status line is taken to lag the server, in seconds


class TabStudent(Student):
    """A headless Chromium tab clicking the page's buttons; its status line says when each was answered."""

    kind = "tab"

    def __init__(self, index: int, test: LoadTest):
        super().__init__(index, test)
        self.page = None
        self.family = "flow"  # the page opens with the default model, RealNVP
        self.next_family = index % len(TAB_FAMILIES)
        self.redraws: list[float] = []  # seconds since the test began

    def guard(self) -> float:
        """A status line may be as late as the slowest answer to a click (server, wire and page)."""
        answered = [a["latency"] for a in self.actions if a["latency"] is not None and a["kind"] != "open"]
        return max([TAB_GUARD, *answered])

    async def open(self) -> None:
        t = self.last_open = self.now()
        try:
            self.page = await self.test.browser.new_page(viewport={"width": 1400, "height": 900})
            self.page.set_default_timeout(self.test.args.timeout * 1000)  # clicks wait as long as answers
            await self.page.add_init_script(TAB_SCRIPT)
            await self.page.route(OUTSIDE, self._refuse)
            await self.page.goto(self.test.url, timeout=self.test.args.timeout * 1000)
            found = await self._answer(t, None, -1)  # a status line with a step: the first run is shown
        except Exception as e:  # noqa: BLE001 - counted; the session tries again later (a reload)
            late = type(e).__name__ == "TimeoutError"
            self.record("open", t, None, f"open: no step shown within {self.test.args.timeout:g} s "
                        f"(the status line read {await self._last_text()!r})" if late else f"open: {error_kind(e)}")
            await self._drop_page()
            return
        self.connected = self.ever_connected = True
        self.opened += 1
        self.family = "flow"
        await self._answered("open", t, found)

    async def _last_text(self) -> str:
        try:
            text = await asyncio.wait_for(self.page.evaluate("window.__loadtest.last"), 10)
        except Exception:  # noqa: BLE001 - a page too busy to say
            return "?"
        return _short((text or "").strip(), 40)

    async def _refuse(self, route) -> None:
        self.test.blocked += 1
        await route.abort()

    async def close(self) -> None:
        await self.collect()
        await self._drop_page()

    async def _drop_page(self) -> None:
        page, self.page = self.page, None
        self.connected = False
        if page is not None:
            try:
                await page.context.close()
            except Exception:  # noqa: BLE001, S110 - already gone with the browser
                pass

    async def _answer(self, since: float, states, step, timeout: float | None = None, unlike: str | None = None):
        """The first status line shown since `since` (seconds into the test) that matches, beside a
        model other than `unlike` if given: [ms, text, model]."""
        arg = {"since": (self.test.t0 + since) * 1000, "states": states, "step": step, "unlike": unlike}
        timeout = self.test.args.timeout if timeout is None else timeout
        handle = await self.page.wait_for_function("(a) => window.__loadtest.find(a)", arg=arg,
                                                   timeout=timeout * 1000, polling=100)
        return await handle.json_value()

    async def _answered(self, kind: str, t: float, found) -> None:
        latency = found[0] / 1000 - self.test.t0 - t
        status = parse_status(found[1])
        self.record(kind, t, latency, refusal(kind, status) if status["refused"] else None)
        if gone(status):  # reload: a new page, a new session
            await self.close()

    async def act(self, kind: str, click, states, step=None, unlike: str | None = None) -> None:
        """Click, then wait until the status line answers (beside a model other than `unlike`, for a
        switch); a page that broke is opened again later."""
        if not self.due(kind) or not await self.ensure_open():
            return
        t = self.now()
        what = "the click"
        try:
            await click()
            what = "the answer"
            found = await self._answer(t, states, step, unlike=unlike)
        except Exception as e:  # noqa: BLE001 - counted by kind
            late = type(e).__name__ == "TimeoutError"
            self.record(kind, t, None, f"{kind}: {what} did not come within {self.test.args.timeout:g} s" if late
                        else f"{kind}: {error_kind(e)}")
            if self.page is not None and self.page.is_closed():
                await self._drop_page()
            return
        phases = await self._phases(t, found[0])
        await self._answered(kind, t, found)
        if phases:
            self.actions[-1]["phases"] = phases

    async def _phases(self, t: float, shown_ms: float) -> dict | None:
        """Where the click at `t` (seconds into the test) spent its time until the answer was shown
        at `shown_ms`, in seconds: PHASES, each from the end of the one before. None where the page
        saw no event of the click's, or cannot say."""
        since = (self.test.t0 + t) * 1000
        try:
            tr = await asyncio.wait_for(self.page.evaluate("(s) => window.__loadtest.trace(s)", since), 10)
        except Exception:  # noqa: BLE001 - a page too busy or gone: no breakdown
            return None
        if not tr or None in (tr["click"], tr["started"], tr["completed"]):
            return None
        marks = [since, tr["click"], tr["join"], tr["joined"], tr["started"], tr["completed"], shown_ms]
        return {name: round((b - a) / 1000, 3) for name, a, b in zip(PHASES, marks, marks[1:])}

    async def shown(self, field: str):
        """The status line's step or state as the page shows it now; None without a page."""
        if self.page is None or self.page.is_closed():
            return None
        try:
            return await self.page.evaluate(f"window.__loadtest.parse(window.__loadtest.last).{field}")
        except Exception:  # noqa: BLE001 - a page that broke shows nothing
            return None

    def click(self, selector: str):
        return lambda: self.page.locator(selector).click()

    async def play(self) -> None:
        await self.act("play", self.click("#play"), ["running", "waiting", *OVER])

    async def pause(self) -> None:
        await self.act("pause", self.click("#pause"), ["paused", "ready", *OVER])  # a run that never started: ready

    async def step(self) -> None:
        before = await self.shown("step")
        await self.act("step", self.click("#step"), ["paused", *OVER], -1 if before is None else before)

    async def reset(self) -> None:
        await self.act("reset", self.click("#reset"), ["ready"], "zero")

    async def switch(self) -> None:
        """Another family in the Family dropdown: its first model, with default settings."""
        family = TAB_FAMILIES[self.next_family]
        if family == self.family:
            self.next_family = (self.next_family + 1) % len(TAB_FAMILIES)
            family = TAB_FAMILIES[self.next_family]
        self.next_family = (self.next_family + 1) % len(TAB_FAMILIES)

        async def choose():
            await self.page.get_by_label("Family").click()
            await self.page.get_by_role("option", name=family, exact=True).click()

        # from a run at step 0 (just reset) the status line reads the same after the switch: the
        # answer is the first one shown beside another model
        await self.act("switch", choose, ["ready"], "zero", unlike=await self._model_shown())
        self.family = family

    async def _model_shown(self) -> str | None:
        """The model the page's dropdown shows now (None without a page, or one too busy to say)."""
        if self.page is None:
            return None
        try:
            return await asyncio.wait_for(self.page.evaluate("window.__loadtest.model"), 10) or None
        except Exception:  # noqa: BLE001 - no model to compare with: any answer counts
            return None

    async def wait_turn(self, since: float) -> None:
        """Until the status line shows the run training (or over), at most --patience."""
        wait = min(self.test.args.patience, self.test.remaining())
        if self.page is None or wait <= 0:
            return
        try:
            await self._answer(since, ["running", *OVER], None, timeout=wait)
        except Exception:  # noqa: BLE001, S110 - still in the queue: the student moves on
            pass

    async def watch(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, self.test.remaining())))

    async def collect(self) -> None:
        """The page's record of its status line and redraws, taken before the page goes."""
        if self.page is None or self.page.is_closed():
            return
        try:
            data = await self.page.evaluate("({status: window.__loadtest.status, redraws: window.__loadtest.redraws})")
        except Exception:  # noqa: BLE001 - a page that crashed has nothing to give
            return
        for t_ms, text, *_ in data["status"]:
            t = t_ms / 1000 - self.test.t0
            self.observe(t, t, parse_status(text))
        self.obs.sort(key=lambda o: o.t0)
        self.redraws += [t_ms / 1000 - self.test.t0 for t_ms in data["redraws"]]
