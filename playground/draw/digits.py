"""Digits: MNIST-shaped samples drawn as tiled images, and the samples panel every family shares.

For image data (data_shape (1, 28, 28)) every family's sample panel shows a
grid of digits instead of a scatter; tiles are separated by transparent gaps
and drawn white-on-black as MNIST is usually shown.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from .. import draw as V


def images(a: np.ndarray, ctx: dict, what: str) -> np.ndarray:
    """(n, ...) -> (n, H, W) grey images, using ctx['data_shape'] (C, H, W) or (H, W)."""
    shape = tuple(ctx.get("data_shape") or ())
    if len(shape) < 2 or int(np.prod(shape)) != int(np.prod(a.shape[1:])):
        raise V.Unavailable(f"{what} do not have the data shape {shape}.")
    x = a.reshape(a.shape[0], *shape)
    if x.ndim == 4:
        x = x.mean(axis=1)
    return x


def pixel_range(snapshot: dict) -> tuple[float, float]:
    """Grey levels of the data: [0, 1] or [-1, 1], read off the data so every frame agrees."""
    d = snapshot.get("data") if isinstance(snapshot, dict) else None
    if isinstance(d, np.ndarray) and d.size and np.isfinite(d).any():
        return (-1.0, 1.0) if np.nanmin(d) < -0.05 else (0.0, 1.0)
    return (0.0, 1.0)


def tile(imgs: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """(k, H, W) -> one (rows*(H+pad)-pad, cols*(W+pad)-pad) image, gaps nan, row-major."""
    k, h, w = imgs.shape
    rows = max(1, math.ceil(k / cols))
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan, dtype=np.float32)
    for i in range(k):  # at most a few dozen tiles
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = imgs[i]
    return out


def digits_trace(img: np.ndarray, lo: float, hi: float, s: str = "") -> dict:
    heat = dict(type="heatmap", z=img, colorscale=V.DIGIT_SCALE, zmin=lo, zmax=hi, showscale=False, hoverinfo="skip")
    return V.on_axes(heat, s)


def image_axes(layout: dict, shape, n: int = 1, label: str = "") -> None:
    s = "" if n == 1 else str(n)
    h, w = shape
    layout[f"xaxis{s}"] = dict(visible=True, showgrid=False, zeroline=False, showticklabels=False,
                               range=[-0.5, w - 0.5], constrain="domain",
                               title=dict(text=label, standoff=4, font={"size": 11}))
    layout[f"yaxis{s}"] = dict(visible=False, range=[h - 0.5, -0.5], scaleanchor=f"x{s}", constrain="domain")


def digits_figure(panels: list[tuple[np.ndarray, str]], title: str, uirevision: str, lo: float, hi: float,
                  height: int = V.HEIGHT) -> go.Figure:
    """One or more tiled digit images side by side, each with a label below."""
    layout = V.base_layout(title, uirevision, height=height, legend=False)
    k = len(panels)
    data = []
    for i, (img, label) in enumerate(panels):
        image_axes(layout, img.shape, i + 1, label)
        s = "" if i == 0 else str(i + 1)
        layout[f"xaxis{s}"]["domain"] = [i / k + 0.01, (i + 1) / k - 0.01]
        layout[f"xaxis{s}"]["anchor"] = f"y{s}"
        layout[f"yaxis{s}"]["anchor"] = f"x{s}"
        data.append(digits_trace(img, lo, hi, s))
    return V.figure(data, layout)


# ---- the samples panel every family shares -------------------------------------------
def samples_view(snapshot: dict, ctx: dict, uirev: str, key: str = "samples", what: str = "model samples",
                 points: np.ndarray | None = None):
    """Samples over the data (2D) or a tile of digits (images); shared by every family."""
    s = points if points is not None else V.array(snapshot.get("traces", {}), key, "samples")
    if V.is_image(ctx, snapshot):
        lo, hi = pixel_range(snapshot)
        label = f"step {snapshot.get('step', 0)}"  # the title says what they are: the label has a tile's width
        return digits_figure([(tile(images(s[:64], ctx, "samples"), 8), label)], f"Samples: {what}", uirev, lo, hi)
    p = V.points2d(s, "samples")
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.45)] if x_r is not None else []
    data.append(V.scatter(p, V.GEN, "samples", 4, 0.8))
    layout = V.base_layout(f"Samples: {what}" + V.hidden_note(p), uirev)
    V.plane_axes(layout, box)
    return V.figure(data, layout)
