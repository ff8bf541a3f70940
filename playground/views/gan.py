"""GAN views in the spirit of GAN Lab (Kahng et al. 2019).

On digits (DCGAN's networks) the traces are samples (m, D) of a fixed set of noise vectors, the
noise grid and its images, and critic_real / critic_fake (m,): D on the data shown and on the
samples; the modes panel draws the class histogram of generated digits from the run's metric
records (snapshot["metric_history"], each record's `classes`: 10 fractions from the project's
digit classifier) instead of counting samples near known modes.

Trace keys (core.models.gan): samples (n, D); noise_grid (M*M, 2); warped_grid (M*M, D)
the generator applied to the noise grid; critic_grad (n, D) dD/dx at the
samples; for 2D, critic (G*G,) the raw discriminator output and, for gan/nsgan,
critic_prob (G*G,) = sigmoid(critic). CycleGAN adds source (n, 2) points a of domain A, back (n, 2)
F(b) of the data, round_trip (n, 2) F(G(a)) and cycle_error (); its samples are G(a) and its critic
is D_B. BiGAN adds codes (n, L) E(x) of the data, prior (n, L) draws of z and reconstructions
(n, D) G(E(x)). Each model is shown the panels its traces feed (Panel.needs).

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
        return _digits_and_scores(snapshot, ctx, uirev, samples)
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


def _mean_score(tr: dict, key: str) -> float | None:
    v = V.optional(tr, key)
    return None if v is None or not np.isfinite(v).any() else float(np.nanmean(v))


def _digits_and_scores(snapshot: dict, ctx: dict, uirev: str, samples: np.ndarray):
    """Data digits beside G(z) of the fixed noise (the same z every frame), with D's mean score on each."""
    tr = snapshot.get("traces", {})
    lo, hi = D.pixel_range(snapshot)
    d_real, d_fake = _mean_score(tr, "critic_real"), _mean_score(tr, "critic_fake")
    label = "G(z)" + ("" if d_fake is None else f": mean D {d_fake:.3g}")
    panels = [(D.tile(D.images(samples[:64], ctx, "samples"), 8), label)]
    real = snapshot.get("data")
    if isinstance(real, np.ndarray) and real.size:
        k = min(64, real.shape[0])
        panels.insert(0, (D.tile(D.images(real[:k].astype(np.float32), ctx, "data"), 8),
                          "data" + ("" if d_real is None else f": mean D {d_real:.3g}")))
    title = f"Real vs generated digits (the same z every step), step {snapshot.get('step', 0)}"
    return D.digits_figure(panels, title, uirev, lo, hi)


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
        raise V.Unavailable("The optimal discriminator D* = p_data / (p_data + p_g) is drawn for 2D datasets "
                            "only: on digits neither density has a formula to draw it from.")
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
    panels.append((d_star, "optimal D*(x)"))
    bounded = prob is not None
    title = "Learned vs optimal discriminator" if bounded else "Optimal discriminator (this critic is unbounded)"
    note = f"D* = p_data / (p_data + p_g), p_g a Gaussian KDE of {x_g.shape[0]} samples, bandwidth h = {h:.2f}"
    layout = V.base_layout(title, uirev, legend=False, note=note)
    suffixes = V.strip_layout(layout, [box] * len(panels), [label for _, label in panels], ticks=True)
    data = [V.on_axes(V.heatmap(z, box, V.CRITIC_SCALE, 0, 1, label, hover="D"), s)
            for (z, label), s in zip(panels, suffixes)]
    return V.figure(data, layout)


def modes(snapshot: dict, ctx: dict, uirev: str):
    if V.is_image(ctx, snapshot):
        return class_histogram(snapshot, uirev)
    tr = snapshot.get("traces", {})
    centres = ctx.get("modes")
    if centres is None:
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


# ---- digits: the classifier's class histogram, over the run ------------------------------
CLASSES = 10  # digits 0-9, as the project's classifier names them


def _fractions(value) -> np.ndarray | None:
    """A record's `classes` as 10 finite fractions, or None."""
    try:
        f = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return f if f.shape == (CLASSES,) and np.isfinite(f).all() else None


