"""Gaussian-mixture views: the components over the data coloured by responsibility, the
density, and the log-likelihood after each EM step.

Trace keys (core.models.mixture): weights (K,), means (K, D), covariances (K, D, D);
responsibilities (n, K) of the shown data points (the E step); samples (n, D);
ll_history (H,) the log-likelihood per point of the EM set after each of the EM steps
ll_steps (H,); for 2D, log_density (G*G,) on the plane grid.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from . import ExportPicture, FamilyView, Panel

RADII = (1.0, 2.0)  # Mahalanobis radii of the drawn contours


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


PALETTE = np.stack([_rgb(c) for c in V.LABEL_COLORS])  # (C, 3)


def mixed_colours(r: np.ndarray) -> list[str]:
    """Each point's colour: the components' colours averaged by its responsibilities r (n, K)."""
    r = np.nan_to_num(np.asarray(r, dtype=np.float64))
    colours = PALETTE[np.arange(r.shape[1]) % len(PALETTE)]  # (K, 3)
    total = r.sum(1, keepdims=True)
    rgb = (r / np.where(total > 0, total, 1.0)) @ colours
    rgb[total[:, 0] <= 0] = _rgb(V.NEUTRAL)
    return ["rgb(%d,%d,%d)" % tuple(int(round(v)) for v in c) for c in rgb]


def ellipse(mean: np.ndarray, cov: np.ndarray, radius: float, m: int = 73) -> np.ndarray:
    """The contour (x - mu)^T Sigma^-1 (x - mu) = radius^2 of a 2D Gaussian: (m, 2) points."""
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    A = vectors * np.sqrt(np.clip(values, 0, None))  # A A^T = Sigma
    t = np.linspace(0, 2 * np.pi, m)
    return mean + radius * np.stack([np.cos(t), np.sin(t)], 1) @ A.T


def components(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The components are drawn for 2D data.")
    mu = V.points2d(V.array(tr, "means", "the component means"), "means")
    cov = V.array(tr, "covariances", "the component covariances")
    w = V.optional(tr, "weights")
    K = mu.shape[0]
    w = w.reshape(-1) if w is not None and w.size == K else np.full(K, 1.0 / K)
    x_r = V.data_points(snapshot)
    r = V.optional(tr, "responsibilities")
    data = []
    if x_r is not None:
        colour = mixed_colours(r) if r is not None and r.shape == (x_r.shape[0], K) else V.REAL
        data.append(V.scatter(x_r, colour, "data, by responsibility", 4, 0.6))
    paths = []
    for k in range(K):
        c = cov[k, :2, :2].astype(np.float64)
        if np.isfinite(c).all() and np.isfinite(mu[k]).all():
            paths += [ellipse(mu[k].astype(np.float64), c, radius) for radius in RADII]
    if paths:
        px, py = V.polylines(np.stack(paths))
        data.append(V.lines(px, py, "#333333", "1σ and 2σ contours", width=1.2, legend=True))
    colours = [V.LABEL_COLORS[k % len(V.LABEL_COLORS)] for k in range(K)]
    size = 6 + 14 * np.sqrt(np.clip(w, 0, 1) / max(float(np.nanmax(w)), 1e-12))
    means = V.scatter(mu, "#333333", "means (size ∝ √weight)", 8, 1.0, symbol="x")
    means["marker"].update(color=colours, size=size, line=dict(width=1, color="#333333"))
    means["text"] = [f"w = {v:.3f}" for v in w]
    means["hoverinfo"] = "x+y+text"
    data.append(means)
    layout = V.base_layout(f"{K} components over the data", uirev, note="each point mixes the components' colours by r_nk")
    V.plane_axes(layout, V.bounds_of(ctx, x_r))
    return V.figure(data, layout)


def density(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The density is drawn for 2D data.")
    log_q = V.array(tr, "log_density", "the model's log-density on the grid")
    g = V.grid_side(log_q, ctx)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    q = np.exp(np.clip(log_q, -80, 80)).reshape(g, g)
    p = None
    true = ctx.get("true_log_density")
    if true is not None:
        t = np.asarray(true, dtype=np.float64)
        if t.shape == log_q.shape and np.isfinite(t).any():
            p = np.exp(np.clip(np.nan_to_num(t, nan=-np.inf), -80, 80)).reshape(g, g)
    zmax = float(np.nanmax(p if p is not None else q))
    zmax = zmax if np.isfinite(zmax) and zmax > 0 else 1.0
    panels = [(q, "model q(x)")] + ([(p, "true p(x)")] if p is not None else [])
    note = "q(x) = Σₖ wₖ N(x; μₖ, Σₖ)" + ("; both on one colour scale" if p is not None else "")
    layout = V.base_layout("Model density" + (" vs true density" if p is not None else ""), uirev, legend=False,
                           note=note)
    suffixes = V.strip_layout(layout, [box] * len(panels), [label for _, label in panels], ticks=True)
    data = [V.on_axes(V.heatmap(z, box, V.DENSITY_SCALE, 0.0, zmax, name, hover="density"), s)
            for (z, name), s in zip(panels, suffixes)]
    return V.figure(data, layout)


def log_likelihood(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    ll = V.array(tr, "ll_history", "the log-likelihood after each EM step").reshape(-1)
    steps = V.optional(tr, "ll_steps")
    steps = steps.reshape(-1) if steps is not None and steps.size == ll.size else np.arange(1, ll.size + 1)
    line = V.lines(steps, ll, V.GEN, "log-likelihood per point", width=2)
    line.update(mode="lines+markers", marker=dict(size=4, color=V.GEN), hoverinfo="x+y")
    falls = int((np.diff(ll) < -1e-9).sum()) if ll.size > 1 else 0
    last = f"{ll[-1]:.4f}" if np.isfinite(ll[-1]) else "not finite"
    note = f"last: {last} nats" + (f"; {falls} fall{'s' if falls > 1 else ''} (the regulariser's share)" if falls else "")
    layout = V.base_layout("Log-likelihood after each EM step", uirev, legend=False, note=note)
    layout["xaxis"] = dict(title=dict(text="EM step", standoff=4))
    layout["yaxis"] = dict(title=dict(text="(1/N) Σₙ log p(xₙ)", standoff=4))
    return V.figure([line], layout)


def _export_density(traces: dict, ctx: dict):
    log_q = V.optional(traces, "log_density")
    if log_q is None:
        return None
    q = np.exp(np.clip(log_q.astype(np.float64), -80, 80))
    top = np.nanmax(q)
    true = ctx.get("true_log_density")
    if true is not None and np.isfinite(true).any():
        top = float(np.nanmax(np.exp(np.clip(np.asarray(true, np.float64), -80, 80))))
    return q / (top if top > 0 else 1.0), V.DENSITY_SCALE


EQUATIONS = r"""
### Gaussian mixture fitted by EM

