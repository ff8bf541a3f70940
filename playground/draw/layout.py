"""The look of every panel: colours, the template, titles that fit, layouts and axes.

Every view is a pure function of numbers (a snapshot's arrays and a context
dict) returning a Plotly figure. Figures are built as plain dicts and wrapped
without Plotly's per-property validation (`VALIDATE = False`): validation costs
tens of milliseconds a figure, which a view refreshed several times a second
cannot afford. The tests build every view once with validation switched on.

Conventions: real data is always REAL (green), model samples always GEN
(purple), as in GAN Lab; axes over the data plane use the dataset's bounds with
equal aspect, so frames do not jump; `uirevision` keeps a user's zoom across
updates. Titles are annotations (named "title"), not layout.title, so a host
page does not widen the top margin for them; they wrap to fit a panel of the
app, with details on a note line below. Legends sit at the foot of a panel,
clear of the title however many rows they wrap onto.
"""

from __future__ import annotations

import functools
import math

import plotly.graph_objects as go

VALIDATE = False

REAL = "#1b9e77"
GEN = "#7b3294"
BASE = "#e66101"  # the base distribution N(0, I) and other references
NEUTRAL = "#8c8c8c"
MESH = "rgba(123, 50, 148, 0.55)"
LABEL_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
# Discriminator: purple where it says "generated", white at 1/2, green where it says "real".
CRITIC_SCALE = [[0.0, "#c2a5cf"], [0.5, "#f7f7f7"], [1.0, "#a6dba0"]]
DENSITY_SCALE = [[0.0, "#ffffff"], [0.2, "#deebf7"], [0.45, "#9ecae1"], [0.7, "#4292c6"], [1.0, "#08519c"]]
MAGNITUDE_SCALE = [[0.0, "#ffffff"], [1.0, "#fdd0a2"]]
DIGIT_SCALE = [[0.0, "#000000"], [1.0, "#ffffff"]]

HEIGHT = 340
STRIP_HEIGHT = 240
BASE_BOX = (-3.5, 3.5)  # what a standard normal fills, for base-space panels

_TEMPLATE_SPEC = {"layout": {
    "font": {"family": "Inter, Helvetica, Arial, sans-serif", "size": 12, "color": "#333"},
    "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
    # automargin: the ticks and axis title claim their height, and a legend at the foot goes below them
    "xaxis": {"gridcolor": "#eeeeee", "zerolinecolor": "#dddddd", "linecolor": "#cccccc", "ticks": "",
              "automargin": True},
    "yaxis": {"gridcolor": "#eeeeee", "zerolinecolor": "#dddddd", "linecolor": "#cccccc", "ticks": ""},
    "colorway": [REAL, GEN, BASE, "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f"],
    "hoverlabel": {"font": {"size": 11}},
}}
TEMPLATE = go.layout.Template(_TEMPLATE_SPEC)  # built once: attaching a built template is cheap


class Unavailable(Exception):
    """A view cannot be drawn from these numbers; the message says why, for a person."""


# ---- titles that fit ------------------------------------------------------------
# Gradio caps the page at 1280 px on screens 1280 to 1535 px wide; the plots' column takes 3/4 of it and
# holds two panels a row, so a panel is 425 px wide there, and 297 px on a 1024 px screen (measured in
# Chromium at 1024 x 768; 555 px and more on wider screens). Titles wrap to the narrowest of these, PANEL_WIDTH: a title starts after the 40 px
# left margin and leaves room on the right for the panel's hover note (ⓘ); lines wider than TITLE_ROOM
# wrap onto the next line instead of running off the panel. Details go on a note line in smaller type.
PANEL_WIDTH = 297
MARGIN_L, MARGIN_R = 40, 12
INFO_ROOM = 22  # px the ⓘ of the hover note takes at the top right
TITLE_ROOM = PANEL_WIDTH - MARGIN_L - MARGIN_R - INFO_ROOM - 6  # px, 6 to spare for the estimate's error
MESSAGE_ROOM = PANEL_WIDTH - 30  # a placeholder's message, centred on the whole panel
TITLE_SIZE, NOTE_SIZE, MESSAGE_SIZE, TICK_SIZE = 13, 11, 13, 12
LINE_PX = 17  # Plotly sets the lines of an annotation 1.3 em of its font apart
TOP_MARGIN = 34  # one line of title 6 px above the plot, with room to spare
# Widths in em of bold Arial/Helvetica (the title font's fallback), grouped; other ASCII 0.56, the rest
# (arrows, Greek, maths) 0.75. Within 3% of Chromium's widths for the panels' titles; subscripts over.
_EM = {**dict.fromkeys(" ,.'|/\\ijlI", 0.28), **dict.fromkeys("()[]{}-:;!*frt`", 0.34),
       **dict.fromkeys("bdghnopqu?FTZL", 0.61), **dict.fromkeys("ABCDHKNRUVw&EPSXY", 0.71),
       **dict.fromkeys("GOQ", 0.78), **dict.fromkeys("mM%", 0.87), **dict.fromkeys("W@", 0.96)}


