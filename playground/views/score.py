"""Score-based views: the learned score beside the exact one, and the Langevin chains.

Trace keys (core.models.score): score_field (G*G, 2) the learned score s_theta on the plane
grid at the level field_level (2,) = (alpha, sigma), which the view's sigma slider sets for
ncsn (dsm and ssm learn one level, their own sigma, and draw it whatever the slider);
chain (S+1, n, D) the sampler's states from x_0 to the samples, with chain_sigma (S+1,)
the noise level of the score each state was drawn with. The page adds the exact score of
the data at field_level as snapshot["true_score_field"] (G*G, 2) where the dataset has one.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from ..draw import fields as F
from . import Control, ExportPicture, FamilyView, Panel

PARTICLES = 100
PATH_POINTS = 60
STRIP_FRAMES = 6


def _level(tr: dict) -> str:
    lv = V.optional(tr, "field_level")
    if lv is None or lv.size != 2 or not np.isfinite(lv).all():
        return ""
    a, s = (float(v) for v in lv.reshape(-1))
    return f" at σ = {s:.3g}" if abs(a - 1) < 1e-6 else f" at α = {a:.3g}, σ = {s:.3g}"


def field(snapshot: dict, ctx: dict, uirev: str):
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The score field is drawn for 2D data; for digits, watch the Langevin chains.")
    tr, exact = snapshot.get("traces", {}), snapshot.get("true_score_field")
    exact = exact is not None and np.shape(exact) == np.shape(tr.get("score_field"))
    title = f"Score{_level(tr)}: learned" + (" beside exact" if exact else "")
    return F.score_beside_exact(snapshot, ctx, uirev, title, "learned s_θ(x)", "exact ∇ log p_σ(x)")


def chains(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    traj = V.array(tr, "chain", "the Langevin chains")
    if V.is_image(ctx, snapshot):
        return D.samples_view(snapshot, ctx, uirev, what=f"the last state of the live Langevin chains ({traj.shape[0] - 1} steps)",
                              points=traj[-1])
    steps = V.pick(traj.shape[0], PATH_POINTS)
    k = min(PARTICLES, traj.shape[1])
    paths = np.stack([V.points2d(traj[i, :k], "chain") for i in steps], 1)  # (k, steps, 2)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    px, py = V.polylines(paths)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.3)] if x_r is not None else []
    data += [V.lines(px, py, "rgba(123, 50, 148, 0.28)", "chains", width=0.9, legend=True),
             V.scatter(paths[:, 0], V.NEUTRAL, "start x₀", 3, 0.7),
             V.scatter(paths[:, -1], V.GEN, "end: samples", 4.5, 0.9)]
    sig = V.optional(tr, "chain_sigma")
    what = "Langevin"
    if sig is not None and sig.size == traj.shape[0] and np.isfinite(sig).all():
        lo, hi = float(sig.min()), float(sig.max())
        what = f"annealed Langevin, σ {hi:.3g} → {lo:.3g}" if hi > lo * (1 + 1e-6) else f"Langevin at σ = {lo:.3g}"
    layout = V.base_layout(f"Sampler: {k} chains ({what})", uirev, note=V.hidden_note(paths[:, -1]))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def _level_ends(sigma: np.ndarray, frames: int) -> np.ndarray:
    """Indices of the last state at each noise level of a chain (the start first), `frames` of them evenly."""
    ends = [i for i in range(1, len(sigma)) if i == len(sigma) - 1 or sigma[i + 1] != sigma[i]]
    ends = np.array([0] + ends)
    return ends[np.unique(np.linspace(0, len(ends) - 1, min(frames, len(ends))).round().astype(int))]


def strip(snapshot: dict, ctx: dict, uirev: str):
    """Digits along annealed Langevin: the start, then the chains as each noise level ends."""
    if not V.is_image(ctx, snapshot):
        raise V.Unavailable("The strip of Langevin frames is drawn for digits; on 2D datasets the chains panel shows the paths.")
    tr = snapshot.get("traces", {})
    traj = V.array(tr, "chain", "the Langevin chains")
    sig = V.optional(tr, "chain_sigma")
    if sig is None or sig.size != traj.shape[0] or not np.isfinite(sig).all():
        idx, label = V.pick(traj.shape[0], STRIP_FRAMES), (lambda i: f"step {i}")
    else:
        sig = sig.reshape(-1)
        idx = _level_ends(sig, STRIP_FRAMES)
        label = lambda i: "start" if i == 0 else f"σ = {sig[i]:.2g}"  # noqa: E731
    lo, hi = D.pixel_range(snapshot)
    k = min(4, traj.shape[1])
    imgs = np.stack([D.images(traj[i, :k], ctx, "chain states") for i in idx], 1)  # (k, frames, H, W)
    steps = traj.shape[0] - 1
    title = f"Annealed Langevin, level by level ({steps} steps)"
    return D.digits_figure([(D.tile(imgs.reshape(-1, *imgs.shape[2:]), len(idx)),
                             "columns: " + ", ".join(label(i) for i in idx))], title, uirev, lo, hi)


def _export_samples(traces: dict):
    s = V.optional(traces, "chain")
    return None if s is None else s[-1]


EQUATIONS = r"""
### Score-based models: learn $\nabla_x \log p$, then follow it

