"""The contract every registered model keeps, on 2D points and on image-shaped data.

One parametrised set over the registry (as zuko tests every flow with one
function): a model registered tomorrow is covered here without anyone
editing this file.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from pathlib import Path

import pytest
import torch

from core import checkpoint, registry
from core.config import TrainConfig, make
from core.data.toy2d import plane_grid
from core.errors import ConfigError, LogProbUnavailable
from core.model import check_traces
from core.train import Engine
from core.train.engine import training_data_for
from tests.fakes import IMAGE_SHAPE, TinyImages

CORE = Path(registry.__file__).resolve().parent
KINDS = {"points": (2,), "images": IMAGE_SHAPE}
SMALL = {"hidden": 16, "layers": 2}  # where a config has them: every kind of layer, little time


def cases():
    for name in registry.model_names():
        for kind in registry.model_spec(name).cls.data_kinds:
            yield pytest.param(name, kind, id=f"{name}-{kind}")


def build(name: str, kind: str, seed: int = 0, perturb: bool = False):
    """A small instance, initialised on data; perturb moves every weight off its start (layers that
    start as the identity, with a zero last layer, pass no gradient to the layers before it)."""
    spec = registry.model_spec(name)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    torch.manual_seed(seed)
    model = registry.build_model(name, KINDS[kind], {k: v for k, v in SMALL.items() if k in fields})
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    model.init_from_data(data(kind, 64, seed + 1))
    return model


def data(kind: str, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "images":
        return TinyImages().sample(n, g)
    return torch.randn(n, 2, generator=g) * 1.5


@pytest.mark.parametrize("name,kind", list(cases()))
def test_loss_terms_are_finite_and_gradients_reach_every_parameter(name, kind):
    model = build(name, kind, perturb=True)
    reached = set()
    phases = model.phases(1e-3)
    for phase in phases:
        if not phase.is_gradient:  # an update (an EM step) changes the model itself: its terms are finite
            with torch.no_grad():
                out = phase.update(data(kind, 32, 5))
            assert "loss" in out and all(torch.isfinite(torch.as_tensor(v)).all() for v in out.values()), phase.name
            continue
        model.zero_grad(set_to_none=True)
        out = phase.loss(data(kind, 32, 5))
        assert "loss" in out, phase.name
        for term, value in out.items():
            assert torch.isfinite(torch.as_tensor(value)).all(), (phase.name, term)
        out["loss"].backward()
        for p in (p for p in phase.params if p.requires_grad):  # a phase moves what it optimises
            assert p.grad is not None and torch.isfinite(p.grad).all(), phase.name
        reached |= {id(p) for p in phase.params if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if not any(p.is_gradient for p in phases):  # trained by updates alone: nothing for a gradient to reach
        assert not trainable, f"{sorted(trainable)} are trainable but no phase takes a gradient"
        return
    missed = {n for n, p in model.named_parameters() if p.requires_grad and id(p) not in reached}
    assert trainable and not missed, f"no gradient reaches {sorted(missed)}"


@pytest.mark.parametrize("name,kind", list(cases()))
def test_sample_and_log_prob_shapes(name, kind):
    model = build(name, kind).eval()
    assert model.sample(5).shape == (5, *KINDS[kind])
    x = data(kind, 6)
    if model.has_log_prob:
        with torch.no_grad():
            log_p = model.log_prob(x)
        assert log_p.shape == (6,) and torch.isfinite(log_p).all()
    else:
        with pytest.raises(LogProbUnavailable, match="no density"):
            model.log_prob(x)


def _same_outputs(a, b, kind):
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    a.eval(), b.eval()
    torch.manual_seed(3)
    sa = a.sample(4)
    torch.manual_seed(3)
    assert torch.equal(sa, b.sample(4))
    if a.has_log_prob:
        x = data(kind, 4)
        torch.manual_seed(4)
        with torch.no_grad():
            la = a.log_prob(x)
        torch.manual_seed(4)
        with torch.no_grad():
            assert torch.allclose(la, b.log_prob(x))


@pytest.mark.parametrize("name,kind", list(cases()))
def test_a_pickle_round_trip_gives_the_same_model(name, kind):
    model = build(name, kind)  # the child process receives models this way
    _same_outputs(model, pickle.loads(pickle.dumps(model)), kind)


@pytest.mark.parametrize("name,kind", list(cases()))
def test_a_safetensors_save_and_load_gives_the_same_model(name, kind, tmp_path):
    model = build(name, kind)
    checkpoint.save(tmp_path, name, model)
    loaded, meta = checkpoint.load(tmp_path)
    assert meta["model"] == name and type(loaded) is type(model)
    _same_outputs(model, loaded, kind)


@pytest.mark.parametrize("name,kind", list(cases()))
def test_traces_match_the_declared_schema(name, kind):
    model = build(name, kind).eval()
    x = data(kind, 40)
    grid = plane_grid(((-4, 4), (-4, 4)), 12)[0] if kind == "points" else None
    traces = model.traces(x, grid)
    problems = check_traces(model, traces, n=40, grid_points=None if grid is None else 144)
    assert not problems, problems


class _DeviceReads:
    """Records calls from the project's own code to the tensor methods that read a value back
    to the host (which on a GPU wait for every queued kernel)."""

    METHODS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")

    def __init__(self):
        self.calls = []

    def __enter__(self):
        self.saved = {m: getattr(torch.Tensor, m) for m in self.METHODS}
        for m, original in self.saved.items():
            setattr(torch.Tensor, m, self._spy(m, original))
        return self

    def __exit__(self, *exc):
        for m, original in self.saved.items():
            setattr(torch.Tensor, m, original)

    def _spy(self, name, original):
        def spy(tensor, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if Path(caller).resolve().is_relative_to(CORE):
                self.calls.append(f"{name} in {Path(caller).name}:{sys._getframe(1).f_lineno}")
            return original(tensor, *args, **kwargs)
        return spy


@pytest.mark.parametrize("name,kind", [c for c in cases() if c.values[1] == "points"])
def test_a_training_step_reads_nothing_back_from_the_device(name, kind):
    spec = registry.model_spec(name)
    model = build(name, kind)
    train = make(TrainConfig, {"batch_size": 32, "n_data": 256, "grad_clip": 1.0, **{k: v for k, v in spec.train.items()
                                                                                    if k == "lr"}})
    dataset = registry.load_dataset("eight_gaussians")
    engine = Engine(model, training_data_for(model, dataset, 256, 0), train, torch.device("cpu"))
    engine.step()  # optimiser state is made on the first step
    with _DeviceReads() as reads:
        for _ in range(3):
            engine.step()
    assert not reads.calls, reads.calls
    assert engine.check() is not None  # the one read per log interval


@pytest.mark.parametrize("name", registry.model_names())
def test_a_model_is_refused_on_data_it_is_not_built_for_with_the_models_that_fit(name):
    cls = registry.model_spec(name).cls
    for kind, shape in KINDS.items():
        if kind in cls.data_kinds:
            continue
        with pytest.raises(ConfigError) as e:
            registry.build_model(name, shape)
        fit = registry.models_for(kind)
        assert fit and name not in fit and all(kind in registry.model_spec(m).cls.data_kinds for m in fit)
        assert f"not {kind}" in str(e.value) and ", ".join(fit) in str(e.value)