def text_width(text: str, size: float = TITLE_SIZE) -> float:
    """Estimated width in px of `text` in bold Arial at `size` px."""
    return size * sum(_EM.get(c, 0.56 if c.isascii() else 0.75) for c in text)


def _words(text: str) -> list[str]:
    """Split at spaces outside brackets, so that 'N(0, I)' stays on one line, and keep an
    equation's sides together ('t = 0.50', never 't =' above '0.50')."""
    words, depth = [""], 0
    for c in text:
        depth += (c in "([{") - (c in ")]}")
        if c == " " and depth <= 0:
            words.append("")
        else:
            words[-1] += c
    out: list[str] = []
    for w in (w for w in words if w):
        if out and (w in ("=", "≈", "∝") or out[-1].endswith(("=", "≈", "∝")) and out[-1].split()[-1] in ("=", "≈", "∝")):
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def wrap(text: str, size: float = TITLE_SIZE, room: float = TITLE_ROOM) -> list[str]:
    """Greedy lines of at most `room` px (a single word wider than that keeps a line of its own)."""
    lines: list[str] = []
    for w in _words(text):
        if lines and text_width(f"{lines[-1]} {w}", size) <= room:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return lines


def title_lines(title: str, note: str = "") -> list[str]:
    """The annotation's lines: the title in bold, then the note in smaller grey type, each wrapped to fit."""
    lines = [f"<b>{line}</b>" for line in wrap(title)]
    lines += [f"<span style='font-size:{NOTE_SIZE}px;color:#666'>{line}</span>" for line in wrap(note, NOTE_SIZE)]
    return lines or [""]


def title_annotation(title: str, note: str = "") -> dict:
    return dict(name="title", text="<br>".join(title_lines(title, note)), x=0, y=1, xref="paper", yref="paper",
                xanchor="left", yanchor="bottom", yshift=6, showarrow=False, font={"size": TITLE_SIZE}, align="left")


INFO = "<b>i</b>"  # boxed by the annotation's border: fonts without the glyph ⓘ show a blank box for it
HOVER_SIZE = 12
HOVER_ROOM = 230  # px per line of a hover note: Plotly does not wrap hover labels, and clips them at the panel


def info_annotation(text: str) -> dict:
    """The panel's hover note: a boxed i in its top right corner that shows `text` when the pointer is on it."""
    lines: list[str] = []
    for w in text.split():  # any space will do: a note's brackets may hold a whole clause
        if lines and text_width(f"{lines[-1]} {w}", HOVER_SIZE) <= HOVER_ROOM:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return dict(name="about", text=INFO, hovertext="<br>".join(lines),
                x=1, y=1, xref="paper", yref="paper", xanchor="right", yanchor="bottom", yshift=6,
                showarrow=False, font={"size": 11, "color": "#555"}, bordercolor="#999", borderwidth=1,
                borderpad=1, bgcolor="#f4f4f4",
                hoverlabel={"bgcolor": "#ffffff", "bordercolor": "#999",
                            "font": {"size": HOVER_SIZE, "color": "#333"}})


# ---- figures ----------------------------------------------------------------
def figure(data: list, layout: dict) -> go.Figure:
    return go.Figure(data=data, layout=layout, _validate=VALIDATE)


def base_layout(title: str, uirevision: str, height: int = HEIGHT, legend: bool = True, note: str = "") -> dict:
    """The title (and a note under it) above the plot; the legend, if any, at the foot of the panel.

    A horizontal legend wraps onto as many rows as the panel's width needs, which only the browser knows.
    Anchored to the bottom of the figure (yref "container"), its rows are reserved as bottom margin by
    Plotly, below the x axis (automargin in TEMPLATE) and the plot area shrinks to make room; placed
    under the title instead, rows beyond the estimated few grew over it.
    """
    rows = len(title_lines(title, note))
    return dict(
        template=TEMPLATE, height=height, uirevision=uirevision, hovermode="closest",
        margin=dict(l=MARGIN_L, r=MARGIN_R, t=TOP_MARGIN + LINE_PX * (rows - 1), b=30), annotations=[title_annotation(title, note)],
        showlegend=legend,
        legend=dict(orientation="h", xref="paper", x=0, xanchor="left", yref="container", y=0, yanchor="bottom",
                    font={"size": 11}, bgcolor="rgba(255,255,255,0)", itemsizing="constant"),
    )