def class_records(snapshot: dict) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), fractions (T, 10)) from the metric records that hold a class histogram, in step order;
    the newest metrics (snapshot["metrics"]) count as one more record when they are newer."""
    records = snapshot.get("metric_history") if isinstance(snapshot.get("metric_history"), list) else []
    latest = snapshot.get("metrics")
    if isinstance(latest, dict):
        records = [*records, {"step": snapshot.get("step", 0), **latest}]
    rows = {}
    for r in records:
        f = _fractions(r.get("classes")) if isinstance(r, dict) else None
        step = r.get("step") if isinstance(r, dict) else None
        if f is not None and isinstance(step, (int, float, np.integer, np.floating)) and np.isfinite(step):
            rows.setdefault(float(step), f)  # a record of the run first, the newest metrics only if newer
    steps = np.array(sorted(rows), dtype=np.float64)
    return steps, np.array([rows[s] for s in steps], dtype=np.float64).reshape(-1, CLASSES)


def class_histogram(snapshot: dict, uirev: str):
    """Mode collapse on digits: the class fractions of generated digits over the run (stacked), and the
    latest beside the uniform 1/10; a class below COVERAGE_FRACTION of its share is drawn in red."""
    steps, fractions = class_records(snapshot)
    uniform = 1.0 / CLASSES
    ks = np.arange(CLASSES)
    if not len(steps):
        latest, starved = np.zeros(CLASSES), np.zeros(CLASSES, dtype=bool)
        title = "Generated digits per class"
        note = ("no class histogram yet: the digit classifier scores generated digits at each metrics "
                "evaluation on MNIST, and each record adds a column here")
    else:
        latest = fractions[-1]
        starved = latest < COVERAGE_FRACTION * uniform
        title = f"Generated digits per class: {int((~starved).sum())} of {CLASSES} covered"
        note = (f"class of each generated digit by the project's classifier, over {len(steps)} evaluations; "
                f"covered: at least {COVERAGE_FRACTION:.0%} of a uniform share")
    layout = V.base_layout(title, uirev, note=note)
    layout["xaxis"] = dict(domain=[0.0, 0.5], anchor="y", title=dict(text="step", standoff=4), showgrid=False)
    layout["yaxis"] = dict(domain=[0.0, 1.0], anchor="x", range=[0, 1], title=dict(text="fraction", standoff=4))
    layout["xaxis2"] = dict(domain=[0.74, 1.0], anchor="y2", range=[-0.5, CLASSES - 0.5], tickvals=list(ks),
                            title=dict(text="digit, latest", standoff=4), showgrid=False)
    layout["yaxis2"] = dict(domain=[0.0, 1.0], anchor="x2",
                            range=[0, max(float(latest.max()) * 1.1, 2.5 * uniform)])
    layout["bargap"] = 0.15
    mode = "lines" if len(steps) > 1 else "markers"
    colors = [V.LABEL_COLORS[k] for k in ks]  # the bars' colours name the bands of the stack
    data = [dict(type="scatter", x=steps, y=fractions[:, k], mode=mode, stackgroup="classes", name=f"digit {k}",
                 line=dict(width=0.5, color=colors[k]), fillcolor=colors[k], showlegend=False,
                 hovertemplate=f"digit {k}" + ": %{y:.1%} at step %{x}<extra></extra>") for k in ks]
    data.append(V.on_axes(dict(type="bar", x=ks, y=latest, marker=dict(color=colors), name="latest", showlegend=False,
                               hovertemplate="digit %{x}: %{y:.1%}<extra></extra>"), "2"))
    data.append(V.on_axes(dict(type="scatter", mode="markers", x=ks[starved], y=np.zeros(int(starved.sum())),
                               name="not covered", marker=dict(color=UNCOVERED, symbol="x", size=9),
                               hovertemplate="digit %{x}: not covered<extra></extra>"), "2"))
    data.append(V.on_axes(V.lines(np.array([-0.5, CLASSES - 0.5]), np.array([uniform, uniform]), V.REAL,
                                  "uniform: 1/10 each", width=1.5, legend=True, dash="dash"), "2"))
    return V.figure(data, layout)


# ---- CycleGAN: the two maps and the round trip -----------------------------------------
LINKS = 60  # lines drawn from a point to its image


def _links(start: np.ndarray, end: np.ndarray, name: str) -> dict:
    k = min(LINKS, start.shape[0], end.shape[0])
    lx, ly = V.polylines(np.stack([start[:k], end[:k]], 1))
    return V.lines(lx, ly, "rgba(120,120,120,0.45)", name, width=0.8)


def _covering(box, *points: np.ndarray):
    """box widened to hold the finite points (with a margin), for two domains on one plane."""
    pts = np.concatenate([p[np.isfinite(p).all(1)] for p in points])
    if not len(pts):
        return box
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-3)
    return tuple((min(b0, float(l - m)), max(b1, float(h + m))) for (b0, b1), l, h, m in zip(box, lo, hi, pad))


def cycle(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    if V.is_image(ctx, snapshot):
        raise V.Unavailable("The CycleGAN maps are drawn for 2D datasets.")
    a = V.points2d(V.array(tr, "source", "the source points a"), "source")
    g_a = V.points2d(V.array(tr, "samples", "the translated points G(a)"), "G(a)")
    back = V.points2d(V.array(tr, "back", "the points F(b)"), "F(b)")
    round_trip = V.points2d(V.array(tr, "round_trip", "the round trip F(G(a))"), "F(G(a))")
    b = V.data_points(snapshot)
    if b is None:
        raise V.Unavailable("The map B → A starts from the data, and no data came with this snapshot.")
    box = _covering(V.bounds_of(ctx, b), a, g_a, back, round_trip)
    err = V.optional(tr, "cycle_error")
    note = f"cycle error E|F(G(a)) − a|₁ = {float(err.reshape(-1)[0]):.3g}" if err is not None else ""
    layout = V.base_layout("CycleGAN: G maps A to B, F maps B to A, and F(G(a)) should return to a", uirev,
                           height=V.STRIP_HEIGHT + 60, note=note)
    labels = ["A → B: a and G(a)", "B → A: b and F(b)", "round trip: a and F(G(a))"]
    s1, s2, s3 = V.strip_layout(layout, [box] * 3, labels)
    data = [V.on_axes(t, s) for t, s in [
        (V.scatter(b, V.REAL, "B (data)", 3, 0.25), s1), (_links(a, g_a, "a → G(a)"), s1),
        (V.scatter(a, V.BASE, "a ~ A", 3, 0.6), s1), (V.scatter(g_a, V.GEN, "G(a)", 3, 0.8), s1),
        (V.scatter(a, V.BASE, "A", 3, 0.25, legend=False), s2), (_links(b, back, "b → F(b)"), s2),
        (V.scatter(b, V.REAL, "b ~ B", 3, 0.6, legend=False), s2), (V.scatter(back, V.GEN, "F(b)", 3, 0.8, symbol="x"), s2),
        (_links(a, round_trip, "a → F(G(a))"), s3), (V.scatter(a, V.BASE, "a", 3, 0.6, legend=False), s3),
        (V.scatter(round_trip, V.GEN, "F(G(a))", 3, 0.8, symbol="diamond"), s3)]]
    return V.figure(data, layout)


# ---- BiGAN: the encoder's codes and the reconstructions -------------------------------
def _labels(ctx: dict, n: int) -> np.ndarray | None:
    lab = ctx.get("labels") if isinstance(ctx, dict) else None
    if lab is None:
        return None
    lab = np.asarray(lab).reshape(-1)
    return lab.astype(int) if lab.shape[0] == n else None


def encoder(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    codes = V.array(tr, "codes", "the encoder's codes E(x)")
    codes = codes.reshape(codes.shape[0], -1)
    prior = V.array(tr, "prior", "prior draws z").reshape(codes.shape[0], -1)
    recon = V.array(tr, "reconstructions", "the reconstructions G(E(x))")
    k = codes.shape[1]
    pad = (lambda c: np.concatenate([c, np.zeros_like(c)], 1)) if k == 1 else (lambda c: c[:, :2])
    e_x, z = pad(codes), pad(prior)
    dims = "" if k == 2 else (" (1 dim)" if k == 1 else f" (first 2 of {k} dims)")
    latent = ((-3.5, 3.5), (-3.5, 3.5))
    if V.is_image(ctx, snapshot):
        real = snapshot.get("data")
        n = min(10, recon.shape[0])
        if not isinstance(real, np.ndarray) or real.shape[0] < n:
            raise V.Unavailable("Reconstructions are shown beside the data, and no data came with this snapshot.")
        lo, hi = D.pixel_range(snapshot)
        both = np.concatenate([D.images(real[:n].astype(np.float32), ctx, "data"), D.images(recon[:n], ctx, "recon")])
        return D.digits_figure([(D.tile(both, n), "top: data x; bottom: G(E(x))")], "BiGAN reconstructions",
                               uirev, lo, hi)
    x = V.data_points(snapshot)
    r = V.points2d(recon, "the reconstructions")
    box = V.bounds_of(ctx, x)
    layout = V.base_layout("BiGAN: the encoder's codes E(x) against the prior, and x back from G(E(x))", uirev,
                           height=V.STRIP_HEIGHT + 60)
    s1, s2 = V.strip_layout(layout, [latent, box], [f"latent: E(x) vs z ~ N(0, I){dims}", "data: x and G(E(x))"],
                            ticks=True)
    data = [V.on_axes(V.circles((1.0, 2.0), name="prior N(0, I): 1σ, 2σ"), s1),
            V.on_axes(V.scatter(z, V.NEUTRAL, "z ~ prior", 3, 0.35), s1)]
    labels = _labels(ctx, e_x.shape[0])
    if labels is None:
        data.append(V.on_axes(V.scatter(e_x, V.REAL, "E(x) of data", 3, 0.75), s1))
    else:
        for lab in np.unique(labels)[:20]:
            color = V.NEUTRAL if lab < 0 else V.LABEL_COLORS[lab % len(V.LABEL_COLORS)]
            name = "unlabelled" if lab < 0 else f"E(x), {ctx.get('labels_name') or 'label'} {lab}"
            data.append(V.on_axes(V.scatter(e_x[labels == lab], color, name, 3, 0.8), s1))
    if x is not None and x.shape[0] == r.shape[0]:
        data += [V.on_axes(_links(x, r, "x → G(E(x))"), s2), V.on_axes(V.scatter(x, V.REAL, "data x", 3, 0.5), s2)]
    data.append(V.on_axes(V.scatter(r, V.GEN, "G(E(x))", 3, 0.8), s2))
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

**CycleGAN** (Zhu et al. 2017) translates between two unpaired point sets: $A$ (the model's `source` setting) and
$B$ (the chosen dataset). Two maps $G: A \to B$ and $F: B \to A$ face two least-squares discriminators. $D_B$ minimises
$\tfrac12\mathbb{E}_b(D_B(b) - 1)^2 + \tfrac12\mathbb{E}_a D_B(G(a))^2$ (`loss_D_B`; $D_A$ alike, `loss_D_A`), and $G, F$
together minimise (`loss_G`)

$$\mathbb{E}_a\big(D_B(G(a)) - 1\big)^2 + \mathbb{E}_b\big(D_A(F(b)) - 1\big)^2 + \lambda\,\big(\mathbb{E}_a\lVert F(G(a)) - a\rVert_1 + \mathbb{E}_b\lVert G(F(b)) - b\rVert_1\big),$$

the last bracket being the cycle-consistency loss (`cycle`): each map must be undone by the other. Its samples are
$G(a)$, so its metrics compare $G(A)$ with $B$.

**BiGAN / ALI** (Donahue et al. 2017; Dumoulin et al. 2017) adds an encoder $E$ and shows the discriminator pairs:
real $(x, E(x))$ against fake $(G(z), z)$,

$$\min_{G, E} \max_D \; \mathbb{E}_x\big[\log D(x, E(x))\big] + \mathbb{E}_z\big[\log\big(1 - D(G(z), z)\big)\big].$$

$D$ minimises the negative (`loss_D`), $G$ and $E$ the other side (`loss_GE`). At the optimal $D$ the value is
$2\,\mathrm{JS}(P_{EX} \,\|\, P_{GZ}) - \log 4$, zero divergence only when the joint laws agree, i.e. $E = G^{-1}$: the
encoder learns to invert the generator without ever seeing a pair $(G(z), z)$ as its target.

**What you see**
- `loss_D` is the discriminator's loss (its side of the game), `loss_G` the generator's; they are named by phase.
- *Discriminator*: the background is $D(x)$ (green: "real", purple: "fake"); arrows are $\nabla_x D$ at generated samples, the direction the generator is pulled.
- *Generator*: a regular grid of noise $z$ and its image $G(z)$: how the generator folds and stretches noise.
- *Learned vs optimal discriminator*: $D$ beside $D^*$, with $p_g$ estimated from the samples.
- *Samples per mode* and the modes-covered timeline: mode collapse shows as modes with no samples.
- On MNIST: real digits beside $G(z)$ for the same 64 noise vectors $z$ at every step, so one $z$ can be watched
  becoming a digit, with $D$'s mean score on each side; the generator over a grid of the first two noise dimensions;
  and, in place of the modes, the **class histogram** of generated digits by the project's digit classifier over the
  run (stacked), with the latest beside the uniform $1/10$: mode collapse on real data shows as classes fading out.
  The optimal discriminator needs both densities and is drawn for 2D datasets only.
- *CycleGAN*: points $a$ and their images $G(a)$ on the data, the data $b$ and $F(b)$ on the source, and the round trip
  $F(G(a))$ beside $a$, with the cycle error; its discriminator panel shows $D_B$ and the translated points.
- *BiGAN*: the codes $E(x)$ of data points (coloured by label where the data has labels) over the prior, and the
  reconstructions $G(E(x))$ beside $x$; its discriminator panel shows $D(x, E(x))$.
"""

