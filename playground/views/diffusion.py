"""Diffusion views: forward noising, reverse trajectories, the learned field, a film strip.

Trace keys (core.models.diffusion): trajectory (S+1, n, D) the reverse chain
from x_T (noise) to x_0 with trajectory_t (S+1,) its times in [0, 1]; forward
(K, n, D) data noised by q(x_t | x_0) at forward_t (K,); for 2D, eps_field
and score_field (G*G, 2) the network's noise prediction and the score
grad log p_t(x) = -eps / sigma_t on the plane grid, at time field_t (1,),
which the view's time slider sets.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from ..draw import fields as F
from . import Control, ExportPicture, FamilyView, Panel

FORWARD_PANELS = 5
FILM_FRAMES = 6
PARTICLES = 100
PATH_POINTS = 60


def _times(tr: dict, key: str, k: int) -> np.ndarray | None:
    t = V.optional(tr, key)
    return t.reshape(-1) if t is not None and t.size == k else None


def _panel_box(box, pts: np.ndarray):
    """bounds, widened (never narrowed) to hold 99% of pts, in steps of 0.5 so frames agree."""
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return box
    lo, hi = np.percentile(pts, [0.5, 99.5], axis=0)
    out = []
    for d, (b0, b1) in enumerate(box):
        out.append((min(b0, np.floor(lo[d] * 2) / 2), max(b1, np.ceil(hi[d] * 2) / 2)))
    r = max(out[0][1] - out[0][0], out[1][1] - out[1][0]) / 2  # square, so the aspect stays equal
    return tuple(((a + b) / 2 - r, (a + b) / 2 + r) if (b - a) / 2 < r else (a, b) for a, b in out)


def _mix(t: float) -> str:
    """REAL at t = 0 fading to grey at t = 1."""
    a = np.array([0x1B, 0x9E, 0x77]), np.array([0x8C, 0x8C, 0x8C])
    c = (1 - t) * a[0] + t * a[1]
    return "#%02x%02x%02x" % tuple(int(v) for v in c)


def _frames_strip(states: np.ndarray, times: np.ndarray | None, idx: np.ndarray, snapshot: dict, ctx: dict,
                  title: str, uirev: str, color_of, label_of):
    """A row of scatter panels, one per index of states (k, n, D)."""
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        k = min(4, states.shape[1])
        imgs = np.stack([D.images(states[i, :k], ctx, "states") for i in idx], 1)  # (k, frames, H, W)
        return D.digits_figure([(D.tile(imgs.reshape(-1, *imgs.shape[2:]), len(idx)),
                                 "columns: " + ", ".join(label_of(i) for i in idx))], title, uirev, lo, hi)
    box = V.bounds_of(ctx, V.data_points(snapshot))
    pts = [V.points2d(states[i], "states") for i in idx]
    layout = V.base_layout(title, uirev, height=V.STRIP_HEIGHT, legend=False)
    suffixes = V.strip_layout(layout, [_panel_box(box, p) for p in pts], [label_of(i) for i in idx])
    data = [V.on_axes(V.scatter(p, color_of(i), label_of(i), 3, 0.65, legend=False), s)
            for p, i, s in zip(pts, idx, suffixes)]
    return V.figure(data, layout)


def forward(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    fw = V.array(tr, "forward", "the forward-noised data")
    t = _times(tr, "forward_t", fw.shape[0])
    idx = V.pick(fw.shape[0], FORWARD_PANELS)
    label = (lambda i: f"t = {t[i]:.2f}") if t is not None else (lambda i: f"stage {i}")
    color = (lambda i: _mix(float(np.clip(t[i], 0, 1)))) if t is not None else (lambda i: V.REAL)
    return _frames_strip(fw, t, idx, snapshot, ctx, "Forward process q(x_t | x₀): data dissolves into noise",
                         uirev, color, label)


def _data_last(traj: np.ndarray, t: np.ndarray | None):
    """Order the chain noise-first, data-last (by its times when given)."""
    if t is not None and t[0] < t[-1]:
        return traj[::-1], t[::-1]
    return traj, t


def reverse(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    traj = V.array(tr, "trajectory", "the reverse trajectories")
    traj, t = _data_last(traj, _times(tr, "trajectory_t", traj.shape[0]))
    if V.is_image(ctx, snapshot):
        what = f"x₀ at the end of the live {traj.shape[0] - 1}-step reverse chain"
        return D.samples_view(snapshot, ctx, uirev, what=what, points=traj[-1])
    steps = V.pick(traj.shape[0], PATH_POINTS)
    k = min(PARTICLES, traj.shape[1])
    paths = np.stack([V.points2d(traj[i, :k], "trajectory") for i in steps], 1)  # (k, steps, 2)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    px, py = V.polylines(paths)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.3)] if x_r is not None else []
    data += [V.lines(px, py, "rgba(123, 50, 148, 0.28)", "paths", width=0.9, legend=True),
             V.scatter(paths[:, 0], V.NEUTRAL, "start: noise x_T", 3, 0.7),
             V.scatter(paths[:, -1], V.GEN, "end: samples x₀", 4.5, 0.9)]
    layout = V.base_layout(f"Reverse process: {k} particles from noise to data", uirev,
                           note=V.hidden_note(paths[:, -1]))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def field(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The learned field is drawn for 2D data; for digits, watch the denoising frames.")
    score = V.optional(tr, "score_field")
    if score is not None:
        vec, what, towards = score, "score ∇ log p_t(x)", ""
    else:
        vec = -V.array(tr, "eps_field", "the learned field")
        what, towards = "−ε_θ(x, t)", "points towards the data; "
    g = V.grid_side(vec, ctx)
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = F.plane_field(vec, box, g, what, "|field|", "|v|", x_r)
    at, drawn, _ = F.field_time(tr, ctx)  # the slider's t, and whether this field is from an earlier one
    note = (f"{drawn}; " if drawn else "") + f"{towards}arrow length ∝ √|field|, shade ∝ |field|"
    layout = V.base_layout(f"Learned {what}{at}", uirev, note=note)
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def film(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    traj = V.array(tr, "trajectory", "the reverse trajectories")
    traj, t = _data_last(traj, _times(tr, "trajectory_t", traj.shape[0]))
    idx = V.pick(traj.shape[0], FILM_FRAMES)
    last = traj.shape[0] - 1
    label = (lambda i: f"t = {t[i]:.2f}") if t is not None else (lambda i: f"step {i}/{last}")
    color = lambda i: V.GEN if i == last else V.NEUTRAL  # noqa: E731
    title = "Denoising film strip: x_T → … → x₀"
    if V.is_image(ctx, snapshot):  # digits: a chain shortened for the live picture (sampling runs the whole one)
        title += f", a {last}-step chain"
    return _frames_strip(traj, t, idx, snapshot, ctx, title, uirev, color, label)


def _export_samples(traces: dict):
    """The reverse chain's last state, whichever end of the trajectory holds the data."""
    s = V.optional(traces, "trajectory")
    if s is None:
        return None
    t = V.optional(traces, "trajectory_t")
    return s[0] if t is not None and t.size == s.shape[0] and t[0] < t[-1] else s[-1]


