"""Shared pieces of the live views: colours, layouts, safe inputs, meshes, arrows.

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

import math

import numpy as np
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
# holds two panels a row, so a panel is 425 px wide there (300 px on a 1024 px screen, 555 px and more on
# wider ones). A title starts after the 40 px left margin; lines wider than TITLE_ROOM wrap onto the next
# line instead of running off the panel. Details go on a note line in smaller type.
PANEL_WIDTH = 425
TITLE_ROOM = PANEL_WIDTH - 40 - 15  # px, 15 to spare for the estimate's error
TITLE_SIZE, NOTE_SIZE = 13, 11
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
    """Split at spaces outside brackets, so that 'N(0, I)' stays on one line."""
    words, depth = [""], 0
    for c in text:
        depth += (c in "([{") - (c in ")]}")
        if c == " " and depth <= 0:
            words.append("")
        else:
            words[-1] += c
    return [w for w in words if w]


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
        margin=dict(l=40, r=12, t=TOP_MARGIN + LINE_PX * (rows - 1), b=30), annotations=[title_annotation(title, note)],
        showlegend=legend,
        legend=dict(orientation="h", xref="paper", x=0, xanchor="left", yref="container", y=0, yanchor="bottom",
                    font={"size": 11}, bgcolor="rgba(255,255,255,0)", itemsizing="constant"),
    )


def empty_figure(message: str, title: str = "", height: int = HEIGHT) -> go.Figure:
    """A blank panel that says what is missing instead of drawing it."""
    layout = base_layout(title, uirevision="empty", height=height, legend=False)
    layout["xaxis"] = dict(visible=False, range=[0, 1])
    layout["yaxis"] = dict(visible=False, range=[0, 1])
    layout["annotations"].append(dict(name="message", text=str(message), x=0.5, y=0.5, xref="paper", yref="paper",
                                      showarrow=False, font={"size": 13, "color": "#666"}))
    return figure([], layout)


def plane_axes(layout: dict, box, n: int = 1, ticks: bool = True, label: str = "") -> None:
    """Fix axis pair n to box = ((x0, x1), (y0, y1)) with equal aspect."""
    s = "" if n == 1 else str(n)
    (x0, x1), (y0, y1) = box
    layout[f"xaxis{s}"] = dict(range=[float(x0), float(x1)], constrain="domain", zeroline=False,
                               showticklabels=ticks, title=dict(text=label, standoff=4, font={"size": 11}))
    layout[f"yaxis{s}"] = dict(range=[float(y0), float(y1)], constrain="domain", zeroline=False,
                               scaleanchor=f"x{s}", scaleratio=1, showticklabels=ticks)


def strip_layout(layout: dict, boxes: list, labels: list, gap: float = 0.015, ticks: bool = False) -> list[str]:
    """Side-by-side plane panels; returns each panel's axis suffix ('', '2', ...)."""
    k = len(boxes)
    suffixes = []
    for i, (box, label) in enumerate(zip(boxes, labels)):
        plane_axes(layout, box, i + 1, ticks=ticks, label=label)
        s = "" if i == 0 else str(i + 1)
        layout[f"xaxis{s}"].update(domain=[i / k + gap, (i + 1) / k - gap], anchor=f"y{s}")
        layout[f"yaxis{s}"].update(domain=[0.0, 1.0], anchor=f"x{s}")
        suffixes.append(s)
    return suffixes


def on_axes(trace: dict, s: str) -> dict:
    """Place a trace on the axis pair with suffix s."""
    trace["xaxis"], trace["yaxis"] = f"x{s}", f"y{s}"
    return trace


# ---- numbers in, safely ---------------------------------------------------------
def array(traces: dict, key: str, what: str) -> np.ndarray:
    """traces[key] as a float array with non-finite entries as nan; Unavailable if absent or all non-finite."""
    a = traces.get(key) if isinstance(traces, dict) else None
    if a is None:
        raise Unavailable(f"This model did not send {what} ('{key}').")
    a = np.asarray(a, dtype=np.float32) if not isinstance(a, np.ndarray) else a.astype(np.float32, copy=False)
    if a.size == 0:
        raise Unavailable(f"{what[0].upper()}{what[1:]} ('{key}') came back empty.")
    if not np.isfinite(a).any():
        raise Unavailable(f"{what[0].upper()}{what[1:]} ('{key}') are all NaN or infinite: "
                          f"training has probably diverged. Lower the learning rate and restart.")
    if not np.isfinite(a).all():
        a = np.where(np.isfinite(a), a, np.nan).astype(np.float32)
    return a


