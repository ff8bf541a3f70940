"""The contract between every registered model and its family's view, on 2D points and images.

For each model: the traces its view's panels read are ones the model declares,
and a real snapshot of the briefly trained model draws every panel, for each
kind of data the panel says it draws (the others say why not), and exports.
A model or view registered tomorrow is covered here without anyone editing this file.
"""

from __future__ import annotations

import dataclasses
import io

import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from core import registry
from core.config import TrainConfig, make
from core.train import Trainer
from playground.draw import layout
from playground.export import snapshot_png
from playground.runs import view_context
from playground.views import all_views, render, view_for
from tests.fakes import TinyImages
from tests.playground.views.helpers import message

SMALL = {"hidden": 16, "layers": 2}
DATASETS = {"points": lambda: registry.load_dataset("eight_gaussians"), "images": TinyImages}


def cases():
    for name in registry.model_names():
        for kind in registry.model_spec(name).cls.data_kinds:
            yield pytest.param(name, kind, id=f"{name}-{kind}")


@pytest.fixture(scope="module")
def snapshots():
    """name, kind -> (family, snapshot, ctx, model) of a model trained for a few steps."""
    cache = {}

    def get(name: str, kind: str):
        if (name, kind) not in cache:
            spec = registry.model_spec(name)
            dataset = DATASETS[kind]()
            fields = {f.name for f in dataclasses.fields(spec.config_cls)}
            torch.manual_seed(0)
            model = registry.build_model(name, dataset.shape, {k: v for k, v in SMALL.items() if k in fields})
            cfg = make(TrainConfig, {"n_data": 256, "batch_size": 32, "steps": 3, "lr": 1e-3})
            trainer = Trainer(model, dataset, cfg, "cpu", n_reference=100, n_eval=100)
            trainer.fit(3, log_every=3)
            snap = trainer.snapshot(with_metrics=False, n=64)
            ctx = view_context(dataset, dataset.name, trainer.data, n=64, n_data=256)
            cache[name, kind] = (spec.family, snap, ctx, model)
        return cache[name, kind]

    return get


def test_every_family_with_models_has_a_view():
    assert set(registry.families()) <= set(all_views())


def test_a_views_showcase_is_one_of_its_models_on_a_registered_dataset():
    from playground.bench import default_cases

    for view in all_views().values():
        if view.showcase:
            model, dataset = view.showcase
            assert registry.model_spec(model).family == view.family, view.family
            assert dataset in registry.dataset_names(), view.family
    assert [registry.model_spec(m).family for m, _ in default_cases()] == registry.families()


@pytest.mark.parametrize("name,kind", list(cases()))
def test_panels_read_only_traces_the_model_declares(name, kind):
    model_cls = registry.model_spec(name).cls
    model = registry.build_model(name, DATASETS[kind]().shape)
    declared = set(model.TRACES) | (set(model.GRID_TRACES) if kind == "points" else set())
    for panel in view_for(model_cls.family).panels_for(name):
        if kind in panel.data:
            assert set(panel.needs_for(kind)) <= declared, (panel.key, panel.needs_for(kind), sorted(declared))


def test_every_panel_is_shown_for_some_model_of_its_family():
    for family, view in all_views().items():
        shown = {p.key for name in registry.model_names(family) for p in view.panels_for(name)}
        assert not registry.model_names(family) or shown == {p.key for p in view.panels}, family


@pytest.mark.parametrize("name,kind", list(cases()))
def test_a_real_snapshot_draws_every_panel(name, kind, snapshots, monkeypatch):
    monkeypatch.setattr(layout, "VALIDATE", True)  # every property a valid Plotly property
    family, snap, ctx, _ = snapshots(name, kind)
    view = view_for(family)
    figures = render(family, snap, ctx)
    assert list(figures) == [p.key for p in view.panels]
    for panel in view.panels_for(name):  # the panels the page shows for this model
        fig = figures[panel.key]
        assert isinstance(fig, go.Figure), panel.key
        if kind in panel.data:
            assert message(fig) is None, f"{panel.key}: {message(fig)}"
            assert fig.data, panel.key
        else:  # a panel that does not draw this data says why
            assert message(fig), panel.key


@pytest.mark.parametrize("name,kind", list(cases()))
def test_the_export_picture_is_drawn(name, kind, snapshots):
    family, snap, ctx, _ = snapshots(name, kind)
    image = Image.open(io.BytesIO(snapshot_png(family, snap, ctx, size=120)))
    assert image.size == (120, 120)
    colours = image.convert("RGB").getcolors(120 * 120)
    assert colours is not None and len(colours) > 3  # more than a blank canvas and its label


def test_views_declare_their_controls_and_equations():
    for family, view in all_views().items():
        assert view.equations.count("$$") % 2 == 0 and view.equations.count("$") % 2 == 0, family
        names = [c.name for c in view.controls]
        assert len(names) == len(set(names)), family
        for c in view.controls:
            assert c.lo <= c.default <= c.hi and c.step > 0, (family, c.name)
        assert len({p.key for p in view.panels}) == len(view.panels), family
        assert sum(p.wide for p in view.panels) <= 2 and sum(not p.wide for p in view.panels) <= 4, family