def empty_figure(message: str, title: str = "", height: int = HEIGHT) -> go.Figure:
    """A blank panel that says what is missing instead of drawing it."""
    layout = base_layout(title, uirevision="empty", height=height, legend=False)
    layout["xaxis"] = dict(visible=False, range=[0, 1])
    layout["yaxis"] = dict(visible=False, range=[0, 1])
    text = "<br>".join(wrap(str(message), MESSAGE_SIZE, MESSAGE_ROOM))  # a placeholder is read whole, not clipped
    layout["annotations"].append(dict(name="message", text=text, x=0.5, y=0.5, xref="paper", yref="paper",
                                      showarrow=False, font={"size": MESSAGE_SIZE, "color": "#666"}))
    return figure([], layout)


@functools.lru_cache(maxsize=32)
def blank(message: str) -> go.Figure:
    """empty_figure(message), made once and shared: a page opened by thirty people at once sends
    the same blank panels thirty times. Read only: never change the figure returned."""
    return empty_figure(message)


def plane_axes(layout: dict, box, n: int = 1, ticks: bool = True, label: str = "") -> None:
    """Fix axis pair n to box = ((x0, x1), (y0, y1)) with equal aspect."""
    s = "" if n == 1 else str(n)
    (x0, x1), (y0, y1) = box
    layout[f"xaxis{s}"] = dict(range=[float(x0), float(x1)], constrain="domain", zeroline=False,
                               showticklabels=ticks, title=dict(text=label, standoff=4, font={"size": 11}))
    layout[f"yaxis{s}"] = dict(range=[float(y0), float(y1)], constrain="domain", zeroline=False,
                               scaleanchor=f"x{s}", scaleratio=1, showticklabels=ticks)


def inner_ticks(lo: float, hi: float, most: int = 3) -> list[float]:
    """At most `most` round tick values strictly inside [lo, hi], clear of both ends by 10% of the span:
    side-by-side planes then never put one's last tick label against the next one's first ("4−4")."""
    span = float(hi) - float(lo)
    if not math.isfinite(span) or span <= 0:
        return []
    a, b = lo + 0.1 * span, hi - 0.1 * span
    mag = 10.0 ** math.floor(math.log10(span / (most + 1)))
    for step in (mag * m for m in (1, 2, 2.5, 5, 10, 20, 25, 50)):
        vals = [k * step for k in range(math.ceil(a / step - 1e-9), math.floor(b / step + 1e-9) + 1)]
        if len(vals) <= most:
            return [round(v, 10) + 0.0 for v in vals]
    return []


def strip_layout(layout: dict, boxes: list, labels: list, gap: float = 0.015, ticks: bool = False) -> list[str]:
    """Side-by-side plane panels; returns each panel's axis suffix ('', '2', ...).

    With ticks, each x axis has a few ticks clear of its ends, and the y tick labels of a panel
    sharing the y range of the one on its left are left off, as they would sit in the gap."""
    k = len(boxes)
    gap = max(gap, 0.03) if ticks else gap
    suffixes = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        plane_axes(layout, box, i + 1, ticks=ticks, label=label)
        s = "" if i == 0 else str(i + 1)
        layout[f"xaxis{s}"].update(domain=[i / k + gap, (i + 1) / k - gap], anchor=f"y{s}")
        layout[f"yaxis{s}"].update(domain=[0.0, 1.0], anchor=f"x{s}")
        if ticks:
            layout[f"xaxis{s}"].update(tickmode="array", tickvals=inner_ticks(*box[0]))
            if i and tuple(box[1]) == tuple(boxes[i - 1][1]):
                layout[f"yaxis{s}"]["showticklabels"] = False
        suffixes.append(s)
    return suffixes


def on_axes(trace: dict, s: str) -> dict:
    """Place a trace on the axis pair with suffix s."""
    trace["xaxis"], trace["yaxis"] = f"x{s}", f"y{s}"
    return trace