VIEW = FamilyView(
    family="gan",
    panels=(
        Panel("gan_critic", "Discriminator, real and generated samples", critic, needs=("samples",),
              about=("The discriminator over the plane (green: it says real; purple: generated) under the real "
                     "and generated points, with arrows showing where the generator is pushed. Watch the purple "
                     "points follow the arrows onto the data and the background fade towards ½; on digits, "
                     "compare D's mean score on data and on G(z).")),
        Panel("gan_warp", "Generator: the noise grid warped into data space", warp,
              needs=("warped_grid",),
              about=("The generator G(z) applied to a square grid in noise space. Where the grid stretches, "
                     "samples are sparse; where it folds tight, they pile up. Watch for collapse: the whole grid squeezed onto a few modes.")),
        Panel("gan_optimal", "Learned vs optimal discriminator", optimal, data=("points",), needs=("samples",),
              about=("The learned discriminator beside the optimal one for the current generator, D*(x) = p_data "
                     "/ (p_data + p_g), with p_g estimated from the samples. When the two differ widely, the "
                     "discriminator lags behind the generator and its gradients mislead the generator: watch the two come together as training settles.")),
        Panel("gan_modes", "Generated samples per mode (per digit class on MNIST)", modes,
              needs={"points": ("samples",), "images": ()},
              about=("How many generated samples fall near each mode of the data (per digit class on MNIST, by a "
                     "classifier), against an even share. A healthy GAN covers every mode roughly evenly; mode "
                     "collapse shows as a few tall bars and many empty ones, often hopping from mode to mode over "
                     "time.")),
        Panel("gan_cycle", "CycleGAN: both maps and the round trip", cycle, wide=True, data=("points",),
              needs=("source", "back", "round_trip", "samples"),
              about=("CycleGAN's two maps between the domains A and B and the round trip a → G(a) → F(G(a)). The "
                     "cycle-consistency loss pulls the round trip back onto a: watch the links in the third plot "
                     "shrink while each map still lands on its target domain.")),
        Panel("gan_bigan", "BiGAN: latent codes and reconstructions", encoder, wide=True,
              needs=("codes", "prior", "reconstructions"),
              about=("BiGAN's encoder codes E(x) beside the prior z ~ N(0, I), and the reconstructions G(E(x)) "
                     "beside the data. Training should make the codes look like the prior and bring "
                     "reconstructions near their inputs, though never exactly: they are learned adversarially, "
                     "not by a reconstruction loss.")),
    ),
    equations=EQUATIONS.strip(),
    export=ExportPicture(lambda traces: V.optional(traces, "samples"), _export_critic),
    showcase=("wgan_gp", "twenty_five_gaussians"),
)
