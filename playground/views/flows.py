"""Normalizing-flow views: space deformed layer by layer, the base, the density.

Trace keys (core.models.flows.base.Flow.traces): forward_states (L+1, n, D) data pulled
to the base; inverse_states (L+1, n, D) base samples pushed to the data;
log_dets (L,); for 2D, grid_states (L+1, S*S, 2) an S x S sub-grid of the plane
grid taken as base points and pushed to the data, and log_density (G*G,).

Index bookkeeping: inverse_states[l] and grid_states[l] live in the space
h_{L-l} (after l inverse layers from the base), the same space as
forward_states[L-l].

On digits, states off the data are drawn as Phi(h), the standard normal CDF of each
coordinate: N(0, 1) noise is then uniform grey, and a logit-space digit still looks like
one. The multi-scale flow (core.models.flows.multiscale) adds latents (k, D), z of k digits
in scale order [z_1, ..., z_S], latent_shapes (S, 3) the (C, H, W) of each part, and
latent_digits (k, *shape) the dequantized digits they come from; its states are in the
image's layout.
"""

from __future__ import annotations

import math

import numpy as np

from .. import draw as V
from ..draw import digits as D
from . import ExportPicture, FamilyView, Panel

STRIP_PANELS = 5
SCALE_DIGITS = 4  # rows of the multi-scale picture
_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(h: np.ndarray) -> np.ndarray:
    """Phi(h) elementwise, nan kept: how states off the data are drawn as grey levels."""
    out = 0.5 * (1.0 + _erf(np.nan_to_num(h, nan=0.0) / math.sqrt(2.0)).astype(np.float64))
    return np.where(np.isfinite(h), out, np.nan).astype(np.float32)


def _space_label(l_inverse: int, L: int) -> str:
    h = L - l_inverse
    if h == 0:
        return "data x = h₀"
    if h == L:
        return f"base z = h{_sub(L)}"
    return f"h{_sub(h)} (after {h} layer{'s' if h > 1 else ''})"


