"""Score SDE views: the learned score beside the exact one, the reverse paths, the forward SDE.

Trace keys (core.models.sde): trajectory (S+1, n, D) the chosen sampler's path from
x_1 ~ prior to samples at t_min, with trajectory_t (S+1,) its times from 1 down;
forward (K, n, D) data noised by p_t(x | x_0) at forward_t (K,); field_t (1,) the
time of the field (the view's slider "t", shared with the diffusion view) and
field_level (2,) its (alpha_t, sigma_t); for 2D, score_field (G*G, 2) the learned
score s_theta(x, t) on the plane grid. The page adds snapshot["true_score_field"]
(G*G, 2), the data's exact score at field_level, where the dataset has one.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from ..draw import fields as F
from . import ExportPicture, FamilyView, Panel
from . import diffusion as diff

def _level(tr: dict, ctx: dict) -> tuple[str, str]:
    """(" at t = 0.30 (α_t = 0.8, σ_t = 0.6)", note): the slider's t, with the noise level of the field on
    show when it was drawn there; otherwise the note says at which t it was drawn."""
    out, drawn, stale = F.field_time(tr, ctx)
    level = V.optional(tr, "field_level")
    if not stale and level is not None and level.size == 2 and np.isfinite(level).all():
        a, s = level.reshape(-1)
        out += f" (α_t = {a:.3g}, σ_t = {s:.3g})"
    return out, drawn


def field(snapshot: dict, ctx: dict, uirev: str):
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The score field is drawn for 2D data; for digits, watch the reverse process.")
    at, drawn = _level(snapshot.get("traces", {}), ctx)
    return F.score_beside_exact(snapshot, ctx, uirev, f"Score{at}", "learned s_θ(x, t)", "exact ∇ log p_t(x)",
                                metric_where="the noised data", first_note=drawn)


def reverse(snapshot: dict, ctx: dict, uirev: str):
    """The chosen sampler's paths from x_1 ~ prior (grey) to samples (purple)."""
    tr = snapshot.get("traces", {})
    traj = V.array(tr, "trajectory", "the reverse paths")
    traj, t = diff._data_last(traj, diff._times(tr, "trajectory_t", traj.shape[0]))
    if V.is_image(ctx, snapshot):
        return D.samples_view(snapshot, ctx, uirev, what="x at the end of the reverse paths", points=traj[-1])
    steps = V.pick(traj.shape[0], diff.PATH_POINTS)
    k = min(diff.PARTICLES, traj.shape[1])
    paths = np.stack([V.points2d(traj[i, :k], "trajectory") for i in steps], 1)  # (k, steps, 2)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    px, py = V.polylines(paths)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.3)] if x_r is not None else []
    data += [V.lines(px, py, "rgba(123, 50, 148, 0.28)", "paths", width=0.9, legend=True),
             V.scatter(paths[:, 0], V.NEUTRAL, "start: prior x₁", 3, 0.7),
             V.scatter(paths[:, -1], V.GEN, "end: samples", 4.5, 0.9)]
    span = f", t = {t[0]:.2f} → {t[-1]:.3g}" if t is not None and np.isfinite(t).all() else ""
    layout = V.base_layout(f"Reverse time: {k} particles in {traj.shape[0] - 1} steps{span}", uirev,
                           note=V.hidden_note(paths[:, -1]))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def forward(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    fw = V.array(tr, "forward", "the forward-noised data")
    t = diff._times(tr, "forward_t", fw.shape[0])
    idx = V.pick(fw.shape[0], diff.FORWARD_PANELS)
    label = (lambda i: f"t = {t[i]:.2f}") if t is not None else (lambda i: f"stage {i}")
    color = (lambda i: diff._mix(float(np.clip(t[i], 0, 1)))) if t is not None else (lambda i: V.REAL)
    return diff._frames_strip(fw, t, idx, snapshot, ctx, "Forward SDE: p_t(x | x₀) = N(α_t x₀, σ_t² I), data to noise",
                              uirev, color, label)


EQUATIONS = r"""
### Score SDEs: noise by a stochastic differential equation, reverse it with the score

Data are noised on $t \in [0, 1]$ ($t = 0$ the data) by a forward SDE (Song et al. 2021)

$$\mathrm{d}x = f(x, t)\,\mathrm{d}t + g(t)\,\mathrm{d}w, \qquad p_t(x \mid x_0) = \mathcal{N}\big(x;\, \alpha_t x_0,\, \sigma_t^2 I\big).$$

- **VP** (variance preserving, DDPM's): $f = -\tfrac12 \beta(t)\, x$, $g = \sqrt{\beta(t)}$, $\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)$, so $\alpha_t = e^{-\frac12 \int_0^t \beta}$ and $\sigma_t^2 = 1 - \alpha_t^2$.
- **VE** (variance exploding, NCSN's): $f = 0$, $g = \sqrt{\mathrm{d}\sigma(t)^2 / \mathrm{d}t}$ with $\sigma(t) = \sigma_\min (\sigma_\max / \sigma_\min)^t$, so $\alpha_t = 1$ and $\sigma_t^2 = \sigma(t)^2 - \sigma_\min^2$.

Run backwards from the prior, the **reverse-time SDE** needs only the score $\nabla_x \log p_t(x)$:

$$\mathrm{d}x = \big[f(x, t) - g(t)^2\, \nabla_x \log p_t(x)\big]\,\mathrm{d}t + g(t)\,\mathrm{d}\bar w,$$

and the **probability-flow ODE** has the same marginals $p_t$ with no noise at all (its density is the model's `log_prob`):

$$\frac{\mathrm{d}x}{\mathrm{d}t} = f(x, t) - \tfrac12\, g(t)^2\, \nabla_x \log p_t(x).$$

A network $s_\theta(x, t) = -\epsilon_\theta(x, t) / \sigma_t$ learns the score by **denoising score matching** with weight $\lambda(t) = \sigma_t^2$, $t \sim \mathcal{U}(t_\min, 1)$, $x_t = \alpha_t x_0 + \sigma_t \epsilon$:

$$\mathcal{L}(\theta) = \mathbb{E}_{t, x_0, \epsilon}\Big[\tfrac{1}{D}\, \sigma_t^2\, \big\lVert s_\theta(x_t, t) + \epsilon / \sigma_t \big\rVert^2\Big] = \mathbb{E}\Big[\tfrac{1}{D} \lVert \epsilon_\theta(x_t, t) - \epsilon \rVert^2\Big],$$

minimised by the network alone; an untrained $\epsilon_\theta \approx 0$ scores about 1.

**Samplers** (setting *sampler*): `em` is Euler–Maruyama on the reverse SDE; `pc` is predictor–corrector: at each time, Langevin corrector steps $x \leftarrow x + \varepsilon s_\theta + \sqrt{2\varepsilon}\, z$ with $\varepsilon = 2 a\, (r \lVert z \rVert / \lVert s_\theta \rVert)^2$ for the signal-to-noise ratio $r$ (*snr*), then a reverse-diffusion predictor step; `ode` solves the probability-flow ODE by RK4.

**What you see**
- `loss` and `dsm` are $\mathcal{L}$ above; `score_error` (metrics) is $\mathbb{E}\lVert s_\theta - \nabla \log p_t \rVert^2 / \mathbb{E}\lVert \nabla \log p_t \rVert^2$ over noised data at a few levels $(\alpha_t, \sigma_t)$.
- *Score at t*: the learned score beside the data's exact score at the slider's $t$, with their relative error over the plane; arrows point towards the data.
- *Reverse paths*: particles carried by the chosen sampler from the prior (grey) to samples (purple).
- *Forward SDE*: the data at a few times $t$, dissolving into the prior.
"""

VIEW = FamilyView(
    family="sde",
    panels=(
        Panel("sde_field", "Learned vs exact score at time t", field, wide=True, data=("points",), needs=("score_field",),
              about=("The learned score at the time t the slider sets beside the exact score of the data diffused "
                     "to time t. At small t it is sharp around the data; at large t it is nearly the prior's. The relative error in the note shows how close the network is.")),
        Panel("sde_reverse", "Reverse paths: prior to data", reverse, needs=("trajectory",),
              about=("Particles following the reverse-time SDE dx = [f − g² ∇ log p_t(x)] dt + g dw̄ with the "
                     "learned score, from the prior to the data. Watch the end points (purple) settle onto the "
                     "data (green).")),
        Panel("sde_forward", "Forward SDE: data to noise", forward, wide=True, needs=("forward",),
              about=("The forward SDE diffusing the data towards the prior, at a few times t. It is fixed, not "
                     "learned: it defines the scores the network has to learn. By t = 1 the cloud should look like the prior.")),
    ),
    controls=tuple(c for c in diff.VIEW.controls if c.name == "t"),  # one slider serves both views
    equations=EQUATIONS.strip(),
    export=ExportPicture(diff._export_samples),
    showcase=("sde", "swiss_roll"),
)
