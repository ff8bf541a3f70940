"""What goes on a panel: safe inputs (arrays that may be missing or non-finite), plane
boxes and grids, and the marks (points, lines, meshes, arrows, circles, heatmaps).

Marks are plain dicts for go.Figure (see layout.py's VALIDATE).
"""

from __future__ import annotations

import math

import numpy as np

from .layout import BASE, BASE_BOX, Unavailable


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


# ---- marks -------------------------------------------------------------------
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
