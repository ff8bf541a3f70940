"""Energy-based model views: the energy landscape with its Langevin chains, the replay buffer's
negatives against the data, the grid-normalised density and a film strip of the chains.

Trace keys (core.models.ebm): chains (K+1, m, 2) Langevin states from the replay buffer
(and fresh noise) over the training chain's steps; buffer (B, 2) replay-buffer points;
box (2, 2) the box of the grid normaliser and of fresh noise; log_z (1,) its log Z; for 2D
with a plane grid, energy (G*G,) E(x) and log_density (G*G,) -E(x) - log Z.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from . import ExportPicture, FamilyView, Panel

PARTICLES = 100
FILM_FRAMES = 6
ENERGY_SCALE = [[0.0, "#2c7bb6"], [0.35, "#abd9e9"], [0.6, "#ffffbf"], [1.0, "#fdae61"]]  # low (blue) to high
ONLY_2D = "The {what} is drawn for 2D data; this model trains on 2D points only."


def _plane(snapshot: dict, ctx: dict, what: str):
    if V.is_image(ctx, snapshot):
        raise V.Unavailable(ONLY_2D.format(what=what))
    x_r = V.data_points(snapshot)
    return x_r, V.bounds_of(ctx, x_r)


def _box_outline(tr: dict) -> list:
    """The normaliser's box as a dashed rectangle, where the model sent it."""
    b = V.optional(tr, "box")
    if b is None or b.shape != (2, 2) or not np.isfinite(b).all():
        return []
    (x0, y0), (x1, y1) = b
    x = np.array([x0, x1, x1, x0, x0], dtype=np.float32)
    y = np.array([y0, y0, y1, y1, y0], dtype=np.float32)
    return [V.lines(x, y, V.NEUTRAL, "grid box (normaliser)", width=1.0, legend=True, dash="dash")]


