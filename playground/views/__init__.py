"""Each family's live view, one module per family, found by walking this package.

A module declares `VIEW = FamilyView(...)`: its panels (the figure each
draws, whether it needs the full width, which data it draws, the trace keys
it reads), the view's controls (a time slider for a time-dependent field),
its equations and its export picture. The page, the session and the
trainer hold no family names: they ask here.

    view_for(family) -> FamilyView        (a family without a module gets a samples panel)
    render(family, snapshot, ctx) -> {panel key: Figure}
    render_panel(family, key, snapshot, ctx) -> Figure    never raises

A snapshot is what core.train.Trainer streams (step, time, status, terms,
metrics, traces, data); ctx says how to draw it:

    {"bounds": ((x0, x1), (y0, y1)), "grid_resolution": 60, "dataset": name,
     "data_shape": (2,) or (1, 28, 28), "true_log_density": (G*G,) or None,
     "modes": (K, 2) or None, "mode_std": float or None, "labels": (n,) or None,
     "labels_name": str or None, "options": {control name: value}}
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from typing import Callable

import numpy as np

from .. import draw as V
from ..draw import digits as D

DATA_KINDS = ("points", "images")
Builder = Callable[[dict, dict, str], object]  # (snapshot, ctx, uirevision) -> go.Figure


@dataclasses.dataclass(frozen=True)
class Panel:
    """One figure of a view. data: which data it draws (for the others it says why not);
    needs: the trace keys it cannot draw without, the same for every kind of data or
    {kind: keys} (a density heatmap for points, digit tiles for images); about: the hover
    note on the panel's ⓘ, what it shows and what to watch for."""

    key: str
    title: str
    build: Builder
    wide: bool = False
    data: tuple = DATA_KINDS
    needs: tuple | dict = ()
    about: str = ""

    def needs_for(self, kind: str) -> tuple:
        return tuple(self.needs.get(kind, ())) if isinstance(self.needs, dict) else tuple(self.needs)


@dataclasses.dataclass(frozen=True)
class Control:
    """A slider of the views, not of training: its value reaches the model's traces() as the
    keyword `name`, and the panels are redrawn from the newest weights when it moves."""

    name: str
    label: str
    lo: float
    hi: float
    step: float
    default: float
    info: str = ""
    data: tuple = DATA_KINDS  # the data whose panels it moves (a field on the plane: points only)


@dataclasses.dataclass(frozen=True)
class ExportPicture:
    """The raster of the family's main panel (playground.export): samples(traces) -> (n, D) points
    drawn in purple, or None; background(traces, ctx) -> ((G*G,) values in [0, 1], colour scale) or None."""

    samples: Callable[[dict], np.ndarray | None]
    background: Callable[[dict, dict], tuple | None] | None = None


def _samples_trace(traces: dict):
    return V.optional(traces, "samples")


@dataclasses.dataclass(frozen=True)
class FamilyView:
    family: str
    panels: tuple
    equations: str = ""
    controls: tuple = ()
    export: ExportPicture = ExportPicture(_samples_trace)
    # (model, dataset) that `python -m playground.bench` watches for this family;
    # empty: the family's first registered model on two_moons
    showcase: tuple = ()

    def panel(self, key: str) -> Panel | None:
        return next((p for p in self.panels if p.key == key), None)

    def panels_for(self, model: str | None = None) -> tuple:
        """The panels shown for the registered model `model` (all without one): those whose needs,
        for some kind of data the model is built for, are traces it declares."""
        if model is None:
            return self.panels
        from core import registry

        cls = registry.model_spec(model).cls
        declared = set(cls.TRACES) | set(cls.GRID_TRACES)
        return tuple(p for p in self.panels if any(set(p.needs_for(k)) <= declared for k in cls.data_kinds))


def _generic_samples(snapshot: dict, ctx: dict, uirev: str):
    return D.samples_view(snapshot, ctx, uirev)


def generic_view(family: str) -> FamilyView:
    """What a family without a view module of its own shows: its samples."""
    about = ("Samples drawn from the model (purple) over the data (green). A good model covers every part of "
             "the data and puts nothing where there is none.")
    return FamilyView(family, (Panel("samples", "Samples", _generic_samples, needs=("samples",), about=about),),
                      f"No equations are written up for the {family} family yet.")


@functools.cache
def all_views() -> dict[str, FamilyView]:
    """family -> its view, from every module of this package."""
    views = {}
    for info in pkgutil.iter_modules(__path__):
        view = getattr(importlib.import_module(f"{__name__}.{info.name}"), "VIEW", None)
        if isinstance(view, FamilyView):
            views[view.family] = view
    return views


def view_for(family: str) -> FamilyView:
    return all_views().get(family) or generic_view(family)


def all_controls() -> dict[str, Control]:
    """Every view control by name (one slider each on the page), first declaration wins."""
    out: dict[str, Control] = {}
    for view in all_views().values():
        for c in view.controls:
            out.setdefault(c.name, c)
    return out


def render_panel(family: str, key: str, snapshot: dict, ctx: dict | None = None):
    """One panel of render(), with its hover note; never raises."""
    panel = view_for(family).panel(key)
    fig = _draw_panel(family, key, panel, snapshot, ctx if isinstance(ctx, dict) else {})
    if panel is not None and panel.about:
        fig.layout.annotations = (*fig.layout.annotations, V.info_annotation(panel.about))
    return fig


def _draw_panel(family: str, key: str, panel: Panel | None, snapshot: dict, ctx: dict):
    title = panel.title if panel else key
    if not isinstance(snapshot, dict):
        return V.empty_figure("Nothing to draw yet: start training.", title)
    if snapshot.get("error") and not snapshot.get("traces"):
        return V.empty_figure(f"This view could not be computed: {snapshot['error']}", title)
    if not snapshot.get("traces"):
        return V.empty_figure("Nothing to draw yet: start training.", title)
    if panel is None:
        return V.empty_figure(f"There is no view '{key}' for the {family} family.", title)
    uirev = f"{family}:{key}:{ctx.get('dataset', '')}"
    try:
        with np.errstate(all="ignore"):
            return panel.build(snapshot, ctx, uirev)
    except V.Unavailable as e:
        return V.empty_figure(str(e), title)
    except Exception as e:  # noqa: BLE001 - a view must never take the page down
        return V.empty_figure(f"This view could not be drawn ({type(e).__name__}: {e}).", title)


def render(family: str, snapshot: dict, ctx: dict | None = None) -> dict:
    """Every panel of the family's view, keyed by panel key."""
    return {p.key: render_panel(family, p.key, snapshot, ctx) for p in view_for(family).panels}