EQUATIONS = r""""
### Diffusion: noising forwards, denoising backwards

The forward process adds Gaussian noise over $t = 1, \dots, T$ with a schedule $\beta_t$; with
$\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$ it has the closed form (Ho et al. 2020)

$$q(x_t \mid x_0) = \mathcal{N}\big(x_t;\, \sqrt{\bar\alpha_t}\, x_0,\, (1 - \bar\alpha_t) I\big), \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon.$$

A network $\epsilon_\theta(x_t, t)$ learns to predict the noise, with $t \sim \mathcal{U}\{1, \dots, T\}$:

$$\mathcal{L}_\text{simple} = \mathbb{E}_{t, x_0, \epsilon}\Big[\tfrac{1}{D}\lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2\Big],$$

here the **mean** over the $D$ dimensions (Ho et al. write the sum), so an untrained $\epsilon_\theta \approx 0$ scores about 1,

which is denoising score matching, since the score is $\nabla_x \log p_t(x) \approx -\epsilon_\theta(x, t) / \sqrt{1 - \bar\alpha_t}$.
The reverse process starts from $x_T \sim \mathcal{N}(0, I)$ and steps

$$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \epsilon_\theta(x_t, t)\Big) + \sigma_t\, z, \qquad z \sim \mathcal{N}(0, I),$$

where $\sigma_t$ is the standard deviation of the step's noise: $\sigma_t^2 = \beta_t$ (the setting *variance* = beta) or the
posterior's $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t$ (beta_tilde), and $\sigma_1 = 0$: the last step adds no noise.

**What you see**
- `loss` and `mse` are $\mathcal{L}_\text{simple}$ above, a mean over dimensions.
- *Forward process*: the data at a few times $t$, dissolving into $\mathcal{N}(0, I)$.
- *Reverse process*: particles following the reverse chain from noise (grey) to samples (purple).
- *Learned field*: the score $\nabla_x \log p_t(x)$ (or $-\epsilon_\theta$) on the plane at the chosen $t$; arrows point towards the data.
- *Denoising film strip*: the same particles at a few steps of the reverse chain.
- On digits the network is a small U-Net on pixels rescaled to $[-1, 1]$; each step clips the predicted $\hat x_0$ to $[-1, 1]$.
  The live pictures run the sampler shortened to 20 steps for 8 digits (the respaced chain, Nichol & Dhariwal 2021); sampling
  runs all $T$, with the weights' moving average.
"""

VIEW = FamilyView(
    family="diffusion",
    panels=(
        Panel("diff_forward", "Forward process: data to noise", forward, wide=True, needs=("forward",),
              about=("The fixed forward process q(x_t | x₀): the data with Gaussian noise added, at a few times "
                     "t. Nothing here is learned; it is what the network learns to undo. By t = 1 the data should "
                     "look like N(0, I).")),
        Panel("diff_reverse", "Reverse process: noise to data", reverse, needs=("trajectory",),
              about=("Particles following the learned reverse chain from pure noise x_T (grey) to samples x₀ "
                     "(purple), with their paths. Early in training the end points are a blur; watch them settle "
                     "onto the data (green) as the noise prediction improves.")),
        Panel("diff_field", "Learned field at time t", field, data=("points",), needs=("score_field",),
              about=("The learned score ∇ log p_t(x) (or −ε_θ) at the diffusion time t the slider sets: arrows "
                     "point to where the noised data is denser. At small t the field is sharp and points at the "
                     "data; at large t it is smooth and points at the centre. Move the slider to see both.")),
        Panel("diff_film", "Denoising, frame by frame", film, wide=True, needs=("trajectory",),
              about=("The same particles at a few steps of the reverse chain, from noise (left) to samples "
                     "(right). Structure appears late: most of the chain removes coarse noise, and the last steps "
                     "place the points: watch the shape of the data appear only in the last frames.")),
    ),
    controls=(Control("t", "diffusion time t of the field panels", 0.01, 1.0, 0.01, 0.1,
                      "0 is data, 1 is noise; the field is recomputed from the newest weights", data=("points",)),),
    equations=EQUATIONS.strip(),
    export=ExportPicture(_export_samples),
    showcase=("ddpm", "swiss_roll"),
)
