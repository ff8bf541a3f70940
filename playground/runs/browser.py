"""How busy a tab's own browser is, and how often it can take a picture.

The server's picture budget (RunManager.redraw_interval) bounds what redraws cost the server;
this bounds what they cost the browser that shows them. A slow laptop, or thirty tabs in one
machine's browser, spends most of its main thread on Plotly redrawing SVG: its clicks then
answer late however fast the server is. The page reports, with every tick of its timer, the
milliseconds its main thread spent in long tasks (over 50 ms, the browser's own measure) during
the last few seconds (JS_LOAD in playground/app/wiring.py). Dividing that by the pictures sent
in the same span estimates what one picture costs this browser; pictures then come no more
often than that cost over SHARE, so that drawing takes at most about SHARE of its main thread.
A fast browser has no long tasks and is paced by the server alone.
"""

from __future__ import annotations

import collections
import math

HIDDEN = "hidden"  # document.visibilityState of a background tab
SHARE = 0.4  # of its main thread a tab's browser may spend on pictures
LONGEST = 3.0  # seconds: however slow the browser, a picture at least this often (the slowest tick)
SMOOTHING = 0.5  # weight of the newest estimate of a picture's cost
MIN_SPAN = 1.0  # seconds of measurement before a reading counts


def read_page(reading: str) -> tuple[bool, float | None, float | None]:
    """The timer's last input: "visible" or "hidden", then, from a page that measures itself, the
    milliseconds of long tasks and the milliseconds they were counted over ("visible 1234 5000").
    Returns (in the foreground, busy seconds, span seconds); the two are None where the page sent
    no measurement or one that does not read as two finite numbers with busy within the span."""
    parts = str(reading).split()
    shown = not parts or parts[0] != HIDDEN
    try:
        busy, span = float(parts[1]) / 1000.0, float(parts[2]) / 1000.0
    except (IndexError, ValueError):
        return shown, None, None
    if not (math.isfinite(busy) and math.isfinite(span)) or span < MIN_SPAN or busy < 0:
        return shown, None, None
    return shown, min(busy, span), span


class BrowserLoad:
    """One tab's browser: the pictures sent to it and what each costs it (seconds of main thread)."""

    def __init__(self, keep: int = 64):
        self.sent: collections.deque[float] = collections.deque(maxlen=keep)  # when pictures went out
        self.cost: float | None = None  # estimated seconds of the browser's main thread per picture

    def picture_sent(self, now: float) -> None:
        self.sent.append(now)

    def measured(self, busy: float | None, span: float | None, now: float) -> None:
        """A reading from the page: `busy` seconds of long tasks over the last `span` seconds."""
        if busy is None or span is None:
            return
        pictures = sum(1 for t in self.sent if now - span <= t <= now)
        if pictures == 0:  # nothing drawn in the span: its busy time says nothing about pictures
            return
        sample = busy / pictures
        self.cost = sample if self.cost is None else (1 - SMOOTHING) * self.cost + SMOOTHING * sample

    def interval(self) -> float:
        """The least seconds between two pictures this browser keeps up with (0 if unmeasured)."""
        if self.cost is None:
            return 0.0
        return min(LONGEST, self.cost / SHARE)