def energy_landscape(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    x_r, box = _plane(snapshot, ctx, "energy landscape")
    e = V.array(tr, "energy", "the energy on the plane")
    g = V.grid_side(e, ctx)
    lo, hi = np.nanpercentile(e, [1, 95])
    hi = hi if hi > lo else lo + 1
    data = [V.heatmap(e.reshape(g, g), box, ENERGY_SCALE, lo, hi, "E(x)", hover="E")]
    if x_r is not None:
        data.append(V.scatter(x_r, V.REAL, "data", 3, 0.35))
    chains = V.optional(tr, "chains")
    note = ""
    if chains is not None and chains.ndim == 3:
        k = min(PARTICLES, chains.shape[1])
        paths = np.stack([V.points2d(chains[i, :k], "chains") for i in range(chains.shape[0])], 1)  # (k, K+1, 2)
        px, py = V.polylines(paths)
        data += [V.lines(px, py, "rgba(123, 50, 148, 0.35)", "Langevin chains", width=0.9, legend=True),
                 V.scatter(paths[:, 0], V.NEUTRAL, "chain starts", 3, 0.7),
                 V.scatter(paths[:, -1], V.GEN, "negatives x⁻", 4.5, 0.9)]
        note = f"{k} chains, {chains.shape[0] - 1} Langevin steps; blue is low energy" + V.hidden_note(paths[:, -1])
    layout = V.base_layout("Energy E(x): chains roll downhill", uirev, note=note)
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def negatives(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    x_r, box = _plane(snapshot, ctx, "replay buffer")
    buf = V.points2d(V.array(tr, "buffer", "the replay buffer"), "buffer")
    data = [V.scatter(x_r, V.REAL, "data x⁺ (energy pushed down)", 4, 0.45)] if x_r is not None else []
    data.append(V.scatter(buf, V.GEN, "buffer negatives x⁻ (pushed up)", 3.5, 0.6))
    data += _box_outline(tr)
    layout = V.base_layout(f"Negatives vs data: {buf.shape[0]} buffer points", uirev, note=V.hidden_note(buf))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def _density(tr: dict, key: str = "log_density") -> np.ndarray:
    log_q = V.array(tr, key, "the grid-normalised density")
    return np.exp(np.clip(log_q.astype(np.float64), -80, 80))


def density(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    x_r, box = _plane(snapshot, ctx, "density")
    q = _density(tr)
    g = V.grid_side(q, ctx)
    top = float(np.nanmax(q))
    true = ctx.get("true_log_density")
    if true is not None and np.size(true) == q.size and np.isfinite(true).any():
        top = float(np.nanmax(np.exp(np.clip(np.asarray(true, np.float64), -80, 80))))  # the data's colour scale
    data = [V.heatmap(q.reshape(g, g), box, V.DENSITY_SCALE, 0, top if top > 0 else 1.0, "p(x)", hover="p")]
    if x_r is not None:
        data.append(V.scatter(x_r, V.REAL, "data", 2.5, 0.3))
    data += _box_outline(tr)
    lz = V.optional(tr, "log_z")
    note = "grid normalisation" + (f": log Z = {float(lz.reshape(-1)[0]):.3g}" if lz is not None else "")
    note += ", a midpoint rule over the box"
    layout = V.base_layout("Density exp(−E) / Z (grid normalisation)", uirev, note=note)
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def film(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    _, box = _plane(snapshot, ctx, "Langevin film strip")
    chains = V.array(tr, "chains", "the Langevin chains")
    idx = V.pick(chains.shape[0], FILM_FRAMES)
    last = chains.shape[0] - 1
    pts = [V.points2d(chains[i], "chains") for i in idx]
    labels = [f"step {i}/{last}" for i in idx]
    layout = V.base_layout("Langevin from the buffer, frame by frame", uirev, height=V.STRIP_HEIGHT, legend=False)
    suffixes = V.strip_layout(layout, [box] * len(idx), labels)
    data = [V.on_axes(V.scatter(p, V.GEN if i == last else V.NEUTRAL, label, 3, 0.65, legend=False), s)
            for p, i, label, s in zip(pts, idx, labels, suffixes)]
    return V.figure(data, layout)


def _export_samples(traces: dict):
    c = V.optional(traces, "chains")
    return None if c is None else c[-1]


def _export_density(traces: dict, ctx: dict):
    try:
        q = _density(traces)
    except V.Unavailable:
        return None
    top = float(np.nanmax(q))
    return q / (top if top > 0 else 1.0), V.DENSITY_SCALE


EQUATIONS = r"""
### Energy-based model: contrastive divergence with Langevin negatives

An energy $E_\theta(x)$ (an MLP) defines a density up to its normaliser,

$$p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z_\theta}, \qquad -\nabla_\theta \log p_\theta(x) = \nabla_\theta E_\theta(x) - \mathbb{E}_{x^- \sim p_\theta}\big[\nabla_\theta E_\theta(x^-)\big].$$

So training minimises the contrastive divergence with a small energy regulariser (Du & Mordatch 2019),

$$\mathcal{L} = \mathbb{E}_\text{data}\big[E_\theta(x^+)\big] - \mathbb{E}\big[E_\theta(x^-)\big] + \alpha\big(\mathbb{E}[E_\theta(x^+)^2] + \mathbb{E}[E_\theta(x^-)^2]\big):$$

the energy of the data $x^+$ is pushed down and that of the model's negatives $x^-$ pushed up.
The negatives come from $K$ steps of Langevin dynamics with step $\epsilon$ and noise scale $s$,

$$x_{k+1} = x_k - \tfrac{\epsilon}{2}\nabla_x E_\theta(x_k) + s\sqrt{\epsilon}\, z_k, \qquad z_k \sim \mathcal{N}(0, I),$$

each chain started from a replay buffer of earlier negatives, or (with chance *reinit*, 5%) from uniform noise over the box;
$s = 1$ is the chain of $p_\theta$ itself. For 2D points the normaliser is a midpoint rule over $n$ cells $c_j$ of the box,

$$\log Z_\theta \approx \operatorname{logsumexp}_j\big(-E_\theta(c_j)\big) + \log|\text{cell}|, \qquad \log p_\theta(x) = -E_\theta(x) - \log Z_\theta,$$

so `log_prob` and the KL to the data are **estimates by grid normalisation** (mass outside the box is left out).

**What you see**
- `loss` is $\mathcal{L}$; `cd` its first two terms; `E_data` and `E_model` the mean energies of data and negatives.
- *Energy landscape*: $E_\theta$ on the plane (blue low), with Langevin chains from the buffer rolling into its valleys.
- *Negatives vs data*: the replay buffer (purple), whose energy the loss raises, beside the data (green), whose energy it lowers.
- *Density*: $e^{-E_\theta}/Z_\theta$ by grid normalisation, on the data's colour scale.
- *Film strip*: the chains at a few of their $K$ steps.
"""

VIEW = FamilyView(
    family="ebm",
    panels=(
        Panel("ebm_energy", "Energy landscape and Langevin chains", energy_landscape, data=("points",),
              needs=("energy",)),
        Panel("ebm_negatives", "Negatives vs data", negatives, data=("points",), needs=("buffer",)),
        Panel("ebm_density", "Density (grid normalisation)", density, data=("points",), needs=("log_density",)),
        Panel("ebm_film", "Langevin chains, frame by frame", film, wide=True, data=("points",), needs=("chains",)),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples, _export_density),
    showcase=("ebm", "eight_gaussians"),
)
