"""Continuous-time flow views: the velocity field at a time t, particle paths and their straightness.

Trace keys (core.models.continuous): paths (S+1, m, D) particles carried by the ODE
from fixed noise at t = 1 (first) to samples at t = 0 (last), paths_t (S+1,) their
times; straightness (1,) = mean path length over chord, less one; for 2D,
velocity_field (G*G, 2) = v_theta(x, t) on the plane grid at field_t (1,), which the
view's time slider (the shared control "t") sets.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from ..draw import fields as F
from . import Control, ExportPicture, FamilyView, Panel

PARTICLES = 100
FILM_FRAMES = 6


def _straightness(tr: dict) -> float | None:
    s = V.optional(tr, "straightness")
    if s is None or s.size != 1 or not np.isfinite(s).all():
        return None
    return float(s.reshape(-1)[0])


def _paths_noise_first(tr: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """The paths ordered noise (t = 1) first, samples (t = 0) last, by their times when given."""
    paths = V.array(tr, "paths", "the particle paths")
    t = V.optional(tr, "paths_t")
    t = t.reshape(-1) if t is not None and t.size == paths.shape[0] else None
    if t is not None and t[0] < t[-1]:
        return paths[::-1], t[::-1]
    return paths, t


def field(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The velocity field is drawn for 2D data; for digits, watch the frames of the flow.")
    vec = -V.array(tr, "velocity_field", "the velocity field")  # sampling runs t downwards: it moves along -v
    g = V.grid_side(vec, ctx)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = F.plane_field(vec, box, g, "−v_θ(x, t)", "|v|", "|v|", x_r)
    at, drawn, _ = F.field_time(tr, ctx)  # the slider's t, and whether this field is from an earlier one
    layout = V.base_layout(f"Learned velocity{at}", uirev, note=(f"{drawn}; " if drawn else "") +
                           "arrows: −v_θ, where sampling moves; length ∝ √|v|, shade ∝ |v|")
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def paths(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    traj, _ = _paths_noise_first(tr)
    if V.is_image(ctx, snapshot):
        return D.samples_view(snapshot, ctx, uirev, what=f"x₀ at the end of the live {traj.shape[0] - 1}-step ODE solve",
                              points=traj[-1])
    k = min(PARTICLES, traj.shape[1])
    pts = np.stack([V.points2d(traj[i, :k], "paths") for i in range(traj.shape[0])], 1)  # (k, S+1, 2)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    px, py = V.polylines(pts)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.3)] if x_r is not None else []
    data += [V.lines(px, py, "rgba(123, 50, 148, 0.28)", "paths", width=0.9, legend=True),
             V.scatter(pts[:, 0], V.NEUTRAL, "start: noise x₁", 3, 0.7),
             V.scatter(pts[:, -1], V.GEN, "end: samples x₀", 4.5, 0.9)]
    s = _straightness(tr)
    title = f"{k} particles, noise to data" + (f"; straightness {s:.3f}" if s is not None else "")
    layout = V.base_layout(title, uirev, note="straightness: mean path length / |x₀ − x₁| − 1 (0: straight)"
                           + V.hidden_note(pts[:, -1]))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def film(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    traj, t = _paths_noise_first(tr)
    idx = V.pick(traj.shape[0], FILM_FRAMES)
    last = traj.shape[0] - 1
    label = (lambda i: f"t = {t[i]:.2f}") if t is not None else (lambda i: f"step {i}/{last}")
    title = "The flow, frame by frame: x₁ → … → x₀"
    if V.is_image(ctx, snapshot):  # digits: a solve shortened for the live picture
        title += f", {last} solver steps"
        lo, hi = D.pixel_range(snapshot)
        k = min(4, traj.shape[1])
        imgs = np.stack([D.images(traj[i, :k], ctx, "paths") for i in idx], 1)  # (k, frames, H, W)
        return D.digits_figure([(D.tile(imgs.reshape(-1, *imgs.shape[2:]), len(idx)),
                                 "columns: " + ", ".join(label(i) for i in idx))], title, uirev, lo, hi)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    pts = [V.points2d(traj[i], "paths") for i in idx]
    layout = V.base_layout(title, uirev, height=V.STRIP_HEIGHT, legend=False)
    boxes = [V.union_box(box) for _ in idx]  # early frames fill the base's extent
    suffixes = V.strip_layout(layout, boxes, [label(i) for i in idx])
    data = [V.on_axes(V.scatter(p, V.GEN if i == last else V.NEUTRAL, label(i), 3, 0.65, legend=False), s)
            for p, i, s in zip(pts, idx, suffixes)]
    return V.figure(data, layout)


def _export_samples(traces: dict):
    try:
        return _paths_noise_first(traces)[0][-1]
    except V.Unavailable:
        return None


EQUATIONS = r"""
### Flow matching and continuous normalizing flows

