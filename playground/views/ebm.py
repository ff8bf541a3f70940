"""Energy-based model views: the energy landscape with its Langevin chains, the replay buffer's
negatives against the data, the grid-normalised density and a film strip of the chains; on
digits, the energies of data and negatives, the replay buffer as digits and chains from noise.

Trace keys (core.models.ebm), for 2D points: chains (K+1, m, 2) Langevin states from the
replay buffer (and fresh noise) over the training chain's steps; buffer (B, 2) replay-buffer
points; box (2, 2) the box of the grid normaliser and of fresh noise; log_z (1,) its log Z;
with a plane grid, energy (G*G,) E(x) and log_density (G*G,) -E(x) - log Z.
For images: buffer (B, C, H, W) replay-buffer digits and energy_buffer (B,) their energies;
energy_data (Nd,) energies of data digits; noise_chains (F, m, C, H, W) chains from uniform
noise at the steps noise_steps (F,).
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from . import ExportPicture, FamilyView, Panel

PARTICLES = 100
FILM_FRAMES = 6
ENERGY_SCALE = [[0.0, "#2c7bb6"], [0.35, "#abd9e9"], [0.6, "#ffffbf"], [1.0, "#fdae61"]]  # low (blue) to high
ONLY_2D = "The {what} is drawn for 2D data; for digits, watch the replay buffer and the chains from noise."
NO_DENSITY = ("The density is drawn for 2D data only. No density on digits: the normaliser Z of exp(−E) would need "
              "a grid over all {d} pixels, so an EBM on images has no log-likelihood here; its energies and "
              "samples are drawn instead.")
BUFFER_TILES = 64
ENERGY_BINS = 40


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
    if V.is_image(ctx, snapshot):
        return energies(snapshot, ctx, uirev)
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


def energies(snapshot: dict, ctx: dict, uirev: str):
    """Digits: histograms of E on data digits and on the buffer's negatives, with their means."""
    tr = snapshot.get("traces", {})
    e_data = V.array(tr, "energy_data", "the energies of data digits").astype(np.float64).ravel()
    e_neg = V.array(tr, "energy_buffer", "the energies of the buffer's negatives").astype(np.float64).ravel()
    e_data, e_neg = e_data[np.isfinite(e_data)], e_neg[np.isfinite(e_neg)]
    both = np.concatenate([e_data, e_neg])
    lo, hi = np.percentile(both, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, ENERGY_BINS + 1)
    width, centres = edges[1] - edges[0], 0.5 * (edges[1:] + edges[:-1])
    data = []
    for values, color, name in ((e_data, V.REAL, "data x⁺ (pushed down)"), (e_neg, V.GEN, "buffer negatives x⁻ (pushed up)")):
        counts, _ = np.histogram(np.clip(values, lo, hi), edges)
        data.append(dict(type="bar", x=centres, y=counts / max(values.size, 1), width=width, name=name,
                         marker=dict(color=color, opacity=0.6), hovertemplate="E %{x:.3g}<br>share %{y:.2f}<extra></extra>"))
    m_data, m_neg = float(e_data.mean()), float(e_neg.mean())
    layout = V.base_layout(f"Energies: data {m_data:.3g}, negatives {m_neg:.3g}", uirev,
                           note=f"gap E(x⁻) − E(x⁺) = {m_neg - m_data:.3g}; CD pushes it up, α E² and the chains pull it back")
    layout["barmode"] = "overlay"
    layout["bargap"] = 0.0
    layout["xaxis"] = dict(title=dict(text="energy E(x)", standoff=4))
    layout["yaxis"] = dict(title=dict(text="share of images", standoff=4), rangemode="tozero")
    return V.figure(data, layout)


def buffer_digits(snapshot: dict, ctx: dict, uirev: str):
    """Digits: the replay buffer's first entries, the negatives the loss contrasts with the data."""
    buf = V.array(snapshot.get("traces", {}), "buffer", "the replay buffer")
    lo, hi = D.pixel_range(snapshot)
    tiles = D.tile(D.images(buf[:BUFFER_TILES], ctx, "buffer images"), 8)
    label = f"replay buffer, step {snapshot.get('step', 0)}"
    return D.digits_figure([(tiles, label)], f"Replay buffer: {min(buf.shape[0], BUFFER_TILES)} negatives x⁻",
                           uirev, lo, hi)


