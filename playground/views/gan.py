"""GAN views in the spirit of GAN Lab (Kahng et al. 2019).

Trace keys (core.models.gan): samples (n, D); noise_grid (M*M, 2); warped_grid (M*M, D)
the generator applied to the noise grid; critic_grad (n, D) dD/dx at the
samples; for 2D, critic (G*G,) the raw discriminator output and, for gan/nsgan,
critic_prob (G*G,) = sigmoid(critic).

The optimal discriminator of Goodfellow et al. (2014, Prop. 1) is
D*(x) = p_data(x) / (p_data(x) + p_g(x)). p_g has no formula, so it is
estimated by a Gaussian kernel density estimate of the generated samples with
bandwidth h; p_data is smoothed by the same kernel so that a perfect generator
gives D* = 1/2 everywhere rather than a picture of the kernel.
"""

from __future__ import annotations

import numpy as np

from core.metrics import COVERAGE_FRACTION  # the rule of core.metrics.mode_stats, drawn per mode

from .. import draw as V
from ..draw import digits as D
from . import ExportPicture, FamilyView, Panel

MAX_ARROWS = 150
UNCOVERED = "#d62728"
ARROW_FRACTION = 0.08  # longest arrow, as a fraction of the plot's width


# ---- the optimal discriminator ----------------------------------------------------
def _gauss(d: np.ndarray, h: float) -> np.ndarray:
    return np.exp(-0.5 * (d / h) ** 2) / (np.sqrt(2 * np.pi) * h)


def kde_bandwidth(box, g: int) -> float:
    """Two grid cells or 3% of the plot's width, whichever is larger."""
    (x0, x1), _ = box
    return float(max(2 * (x1 - x0) / (g - 1), 0.03 * (x1 - x0)))


def kde_on_grid(samples: np.ndarray, xs: np.ndarray, ys: np.ndarray, h: float) -> np.ndarray:
    """p_g[i, j] = (1/n) sum_k N((xs[j], ys[i]); x_k, h^2 I): (G, G), exact, separable."""
    s = samples[np.isfinite(samples).all(1)].astype(np.float64)
    if s.shape[0] == 0:
        raise V.Unavailable("no finite generated samples to estimate p_g from.")
    kx = _gauss(xs[None, :] - s[:, :1], h)  # (n, G)
    ky = _gauss(ys[None, :] - s[:, 1:2], h)  # (n, G)
    # einsum, not @: small products like this one stall in a multithreaded BLAS on a busy server
    return np.einsum("ni,nj->ij", ky, kx) / s.shape[0]


def smooth_on_grid(p: np.ndarray, xs: np.ndarray, ys: np.ndarray, h: float) -> np.ndarray:
    """(p * N(0, h^2 I)) on the grid, by a Riemann sum: Ky p Kx^T dx dy."""
    kx = _gauss(xs[:, None] - xs[None, :], h) * (xs[1] - xs[0])
    ky = _gauss(ys[:, None] - ys[None, :], h) * (ys[1] - ys[0])
    return np.einsum("ib,jb->ij", np.einsum("ia,ab->ib", ky, p), kx)


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """D* = p_data / (p_data + p_g); nan where both are below floor * their max (undefined)."""
    total = p_data + p_g
    with np.errstate(invalid="ignore", divide="ignore"):
        d = p_data / total
    return np.where(total > floor * np.nanmax(total), d, np.nan)