Both models are one ordinary differential equation $\frac{dx}{dt} = v_\theta(x, t)$ for $t \in [0, 1]$, here with
$t = 0$ the **data** and $t = 1$ the base $\mathcal{N}(0, I)$. Sampling draws $x_1 \sim \mathcal{N}(0, I)$ and integrates
from $t = 1$ down to $t = 0$ (RK4 or Euler, *steps* steps). The density follows from the instantaneous change of
variables (Chen et al. 2018), integrating from $x_0 = x$ up to $t = 1$:

$$\log p(x) = \log \mathcal{N}(x_1; 0, I) + \int_0^1 \nabla \cdot v_\theta(x_t, t)\, dt.$$

**Flow matching** (Lipman et al. 2023) pairs a data point $x_0$ with noise $x_1$, joins them by the straight line
$x_t = (1 - t)\, x_0 + t\, x_1$, and regresses its velocity, with $t \sim \mathcal{U}[0, 1]$:

$$\mathcal{L}_\text{CFM} = \mathbb{E}_{t, (x_0, x_1)}\Big[\tfrac{1}{D}\lVert v_\theta(x_t, t) - (x_1 - x_0) \rVert^2\Big].$$

The pairs come from the *coupling*: independent, or the exact optimal transport of the minibatch (Tong et al. 2023),
the permutation $\sigma$ minimising $\sum_i \lVert x_0^i - x_1^{\sigma(i)} \rVert^2$, whose lines do not cross.
*Reflow* (Liu et al. 2023) trains on pairs $(\mathrm{ODE}(x_1), x_1)$ of the model's own flow, renewed every $N$ steps,
which straightens the paths while keeping the samples' law.

**CNF** (FFJORD, Grathwohl et al. 2019) minimises $-\mathbb{E}_\text{data} \log p(x)$ through the solver itself, with
Hutchinson's estimate $\nabla \cdot v = \mathbb{E}_\varepsilon[\varepsilon^\top \tfrac{\partial v}{\partial x} \varepsilon]$
(one Rademacher probe per point) and a kinetic penalty $\lambda \int_0^1 \lVert v_\theta \rVert^2 dt$ (Finlay et al. 2020).

**What you see**
- `loss`: $\mathcal{L}_\text{CFM}$ for flow matching (also `cfm`; `pair_cost` is the mean $\lVert x_1 - x_0 \rVert^2$ of the pairs, lower under OT);
  for the CNF, `loss` = `nll` + $\lambda$ `kinetic`, where `nll` is $-\log p$ (nats per point) and `kinetic` is $\int_0^1 \lVert v \rVert^2 dt$.
- *Velocity field*: $-v_\theta(x, t)$ on the plane at the slider's $t$, the direction a sample moves as $t$ falls.
- *Particle paths*: 100 particles from fixed noise to samples, with their straightness
  $\frac{1}{m}\sum_i \frac{L_i}{\lVert x_0^i - x_1^i \rVert} - 1$, $L_i$ the path's length: 0 when every path is straight.
- *Frame by frame*: the same particles at a few times of the solve.
- On digits flow matching's $v_\theta$ is a small U-Net on pixels rescaled to $[-1, 1]$ (its density adds $D \log 2$ for the
  rescaling); the live pictures solve the ODE by 10 Euler steps for 8 digits, sampling by the configured solver and steps.
"""

VIEW = FamilyView(
    family="continuous",
    panels=(
        Panel("cont_field", "Velocity field at time t", field, data=("points",), needs=("velocity_field",),
              about=("The learned velocity v_θ(x, t) at the slider's time t: the direction the ODE dx/dt = v "
                     "carries particles. Near t = 1 (noise) the field is smooth and points broadly at the data; "
                     "near t = 0 it sharpens onto the data's shape. Move the slider to compare.")),
        Panel("cont_paths", "Particle paths: noise to data", paths, needs=("paths",),
              about=("Particles carried from noise to data by solving the ODE with the learned velocity. Flow "
                     "matching regresses onto straight lines from noise to data, so paths should be close to "
                     "straight (straightness near 0); they bend where many straight targets cross and average "
                     "out.")),
        Panel("cont_film", "The flow, frame by frame", film, wide=True, needs=("paths",),
              about=("The same particles at a few times of the ODE solve, from noise (left) to samples (right). "
                     "Watch the cloud morph continuously; once trained, the last frame matches the data.")),
    ),
    controls=(Control("t", "diffusion time t of the field panels", 0.01, 1.0, 0.01, 0.1,
                      "0 is data, 1 is noise; the field is recomputed from the newest weights", data=("points",)),),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples),
    showcase=("flow_matching", "eight_gaussians"),
)
