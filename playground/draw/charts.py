"""Charts over training time: loss terms, metrics across runs, modes covered, the ELBO.

Inputs are the trainer's records: Trainer.history (one dict per log interval:
step, time and each loss term) and Trainer.metric_history (step, time and each
metric). Records may miss keys or hold NaN; such values are left out.
"""

from __future__ import annotations

import math

import numpy as np

from .. import draw as V

MAX_POINTS = 2000
X_LABELS = {"step": "step", "time": "training time (s)"}
METRIC_LABELS = {
    "kl": "KL(p_data ‖ q) in nats (lower is better)",
    "mmd": "MMD² to the data (lower is better)",
    "energy": "energy distance to the data (lower is better)",
    "hist_kl": "KL between 2D histograms (lower is better)",
    "hist_js": "JS divergence between 2D histograms (lower is better)",
    "modes_covered": "modes covered",
    "high_quality": "fraction of high-quality samples",
    "score_error": "score error: relative Fisher divergence to the exact score (lower is better)",
    "nll": "NLL of held-out digits in nats (lower is better)",
    "bits_per_dim": "NLL of held-out digits in bits per dimension (lower is better)",
    "fd": "Fréchet distance in the project's digit-classifier features, not the Inception FID (lower is better)",
    "confidence": "digit classifier's mean confidence in samples (higher is better)",
}
_PALETTE = ("#333333", V.GEN, V.REAL, V.BASE, "#4e79a7", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


def _records(history) -> list[dict]:
    return [r for r in (history or []) if isinstance(r, dict)]


def _column(records: list[dict], key: str) -> np.ndarray:
    out = np.full(len(records), np.nan)
    for i, r in enumerate(records):  # records are a few thousand at most
        v = r.get(key)
        if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[i] = float(v)
    return out


def _thin(n: int) -> np.ndarray:
    return V.pick(n, MAX_POINTS) if n > MAX_POINTS else np.arange(n)


def _x_axis(x: str) -> str:
    return x if x in X_LABELS else "step"


def _log_ticks(values: np.ndarray) -> dict:
    """Ticks at 1, 2, 5 x 10^k when the values span under three decades (Plotly would label every digit)."""
    v = values[np.isfinite(values) & (values > 0)]
    return {"dtick": "D2"} if v.size and np.log10(v.max() / v.min()) < 3 else {}


def _runs(runs) -> dict:
    if isinstance(runs, list):
        return {"run": runs}
    return dict(runs or {})


def loss_figure(history: list[dict], x: str = "step"):
    """Every loss term against step or time; terms that stay positive on a log axis above the others."""
    x = _x_axis(x)
    records = _records(history)
    if not records:
        return V.empty_figure("No loss values yet: start training to see them here.", "Loss terms")
    keys = list(dict.fromkeys(k for r in records for k in r if k not in ("step", "time")))
    idx = _thin(len(records))
    xs = _column(records, x)[idx]
    positive, signed = [], []
    for k in keys:
        y = _column(records, k)[idx]
        if np.isfinite(y).any():
            (positive if np.nanmin(y) > 0 else signed).append((k, y))
    if not positive and not signed:
        return V.empty_figure("The loss terms recorded so far are all NaN or infinite.", "Loss terms")
    groups = [g for g in (positive, signed) if g]
    layout = V.base_layout("Loss terms" + (" (positive ones on a log scale)" if positive and signed else ""),
                           "loss", legend=True)
    data = []
    color = {k: _PALETTE[i % len(_PALETTE)] for i, k in enumerate(keys)}
    for gi, group in enumerate(groups):
        s = "" if gi == 0 else "2"
        top, bottom = (1.0, 0.0) if len(groups) == 1 else ((1.0, 0.54) if gi == 0 else (0.46, 0.0))
        log = group is positive
        layout[f"yaxis{s}"] = dict(type="log" if log else "linear", domain=[bottom, top], anchor=f"x{s}",
                                   title=dict(text="log scale" if log and len(groups) > 1 else "", font={"size": 10}),
                                   tickformat="~g" if log else "")
        if log:
            layout[f"yaxis{s}"].update(_log_ticks(np.concatenate([y for _, y in group])))
        layout[f"xaxis{s}"] = dict(anchor=f"y{s}", showticklabels=gi == len(groups) - 1,
                                   title=dict(text=X_LABELS[x] if gi == len(groups) - 1 else "", standoff=4))
        if s:
            layout[f"xaxis{s}"]["matches"] = "x"
        for k, y in group:
            line = dict(type="scatter", mode="lines", x=xs, y=y, name=k, line=dict(color=color[k], width=1.6),
                        hovertemplate=f"{k}=%{{y:.4g}}<br>{x}=%{{x}}<extra></extra>")
            data.append(V.on_axes(line, s))
    return V.figure(data, layout)


def _span(lines: list) -> list[float]:
    """The x range a horizontal reference line spans: the runs' own, or 0 to their one x."""
    xs = np.concatenate([d["x"] for d in lines])
    lo, hi = float(np.nanmin(xs)), float(np.nanmax(xs))
    return [lo, hi] if hi > lo else [min(0.0, lo), max(hi, 1.0)]


def metrics_figure(runs: dict, metric: str, x: str = "step", floors: dict | None = None, notes: dict | None = None,
                   references: dict | None = None):
    """One metric across several runs (Compare): a line per run.

    floors: metric -> its noise floor (the value between two independent sets of true samples
    of the sizes compared: what a perfect model scores), drawn as a dashed line.
    notes: run name -> how its KL (or NLL) was computed ("IWAE estimate"), shown beside its name.
    references: metric -> (value, source), a published figure drawn as a dotted line, the paper named.
    """
    x = _x_axis(x)
    runs = _runs(runs)
    label = METRIC_LABELS.get(metric, metric)
    notes = {k: v for k, v in (notes or {}).items() if v} if metric in ("kl", "nll", "bits_per_dim") else {}
    data = []
    values = []
    for i, (name, history) in enumerate(runs.items()):
        records = _records(history)
        y = _column(records, metric)
        if not np.isfinite(y).any():
            continue
        xs = _column(records, x)
        keep = np.isfinite(y) & np.isfinite(xs)
        values.append(y[keep])
        shown = f"{name} ({notes[name]})" if name in notes else str(name)
        data.append(dict(type="scatter", mode="lines+markers", x=xs[keep], y=y[keep], name=shown,
                         line=dict(color=_PALETTE[(i + 1) % len(_PALETTE)], width=1.8), marker=dict(size=4),
                         hovertemplate=f"{shown}<br>{metric}=%{{y:.4g}}<br>{x}=%{{x}}<extra></extra>"))
    if not data:
        return V.empty_figure(f"No run has recorded '{metric}' yet (metrics arrive every few seconds).", label)
    floor = (floors or {}).get(metric)
    note = ""
    if floor is not None and math.isfinite(floor) and floor > 0:
        data.append(dict(type="scatter", mode="lines", x=_span(data),
                         y=[floor, floor], name="true vs true samples", hoverinfo="skip",
                         line=dict(color=V.NEUTRAL, width=1.2, dash="dash")))
        values.append(np.array([floor]))
        note = f"dashed: {floor:.2g} between two sets of true samples of the same sizes, the floor a perfect model reaches"
    elif notes:
        note = "; ".join(f"{k}: {v}" for k, v in notes.items())
    reference = (references or {}).get(metric)
    if reference is not None and math.isfinite(reference[0]):
        value, source = reference
        shown = f"{value:g} {'nats' if metric == 'nll' else 'bits/dim' if metric == 'bits_per_dim' else ''}".strip()
        data.append(dict(type="scatter", mode="lines", x=_span(data),
                         y=[value, value], name=f"published: {shown}", hoverinfo="skip",
                         line=dict(color=V.REAL, width=1.4, dash="dot")))
        values.append(np.array([value]))
        note = (note + "; " if note else "") + f"dotted: {shown}, {source}"
    allv = np.concatenate(values)
    log = bool((allv > 0).all() and allv.max() / allv.min() > 20)
    layout = V.base_layout(label, f"metrics:{metric}", note=note)
    layout["xaxis"] = dict(title=dict(text=X_LABELS[x], standoff=4))
    layout["yaxis"] = dict(type="log" if log else "linear", tickformat="~g" if log else "")
    if log:
        layout["yaxis"].update(_log_ticks(allv))
    return V.figure(data, layout)


def modes_timeline(runs: dict, x: str = "step"):
    """Modes covered over training for each run; a collapsing GAN drops below the dashed line."""
    x = _x_axis(x)
    runs = _runs(runs)
    data, n_modes = [], 0.0
    for i, (name, history) in enumerate(runs.items()):
        records = _records(history)
        y = _column(records, "modes_covered")
        if not np.isfinite(y).any():
            continue
        xs = _column(records, x)
        keep = np.isfinite(y) & np.isfinite(xs)
        n = _column(records, "n_modes")
        n_modes = max(n_modes, float(np.nanmax(n)) if np.isfinite(n).any() else float(np.nanmax(y)))
        c = _PALETTE[(i + 1) % len(_PALETTE)]
        data.append(dict(type="scatter", mode="lines+markers", x=xs[keep], y=y[keep], name=str(name),
                         line=dict(color=c, width=2, shape="hv"), marker=dict(size=4), legendgroup=str(name),
                         hovertemplate=f"{name}<br>modes covered=%{{y}}<br>{x}=%{{x}}<extra></extra>"))
        hq = _column(records, "high_quality")
        kq = np.isfinite(hq) & np.isfinite(xs)
        if kq.any():
            data.append(dict(type="scatter", mode="lines", x=xs[kq], y=hq[kq], yaxis="y2", legendgroup=str(name),
                             name=f"{name}: high-quality fraction", showlegend=False,
                             line=dict(color=c, width=1.2, dash="dot"),
                             hovertemplate=f"{name}<br>high quality=%{{y:.2f}}<extra></extra>"))
    if not data:
        return V.empty_figure("Modes covered is measured on mixture datasets (eight_gaussians, "
                              "twenty_five_gaussians); no run has recorded it yet.", "Modes covered")
    layout = V.base_layout("Modes covered (solid) and high-quality fraction (dotted)", "modes")
    layout["xaxis"] = dict(title=dict(text=X_LABELS[x], standoff=4))
    layout["yaxis"] = dict(range=[0, n_modes + 0.5], title=dict(text="modes covered", standoff=4))
    if n_modes <= 10:
        layout["yaxis"]["dtick"] = 1
    layout["yaxis2"] = dict(range=[0, 1.02], overlaying="y", side="right", showgrid=False, tickformat=".0%",
                            tickmode="auto")
    layout["margin"]["r"] = 44
    layout["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=n_modes, y1=n_modes,
                             line=dict(color=V.NEUTRAL, width=1.2, dash="dash"))]
    layout["annotations"].append(dict(text=f"all {n_modes:g} modes", xref="paper", x=0, yref="y", y=n_modes,
                                      xanchor="left", yanchor="bottom", showarrow=False,
                                      font={"size": 10, "color": V.NEUTRAL}))
    return V.figure(data, layout)