A score model learns $s_\theta(x) \approx \nabla_x \log p_\sigma(x)$, the score of the data blurred by noise,
$p_\sigma = p_\text{data} * \mathcal{N}(0, \sigma^2 I)$, without ever knowing $p$ itself, and samples by
Langevin dynamics with step $\epsilon$:

$$x_{k+1} = x_k + \tfrac{\epsilon}{2}\, s_\theta(x_k) + \sqrt{\epsilon}\, z_k, \qquad z_k \sim \mathcal{N}(0, I).$$

**dsm** (Vincent 2011) minimises, at one level $\sigma$, with $\tilde x = x + \sigma \epsilon$,

$$\mathcal{L}_\text{DSM} = \tfrac{1}{D}\,\mathbb{E}\,\big\lVert \sigma\, s_\theta(\tilde x) + \epsilon \big\rVert^2,$$

whose minimiser is the score of $p_\sigma$ (the $\sigma^2$ weight makes it about 1 untrained).

**ssm** (Song et al. 2019) minimises score matching's $\mathbb{E}\big[\operatorname{tr} \nabla_x s_\theta + \tfrac12 \lVert s_\theta \rVert^2\big]$
with random directions $v$, $\mathbb{E}[v v^\top] = I$, in place of the trace:

$$\mathcal{L}_\text{SSM} = \mathbb{E}_{x, v}\big[v^\top \nabla_x s_\theta(x)\, v + \tfrac12 (v^\top s_\theta(x))^2\big],$$

and its variance-reduced form (variant *vr*) puts $\tfrac12 \lVert s_\theta(x) \rVert^2$ for the second term. It trains on the data
plus a little noise $\sigma$ (default 0.05) for stability, so it too learns the score of $p_\sigma$.

**ncsn** (Song & Ermon 2019) conditions one network on the level, $s_\theta(x, \sigma)$, over a geometric ladder
$\sigma_1 > \dots > \sigma_L$, and minimises $\tfrac1D \mathbb{E}_{i}\,\mathbb{E} \lVert \sigma_i s_\theta(\tilde x, \sigma_i) + \epsilon \rVert^2$; it samples by
annealed Langevin, $T$ steps at each level with step $\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2$, from wide to narrow.

**What you see**
- `loss` is the model's objective above; `score_error` (where the data's score is known) is the relative Fisher divergence
  $\mathbb{E}\lVert s_\theta - \nabla \log p_\sigma \rVert^2 / \mathbb{E}\lVert \nabla \log p_\sigma \rVert^2$ at the model's levels: 0 is the exact score.
- *Score field*: the learned score on the plane (left) beside the exact score of the data at the same level (right), with their
  relative error over the plane. For ncsn the slider σ picks the level; dsm and ssm learn one level, their own σ, and show it whatever the slider.
- *Sampler*: chains from their start (grey) to samples (purple) over the data (green).
- On digits, *Annealed Langevin, level by level*: a few digits at the end of each noise level, from the wide start to
  $\sigma_L$. The live chain takes 2 steps per level (sampling takes *steps_per_level*), so it is rougher than the samples.
"""

VIEW = FamilyView(
    family="score",
    panels=(
        Panel("score_field", "Learned vs exact score", field, wide=True, data=("points",), needs=("score_field",),
              about=("The learned score s_θ(x, σ) ≈ ∇ log p_σ(x) beside the exact score of the noised data at the "
                     "same σ, on one shade scale; arrows point uphill in density. The learned field is usually "
                     "right near the data and wrong far from it, where few training samples land: compare the arrows far from the data.")),
        Panel("score_chains", "Langevin chains", chains, needs=("chain",),
              about=("Langevin dynamics driven by the learned score, x ← x + (ε/2) s_θ(x) + √ε z, annealed from "
                     "large σ to small. The points should end on the data; if they stall between modes, the "
                     "large-σ levels are not learned well yet.")),
        Panel("score_strip", "Annealed Langevin, level by level", strip, wide=True, data=("images",), needs=("chain",),
              about=("Annealed Langevin on digits: the chain at the end of each noise level, from large σ (left) "
                     "to small (right). Coarse blobs appear at large σ and strokes sharpen as σ shrinks; noise "
                     "left at the end means the small-σ scores are still weak.")),
    ),
    controls=(Control("sigma", "noise level σ of the score field", 0.05, 2.0, 0.01, 0.1,
                      "ncsn draws its score at this σ; dsm and ssm always draw their own σ", data=("points",)),),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples),
    showcase=("ncsn", "eight_gaussians"),
)
