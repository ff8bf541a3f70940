"""A witness of the server's stalls: a process of its own that asks the server a trivial question
twice a second, so that a stall of the server can be told from one of the load test itself.

Every figure of the students is read in the load test's own process: when all of them stall at
once, either the server stopped answering or the load test stopped reading. The witness shares
nothing with the load test (not its interpreter, its event loop or its connections) and asks, each
over a new connection:

    loop     GET /gradio_api/user, which Gradio answers on the server's event loop;
    thread   GET /gradio_api/app_id, which it answers in one of the server's worker threads.

The load test also measures how late its own event loop wakes from a short sleep (`LoopLag`).

Run as `python -m playground.loadtest.witness URL EVERY`, it prints one JSON line per answer,
{"route", "t" (when asked, seconds since the epoch), "s" (until answered), "error"}; it uses the
standard library only, so that it starts at once.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from . import readings as R

REPO = Path(__file__).resolve().parents[2]  # where `python -m playground.loadtest.witness` runs

ROUTES = {"loop": "/gradio_api/user", "thread": "/gradio_api/app_id"}
EVERY = 0.5  # seconds between one route's questions
LIMIT = 120.0  # seconds a question may go unanswered before it counts as an error
LAG_EVERY = 0.2  # seconds the load test's own loop sleeps between readings of its lag
WORST = 3  # the slowest moments reported of each


class Witness:
    """The witness process, started at once; `stop()` ends it and keeps what it saw."""

    def __init__(self, url: str, t0: float, every: float = EVERY):
        self.t0 = t0
        self.seen: dict[str, list[tuple[float, float]]] = {route: [] for route in ROUTES}
        self.errors: dict[str, list[tuple[float, str]]] = {route: [] for route in ROUTES}
        self.proc = subprocess.Popen([sys.executable, "-m", __name__, url, str(every)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                a = json.loads(line)
                route, t = a["route"], a["t"] - self.t0
            except (ValueError, KeyError, TypeError):
                continue
            if a.get("error"):
                self.errors[route].append((round(t, 2), a["error"]))
            else:
                self.seen[route].append((round(t, 2), a["s"]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)

    def report(self, start: float, end: float) -> dict:
        """Per route, while the class worked: the answers' seconds, the slowest moments, the errors."""
        return {route: {**summary(self.seen[route], start, end), "every_s": EVERY,
                        "errors": [{"t": t, "error": e} for t, e in self.errors[route] if start <= t <= end]}
                for route in ROUTES}


class LoopLag:
    """How late the load test's own event loop wakes from a short sleep, every LAG_EVERY seconds."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.seen: list[tuple[float, float]] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_EVERY)
            late = loop.time() - asked - LAG_EVERY
            self.seen.append((round(time.time() - self.t0, 2), round(max(0.0, late), 4)))

    def report(self, start: float, end: float) -> dict:
        return {**summary(self.seen, start, end), "every_s": LAG_EVERY}


def summary(seen: list[tuple[float, float]], start: float, end: float) -> dict:
    """p50, p95 and max of the seconds in `seen` (moment, seconds) from `start` to `end`, and the
    WORST slowest moments, the slowest first."""
    inside = [(t, s) for t, s in seen if start <= t <= end]
    worst = sorted(inside, key=lambda ts: -ts[1])[:WORST]
    return {**R.stats([s for _, s in inside]), "slowest": [{"t": t, "s": s} for t, s in worst]}


# ---- the witness process ------------------------------------------------------------
def _ask(parts: urllib.parse.SplitResult, route: str, path: str, every: float, out_lock: threading.Lock) -> None:
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    prefix = parts.path.rstrip("/")
    while True:
        asked, error = time.time(), None
        conn = conn_class(parts.hostname, parts.port, timeout=LIMIT)
        try:
            conn.request("GET", prefix + path, headers={"Connection": "close"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                error = f"HTTP {answer.status}"
        except (OSError, http.client.HTTPException) as e:
            error = type(e).__name__
        finally:
            conn.close()
        took = time.time() - asked
        try:
            with out_lock:
                print(json.dumps({"route": route, "t": asked, "s": round(took, 4), "error": error}), flush=True)
        except OSError:  # nobody reads any more: the load test has gone
            return
        time.sleep(max(0.0, every - took))


def main(argv: list[str]) -> None:
    url, every = argv[0], float(argv[1])
    parts = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    askers = [threading.Thread(target=_ask, args=(parts, route, path, every, lock), daemon=True)
              for route, path in ROUTES.items()]
    for t in askers:
        t.start()
    try:
        for t in askers:
            t.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