def elbo_figure(history: list[dict], x: str = "step"):
    """−ELBO = recon + KL over training, the KL drawn as the band between the two lines."""
    x = _x_axis(x)
    records = _records(history)
    idx = _thin(len(records))
    recon, kl = _column(records, "recon")[idx], _column(records, "kl")[idx]
    keep = np.isfinite(recon) & np.isfinite(kl)
    if not keep.any():
        return V.empty_figure("The ELBO terms (recon, kl) appear once a VAE has trained a few steps.", "ELBO terms")
    xs = _column(records, x)[idx][keep]
    recon, kl = recon[keep], kl[keep]
    data = [
        dict(type="scatter", mode="lines", x=xs, y=recon, name="recon = E_q[−log p(x|z)]",
             line=dict(color=V.GEN, width=1.6), hovertemplate="recon=%{y:.4g}<extra></extra>"),
        dict(type="scatter", mode="lines", x=xs, y=recon + kl, name="−ELBO = recon + KL (band: KL)",
             fill="tonexty", fillcolor="rgba(230, 97, 1, 0.18)", line=dict(color=V.BASE, width=2),
             hovertemplate="−ELBO=%{y:.4g}<extra></extra>"),
        dict(type="scatter", mode="lines", x=xs, y=kl, name="KL(q(z|x) ‖ p(z))", yaxis="y2",
             line=dict(color=V.BASE, width=1.2, dash="dot"), hovertemplate="KL=%{y:.4g}<extra></extra>"),
    ]
    layout = V.base_layout("ELBO terms: −ELBO = recon + KL", "elbo")
    layout["xaxis"] = dict(title=dict(text=X_LABELS[x], standoff=4))
    layout["yaxis"] = dict(title=dict(text="nats", standoff=4))
    layout["yaxis2"] = dict(overlaying="y", side="right", showgrid=False, rangemode="tozero", tickmode="auto",
                            title=dict(text="KL", standoff=4, font={"color": V.BASE}))
    layout["margin"]["r"] = 44
    return V.figure(data, layout)