def optional(traces: dict, key: str) -> np.ndarray | None:
    """traces[key] as above, or None when absent, empty or entirely non-finite."""
    try:
        return array(traces, key, key)
    except Unavailable:
        return None


def points2d(a: np.ndarray, what: str) -> np.ndarray:
    """(n, D>=2) -> (n, 2) first two coordinates."""
    a = a.reshape(a.shape[0], -1) if a.ndim != 2 else a
    if a.shape[1] < 2:
        raise Unavailable(f"{what} has {a.shape[1]} dimension; this view draws 2D points.")
    return a[:, :2]


def hidden_note(a: np.ndarray) -> str:
    """' (k of n not finite, hidden)' for rows with a nan, else ''."""
    bad = int(np.isnan(a.reshape(a.shape[0], -1)).any(1).sum()) if a.ndim >= 2 else int(np.isnan(a).sum())
    return f" ({bad} of {a.shape[0]} not finite, hidden)" if bad else ""


def bounds_of(ctx: dict, data: np.ndarray | None = None):
    """((x0, x1), (y0, y1)) from ctx, else from the data with a margin."""
    b = ctx.get("bounds") if isinstance(ctx, dict) else None
    try:
        (x0, x1), (y0, y1) = b
        box = ((float(x0), float(x1)), (float(y0), float(y1)))
        if all(math.isfinite(v) for pair in box for v in pair) and x1 > x0 and y1 > y0:
            return box
    except (TypeError, ValueError):
        pass
    if data is not None and data.ndim == 2 and data.shape[1] >= 2 and np.isfinite(data[:, :2]).any():
        lo, hi = np.nanmin(data[:, :2], 0), np.nanmax(data[:, :2], 0)
        pad = 0.1 * np.maximum(hi - lo, 1e-3)
        return ((float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1])))
    return ((-4.0, 4.0), (-4.0, 4.0))


def union_box(box, extra=BASE_BOX):
    return tuple((min(lo, extra[0]), max(hi, extra[1])) for lo, hi in box)


def grid_axes(box, g: int):
    """The xs, ys of core.data.toy2d.plane_grid: row i of a (G, G) image is y = ys[i]."""
    (x0, x1), (y0, y1) = box
    return np.linspace(x0, x1, g), np.linspace(y0, y1, g)


def grid_side(values: np.ndarray, ctx: dict) -> int:
    g = int(round(math.sqrt(values.shape[0])))
    if g * g != values.shape[0]:
        raise Unavailable(f"a grid of {values.shape[0]} values is not square; expected G*G values.")
    want = ctx.get("grid_resolution") if isinstance(ctx, dict) else None
    if want and int(want) != g:
        raise Unavailable(f"the grid has side {g} but grid_resolution is {want}.")
    return g


def is_image(ctx: dict, snapshot: dict | None = None) -> bool:
    shape = ctx.get("data_shape") if isinstance(ctx, dict) else None
    if shape is None and snapshot is not None and isinstance(snapshot.get("data"), np.ndarray):
        shape = snapshot["data"].shape[1:]
    return shape is not None and len(tuple(shape)) >= 2


def data_points(snapshot: dict) -> np.ndarray | None:
    d = snapshot.get("data") if isinstance(snapshot, dict) else None
    if d is None:
        return None
    try:
        return points2d(array({"data": d}, "data", "data"), "the data")
    except Unavailable:
        return None


# ---- traces -------------------------------------------------------------------
def scatter(p: np.ndarray, color: str, name: str, size: float = 4.0, opacity: float = 0.75,
            legend: bool = True, symbol: str = "circle") -> dict:
    return dict(type="scatter", mode="markers", x=p[:, 0], y=p[:, 1], name=name, showlegend=legend,
                marker=dict(color=color, size=size, opacity=opacity, symbol=symbol, line=dict(width=0)),
                hoverinfo="x+y+name")


