"""What the sessions saw, read into figures: status lines, spans of training, queue waits, percentiles.

Plain functions of observations; nothing here talks to a server. An observation is
the server's state as one session saw it somewhere between two moments: for an API
call, between its sending (t0) and its answer (t1); for a tab, the moment its status
line changed (t0 == t1), which may be later than the server's moment by up to the
time the page takes to answer (the `guard` of `training_spans`).
"""

from __future__ import annotations

import dataclasses
import math
import re

STATES = ("running", "waiting", "paused", "ready", "done", "diverged", "error", "stopped")


@dataclasses.dataclass
class Obs:
    t0: float  # seconds since the test began
    t1: float
    state: str | None
    step: int | None
    queue: int  # place in the queue, 0 when not waiting


def parse_status(text: str) -> dict:
    """The page's status line (its Markdown, or as a tab shows it) -> step, state, queue place.

    The line reads "step 1,234 / 5,000 · 80 steps/s · 12.3 s · running · device cpu", then,
    for a queued run, "... you are #3 in the queue"; a refusal starts with the warning sign.
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    m = re.search(r"step ([\d,]+)", line)
    parts = [p.strip().strip("`*") for p in line.split("·")]
    place = re.search(r"#(\d+)\**\s+in the queue", line)
    return {"step": int(m.group(1).replace(",", "")) if m else None, "state": next((p for p in parts if p in STATES), None),
            "queue": int(place.group(1)) if place else 0, "refused": line.startswith("⚠️") and not m, "text": line}


def training_spans(obs: list[Obs], guard: float = 0.0) -> list[tuple[float, float]]:
    """Spans a session surely trained: from the answer of the first of consecutive `running`
    observations to the sending of the last, less `guard` (how late the last may be).

    The run trained all along: only its own session pauses and resumes it, and that session
    observes after each of its actions; a run that finishes or is reset says so (done, ready)
    before it trains again. So the spans never hold a moment the run did not train.
    """
    spans, first, last = [], None, None
    for o in obs + [Obs(math.inf, math.inf, None, None, 0)]:
        if o.state == "running":
            first = first or o
            last = o
            continue
        if first is not None and last is not first and last.t0 - guard > first.t1:
            spans.append((first.t1, last.t0 - guard))
        first = last = None
    return spans


def at_once(spans: list[tuple[float, float]], t: float) -> int:
    return sum(1 for a, b in spans if a <= t <= b)


def most_at_once(spans: list[tuple[float, float]], bucket: float = 10.0) -> tuple[int, list[dict]]:
    """The most spans holding one moment, overall and within each `bucket` seconds.

    The count is highest at some span's start, or at a bucket's start for a bucket no span starts in.
    """
    per: dict[int, int] = {}
    for a, _ in spans:
        k = int(a // bucket)
        per[k] = max(per.get(k, 0), at_once(spans, a))
    for a, b in spans:
        for k in range(int(a // bucket) + 1, int(b // bucket) + 1):
            per[k] = max(per.get(k, 0), at_once(spans, k * bucket))
    return max(per.values(), default=0), [{"t": k * bucket, "most": per[k]} for k in sorted(per)]


def queue_waits(obs: list[Obs]) -> list[dict]:
    """Each stretch of `waiting` observations and how it ended: started (seen `running`), left
    (the session paused, reset or switched first), or open (still waiting at the end)."""
    waits, since = [], None
    for o in obs:
        if o.state == "waiting":
            since = since or o
        elif since is not None and o.state is not None:
            waits.append({"outcome": "started" if o.state == "running" else "left", "waited_s": round(o.t1 - since.t0, 2)})
            since = None
    if since is not None:
        waits.append({"outcome": "open", "waited_s": round(obs[-1].t1 - since.t0, 2)})
    return waits


def first_start_after(t: float, until: float, sessions: list[list[Obs]]) -> float | None:
    """Seconds from `t` until a session that was waiting at `t` was first seen training, if before `until`."""
    best = None
    for obs in sessions:
        before = [o for o in obs if o.t1 <= t and o.state is not None]
        if not before or before[-1].state != "waiting":
            continue
        nxt = next((o for o in obs if o.t1 > t and o.state not in (None, "waiting")), None)
        if nxt is not None and nxt.state == "running" and nxt.t1 < until:
            best = nxt.t1 - t if best is None else min(best, nxt.t1 - t)
    return best


def changes(obs: list[Obs]) -> list[list]:
    """[t, state, step, queue place] at each change of state or place: what a session saw, compactly."""
    out = []
    for o in obs:
        if not out or (o.state, o.queue) != (out[-1][1], out[-1][3]):
            out.append([round(o.t1, 2), o.state, o.step, o.queue])
    return out


def stats(values: list[float]) -> dict:
    """n, p50, p95 and max, by nearest rank (a value that was measured, never one between)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    v = sorted(values)

    def rank(q):
        return v[max(0, math.ceil(q * len(v)) - 1)]

    return {"n": len(v), "p50": round(rank(0.50), 3), "p95": round(rank(0.95), 3), "max": round(v[-1], 3)}


def per_second(times: list[float], start: float, end: float, minutes: int) -> tuple[float, list[float]]:
    """Events per second from `start` to `end`, and in each minute of it (the last one may be short)."""
    inside = [t for t in times if start <= t <= end]
    each = []
    for m in range(minutes):
        a = start + 60 * m
        length = min(60.0, end - a)
        each.append(sum(1 for t in inside if a <= t < a + 60) / length if length > 0 else 0.0)
    return len(inside) / max(end - start, 1e-9), each
