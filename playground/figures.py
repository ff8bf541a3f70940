"""The playground's figures: pure functions from a training snapshot to Plotly figures.

    panels(family) -> [(key, title)]                         the panels render() returns (PANELS[family])
    render(family, snapshot, ctx) -> {panel key: Figure}    the family's signature views
    render_panel(family, key, snapshot, ctx) -> Figure      one of them
    loss_figure(history, x)                                  every loss term over training
    metrics_figure(runs, metric, x)                          one metric, several runs (Compare)
    modes_timeline(runs, x)                                  modes covered over training
    elbo_figure(history, x)                                  a VAE's recon and KL over training
    empty_figure(message)                                    a panel that says what is missing

A snapshot is what core.trainer.Trainer streams (step, time, status, terms,
metrics, traces, data); ctx says how to draw it:

    {"bounds": ((x0, x1), (y0, y1)), "grid_resolution": 60, "dataset": name,
     "data_shape": (2,) or (1, 28, 28), "true_log_density": (G*G,) or None,
     "modes": (K, 2) or None, "mode_std": float or None, "labels": (n,) or None,
     "labels_name": str or None, "field_t": float}

No view raises on missing keys or NaN: it returns a panel with a message.
The family modules (views_flow, views_gan, views_vae, views_diffusion) hold
the drawing; views_common the colours and helpers shared by all of them,
views_digits the digit tiles and the samples panel, views_charts the charts
over training time.
"""

from __future__ import annotations

import numpy as np

from . import views_common as V
from . import views_diffusion, views_digits, views_flow, views_gan, views_vae
from .views_charts import elbo_figure, loss_figure, metrics_figure, modes_timeline
from .views_common import GEN, REAL, empty_figure

__all__ = ["PANELS", "panels", "render", "render_panel", "loss_figure", "metrics_figure", "modes_timeline", "elbo_figure",
           "empty_figure", "REAL", "GEN"]

_FAMILIES = {"flow": views_flow, "gan": views_gan, "vae": views_vae, "diffusion": views_diffusion}

GENERIC_PANELS = [("samples", "Samples")]

PANELS: dict[str, list[tuple[str, str]]] = {name: list(mod.PANELS) for name, mod in _FAMILIES.items()}


def panels(family: str) -> list[tuple[str, str]]:
    """The (key, title) panels render() returns for family; a samples panel for any other family."""
    return PANELS.get(family, GENERIC_PANELS)


def _generic_samples(snapshot: dict, ctx: dict, uirev: str):
    return views_digits.samples_view(snapshot, ctx, uirev)


def render_panel(family: str, key: str, snapshot: dict, ctx: dict | None = None):
    """One panel of render(); never raises."""
    ctx = ctx if isinstance(ctx, dict) else {}
    titles = dict(panels(family))
    title = titles.get(key, key)
    if not isinstance(snapshot, dict):
        return empty_figure("Nothing to draw yet: start training.", title)
    if snapshot.get("error") and not snapshot.get("traces"):
        return empty_figure(f"This view could not be computed: {snapshot['error']}", title)
    if not snapshot.get("traces"):
        return empty_figure("Nothing to draw yet: start training.", title)
    mod = _FAMILIES.get(family)
    builder = mod.BUILDERS.get(key) if mod else (_generic_samples if key == "samples" else None)
    if builder is None:
        return empty_figure(f"There is no view '{key}' for the {family} family.", title)
    uirev = f"{family}:{key}:{ctx.get('dataset', '')}"
    try:
        with np.errstate(all="ignore"):
            return builder(snapshot, ctx, uirev)
    except V.Unavailable as e:
        return empty_figure(str(e), title)
    except Exception as e:  # noqa: BLE001 - a view must never take the page down
        return empty_figure(f"This view could not be drawn ({type(e).__name__}: {e}).", title)


def render(family: str, snapshot: dict, ctx: dict | None = None) -> dict:
    """Every signature panel of the family, keyed as in PANELS[family]."""
    return {key: render_panel(family, key, snapshot, ctx) for key, _ in panels(family)}