def lines(x: np.ndarray, y: np.ndarray, color: str, name: str, width: float = 1.0, legend: bool = False,
          dash: str = "solid", opacity: float = 1.0) -> dict:
    return dict(type="scatter", mode="lines", x=x, y=y, name=name, showlegend=legend, opacity=opacity,
                line=dict(color=color, width=width, dash=dash), hoverinfo="skip", connectgaps=False)


def _join(paths: np.ndarray) -> np.ndarray:
    """(k, m, 2) polylines -> (k*(m+1), 2) with a nan row ending each, for one line trace."""
    pad = np.full((paths.shape[0], 1, 2), np.nan, dtype=np.float32)
    return np.concatenate([paths.astype(np.float32), pad], axis=1).reshape(-1, 2)


def polylines(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    joined = _join(paths)
    return joined[:, 0], joined[:, 1]


def mesh(points: np.ndarray, rows: int, cols: int, lines_each_way: int = 15,
         points_per_line: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Grid lines of a deformed (rows x cols) mesh, row-major points (rows*cols, 2).

    Keeps about `lines_each_way` lines in each direction, each drawn through
    up to `points_per_line` of its points (end points included), so the
    deformation stays smooth while the figure stays small.
    """
    p = points.reshape(rows, cols, 2)
    ri, ci = pick(rows, lines_each_way), pick(cols, lines_each_way)
    along_rows = p[ri][:, pick(cols, points_per_line)]  # (r, <=points_per_line, 2)
    along_cols = p[:, ci][pick(rows, points_per_line)].transpose(1, 0, 2)  # (c, <=points_per_line, 2)
    joined = np.concatenate([_join(along_rows), _join(along_cols)])
    return joined[:, 0], joined[:, 1]


def arrow_tips(origins: np.ndarray, vectors: np.ndarray, length: float,
               power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Tips along each v with length `length` * (|v| / max|v|) ** power; rows kept where finite and v != 0.

    power 1: lengths proportional to |v|; power 0.5 compresses, so small vectors still show their direction.
    """
    mag = np.linalg.norm(vectors, axis=1)
    keep = np.isfinite(mag) & (mag > 0) & np.isfinite(origins).all(1)
    if not keep.any():
        raise Unavailable("every arrow has zero or non-finite length.")
    o, v, m = origins[keep], vectors[keep], mag[keep]
    return o, o + v / m[:, None] * (length * (m / m.max()) ** power)[:, None]


def arrows(origins: np.ndarray, vectors: np.ndarray, length: float, color: str, name: str,
           legend: bool = True, width: float = 1.2, power: float = 1.0) -> list[dict]:
    """Arrows as one segment trace plus one trace of rotated triangle heads."""
    o, tip = arrow_tips(origins, vectors, length, power)
    seg = np.stack([o, tip], axis=1)  # (k, 2, 2)
    sx, sy = polylines(seg)
    d = tip - o
    angle = np.degrees(np.arctan2(d[:, 0], d[:, 1]))  # clockwise from "up", as marker.angle wants
    body = lines(sx, sy, color, name, width=width, legend=legend)
    body["legendgroup"] = name
    head = dict(type="scatter", mode="markers", x=tip[:, 0], y=tip[:, 1], name=name, showlegend=False,
                legendgroup=name, hoverinfo="skip",
                marker=dict(symbol="triangle-up", size=6, angle=angle, color=color, line=dict(width=0)))
    return [body, head]


def circles(radii, color: str = BASE, name: str = "N(0, I): 1σ, 2σ") -> dict:
    t = np.linspace(0, 2 * np.pi, 97)
    paths = np.stack([np.stack([r * np.cos(t), r * np.sin(t)], 1) for r in radii])
    x, y = polylines(paths)
    return lines(x, y, color, name, width=1.3, legend=True, dash="dash")


def heatmap(z: np.ndarray, box, colorscale, zmin: float, zmax: float, name: str, opacity: float = 1.0,
            hover: str = "z") -> dict:
    xs, ys = grid_axes(box, z.shape[0])
    return dict(type="heatmap", z=z.astype(np.float32), x=xs, y=ys, colorscale=colorscale, zmin=float(zmin),
                zmax=float(zmax), showscale=False, name=name, opacity=opacity, zsmooth="best",
                hovertemplate=f"x=%{{x:.2f}}<br>y=%{{y:.2f}}<br>{hover}=%{{z:.3g}}<extra></extra>")


def pick(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n), first and last included."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int))