# ---- views ------------------------------------------------------------------------
def critic(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    samples = V.array(tr, "samples", "generated samples")
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        panels = [(D.tile(D.images(samples[:64], ctx, "samples"), 8), "generated")]
        real = snapshot.get("data")
        if isinstance(real, np.ndarray) and real.size:
            panels.insert(0, (D.tile(D.images(real[:64].astype(np.float32), ctx, "data"), 8), "real"))
        return D.digits_figure(panels, "Real vs generated digits", uirev, lo, hi)
    x_g = V.points2d(samples, "samples")
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = []
    prob = V.optional(tr, "critic_prob")
    raw = V.optional(tr, "critic")
    if prob is not None:
        g = V.grid_side(prob, ctx)
        data.append(V.heatmap(prob.reshape(g, g), box, V.CRITIC_SCALE, 0, 1, "D(x)", hover="D"))
        title = "Discriminator D(x): green says real, purple says fake"
    elif raw is not None:
        g = V.grid_side(raw, ctx)
        lo, hi = np.nanpercentile(raw, [2, 98])
        hi = hi if hi > lo else lo + 1
        data.append(V.heatmap(raw.reshape(g, g), box, V.CRITIC_SCALE, lo, hi, "critic", hover="critic"))
        title = "Critic value: green high (real), purple low (fake)"
    else:
        title = "Samples (no discriminator grid was sent)"
    if x_r is not None:
        data.append(V.scatter(x_r, V.REAL, "real", 4, 0.55))
    data.append(V.scatter(x_g, V.GEN, "generated", 4, 0.8))
    grad = V.optional(tr, "critic_grad")
    if grad is not None and grad.shape[0] == samples.shape[0]:
        k = min(MAX_ARROWS, x_g.shape[0])
        try:
            length = ARROW_FRACTION * (box[0][1] - box[0][0])
            data += V.arrows(x_g[:k], V.points2d(grad, "dD/dx")[:k], length, "#333333", "dD/dx (generator's pull)")
        except V.Unavailable:
            pass  # a flat critic: nothing to draw
    layout = V.base_layout(title, uirev, note=V.hidden_note(x_g))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def warp(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    warped = V.array(tr, "warped_grid", "the generator's image of the noise grid")
    m = int(round(np.sqrt(warped.shape[0])))
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        imgs = D.images(warped, ctx, "generated digits")
        cols = m if m * m == warped.shape[0] else 8
        return D.digits_figure([(D.tile(imgs[: cols * cols], cols), "G(z) along a grid of z (first two noise dims)")],
                               "Generator over a grid of noise", uirev, lo, hi)
    w = V.points2d(warped, "the warped grid")
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = [V.scatter(x_r, V.REAL, "real", 4, 0.35)] if x_r is not None else []
    if m * m == w.shape[0]:
        mx, my = V.mesh(w, m, m, lines_each_way=m)
        data.append(V.lines(mx, my, V.MESH, "G(noise grid)", width=1.0, legend=True))
    data.append(V.scatter(w, V.GEN, "grid nodes", 3, 0.8, legend=m * m != w.shape[0]))
    layout = V.base_layout("Generator: a regular grid of noise z, warped to G(z)", uirev, note=V.hidden_note(w))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def optimal(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The optimal discriminator is drawn for 2D datasets with a known density.")
    true = ctx.get("true_log_density")
    if true is None:
        raise V.Unavailable("This dataset has no known density, so the optimal discriminator cannot be drawn.")
    x_g = V.points2d(V.array(tr, "samples", "generated samples"), "samples")
    log_p = V.array({"t": np.asarray(true, dtype=np.float64)}, "t", "the true log-density")
    g = V.grid_side(log_p, ctx)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    xs, ys = V.grid_axes(box, g)
    h = kde_bandwidth(box, g)
    p_data = smooth_on_grid(np.exp(np.nan_to_num(log_p.astype(np.float64), nan=-np.inf)).reshape(g, g), xs, ys, h)
    d_star = optimal_discriminator(p_data, kde_on_grid(x_g, xs, ys, h))
    panels = []
    prob = V.optional(tr, "critic_prob")
    if prob is not None and prob.shape[0] == g * g:
        panels.append((prob.reshape(g, g), "learned D(x)"))
    panels.append((d_star, "D* = p_data/(p_data+p_g)"))
    bounded = prob is not None
    title = "Learned vs optimal discriminator" if bounded else "Optimal discriminator (this critic is unbounded)"
    note = f"p_g: Gaussian KDE of {x_g.shape[0]} samples, bandwidth h = {h:.2f}"
    layout = V.base_layout(title, uirev, legend=False, note=note)
    suffixes = V.strip_layout(layout, [box] * len(panels), [label for _, label in panels], ticks=True)
    data = [V.on_axes(V.heatmap(z, box, V.CRITIC_SCALE, 0, 1, label, hover="D"), s)
            for (z, label), s in zip(panels, suffixes)]
    return V.figure(data, layout)


def modes(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    centres = ctx.get("modes")
    if centres is None or V.is_image(ctx, snapshot):
        raise V.Unavailable("Mode counts need a mixture dataset with known modes (e.g. eight_gaussians).")
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if not len(centres):
        raise V.Unavailable("This dataset lists no modes.")
    x_g = V.points2d(V.array(tr, "samples", "generated samples"), "samples").astype(np.float64)
    n_all = x_g.shape[0]
    x_g = x_g[np.isfinite(x_g).all(1)]
    K, n = centres.shape[0], x_g.shape[0]
    d2 = ((x_g[:, None, :] - centres[None]) ** 2).sum(-1)  # (n, K)
    nearest = d2.argmin(1)
    std = ctx.get("mode_std")
    off = np.zeros(n, dtype=bool) if not std else d2[np.arange(n), nearest] > (3 * float(std)) ** 2
    counts = np.bincount(nearest[~off], minlength=K)
    uniform = n_all / K
    starved = counts < max(1.0, COVERAGE_FRACTION * uniform)
    ks = np.arange(K)
    data = [dict(type="bar", x=ks[sel], y=counts[sel], marker=dict(color=color), name=name,
                 hovertemplate="mode %{x}: %{y} samples<extra></extra>")
            for sel, color, name in ((~starved, V.GEN, "covered"), (starved, UNCOVERED, "not covered"))]
    ticks = [str(k) for k in range(K)]
    if std:
        data.append(dict(type="bar", x=[K], y=[int(off.sum())], marker=dict(color=V.NEUTRAL),
                         name="off: > 3σ from every mode"))
        ticks.append("off")
    right = len(ticks) - 0.5
    data.append(V.lines(np.array([-0.5, right]), np.array([uniform, uniform]), V.REAL,
                        f"uniform: {uniform:.0f} each", width=1.5, legend=True, dash="dash"))
    covered = int((~starved).sum())
    rule = f"covered: at least {COVERAGE_FRACTION:.0%} of a uniform share" + (" within 3σ of the mode" if std else "")
    layout = V.base_layout(f"Samples nearest each mode: {covered} of {K} covered", uirev, note=rule)
    layout["xaxis"] = dict(range=[-0.5, right], tickvals=list(range(len(ticks))), ticktext=ticks,
                           title=dict(text="mode", standoff=4), showgrid=False)
    layout["yaxis"] = dict(range=[0, max(float(counts.max()) if counts.size else 0, 2 * uniform) * 1.05],
                           title=dict(text="samples", standoff=4))
    layout["bargap"] = 0.15
    return V.figure(data, layout)


def _export_critic(traces: dict, ctx: dict):
    """D(x) as a probability where it is one, else the raw critic spread over its 2nd-98th percentiles."""
    prob = V.optional(traces, "critic_prob")
    if prob is not None:
        return prob, V.CRITIC_SCALE
    raw = V.optional(traces, "critic")
    if raw is None:
        return None
    lo, hi = np.nanpercentile(raw, [2, 98])
    return (raw - lo) / (hi - lo if hi > lo else 1.0), V.CRITIC_SCALE


EQUATIONS = r""""
### GAN: a two-player minimax game

A generator $G$ maps noise $z \sim p(z)$ to samples $G(z)$; a discriminator $D(x) \in (0, 1)$ says how likely
$x$ is real. They play (Goodfellow et al. 2014)

$$\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p_\text{data}}\big[\log D(x)\big] + \mathbb{E}_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].$$

For a fixed generator with sample density $p_g$ the best discriminator is

$$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)},$$

and then $V(D^*, G) = 2\,\mathrm{JS}(p_\text{data} \,\|\, p_g) - \log 4$. The non-saturating generator minimises
$-\mathbb{E}_z[\log D(G(z))]$ instead.

A Wasserstein GAN replaces $D$ by an unbounded critic kept 1-Lipschitz (by weight clipping, or by WGAN-GP's gradient
penalty). The **critic** maximises $\mathbb{E}_{p_\text{data}}[D] - \mathbb{E}_{p_g}[D]$, an estimate of the Wasserstein-1
distance, i.e. it minimises $\mathcal{L}_D = \mathbb{E}_{p_g}[D] - \mathbb{E}_{p_\text{data}}[D]$ (plus $\lambda\,\mathbb{E}(\lVert\nabla D\rVert - 1)^2$
for WGAN-GP); the **generator** minimises $\mathcal{L}_G = -\mathbb{E}_z[D(G(z))]$.

**What you see**
- `loss_D` is the discriminator's loss (its side of the game), `loss_G` the generator's; they are named by phase.
- *Discriminator*: the background is $D(x)$ (green: "real", purple: "fake"); arrows are $\nabla_x D$ at generated samples, the direction the generator is pulled.
- *Generator*: a regular grid of noise $z$ and its image $G(z)$: how the generator folds and stretches noise.
- *Learned vs optimal discriminator*: $D$ beside $D^*$, with $p_g$ estimated from the samples.
- *Samples per mode* and the modes-covered timeline: mode collapse shows as modes with no samples.
"""

VIEW = FamilyView(
    family="gan",
    panels=(
        Panel("gan_critic", "Discriminator, real and generated samples", critic, needs=("samples",)),
        Panel("gan_warp", "Generator: the noise grid warped into data space", warp,
              needs=("warped_grid",)),
        Panel("gan_optimal", "Learned vs optimal discriminator", optimal, data=("points",), needs=("samples",)),
        Panel("gan_modes", "Generated samples per mode", modes, data=("points",), needs=("samples",)),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(lambda traces: V.optional(traces, "samples"), _export_critic),
    showcase=("wgan_gp", "twenty_five_gaussians"),
)