def _sub(k: int) -> str:
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def layers(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    inv = V.array(tr, "inverse_states", "the states of samples pushed through the layers")
    L = inv.shape[0] - 1
    order = V.pick(L + 1, STRIP_PANELS)[::-1]  # data first (l = L), base last (l = 0)
    title = "Data ← … ← base: the flow bends the base grid into the data"
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        k = min(6, inv.shape[1])
        # the data column as grey levels, the others through Phi into [0, 1], then onto [lo, hi]
        shown = [inv[l, :k] if l == L else lo + (hi - lo) * normal_cdf(inv[l, :k]) for l in order]
        imgs = np.stack([D.images(h, ctx, "the states") for h in shown], 1)  # (k, panels, H, W)
        img = D.tile(imgs.reshape(-1, *imgs.shape[2:]), cols=len(order))
        return D.digits_figure([(img, "columns: " + "  ←  ".join(_space_label(l, L) for l in order))],
                               "Samples at each layer: data ← … ← base (off the data, grey = Φ(h))", uirev, lo, hi)
    fwd = V.optional(tr, "forward_states")
    grid = V.optional(tr, "grid_states")
    box = V.bounds_of(ctx, V.data_points(snapshot))
    boxes = [box if l == L else V.union_box(box) for l in order]
    layout = V.base_layout(title, uirev, height=V.STRIP_HEIGHT)
    suffixes = V.strip_layout(layout, boxes, [_space_label(l, L) for l in order])
    data = []
    for i, (l, s) in enumerate(zip(order, suffixes)):
        first = i == 0
        if grid is not None and grid.shape[0] == inv.shape[0]:
            g = V.grid_side(grid[l], None)  # a sub-grid of the heatmap's (core.models.flows.base.GRID_LINES)
            gx, gy = V.mesh(grid[l], g, g)
            data.append(V.on_axes(V.lines(gx, gy, V.MESH, "base grid", width=0.8, legend=first), s))
        if fwd is not None and fwd.shape[0] == inv.shape[0]:
            data.append(V.on_axes(V.scatter(V.points2d(fwd[L - l], "data"), V.REAL, "data", 3, 0.55, first), s))
        data.append(V.on_axes(V.scatter(V.points2d(inv[l], "samples"), V.GEN, "samples", 3, 0.55, first), s))
    return V.figure(data, layout)


def base(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    fwd = V.array(tr, "forward_states", "the data pulled back to the base")
    if V.is_image(ctx, snapshot):
        return _base_histogram(fwd[-1], uirev)
    z = V.points2d(fwd[-1], "the base")
    zz = fwd[-1].reshape(fwd.shape[1], -1)
    D = zz.shape[1]
    second_moment = float(np.nanmean(np.nansum(zz**2, 1)) / D) if np.isfinite(zz).any() else float("nan")
    dims = "" if D == 2 else f" (first 2 of {D} dims)"
    title = f"Data pulled back to the base{dims}: E|z|²/D = {second_moment:.2f} (1 for N(0, I))"
    layout = V.base_layout(title + V.hidden_note(z), uirev)
    V.plane_axes(layout, (V.BASE_BOX, V.BASE_BOX))
    data = [V.circles((1.0, 2.0)), V.scatter(z, V.REAL, "data as z = f(x)", 4, 0.6)]
    return V.figure(data, layout)


def _base_histogram(z: np.ndarray, uirev: str):
    """Every coordinate of z = f(x) over the digits, as a density histogram against N(0, 1)."""
    v = z.reshape(-1).astype(np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise V.Unavailable("The data pulled back to the base are all NaN or infinite.")
    edges = np.linspace(-4.5, 4.5, 61)
    counts, _ = np.histogram(v, edges)
    width = edges[1] - edges[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    t = np.linspace(-4.5, 4.5, 181)
    outside = float(np.mean(np.abs(v) > 4.5))
    title = (f"Data pulled back to the base: the {z.shape[1]} coordinates of z = f(x) of {z.shape[0]} digits "
             f"against N(0, 1); E|z|²/D = {float(np.mean(v**2)):.2f} (1 for N(0, I))"
             + (f", {100 * outside:.1f}% beyond ±4.5" if outside > 0 else ""))
    layout = V.base_layout(title, uirev)
    layout["xaxis"] = dict(title=dict(text="z (every coordinate)", standoff=4), range=[-4.5, 4.5])
    layout["yaxis"] = dict(title=dict(text="density", standoff=4), rangemode="tozero")
    layout["bargap"] = 0.05
    bars = dict(type="bar", x=centres, y=counts / (v.size * width), width=width, name="z = f(x)",
                marker=dict(color=V.REAL, opacity=0.7), hovertemplate="z %{x:.2f}<br>density %{y:.3f}<extra></extra>")
    pdf = V.lines(t, np.exp(-0.5 * t**2) / math.sqrt(2 * math.pi), V.BASE, "N(0, 1)", width=2.0, legend=True)
    return V.figure([bars, pdf], layout)


def _mosaic(part: np.ndarray) -> np.ndarray:
    """(k, C, h, w) channels of k digits -> (k, rows*(h+1)-1, cols*(w+1)-1), the C channels tiled per digit."""
    k, c = part.shape[:2]
    cols = math.ceil(math.sqrt(c))
    return np.stack([D.tile(part[i], cols=cols, pad=1) for i in range(k)])


def scales(snapshot: dict, ctx: dict, uirev: str):
    """A few digits y and z = f(y): each scale's latent channels as images, then z in the digit's
    layout. A flow that sends no latents (a flat one) gets the digit and z alone."""
    if not V.is_image(ctx, snapshot):
        raise V.Unavailable("Latents at each scale are drawn for digits, not for 2D datasets.")
    tr = snapshot.get("traces", {})
    fwd = V.array(tr, "forward_states", "the digits pulled back to the base")
    z = V.optional(tr, "latents")
    if z is None:
        y, z, shapes = fwd[0], fwd[-1], np.zeros((0, 3), int)
    else:
        y = V.array(tr, "latent_digits", "the digits whose latents are drawn")
        shapes = np.nan_to_num(V.array(tr, "latent_shapes", "the shapes of the latents")).astype(int).reshape(-1, 3)
        if shapes.size == 0 or int(np.prod(shapes, 1).sum()) != z.shape[1] or (shapes < 1).any():
            raise V.Unavailable(f"The latent shapes {shapes.tolist()} do not add up to the {z.shape[1]} dimensions sent.")
    k = min(SCALE_DIGITS, y.shape[0], z.shape[0], fwd.shape[1])
    lo, hi = 0.0, 1.0
    columns = [(D.tile(D.images(y[:k], ctx, "the digits"), cols=1), "digit y")]
    start = 0
    for s, (c, h, w) in enumerate(shapes, 1):
        part = z[:k, start:start + c * h * w].reshape(k, c, h, w)
        start += c * h * w
        where = "the final scale" if s == len(shapes) else f"factored out at scale {s}"
        columns.append((D.tile(_mosaic(normal_cdf(part)), cols=1, pad=2), f"z{_sub(s)}: {c} × {h}×{w}, {where}"))
    columns.append((D.tile(D.images(normal_cdf(fwd[-1, :k]), ctx, "the latents"), cols=1), "z = f(y), pixel order"))
    return D.digits_figure(columns, "A digit and its latents at each scale (grey = Φ(z): noise is even grey)",
                           uirev, lo, hi)


def density(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        inv = V.array(tr, "inverse_states", "samples")
        lo, hi = D.pixel_range(snapshot)
        imgs = D.images(inv[-1, :64], ctx, "samples")
        return D.digits_figure([(D.tile(imgs, 8), f"x = f⁻¹(z), z ~ N(0, I), step {snapshot.get('step', 0)}")],
                               "Samples", uirev, lo, hi)
    log_q = V.array(tr, "log_density", "the model's log-density on the grid")
    g = V.grid_side(log_q, ctx)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    q = np.exp(np.clip(log_q, -80, 80)).reshape(g, g)
    true = ctx.get("true_log_density")
    p = None
    if true is not None:
        t = np.asarray(true, dtype=np.float64)
        if t.shape == log_q.shape and np.isfinite(t).any():
            p = np.exp(np.clip(np.nan_to_num(t, nan=-np.inf, neginf=-np.inf), -80, 80)).reshape(g, g)
    zmax = float(np.nanmax(p)) if p is not None else float(np.nanmax(q))
    if not np.isfinite(zmax) or zmax <= 0:
        zmax = 1.0
    panels = [(q, "model q(x)")] + ([(p, "true p(x)")] if p is not None else [])
    note = "q(x) = N(f(x); 0, I) |det ∂f/∂x|" + ("; both on one colour scale" if p is not None else "")
    layout = V.base_layout("Model density" + (" vs true density" if p is not None else ""), uirev, legend=False,
                           note=note)
    suffixes = V.strip_layout(layout, [box] * len(panels), [label for _, label in panels], ticks=True)
    data = [V.on_axes(V.heatmap(z, box, V.DENSITY_SCALE, 0.0, zmax, name, hover="density"), s)
            for (z, name), s in zip(panels, suffixes)]
    return V.figure(data, layout)


def logdet(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    ld = V.array(tr, "log_dets", "the per-layer log-determinants").reshape(-1)
    total = float(np.nansum(ld))
    colors = np.where(ld >= 0, V.BASE, "#4e79a7")
    layout = V.base_layout(f"Per-layer log|det ∂hₗ/∂hₗ₋₁| on data (mean); sum = {total:.3g}", uirev, legend=False)
    layout["xaxis"] = dict(title=dict(text="layer l (data → base)", standoff=4))
    if ld.size <= 20:
        layout["xaxis"]["dtick"] = 1
    layout["yaxis"] = dict(title=dict(text="mean log|det|", standoff=4), zeroline=True, zerolinecolor="#999")
    layout["bargap"] = 0.2
    bar = dict(type="bar", x=np.arange(1, ld.size + 1), y=ld, marker=dict(color=colors), name="log|det|",
               hovertemplate="layer %{x}<br>log|det| = %{y:.3g}<extra></extra>")
    return V.figure([bar], layout)


def _export_samples(traces: dict):
    s = V.optional(traces, "inverse_states")
    return s[-1] if s is not None else None


def _export_density(traces: dict, ctx: dict):
    """The model's density, on the colour scale of the true one where it is known."""
    log_q = V.optional(traces, "log_density")
    if log_q is None:
        return None
    q = np.exp(np.clip(log_q.astype(np.float64), -80, 80))
    top = np.nanmax(q)
    true = ctx.get("true_log_density")
    if true is not None and np.isfinite(true).any():
        top = float(np.nanmax(np.exp(np.clip(np.asarray(true, np.float64), -80, 80))))
    return q / (top if top > 0 else 1.0), V.DENSITY_SCALE


EQUATIONS = r""""
### Normalizing flow: change of variables

A flow is an invertible map $f = f_L \circ \dots \circ f_1$ from data $x$ to a base point $z$ with
$z \sim \mathcal{N}(0, I)$. Writing $h_0 = x$ and $h_l = f_l(h_{l-1})$, the density of the data is exact:

$$\log q(x) = \log \mathcal{N}\big(f(x);\, 0, I\big) + \sum_{l=1}^{L} \log \left|\det \frac{\partial h_l}{\partial h_{l-1}}\right|$$

Training maximises the likelihood of the data, i.e. minimises

$$\mathcal{L} = -\,\mathbb{E}_{x \sim p_\text{data}}\big[\log q(x)\big].$$

Sampling runs the stack backwards: $z \sim \mathcal{N}(0, I)$, $x = f^{-1}(z)$.

**What you see**
- `loss` and `nll` are $-\mathbb{E}[\log q(x)]$ in nats; `log_det` is the mean of $\sum_l \log|\det \partial h_l / \partial h_{l-1}|$.
- *A flow transforming space*: the base grid pushed through $f^{-1}$ layer by layer; green points are the data at the same stage $h_l$, purple points are samples.
- *Data pulled back to the base*: $z = f(x)$ for the data; if the flow is right these fill the dashed $1\sigma$/$2\sigma$ circles of $\mathcal{N}(0, I)$.
- *Model density*: $q(x)$ on the plane beside the true $p(x)$.
- *Per-layer log-determinant*: each bar is one term of the sum above (how much that layer stretches space).

### On digits: a multi-scale flow in bits per dimension (realnvp_ms)

Digits have 256 grey levels $k \in \{0, \dots, 255\}^D$. They are **dequantized**, $y = (k + u)/256$ with
$u \sim U[0, 1)^D$, and the flow is a density $p(y)$ on $[0, 1]^D$. It first maps $y$ to the real line,
$s = \alpha + (1 - 2\alpha)\, y$, $h_1 = \operatorname{logit}(s)$, a layer whose log-determinant counts:

$$\log\left|\det \frac{\partial h_1}{\partial y}\right| = \sum_{i=1}^{D} \Big[\log(1 - 2\alpha) - \log s_i - \log(1 - s_i)\Big]$$

Each scale then **squeezes** $(C, H, W) \to (4C, H/2, W/2)$, applies affine couplings with a checkerboard mask and
with a channel mask, and factors out half its channels as latents; on a $28 \times 28$ digit
$z = [z_1, z_2]$ with $z_1$ of $2 \times 14 \times 14$ and the final $z_2$ of $8 \times 7 \times 7$. Since $p$ puts
mass $p(y)/256^D$ on each grey-level cell, the negative log-likelihood of the digit, in nats, is at most

$$\text{NLL} = -\,\mathbb{E}_u\big[\log p(y)\big] + D \log 256, \qquad \text{bits/dim} = \frac{\text{NLL}}{D \ln 2}.$$

The uniform density on $[0, 1]^D$ scores exactly 8 bits/dim; RealNVP reaches about 1.06 on MNIST.
Here `loss` is bits/dim and `nll` the same in nats per digit. *A digit and its latents at each scale* draws
$y$, each $z_s$ as images and $z$ in the digit's pixel order; noise that fits $\mathcal{N}(0, I)$ looks evenly grey.
"""

VIEW = FamilyView(
    family="flow",
    panels=(
        Panel("flow_layers", "A flow transforming space, layer by layer", layers, wide=True,
              needs=("inverse_states",),
              about=("Space pulled through the flow one layer at a time, with a grid drawn on it. Each layer is "
                     "an invertible map, so the grid bends but never tears or folds. Watch the base N(0, I) (one "
                     "end) be bent into the data's shape (the other end).")),
        Panel("flow_base", "Data pulled back to the base", base, needs=("forward_states",),
              about=("The data mapped all the way to the base, z = f(x), over the circles of N(0, I). A trained "
                     "flow makes this cloud look like a standard normal: round, centred, inside the 2σ circle, "
                     "with E|z|²/D near 1.")),
        Panel("flow_density", "Model density vs true density", density,
              needs={"points": ("log_density",), "images": ("inverse_states",)},
              about=("On 2D data the exact model density q(x) = N(f(x); 0, I) |det ∂f/∂x| beside the true "
                     "density, on one colour scale; on digits, samples x = f⁻¹(z). Watch mass move onto the data; "
                     "thin bridges between modes are typical, as a continuous invertible map cannot fully cut "
                     "mass apart.")),
        Panel("flow_logdet", "Per-layer log-determinant", logdet, needs=("log_dets",),
              about=("log |det ∂f/∂x| of each layer, averaged over the data: how much each layer stretches "
                     "(positive) or squeezes (negative) volume. Their sum is the change-of-variables term of the "
                     "log-likelihood; watch for a layer stuck at 0: it does nothing to volume.")),
        Panel("flow_scales", "A digit and its latents at each scale", scales, wide=True, data=("images",),
              needs=("latents", "latent_shapes", "latent_digits", "forward_states"),
              about=("A multi-scale flow: a digit and the latents factored out at each scale. Early scales carry "
                     "the fine detail and look like noise; the last carries the coarse shape. A trained flow "
                     "makes every latent look like N(0, I).")),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples, _export_density),
    showcase=("realnvp", "two_moons"),
)
