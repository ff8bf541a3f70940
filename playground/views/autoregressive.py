"""Autoregressive views: one conditional p(x2 | x1) beside the true one, the marginal p(x1),
the density and the samples; on binarized digits, the drawing pixel by pixel and every
conditional p(x_i = 1 | x_<i) of one held-out digit.

Trace keys (core.models.autoregressive): samples (m, D); for 2D, log_density (G*G,) on
the plane grid, conditional (S,) p(x2 | x1) at x2 = x2_values (S,) for the chosen x1 (1,)
(the view's "x1" slider), and marginal (S,) p(x1) at x1_values (S,). The true conditional
is the column of ctx["true_log_density"] nearest x1, normalised over x2; the true marginal
is the true density summed over x2. Models of binary digits also send frames (F, m, D), the
canvases of one sampling pass after frame_pixels (F,) pixels, and digit (D,), a binarized
data digit, with p_digit (D,), p(x_i = 1 | x_<i) at it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import draw as V
from ..draw import digits as D
from . import Control, ExportPicture, FamilyView, Panel


def _true_density(ctx: dict, g: int) -> np.ndarray | None:
    """exp(ctx's true log-density) as a (G, G) image (row i: y = ys[i]), or None."""
    true = ctx.get("true_log_density")
    if true is None:
        return None
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if t.size != g * g or not np.isfinite(t).any():
        return None
    return np.exp(np.clip(np.nan_to_num(t, nan=-np.inf), -80, 80)).reshape(g, g)


def _x1(tr: dict, ctx: dict) -> float:
    x1 = V.optional(tr, "x1")
    if x1 is not None and np.isfinite(x1).all():
        return float(x1.reshape(-1)[0])
    return float(ctx.get("options", {}).get("x1", 0.0))


def _curve_layout(title: str, uirev: str, note: str, x_label: str, y_label: str) -> dict:
    layout = V.base_layout(title, uirev, note=note)
    layout["xaxis"] = dict(title=dict(text=x_label, standoff=4), zeroline=False)
    layout["yaxis"] = dict(title=dict(text=y_label, standoff=4), rangemode="tozero")
    return layout


def conditional(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The conditional p(x₂ | x₁) is drawn for 2D data; for digits, see the samples.")
    q = V.array(tr, "conditional", "the model's conditional p(x₂ | x₁)")
    x2 = V.array(tr, "x2_values", "the x₂ values of the conditional")
    x1 = _x1(tr, ctx)
    data = [V.lines(x2, q, V.GEN, "model q(x₂ | x₁)", width=2, legend=True)]
    note = ""
    box = V.bounds_of(ctx, V.data_points(snapshot))
    p = _true_density(ctx, int(ctx.get("grid_resolution") or 0) or q.size)
    if p is not None:
        xs, ys = V.grid_axes(box, p.shape[0])
        j = int(np.argmin(np.abs(xs - x1)))
        column = p[:, j]
        mass = column.sum() * (ys[1] - ys[0])
        if mass > 0 and np.isfinite(mass):
            data.insert(0, V.lines(ys, column / mass, V.REAL, "true p(x₂ | x₁)", width=2, legend=True, dash="dash"))
            note = f"true: the grid column at x₁ = {xs[j]:.2f}, normalised over x₂"
        else:
            note = f"the data have no mass at x₁ = {x1:.2f}"
    return V.figure(data, _curve_layout(f"Conditional p(x₂ | x₁ = {x1:.2f})", uirev, note, "x₂", "density"))


def marginal(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The marginal p(x₁) is drawn for 2D data; for digits, see the samples.")
    q = V.array(tr, "marginal", "the model's marginal p(x₁)")
    x1s = V.array(tr, "x1_values", "the x₁ values of the marginal")
    data = [V.lines(x1s, q, V.GEN, "model q(x₁)", width=2, legend=True)]
    box = V.bounds_of(ctx, V.data_points(snapshot))
    p = _true_density(ctx, int(ctx.get("grid_resolution") or 0) or q.size)
    if p is not None:
        xs, ys = V.grid_axes(box, p.shape[0])
        data.insert(0, V.lines(xs, p.sum(0) * (ys[1] - ys[0]), V.REAL, "true p(x₁)", width=2, legend=True, dash="dash"))
    x1 = _x1(tr, ctx)
    top = float(np.nanmax(q)) if np.isfinite(q).any() else 1.0
    data.append(V.lines(np.array([x1, x1]), np.array([0.0, top]), V.NEUTRAL, "chosen x₁", dash="dot"))
    layout = _curve_layout("Marginal p(x₁): the first factor", uirev, "the chain's first conditional reads nothing",
                           "x₁", "density")
    return V.figure(data, layout)


def density(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The density is drawn for 2D data; for digits, see the samples.")
    log_q = V.array(tr, "log_density", "the model's log-density on the grid")
    g = V.grid_side(log_q, ctx)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    q = np.exp(np.clip(log_q, -80, 80)).reshape(g, g)
    p = _true_density(ctx, g)
    zmax = float(np.nanmax(p if p is not None else q))
    zmax = zmax if np.isfinite(zmax) and zmax > 0 else 1.0
    panels = [(q, "model q(x₁) q(x₂ | x₁)")] + ([(p, "true p(x)")] if p is not None else [])
    layout = V.base_layout("Model density" + (" vs true density" if p is not None else ""), uirev, legend=False,
                           note="same colour scale; the dotted line is the chosen x₁")
    suffixes = V.strip_layout(layout, [box] * len(panels), [label for _, label in panels], ticks=True)
    x1 = _x1(tr, ctx)
    data = []
    for (z, name), s in zip(panels, suffixes):
        data.append(V.on_axes(V.heatmap(z, box, V.DENSITY_SCALE, 0.0, zmax, name, hover="density"), s))
        data.append(V.on_axes(V.lines(np.array([x1, x1]), np.array(box[1]), V.NEUTRAL, "x₁", dash="dot"), s))
    return V.figure(data, layout)


def samples(snapshot: dict, ctx: dict, uirev: str):
    if V.is_image(ctx, snapshot):
        return D.samples_view(snapshot, ctx, uirev, what="samples, drawn pixel by pixel")
    s = V.points2d(V.array(snapshot.get("traces", {}), "samples", "model samples"), "samples")
    x_r = V.data_points(snapshot)
    data = ([V.scatter(x_r, V.REAL, "data", 4, 0.35)] if x_r is not None else []) + [V.scatter(s, V.GEN, "samples", 4, 0.7)]
    layout = V.base_layout("Samples: x₁ ~ q(x₁), then x₂ ~ q(x₂ | x₁)", uirev, note=V.hidden_note(s))
    V.plane_axes(layout, V.bounds_of(ctx, x_r))
    return V.figure(data, layout)


DRAWING_DIGITS = 4  # rows of the film strip
UNDRAWN = 0.22  # grey of the pixels not drawn yet, so the drawing's front shows


def _digits_only(ctx: dict, snapshot: dict, what: str) -> None:
    if not V.is_image(ctx, snapshot):
        raise V.Unavailable(f"{what} is drawn for binarized digits; 2D datasets have no pixels to draw.")


def drawing(snapshot: dict, ctx: dict, uirev: str):
    """Rows: digits of one sampling pass; columns: the canvas after 1/F, 2/F, ... F/F of the pixels."""
    _digits_only(ctx, snapshot, "The drawing pixel by pixel")
    tr = snapshot.get("traces", {})
    frames = V.array(tr, "frames", "the canvases of the sampling pass")
    counts = V.array(tr, "frame_pixels", "the pixels drawn at each canvas")
    if frames.ndim < 3 or frames.shape[0] != counts.size:
        raise V.Unavailable(f"The canvases have shape {frames.shape}, which does not match {counts.size} pixel counts.")
    F, m = frames.shape[:2]
    k = min(m, DRAWING_DIGITS)
    imgs = D.images(frames[:, :k].reshape(F * k, -1), ctx, "the canvases")  # (F k, H, W), frame-major
    h, w = imgs.shape[1:]
    done = np.arange(h * w).reshape(h, w)  # raster position of each pixel
    imgs = imgs.reshape(F, k, h, w).copy()
    for f in range(F):
        imgs[f][:, done >= counts[f]] = UNDRAWN
    strip = D.tile(imgs.transpose(1, 0, 2, 3).reshape(k * F, h, w), F)  # row: one digit, left to right in time
    fractions = ", ".join(f"{c / (h * w):.0%}" for c in counts[:3])
    label = f"canvas after {fractions}, ... of the {h * w} pixels (step {snapshot.get('step', 0)})"
    return D.digits_figure([(strip, label)], "Drawing pixel by pixel: x_i ~ p(x_i | x_<i) in raster order",
                           uirev, 0.0, 1.0)


def conditionals_map(snapshot: dict, ctx: dict, uirev: str):
    """A binarized digit beside p(x_i = 1 | x_<i) at it, and its NLL in nats and bits/dim."""
    _digits_only(ctx, snapshot, "The conditional probability map")
    tr = snapshot.get("traces", {})
    digit = V.array(tr, "digit", "the binarized digit")
    p = V.array(tr, "p_digit", "the conditionals p(x_i = 1 | x_<i) of the digit")
    (b,) = D.images(digit.reshape(1, -1), ctx, "the digit")
    (q,) = D.images(p.reshape(1, -1), ctx, "the conditionals")
    nats = digit_nll(b, q)
    dim = b.size
    note = f"−log p(x) = {nats:.1f} nats = {nats / (dim * math.log(2)):.3f} bits/dim for this digit"
    return _digit_panels([(b, "x: a binarized data digit"), (q, "p(x_i = 1 | x_<i)")],
                         "Every conditional of one digit", note, uirev)


def _digit_panels(panels: list, title: str, note: str, uirev: str):
    """Images side by side on [0, 1] grey, each labelled below, with a note under the title."""
    layout = V.base_layout(title, uirev, legend=False, note=note)
    data = []
    for i, (img, label) in enumerate(panels):
        s = "" if i == 0 else str(i + 1)
        D.image_axes(layout, img.shape, i + 1, label)
        layout[f"xaxis{s}"].update(domain=[i / len(panels) + 0.01, (i + 1) / len(panels) - 0.01], anchor=f"y{s}")
        layout[f"yaxis{s}"]["anchor"] = f"x{s}"
        data.append(D.digits_trace(img, 0.0, 1.0, s))
    return V.figure(data, layout)


def digit_nll(b: np.ndarray, p: np.ndarray) -> float:
    """-sum_i log p(x_i | x_<i) = -sum_i [b_i log p_i + (1 - b_i) log(1 - p_i)], in nats."""
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    return float(-np.nansum(np.where(b > 0.5, np.log(p), np.log1p(-p))))


def _export_density(traces: dict, ctx: dict):
    log_q = V.optional(traces, "log_density")
    if log_q is None:
        return None
    q = np.exp(np.clip(log_q.astype(np.float64), -80, 80))
    true = ctx.get("true_log_density")
    top = np.nanmax(q)
    if true is not None and np.isfinite(true).any():
        top = float(np.nanmax(np.exp(np.clip(np.asarray(true, np.float64), -80, 80))))
    return q / (top if top > 0 else 1.0), V.DENSITY_SCALE


EQUATIONS = r"""
### Autoregressive density: one coordinate at a time

The chain rule writes any density as a product of conditionals, each reading only the coordinates before it:

$$q(x) = \prod_{i=1}^{D} q(x_i \mid x_{<i}).$$

Here each conditional is a mixture of $K$ Gaussians whose weights, means and standard deviations come from a masked
network (MADE, Germain et al. 2015) that cannot see $x_i$ or anything after it (RNADE, Uria et al. 2013):

$$q(x_i \mid x_{<i}) = \sum_{k=1}^{K} \pi_{ik}\, \mathcal{N}\big(x_i;\, \mu_{ik},\, \sigma_{ik}^2\big), \qquad (\pi_i, \mu_i, \log\sigma_i) = \theta_i(x_{<i}).$$

The density is exact and takes one pass of the network; training minimises the negative log-likelihood

$$\mathcal{L} = -\,\mathbb{E}_{x \sim p_\text{data}}\Big[\sum_{i} \log q(x_i \mid x_{<i})\Big].$$

Sampling takes $D$ passes: $x_1 \sim q(x_1)$, then $x_2 \sim q(x_2 \mid x_1)$, and so on.

**What you see**
- `loss` and `nll` are $\mathcal{L}$ above, in nats.
- *Conditional*: $q(x_2 \mid x_1)$ at the $x_1$ of the slider (purple) beside the true $p(x_2 \mid x_1) = p(x_1, x_2) / p(x_1)$ (green, dashed), read off the true density on the grid.
- *Marginal*: $q(x_1)$, the first factor, beside the true $p(x_1) = \int p(x_1, x_2)\, dx_2$.
- *Model density*: $q(x) = q(x_1)\, q(x_2 \mid x_1)$ beside the true density; the dotted line is the slice the conditional shows.
- *Samples*: drawn coordinate by coordinate, over the data (green).

### On binarized digits: one Bernoulli conditional per pixel

A digit is $D = 784$ pixels $x_i \in \{0, 1\}$, each drawn afresh as $x_i \sim \text{Bernoulli}(\text{grey level})$
for every batch, in raster order. Each model gives the logit $s_i$ of pixel $i$ from the pixels before it:

$$q(x) = \prod_{i=1}^{D} \sigma(s_i)^{x_i}\, \big(1 - \sigma(s_i)\big)^{1 - x_i}, \qquad s_i = s_i(x_{<i}).$$

- **FVSBN** (Frey 1998): a logistic regression, $s_i = b_i + \sum_{j<i} W_{ij} x_j$, $W$ strictly lower-triangular.
- **NADE** (Larochelle & Murray 2011): one hidden layer shared by all, $h_i = \sigma(c + W_{:,<i}\, x_{<i})$ and $s_i = b_i + V_i \cdot h_i$; the running sum $a_{i+1} = a_i + W_{:,i}\, x_i$ gives all of them in $O(DH)$.
- **MADE** (Germain et al. 2015): an autoencoder whose masks let output $i$ read only inputs before $i$: $s = \text{MADE}(x)$ in one pass.
- **PixelCNN** (van den Oord et al. 2016): a $7 \times 7$ mask-A convolution (it cannot see the pixel itself), $3 \times 3$ mask-B residual blocks and $1 \times 1$ layers: $s = \text{PixelCNN}(x)$ in one pass.

The likelihood is exact; its negative, in nats per digit, is the loss, and in bits per pixel

$$\text{NLL} = -\sum_{i} \log q(x_i \mid x_{<i}), \qquad \text{bits/dim} = \frac{\text{NLL}}{D \ln 2}.$$

A model that says $\sigma(s_i) = \tfrac12$ everywhere scores $784 \ln 2 \approx 543$ nats, 1 bit per pixel.
Sampling draws pixel after pixel, $D$ steps: $x_1 \sim q(x_1)$, then $x_2 \sim q(x_2 \mid x_1)$, and so on.

- *Drawing pixel by pixel*: a few digits of one sampling pass, as the canvas stood after $1/8, 2/8, \dots$ of the pixels (grey: not drawn yet).
- *Every conditional of one digit*: a binarized data digit beside $q(x_i = 1 \mid x_{<i})$ at each of its pixels, and its NLL.
"""

VIEW = FamilyView(
    family="autoregressive",
    panels=(
        Panel("ar_conditional", "Conditional p(x₂ | x₁), model vs true", conditional, data=("points",),
              needs=("conditional",),
              about=("A slice through the density: the model's p(x₂ | x₁) at the x₁ the slider sets, beside the "
                     "true one. An autoregressive model learns p(x₁, x₂) = p(x₁) p(x₂ | x₁), so this curve is one "
                     "of the two pieces it fits directly. Watch its bumps grow to match the true curve; move x₁ "
                     "across a gap in the data and see them shift.")),
        Panel("ar_marginal", "Marginal p(x₁)", marginal, data=("points",), needs=("marginal",),
              about=("p(x₁), the first factor of p(x₁) p(x₂ | x₁), for the model and the data. It is a 1D "
                     "density, so it is usually learned first; watch its bumps line up with the data's clusters "
                     "along x₁ before the joint density sharpens.")),
        Panel("ar_density", "Model density vs true density", density, wide=True, data=("points",),
              needs=("log_density",),
              about=("The joint density p(x₁) p(x₂ | x₁) over the plane beside the true density, on one colour "
                     "scale; the dotted line is the slice the conditional panel shows. Watch mass move onto the "
                     "data and off the gaps. Stripes along x₂ show the order the model factorises in.")),
        Panel("ar_samples", "Samples", samples, needs=("samples",),
              about=("Samples drawn one coordinate (or pixel) at a time, each from its conditional given those "
                     "before it. They should cover the data and nothing else; on digits, strokes that stop or "
                     "jump mean the model has not yet learned dependencies across the image.")),
        Panel("ar_drawing", "Drawing pixel by pixel", drawing, wide=True, data=("images",),
              needs=("frames", "frame_pixels"),
              about=("One sampling pass: the canvas after each group of pixels, in raster order, each pixel drawn "
                     "from p(pixel | the pixels above and to its left); grey is not drawn yet. Watch strokes "
                     "start near the top and carry on coherently downwards as the model learns.")),
        Panel("ar_pixels", "Every conditional of one digit", conditionals_map, data=("images",),
              needs=("digit", "p_digit"),
              about=("A digit from the data and, for every pixel, the model's probability that it is on given all "
                     "the pixels before it. Bright where the model is sure; the first pixels of each stroke stay "
                     "uncertain, because nothing above them says where a stroke starts. Watch the rest grow "
                     "confident as it trains; the note gives this digit's −log p(x).")),
    ),
    controls=(Control("x1", "x₁ of the conditional p(x₂ | x₁)", -4.0, 4.0, 0.05, 0.0,
                      "where the conditional panel slices the density; recomputed from the newest weights", data=("points",)),),
    equations=EQUATIONS.strip(),
    export=ExportPicture(lambda traces: V.optional(traces, "samples"), _export_density),
    showcase=("made_mog", "pinwheel"),
)