The model is a weighted sum of $K$ Gaussians with full covariances,

$$p(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}(x;\, \mu_k, \Sigma_k), \qquad \sum_k w_k = 1,$$

fitted not by gradients but by expectation-maximisation (Dempster, Laird & Rubin 1977) on a fixed set of $N$ points
(the first batch). Each training step is one E step and one M step:

$$r_{nk} = \frac{w_k\, \mathcal{N}(x_n; \mu_k, \Sigma_k)}{\sum_j w_j\, \mathcal{N}(x_n; \mu_j, \Sigma_j)}, \qquad N_k = \sum_n r_{nk}, \quad w_k = \frac{N_k}{N}, \quad \mu_k = \frac{1}{N_k}\sum_n r_{nk}\, x_n,$$

$$\Sigma_k = \frac{1}{N_k}\Big(\sum_n r_{nk}\,(x_n - \mu_k)(x_n - \mu_k)^\top + \lambda I\Big), \qquad \lambda = \text{reg}\cdot N / K.$$

The M step maximises exactly, so no step lowers the objective EM climbs,

$$J = \frac{1}{N}\sum_n \log p(x_n) \;-\; \frac{\text{reg}}{2K}\sum_k \operatorname{tr}\Sigma_k^{-1},$$

the log-likelihood less a small penalty that keeps every $\Sigma_k$ invertible. The start: k-means++ centres (or random
data points), each point given wholly to its nearest centre.

**What you see**
- `log_likelihood` is $\frac{1}{N}\sum_n \log p(x_n)$ after the step, `objective` is $J$, and `loss` is $-J$, which never rises.
- *Components*: the $1\sigma$ and $2\sigma$ contours of each $\mathcal{N}(\mu_k, \Sigma_k)$, means sized by $w_k$; each data point takes the components' colours mixed by its responsibilities $r_{nk}$.
- *Model density*: $p(x)$ on the plane beside the true density.
- *Log-likelihood after each EM step*: the climb, step by step.
"""

VIEW = FamilyView(
    family="mixture",
    panels=(
        Panel("gmm_components", "Components over the data, by responsibility", components, data=("points",),
              needs=("means", "covariances", "responsibilities"),
              about=("Each Gaussian component as its 1σ and 2σ ellipses, with every point coloured by the "
                     "component most responsible for it (the E-step). Watch the ellipses move to the clusters "
                     "(the M-step); two components sharing one cluster, or one spanning two, is a local optimum "
                     "that a Reset may escape.")),
        Panel("gmm_density", "Model density vs true density", density, data=("points",), needs=("log_density",),
              about=("The mixture's density Σₖ wₖ N(x; μₖ, Σₖ) beside the true density, on one colour scale. With "
                     "too few components it must blur clusters together; with many it can match curved shapes "
                     "only by lining Gaussians up: compare the two to see which it is doing.")),
        Panel("gmm_loglik", "Log-likelihood after each EM step", log_likelihood, needs=("ll_history",),
              about=("The data's average log-likelihood after each EM step. EM never lowers it: the curve rises "
                     "and flattens at a (possibly local) maximum, so watch it climb and level off; any dip would be a bug.")),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(lambda traces: V.optional(traces, "samples"), _export_density),
    showcase=("gmm", "eight_gaussians"),
)