def negatives(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        return buffer_digits(snapshot, ctx, uirev)
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
    if V.is_image(ctx, snapshot):
        raise V.Unavailable(NO_DENSITY.format(d=int(np.prod(ctx.get("data_shape") or (0,)))))
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


def noise_film(snapshot: dict, ctx: dict, uirev: str):
    """Digits: chains from uniform noise, one row each, one column per frame."""
    tr = snapshot.get("traces", {})
    chains = V.array(tr, "noise_chains", "the chains from noise")
    steps = V.array(tr, "noise_steps", "the steps of the chains' frames")
    if chains.shape[0] != steps.shape[0]:
        raise V.Unavailable(f"{chains.shape[0]} frames of the chains came with {steps.shape[0]} step numbers.")
    lo, hi = D.pixel_range(snapshot)
    k = min(4, chains.shape[1])
    imgs = np.stack([D.images(chains[i, :k], ctx, "chain states") for i in range(chains.shape[0])], 1)  # (k, F, H, W)
    label = "columns: step " + ", ".join(str(int(t)) for t in steps)
    return D.digits_figure([(D.tile(imgs.reshape(-1, *imgs.shape[2:]), chains.shape[0]), label)],
                           "Langevin from uniform noise, frame by frame", uirev, lo, hi, height=V.STRIP_HEIGHT)


def film(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        return noise_film(snapshot, ctx, uirev)
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
    """The chains' ends on points; on digits (no chains key) the replay buffer."""
    c = V.optional(traces, "chains")
    return V.optional(traces, "buffer") if c is None else c[-1]


def _export_density(traces: dict, ctx: dict):
    try:
        q = _density(traces)
    except V.Unavailable:
        return None
    top = float(np.nanmax(q))
    return q / (top if top > 0 else 1.0), V.DENSITY_SCALE


EQUATIONS = r"""
### Energy-based model: contrastive divergence with Langevin negatives

An energy $E_\theta(x)$ (an MLP on points, a small convolutional network on digits) defines a density up to its normaliser,

$$p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z_\theta}, \qquad -\nabla_\theta \log p_\theta(x) = \nabla_\theta E_\theta(x) - \mathbb{E}_{x^- \sim p_\theta}\big[\nabla_\theta E_\theta(x^-)\big].$$

So training minimises the contrastive divergence with a small energy regulariser (Du & Mordatch 2019),

$$\mathcal{L} = \mathbb{E}_\text{data}\big[E_\theta(x^+)\big] - \mathbb{E}\big[E_\theta(x^-)\big] + \alpha\big(\mathbb{E}[E_\theta(x^+)^2] + \mathbb{E}[E_\theta(x^-)^2]\big),$$

whose gradient is the CD gradient $\mathbb{E}_\text{data}[\nabla_\theta E] - \mathbb{E}_{x^-}[\nabla_\theta E]$ (plus the regulariser's):
the energy of the data $x^+$ is pushed down and that of the model's negatives $x^-$ pushed up.
On points the negatives come from $K$ steps of Langevin dynamics with step $\epsilon$ and noise scale $s$,

$$x_{k+1} = x_k - \tfrac{\epsilon}{2}\nabla_x E_\theta(x_k) + s\sqrt{\epsilon}\, z_k, \qquad z_k \sim \mathcal{N}(0, I);$$

on digits from the short-run chain of Du & Mordatch and Nijkamp et al. 2019, with a gradient step $\lambda$ and a noise $\sigma$ set apart,
clipped to the pixels' range after every step,

$$x_{k+1} = \operatorname{clip}\big(x_k - \lambda\nabla_x E_\theta(x_k) + \sigma z_k,\ 0,\ 1\big),$$

which is Langevin for $e^{-E_\theta / T}$ at the temperature $T = \sigma^2 / 2\lambda$.
Each chain starts from a replay buffer of earlier negatives, or (with chance *reinit*, 5%) from uniform noise over the box.
For 2D points the normaliser is a midpoint rule over $n$ cells $c_j$ of the box,

$$\log Z_\theta \approx \operatorname{logsumexp}_j\big(-E_\theta(c_j)\big) + \log|\text{cell}|, \qquad \log p_\theta(x) = -E_\theta(x) - \log Z_\theta,$$

so `log_prob` and the KL to the data are **estimates by grid normalisation** (mass outside the box is left out).
On digits no grid covers the pixels: $Z_\theta$ is unknown and the model has **no density** (no NLL), only energies and samples;
its samples are buffer entries run $K$ more steps.

**What you see**
- `loss` is $\mathcal{L}$; `cd` its first two terms; `E_data` and `E_model` the mean energies of data and negatives.
- *Energy*: on points $E_\theta$ on the plane (blue low), with Langevin chains from the buffer rolling into its valleys;
  on digits the energies of data digits and of the buffer's negatives, and their gap.
- *Negatives*: the replay buffer (purple), whose energy the loss raises, beside the data (green), whose energy it lowers;
  on digits the buffer itself, where digits appear as training goes on.
- *Density*: $e^{-E_\theta}/Z_\theta$ by grid normalisation, on the data's colour scale (points only).
- *Film strip*: the chains at a few of their $K$ steps; on digits, chains from uniform noise over 60 steps.
"""

VIEW = FamilyView(
    family="ebm",
    panels=(
        Panel("ebm_energy", "Energy: the landscape and its chains (2D), data vs negatives (digits)", energy_landscape,
              needs={"points": ("energy",), "images": ("energy_data", "energy_buffer")},
              about=("The learned energy E_θ(x) (low is likely) with Langevin chains sampling from exp(−E). On 2D "
                     "data watch the basins settle on the data. On digits compare the energies of real digits and "
                     "of negatives: training pushes the data down and the negatives up, and the two should "
                     "overlap once samples look real.")),
        Panel("ebm_negatives", "Negatives: the replay buffer", negatives, needs=("buffer",),
              about=("The replay buffer: negative samples that Langevin dynamics produced, whose energy training "
                     "raises. They should drift onto the data; if they pile up in one place, the chains are too "
                     "short or their step too large.")),
        Panel("ebm_density", "Density (grid normalisation, 2D only)", density, data=("points",), needs=("log_density",),
              about=("exp(−E_θ(x)) normalised over the plot's grid (possible in 2D only; in general Z is "
                     "intractable) beside the true density. Watch for low-energy regions away from the data that "
                     "the chains never visited: the model cannot learn to raise what it never samples.")),
        Panel("ebm_film", "Langevin chains, frame by frame", film, wide=True,
              needs={"points": ("chains",), "images": ("noise_chains", "noise_steps")},
              about=("Langevin chains frame by frame, x ← x − (ε/2) ∇E(x) + √ε z: points slide downhill in "
                     "energy, with noise. Watch a good energy bring them onto the data by the last frames; points "
                     "stuck between modes are a sign of barriers the chains cannot cross.")),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples, _export_density),
    showcase=("ebm", "eight_gaussians"),
)
