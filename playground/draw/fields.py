"""A learned vector field on the plane beside the exact one: shade |v|, arrows on a coarse grid.

Shared by the views of every model that learns a score: the page sends the
data's exact score at the level the model drew (snapshot["true_score_field"]),
and the figure puts the two side by side with their relative error.
"""

from __future__ import annotations

import numpy as np

from . import layout as L
from . import marks as M

FIELD_ARROWS = 15  # per side of the coarse grid
ARROW_POWER = 0.5  # |score| grows far from the data; a square root keeps the arrows near it visible


def field_time(traces: dict, ctx: dict) -> tuple[str, str, bool]:
    """(" at t = 0.50", note, stale) for a field drawn at a time t: the title names the t the
    slider is at (ctx["options"]["t"]). A picture begun before the slider moved was drawn at the
    old t (traces' field_t); then the note says so, stale is True, and the next picture replaces it."""
    drawn = M.optional(traces, "field_t")
    drawn = float(drawn.reshape(-1)[0]) if drawn is not None and drawn.size == 1 else None
    slider = (ctx.get("options") or {}).get("t") if isinstance(ctx, dict) else None
    try:
        slider = float(slider) if slider is not None and np.isfinite(float(slider)) else None
    except (TypeError, ValueError):
        slider = None
    t = slider if slider is not None else drawn
    if t is None:
        return "", "", False
    stale = drawn is not None and slider is not None and abs(drawn - slider) > 0.005
    return f" at t = {t:.2f}", (f"this field was drawn at t = {drawn:.2f}, the next at {t:.2f}" if stale else ""), stale


def relative_error(learned: np.ndarray, exact: np.ndarray) -> float:
    """sum |s_theta - s|^2 / sum |s|^2 over the grid points where both are finite."""
    ok = np.isfinite(learned).all(1) & np.isfinite(exact).all(1)
    if not ok.any():
        return float("nan")
    num = ((learned[ok].astype(np.float64) - exact[ok]) ** 2).sum()
    den = (exact[ok].astype(np.float64) ** 2).sum()
    return float(num / den) if den > 0 else float("nan")


def field_arrows(vec: np.ndarray, box, g: int, color: str, name: str) -> list:
    """vec (G*G, 2), a row-major field on the plane grid, as arrows on a coarse subgrid."""
    xs, ys = M.grid_axes(box, g)
    sub = M.pick(g, FIELD_ARROWS)
    gx, gy = np.meshgrid(xs[sub], ys[sub])  # row-major like the grid: row i is y = ys[i]
    origins = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    v = vec.reshape(g, g, 2)[np.ix_(sub, sub)].reshape(-1, 2)
    spacing = (box[0][1] - box[0][0]) / max(len(sub) - 1, 1)
    return M.arrows(origins, v, 0.9 * spacing, color, name, power=ARROW_POWER)


def magnitude(vec: np.ndarray, g: int) -> np.ndarray:
    """|vec| (G, G) of a row-major field on the plane grid."""
    return np.linalg.norm(vec.reshape(g, g, 2), axis=-1)


def plane_field(vec: np.ndarray, box, g: int, name: str, shade: str, hover: str, data=None) -> list:
    """One field on one plane: |vec| as a shade up to its 99th percentile, the data points (if
    given), then vec as arrows on a coarse subgrid."""
    mag = magnitude(vec, g)
    top = float(np.nanpercentile(mag, 99))
    out = [M.heatmap(mag, box, L.MAGNITUDE_SCALE, 0, top if np.isfinite(top) and top > 0 else 1.0, shade, hover=hover)]
    if data is not None:
        out.append(M.scatter(data, L.REAL, "data", 3, 0.35))
    return out + field_arrows(vec, box, g, "#444444", name)


def field_on_axes(vec: np.ndarray, box, g: int, s: str, name: str, color: str, top: float) -> list:
    """|vec| (G*G, 2) as a shade and vec as arrows on a coarse subgrid, on axis pair s."""
    out = [L.on_axes(M.heatmap(magnitude(vec, g), box, L.MAGNITUDE_SCALE, 0, top, f"|{name}|", hover="|s|"), s)]
    return out + [L.on_axes(a, s) for a in field_arrows(vec, box, g, color, name)]


def score_beside_exact(snapshot: dict, ctx: dict, uirev: str, title: str, learned_name: str, exact_name: str,
                       metric_where: str = "the data", first_note: str = ""):
    """The learned score (traces' "score_field") beside the exact one, on one shade scale;
    first_note leads the note under the title."""
    learned = M.array(snapshot.get("traces", {}), "score_field", "the learned score field")
    exact = snapshot.get("true_score_field")
    exact = np.asarray(exact, dtype=np.float64) if exact is not None else None
    if exact is not None and exact.shape != learned.shape:
        exact = None
    g = M.grid_side(learned, ctx)
    x_r = M.data_points(snapshot)
    box = M.bounds_of(ctx, x_r)
    fields = [(learned, learned_name, "#444444")] + ([(exact, exact_name, L.REAL)] if exact is not None else [])
    top = float(np.nanpercentile(np.concatenate([np.linalg.norm(v, axis=1) for v, _, _ in fields]), 99))
    top = top if np.isfinite(top) and top > 0 else 1.0
    data = []
    for i, (vec, name, color) in enumerate(fields):
        s = "" if i == 0 else str(i + 1)
        data += field_on_axes(vec, box, g, s, name, color, top)
        if x_r is not None:
            data.append(L.on_axes(M.scatter(x_r, L.REAL, "data", 2.5, 0.3, legend=False), s))
    if exact is not None:
        note = f"relative error on the plane Σ|s_θ − s|² / Σ|s|² = {relative_error(learned, exact):.3g}"
    else:
        note = "this dataset has no exact score to compare with"
    metric = (snapshot.get("metrics") or {}).get("score_error")
    if isinstance(metric, (int, float)) and np.isfinite(metric):
        note += f"; score_error over {metric_where} = {metric:.3g}"
    note += "; arrow length ∝ √|s|, shade ∝ |s|"
    note = f"{first_note}; {note}" if first_note else note
    layout = L.base_layout(title, uirev, legend=False, note=note)
    L.strip_layout(layout, [box] * len(fields), [name for _, name, _ in fields], ticks=True)
    return L.figure(data, layout)
