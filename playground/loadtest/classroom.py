"""The load test itself: a server, a class of students for a while, the class leaving, the report."""

from __future__ import annotations

import asyncio
import collections
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from . import readings as R
from .cgroup import Weighted
from .procs import BUSY, CPU_PARTS, WAIT_PARTS, ProcessWatch, end_processes, most_held, read_procs
from .server import START_ATTEMPTS, Server, ServerGone
from .students import (ACTIONS, API_CASES, CHROMIUM, CHROMIUM_ARGS, PHASES, ApiStudent, Student, TabStudent, api_cases,
                       error_kind)
from .wire import Endpoints
from .witness import LoopLag, Witness

DEFAULT_CAP = 4  # the server's cap on runs training at once when PLAYGROUND_MAX_RUNS is unset (RunManager)
HELD_EVERY = 2.0  # seconds between counts of the sessions held
CLOSE_WAIT = 20.0  # seconds to wait for a closed tab's run to be freed
LEFT_WAIT = 30.0  # seconds the server's processes get to end by themselves once it has stopped
SOAK_WARM_UP = 120.0  # seconds of a soak before memory is expected to stay level


class LoadTest:
    def __init__(self, args):
        self.args = args
        self.t0 = time.time()
        self.duration = args.minutes * 60
        self.stagger = min(5.0, self.duration / 10)  # a class opens the page within a few seconds
        self.grace = 3 * args.timeout  # past the time, the seconds left to finish a cycle's first clicks
        self.leaving = False
        self.url = args.url
        self.server: Server | None = None
        self.watch: ProcessWatch | None = None
        self.browser = None
        self.http = None  # httpx.AsyncClient: the API clients' connections (_main)
        self.endpoints = None  # wire.Endpoints: the app's, read once from its /config
        self.blocked = 0  # page requests outside loopback, refused
        self.students: list[Student] = []
        self.held: list[dict] = []
        self.marks: dict[str, float] = {}  # moments of the test, seconds since it began
        self.children_before: list[dict] = []
        self.children_after: list[dict] = []
        self.close_times: list[dict] = []
        self.api_freed: dict = {}
        self.leftovers: list[dict] = []
        self.children_ended_after = None
        self.ready_after = None
        self.start_failures: list[str] = []
        self._knobs = None
        self.api_cases = list(API_CASES)
        self.api_refusals = ""
        self.cgroup: Weighted | None = None  # the browsers' cgroup, with --browser-weight
        self.cgroup_held: int | None = None  # processes in it once the browser was up
        self.cgroup_removed: bool | None = None
        self.witness: Witness | None = None  # a process of its own asking the server twice a second
        self.lag = LoopLag(self.t0)  # how late this process's own event loop wakes

    def remaining(self) -> float:
        return self.marks.get("start", math.inf) + self.duration - (time.time() - self.t0)

    def knob_values(self, model: str) -> list:
        """The page's knob inputs once `model` is chosen: its defaults, the page's values elsewhere.

        A slider keeps the range it was built with for an API caller (the page moves it per model),
        so a default outside it (a GAN's latent 0, "as the data") goes as the nearest value inside.
        """
        knobs, start, knob_key, knobs_for = self._knobs
        mine = {knob_key(k): d for k, d in knobs_for(model).values()}
        values = []
        for key, knob in knobs.items():
            v = mine.get(key, start[key][0])
            if knob.slider and isinstance(v, (int, float)) and not isinstance(v, bool):
                v = min(max(v, knob.lo), knob.hi)
            values.append(v)
        return values

    def _load_knobs(self) -> None:
        from playground.controls import all_knobs, initial_values, knob_key, knobs_for

        self._knobs = (all_knobs(), initial_values(), knob_key, knobs_for)

    # ---- running ------------------------------------------------------------
    def run(self) -> dict:
        if self.args.browser_weight is not None:
            self.cgroup = Weighted(self.args.browser_weight)  # refused here, before anything started
        try:
            asyncio.run(self._main())
        finally:
            if self.witness is not None:
                self.witness.stop()
            self._stop_server()
            if self.cgroup is not None:
                self.cgroup_removed = self.cgroup.close()
        return self.report()

    def _start_server(self) -> float | None:
        """Our own server (tried again if it exits before answering); seconds until it answered."""
        if self.url is not None:
            if self.args.pid is not None:
                self.watch = ProcessWatch(self.args.pid, self.t0)
            return None
        for attempt in range(1, START_ATTEMPTS + 1):
            self.server = Server()
            try:
                ready = self.server.wait_ready()
                break
            except ServerGone as e:
                self.start_failures.append(str(e))
                if attempt == START_ATTEMPTS:
                    raise
        self.url = self.server.url
        self.watch = ProcessWatch(self.server.pid, self.t0)
        return ready

    async def _main(self) -> None:
        n_api = self.args.sessions - self.args.tabs
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=8))
        knobs = asyncio.to_thread(self._load_knobs) if n_api else asyncio.sleep(0)
        ready = asyncio.to_thread(self._start_server)
        # the API clients' connections: no read timeout on a stream, as a browser's has none (a
        # call's own wait is bounded by --timeout); loopback only, no proxy from the environment
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.args.timeout, read=None), trust_env=False,
                                     limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)) as http:
            self.http = http
            if not self.args.tabs:
                self.ready_after, _ = await asyncio.gather(ready, knobs)
                await self._class()
                return
            from playwright.async_api import async_playwright

            before = self._children()
            async with async_playwright() as pw:
                if self.cgroup is not None:  # Playwright's driver, before it starts Chromium: browsers are born inside
                    for pid in self._children() - before:
                        self.cgroup.add(pid)
                self.browser, self.ready_after, _ = await asyncio.gather(
                    pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS), ready, knobs)
                if self.cgroup is not None:
                    self.cgroup_held = len(self.cgroup.members())
                try:
                    await self._class()
                finally:
                    await self.browser.close()

    @staticmethod
    def _children() -> set[int]:
        me = os.getpid()
        return {p.pid for p in read_procs().values() if p.ppid == me}

    async def _class(self) -> None:
        if self.args.sessions > self.args.tabs:
            self.endpoints = await Endpoints.read(self.http, self.url)
            self.api_cases, self.api_refusals = await api_cases(self)
        if self.watch:
            await asyncio.to_thread(self.watch.settle_baseline)
            self.watch.start()
            self.children_before = self.watch.describe_children()
        self.witness = Witness(self.url, self.t0)
        lag = asyncio.create_task(self.lag.run())
        self.marks["start"] = time.time() - self.t0
        n_tabs = self.args.tabs
        self.students = [TabStudent(i, self) for i in range(n_tabs)] + \
                        [ApiStudent(i, self) for i in range(self.args.sessions - n_tabs)]
        held = asyncio.create_task(self._count_held())
        results = await asyncio.gather(*(s.script() for s in self.students), return_exceptions=True)
        for s, r in zip(self.students, results):
            if isinstance(r, Exception):
                s.record("script", s.now(), None, f"script: {error_kind(r)}")
        self.marks["end"] = time.time() - self.t0
        lag.cancel()
        await self._leave()
        held.cancel()
        self.marks["closed"] = time.time() - self.t0
        await asyncio.sleep(self.args.settle)
        self.marks["settled"] = time.time() - self.t0
        if self.watch:
            self.watch.sample()
            self.children_after = self.watch.describe_children()

    async def _count_held(self) -> None:
        while True:
            if self.server and "server_exited" not in self.marks and self.server.proc.poll() is not None:
                self.marks["server_exited"] = time.time() - self.t0
            self.held.append({"t": round(time.time() - self.t0, 1),
                              "connected": sum(s.connected for s in self.students),
                              "held": sum(s.connected and s.answering for s in self.students)})
            await asyncio.sleep(HELD_EVERY)

    async def _leave(self) -> None:
        """The class leaves. Every tab presses Play, then every API client (queueing behind the tabs
        once the cap is reached); the tabs close one at a time, training ones first, each timed
        until a run process of the server ends; then the API clients close all at once."""
        tabs = [s for s in self.students if isinstance(s, TabStudent) and s.page is not None]
        apis = [s for s in self.students if isinstance(s, ApiStudent) and s.wire is not None]
        self.leaving = True
        await asyncio.gather(*(t.play() for t in tabs), return_exceptions=True)
        await asyncio.gather(*(a.play() for a in apis), return_exceptions=True)
        stop = asyncio.Event()
        lingering = [asyncio.create_task(a.linger(stop)) for a in apis]
        states = await asyncio.gather(*(t.shown("state") for t in tabs))
        for tab, state in sorted(zip(tabs, states), key=lambda ts: ts[1] != "running"):
            await self._close_tab(tab, state, apis)
        stop.set()
        await asyncio.gather(*lingering, return_exceptions=True)
        runs = self.watch.run_processes() if self.watch else set()
        t = time.time()
        await asyncio.gather(*(a.close() for a in apis), return_exceptions=True)
        if self.watch and apis:
            left = runs
            while left and time.time() - t < 60:
                await asyncio.sleep(0.2)
                left = runs & self.watch.run_processes()
            self.api_freed = {"runs_at_close": len(runs), "still_running_after_60s": len(left),
                              "freed_after_s": round(time.time() - t, 2) if not left else None}

    async def _close_tab(self, tab: TabStudent, state: str | None, apis: list[ApiStudent]) -> None:
        """Close one tab; if its run trained, wait until a run process ends (and give a queued API
        client a few looks to see its turn come)."""
        await tab.collect()
        page, tab.page = tab.page, None
        if page is None:
            return
        before = self.watch.run_processes() if self.watch else set()
        queued = any(a.state == "waiting" for a in apis)
        t_close = time.time() - self.t0
        await page.context.close()
        tab.connected = False
        ended = None
        if state == "running" and before:
            end = time.time() + CLOSE_WAIT
            while time.time() < end and ended is None:
                await asyncio.sleep(0.1)
                if before - self.watch.run_processes():
                    ended = time.time() - self.t0 - t_close
            end = time.time() + 3.0
            while queued and time.time() < end and not any(a.state == "running" for a in apis):
                await asyncio.sleep(0.2)
        self.close_times.append({"tab": tab.index, "state": state, "t": round(t_close, 2),
                                 "process_ended_s": _round(ended)})

    def _stop_server(self) -> None:
        if self.watch:
            self.watch.stop()
        if self.server is None:
            return
        self.server.stop()
        if self.watch:
            t, alive = time.time(), self.watch.still_alive()
            while alive and time.time() - t < LEFT_WAIT:  # a forkserver notices its parent is gone
                time.sleep(0.5)
                alive = self.watch.still_alive()
            self.children_ended_after = round(time.time() - t, 1)
            self.leftovers = [{"pid": pid, "name": self.watch.seen[(pid, start)]} for pid, start in alive]
            end_processes(alive)

    # ---- the report ---------------------------------------------------------
    def report(self) -> dict:
        args = self.args
        env_cap = os.environ.get("PLAYGROUND_MAX_RUNS")
        cap = int(env_cap) if env_cap else (DEFAULT_CAP if self.server else None)
        start, end = self.marks.get("start", 0.0), self.marks.get("end", 0.0)
        exited = "server_exited" in self.marks
        return {
            "config": {"sessions": args.sessions, "tabs": args.tabs, "api_clients": args.sessions - args.tabs,
                       "minutes": args.minutes, "soak": args.soak, "url": self.url, "cap": cap,
                       "server_started_here": self.server is not None, "server_ready_after_s": _round(self.ready_after),
                       "server_start_failures": self.start_failures,
                       "server_last_lines": self.server.tail(10) if self.server and exited else None,
                       "api_cases": self.api_cases, "api_refused": self.api_refusals,
                       "think_s": args.think, "patience_s": args.patience, "timeout_s": args.timeout,
                       "settle_s": args.settle, "marks_s": {k: round(v, 1) for k, v in self.marks.items()},
                       "requests_outside_loopback_refused": self.blocked,
                       "browser_weight": args.browser_weight,
                       "browser_cgroup": None if self.cgroup is None else
                       {"path": self.cgroup.path, "version": self.cgroup.version, "processes_once_up": self.cgroup_held,
                        "removed": self.cgroup_removed}},
            "sessions": self._sessions(),
            "queue": self._queue(cap),
            "latency": self._latency(),
            "tab_phases": self._tab_phases(),
            "redraws": self._redraws(start, end),
            "memory": self._memory(start, end),
            "cpu": self._cpu(start, end),
            "stalls": {"server_asked_by_a_witness": self.witness.report(start, end) if self.witness else None,
                       "load_test_loop_late": self.lag.report(start, end)},
            "processes": self._processes(),
            "close": self._close(),
        }

    def _sessions(self) -> dict:
        errors = collections.Counter(a["error"] for s in self.students for a in s.actions if a["error"])
        held = [h["held"] for h in self.held]
        return {"connected": sum(s.ever_connected for s in self.students), "of": len(self.students),
                "opened": sum(s.opened for s in self.students),
                "held_min": min(held, default=0), "held_max": max(held, default=0), "held_over_time": self.held,
                "errors": dict(errors.most_common()), "error_count": sum(errors.values()),
                "each": [{"session": f"{s.kind} {s.index}", "actions": s.actions, "seen": R.changes(s.obs)}
                         for s in self.students]}

    def _queue(self, cap) -> dict:
        spans = [span for s in self.students for span in R.training_spans(s.obs, s.guard())]
        most, every = R.most_at_once(spans, bucket=10.0)
        places = collections.Counter(o.queue for s in self.students for o in s.obs if o.queue)
        waits = [w for s in self.students for w in R.queue_waits(s.obs)]
        outcome = collections.Counter(w["outcome"] for w in waits)
        busy = [s["busy_runs"] for s in self.watch.samples if s["alive"]] if self.watch else []
        return {"cap": cap, "most_training_at_once": most, "within_cap": None if cap is None else most <= cap,
                "most_training_every_10s": every,
                "server_busy_runs": {"busy_cores": BUSY, "most_held_3s": most_held(busy, 3) if busy else None,
                                     "seconds_with": dict(sorted(collections.Counter(b for b in busy if b is not None)
                                                                 .items()))},
                "places_seen": {str(k): v for k, v in sorted(places.items())}, "deepest_place": max(places, default=0),
                "waits": len(waits), "started": outcome["started"], "left_before_their_turn": outcome["left"],
                "still_waiting_at_the_end": outcome["open"], "every_queued_run_started": outcome["open"] == 0,
                "time_to_start_s": R.stats([w["waited_s"] for w in waits if w["outcome"] == "started"])}

    def _latency(self) -> dict:
        rows: dict[tuple, dict] = {}
        for s in self.students:
            for a in s.actions:
                row = rows.setdefault((a["kind"], s.kind), {"values": [], "errors": 0})
                if a["error"]:
                    row["errors"] += 1
                else:
                    row["values"].append(a["latency"])
        order = sorted(rows, key=lambda k: (ACTIONS.index(k[0]) if k[0] in ACTIONS else len(ACTIONS), k[1]))
        return {f"{kind} ({via})": {"kind": kind, "via": via, "errors": rows[kind, via]["errors"],
                                    **R.stats(rows[kind, via]["values"])} for kind, via in order}

    def _tab_phases(self) -> dict:
        """For each kind of click in the tabs, where its time went (students.PHASES): p50 and p95 of
        each phase over the clicks the page could trace, and of their whole."""
        out = {}
        for kind in ACTIONS:
            traced = [a for s in self.students if isinstance(s, TabStudent) for a in s.actions
                      if a["kind"] == kind and a.get("phases")]
            if traced:
                out[kind] = {"n": len(traced), "whole": R.stats([a["latency"] for a in traced]),
                             **{name: R.stats([a["phases"][name] for a in traced]) for name in PHASES}}
        return out

    def _redraws(self, start: float, end: float) -> dict:
        minutes = max(1, math.ceil((end - start) / 60 - 1e-9))
        per_tab = []
        for tab in (s for s in self.students if isinstance(s, TabStudent)):
            rate, each = R.per_second(tab.redraws, start, end, minutes)
            spans = R.training_spans(tab.obs)
            trained = sum(b - a for a, b in spans)
            during = sum(1 for t in tab.redraws if any(a <= t <= b for a, b in spans))
            per_tab.append({"tab": tab.index, "redraws": sum(1 for t in tab.redraws if start <= t <= end),
                            "per_s": round(rate, 2), "training_s": round(trained, 1),
                            "per_s_while_training": round(during / trained, 2) if trained >= 1 else None,
                            "per_s_each_minute": [round(x, 2) for x in each]})

        def mean(xs):
            xs = [x for x in xs if x is not None]
            return round(sum(xs) / len(xs), 2) if xs else None

        return {"per_tab": per_tab, "mean_per_s": mean([t["per_s"] for t in per_tab]),
                "least_per_s": min((t["per_s"] for t in per_tab), default=None),
                "mean_per_s_while_training": mean([t["per_s_while_training"] for t in per_tab]),
                "mean_per_s_each_minute": [mean([t["per_s_each_minute"][m] for t in per_tab]) for m in range(minutes)]
                if per_tab else []}

    def _memory(self, start: float, end: float) -> dict:
        if self.watch is None:
            return {"measured": False, "why": "a server given by --url is measured only with --pid"}
        samples = [s for s in self.watch.samples if s["alive"]] or self.watch.samples
        if not samples:
            return {"measured": False, "why": "no reading of /proc succeeded"}

        def nearest(t):
            return min(samples, key=lambda s: abs(s["t"] - t))

        def at(t):
            return view(nearest(t))

        def view(s):
            return {"t": s["t"], "rss_mb": s["rss_mb"], "pss_mb": s["pss_mb"], "children": s["children"]}

        out = {"measured": True, "start": at(start), "end": at(end),
               "peak_rss": view(max(samples, key=lambda s: s["rss_mb"])),
               "peak_pss": view(max(samples, key=lambda s: s["pss_mb"] or 0)),
               "after_close": at(self.marks.get("settled", samples[-1]["t"])),
               "most_run_processes": max(s["runs"] for s in samples), "samples": self.watch.samples}
        if self.args.soak:
            warm_at = start + min(SOAK_WARM_UP, (end - start) / 3)
            warm = at(warm_at)
            after = [s for s in samples if warm_at <= s["t"] <= end] or samples[-1:]
            soak = {"warm_up_s": round(warm_at - start, 1), "warm_up": warm,
                    "peak_after_warm_up_rss_mb": max(s["rss_mb"] for s in after)}
            soak["within_10pct_rss"] = soak["peak_after_warm_up_rss_mb"] <= 1.10 * warm["rss_mb"]
            if warm["pss_mb"] is not None and all(s["pss_mb"] is not None for s in after):
                soak["peak_after_warm_up_pss_mb"] = max(s["pss_mb"] for s in after)
                soak["within_10pct_pss"] = soak["peak_after_warm_up_pss_mb"] <= 1.10 * warm["pss_mb"]
            warm_parts = nearest(warm_at).get("pss_parts_mb")
            if warm_parts and all(s.get("pss_parts_mb") for s in after):
                # which of the server, its kept helpers and the run processes grew after the warm-up
                soak["pss_parts_mb"] = {k: {"warm_up": warm_parts[k],
                                            "peak_after": max(s["pss_parts_mb"][k] for s in after),
                                            "end": after[-1]["pss_parts_mb"][k]} for k in warm_parts}
            out["soak"] = soak
        return out

    def _cpu(self, start: float, end: float) -> dict:
        """Where the machine's cores went while the class worked, on average over its readings."""
        if self.watch is None:
            return {"measured": False, "why": "a server given by --url is measured only with --pid"}
        during = [s["cpu_cores"] for s in self.watch.samples if s["cpu_cores"] and start <= s["t"] <= end]
        if not during:
            return {"measured": False, "why": "no two readings of /proc while the class worked"}
        waits = [s["waiting_threads"] for s in self.watch.samples
                 if s.get("waiting_threads") and start <= s["t"] <= end]
        return {"measured": True, "cores": os.cpu_count(), "readings": len(during),
                "mean_cores": {k: round(sum(c[k] for c in during) / len(during), 2) for k in CPU_PARTS},
                "mean_waiting_threads": {k: round(sum(w[k] for w in waits) / len(waits), 2) for k in WAIT_PARTS}
                if waits else None}

    def _processes(self) -> dict:
        if self.watch is None:
            return {"measured": False, "why": "a server given by --url is measured only with --pid"}
        names, samples = self.watch.seen, self.watch.samples
        return {"measured": True, "before": self.children_before, "after": self.children_after,
                "ever_under_the_server": [{"pid": pid, "start": st, "name": name} for (pid, st), name in names.items()],
                "most_zombies_at_once": max((s["zombies"] for s in samples), default=0),
                "zombies_at_the_end": samples[-1]["zombies"] if samples else 0,
                "lingering_zombies": [{"pid": pid, "name": names.get((pid, st), "?"), "seconds": sec}
                                      for (pid, st), sec in self.watch.lingering_zombies.items()],
                "orphans": [{"pid": pid, "name": name} for (pid, _), name in self.watch.orphans.items()],
                "server_exit": self.server.exit if self.server else None,
                "children_ended_after_server_s": self.children_ended_after,
                "left_after_server_stopped": self.leftovers if self.server else None}

    def _close(self) -> dict:
        """Each closed tab: until a run process ended, and until a session waiting at the close was
        first seen training (before the next tab closed)."""
        rows = [dict(r) for r in self.close_times]
        seen = [s.obs for s in self.students]
        for i, row in enumerate(rows):
            until = min(rows[i + 1]["t"] if i + 1 < len(rows) else math.inf, row["t"] + 30.0)
            row["queued_started_s"] = _round(R.first_start_after(row["t"], until, seen)) \
                if row["state"] == "running" else None
        return {"tabs": rows, "process_ended": R.stats([r["process_ended_s"] for r in rows if r["process_ended_s"] is not None]),
                "queued_started": R.stats([r["queued_started_s"] for r in rows if r["queued_started_s"] is not None]),
                "api_clients": self.api_freed}


def _round(x, nd: int = 2):
    return None if x is None else round(x, nd)
