"""The mathematics of every registered normalizing flow.

One parametrised set over the registry (a new flow is tested by being
registered), in float64 with randomised weights so no layer is the identity:
shapes, exact inverses, log-dets against the autograd Jacobian, a density that
integrates to one, gradients reaching every parameter, image-shaped data, the
live-view traces; then the spline's own guarantees (MADE's autoregressive
property is tested with core.nets).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import core.models.flows as flows
from core import config as C
from core.errors import ConfigError
from core.registry import MODELS

# the flows built for points (the image-only realnvp_ms has its own tests: test_multiscale.py)
FLOW_NAMES = [name for name, spec in MODELS.items() if spec.family == "flow" and "points" in spec.cls.data_kinds]
SMALL = {"layers": 3, "hidden": 16}  # small but with every kind of layer the default has
DTYPE = torch.float64


def make_flow(name: str, data_shape=(2,), seed: int = 0, scale: float = 0.2) -> flows.Flow:
    """A flow with perturbed weights (no layer left at its identity start) and ActNorm set on data."""
    torch.manual_seed(seed)
    spec = MODELS[name]
    flow = spec.cls(data_shape, C.make(spec.config_cls, SMALL, **spec.defaults)).to(DTYPE)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    flow.init_from_data(data_batch(256, data_shape, seed=seed + 1))
    return flow


def data_batch(n: int, data_shape=(2,), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (1.5 * torch.randn(n, *data_shape, generator=g, dtype=DTYPE) + 0.3)


def base_batch(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=DTYPE)


def autograd_log_det(fn, h: torch.Tensor) -> torch.Tensor:
    """log|det J| of fn at each row of h, from the full autograd Jacobian: (n,)."""
    out = []
    for point in h:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], point)
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


def plane_grid(lo: float, hi: float, G: int) -> tuple[torch.Tensor, float]:
    t = torch.linspace(lo, hi, G, dtype=DTYPE)
    yy, xx = torch.meshgrid(t, t, indexing="ij")  # row-major: y rows, x columns
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), float(t[1] - t[0])


def test_all_six_recipes_are_registered_as_flows():
    assert {"nice", "realnvp", "glow", "maf", "iaf", "nsf"} <= set(FLOW_NAMES)
    for name in FLOW_NAMES:
        assert issubclass(MODELS[name].cls, flows.Flow)
        assert MODELS[name].cls.has_log_prob and MODELS[name].cls.log_prob_is_exact


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_shapes_and_loss_terms(name):
    flow = make_flow(name)
    x = data_batch(7)
    L = len(flow.transforms)
    assert flow.sample(5).shape == (5, 2)
    assert flow.log_prob(x).shape == (7,)
    assert flow.layer_log_dets(x).shape == (L, 7)
    states = flow.layer_states(x, "forward")
    assert len(states) == L + 1 and all(s.shape == (7, 2) for s in states)
    assert len(flow.layer_states(base_batch(7, 2), "inverse")) == L + 1

    terms = flow.loss(x)
    assert set(terms) == {"loss", "nll", "log_det"} and all(t.dim() == 0 for t in terms.values())
    torch.testing.assert_close(terms["nll"], -flow.log_prob(x).mean())
    torch.testing.assert_close(terms["loss"], terms["nll"])
    torch.testing.assert_close(terms["log_det"], flow.layer_log_dets(x).sum(0).mean())


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_every_layer_and_the_whole_flow_invert_exactly(name):
    flow = make_flow(name)
    x, z = data_batch(64), base_batch(64, 2)
    forward_states = flow.layer_states(x, "forward")
    inverse_states = flow.layer_states(z, "inverse")
    for layer, h in zip(flow.transforms, forward_states):
        out, log_det = layer(h)
        assert (out - h).abs().max() > 1e-3, f"{type(layer).__name__} is still the identity"
        back, log_det_back = layer.inverse(out)
        torch.testing.assert_close(back, h, rtol=0, atol=1e-6)
        torch.testing.assert_close(log_det + log_det_back, torch.zeros_like(log_det), rtol=0, atol=1e-6)
    for layer, h in zip(reversed(flow.transforms), inverse_states):
        out, _ = layer.inverse(h)
        torch.testing.assert_close(layer(out)[0], h, rtol=0, atol=1e-6)
    torch.testing.assert_close(flow.layer_states(forward_states[-1], "inverse")[-1], x, rtol=0, atol=1e-6)
    torch.testing.assert_close(flow.layer_states(inverse_states[-1], "forward")[-1], z, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_log_dets_equal_slogdet_of_the_autograd_jacobian(name):
    flow = make_flow(name)
    forward_states = flow.layer_states(data_batch(4), "forward")
    inverse_states = flow.layer_states(base_batch(4, 2), "inverse")
    for layer, h in zip(flow.transforms, forward_states):
        torch.testing.assert_close(layer(h)[1], autograd_log_det(layer, h), rtol=0, atol=1e-8)
    for layer, h in zip(reversed(flow.transforms), inverse_states):
        torch.testing.assert_close(layer.inverse(h)[1], autograd_log_det(layer.inverse, h), rtol=0, atol=1e-8)
    # the whole flow: log q(x) = log N(f(x)) + log|det df/dx|
    x = forward_states[0]
    f = lambda v: (flow.layer_states(v, "forward")[-1], None)
    expected = flows.standard_normal_log_prob(forward_states[-1]) + autograd_log_det(f, x)
    torch.testing.assert_close(flow.log_prob(x), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_density_integrates_to_one(name):
    flow = make_flow(name)
    grid, step = plane_grid(-8.0, 8.0, 401)  # step 0.04: fine enough for the sharpest perturbed spline
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * step**2
        # what the box leaves out, estimated from samples, so the check cannot be passed by a leak
        outside = (flow.sample(10_000).abs() > 8).any(1).double().mean().item()
    assert outside < 5e-3
    assert abs(mass - 1.0) < 1e-2
    assert abs(mass + outside - 1.0) < 5e-3


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_gradients_reach_every_parameter(name):
    flow = make_flow(name)
    flow.loss(data_batch(64))["loss"].backward()
    for pname, p in flow.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, f"{pname} gets a zero gradient"


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_freshly_built_conditioned_layers_start_at_the_identity(name):
    torch.manual_seed(0)
    spec = MODELS[name]
    flow = spec.cls((2,), C.make(spec.config_cls, SMALL, **spec.defaults)).to(DTYPE)
    x = data_batch(16)
    conditioned = (flows.Coupling, flows.MaskedAutoregressive, flows.Inverse)
    layers = [t for t in flow.transforms if isinstance(t, conditioned)]
    assert layers
    for layer in layers:
        z, log_det = layer(x)
        torch.testing.assert_close(z, x, rtol=0, atol=1e-12)
        torch.testing.assert_close(log_det, torch.zeros(16, dtype=DTYPE), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_a_fresh_default_flow_is_the_standard_normal(name):
    # identity layers, an uninitialised ActNorm and a rotation (|det| = 1, N(0, I) is rotation-invariant)
    torch.manual_seed(0)
    spec = MODELS[name]
    flow = spec.cls((2,), C.make(spec.config_cls, {}, **spec.defaults))
    x = data_batch(32).float()
    torch.testing.assert_close(flow.log_prob(x), flows.standard_normal_log_prob(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_image_shaped_data(name):
    flow = make_flow(name, data_shape=(1, 4, 4), scale=0.05)
    x = data_batch(8, (1, 4, 4), seed=3)
    assert flow.sample(3).shape == (3, 1, 4, 4)
    log_q = flow.log_prob(x)
    assert log_q.shape == (8,) and torch.isfinite(log_q).all()
    z = flow.layer_states(x, "forward")[-1]
    assert z.shape == (8, 16)
    torch.testing.assert_close(flow.unflat(flow.layer_states(z, "inverse")[-1]), x, rtol=0, atol=1e-6)
    traces = flow.traces(x, grid=None)
    L = len(flow.transforms)
    assert set(traces) == {"forward_states", "inverse_states", "log_dets"}
    assert traces["forward_states"].shape == (L + 1, 8, 16) and traces["inverse_states"].shape == (L + 1, 8, 16)


def test_grid_lines_are_pushed_through_on_a_sub_grid():
    from core.models.flows.base import GRID_LINES, sub_grid

    flow = make_flow("realnvp")
    grid, _ = plane_grid(-4.0, 4.0, 60)
    traces = flow.traces(data_batch(20), grid)
    S = GRID_LINES
    assert traces["log_density"].shape == (60 * 60,) and traces["grid_states"].shape[1:] == (S * S, 2)
    # the sub-grid holds S whole rows and S whole columns' crossings, evenly spread, the outer lines included
    lines = sub_grid(grid, S).reshape(S, S, 2)
    full = grid.reshape(60, 60, 2)
    keep = [int(i) for i in torch.linspace(0, 59, S).round()]
    assert keep[0] == 0 and keep[-1] == 59 and len(set(keep)) == S
    assert torch.equal(lines, full[keep][:, keep])
    with torch.no_grad():
        pushed = flow.layer_states(lines.reshape(-1, 2), "inverse")[-1]
    np.testing.assert_allclose(traces["grid_states"][-1], pushed.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="square"):
        sub_grid(grid[:-1], S)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_traces_keys_shapes_and_values(name):
    flow = make_flow(name)
    x, (grid, _) = data_batch(50), plane_grid(-4.0, 4.0, 6)
    traces = flow.traces(x, grid)
    L = len(flow.transforms)
    shapes = {"forward_states": (L + 1, 50, 2), "inverse_states": (L + 1, 50, 2), "log_dets": (L,),
              "grid_states": (L + 1, 36, 2), "log_density": (36,)}
    assert {k: v.shape for k, v in traces.items()} == shapes
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in traces.values())
    with torch.no_grad():
        np.testing.assert_allclose(traces["forward_states"][0], x.numpy(), rtol=1e-6)
        np.testing.assert_allclose(traces["log_dets"], flow.layer_log_dets(x).mean(1).numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(traces["grid_states"][0], grid.numpy(), rtol=1e-6)
        pushed = flow.layer_states(grid, "inverse")[-1]
        np.testing.assert_allclose(traces["grid_states"][-1], pushed.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(traces["log_density"], flow.log_prob(grid).numpy(), rtol=1e-4, atol=1e-5)
        # the base samples pushed to data really are model samples: they invert to the base
        z = flow.layer_states(torch.from_numpy(traces["inverse_states"][-1]).to(DTYPE), "forward")[-1]
        np.testing.assert_allclose(z.numpy(), traces["inverse_states"][0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", FLOW_NAMES)
@pytest.mark.parametrize("poison", [float("nan"), 1e4])
def test_traces_turn_non_finite_values_into_nan(name, poison):
    flow = make_flow(name)
    with torch.no_grad():
        for p in flow.parameters():
            p.fill_(poison)
    traces = flow.traces(data_batch(20), plane_grid(-4.0, 4.0, 5)[0])
    assert not any(np.isinf(v).any() for v in traces.values())  # overflow comes back as nan
    if math.isnan(poison):
        assert all(np.isnan(traces[k]).any() for k in ("forward_states", "log_dets", "log_density"))


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_save_and_load_round_trip(name):
    flow = make_flow(name)
    spec = MODELS[name]
    torch.manual_seed(123)  # a different random start (Glow's rotation) that loading must overwrite
    fresh = spec.cls((2,), C.make(spec.config_cls, SMALL, **spec.defaults)).to(DTYPE)
    fresh.load_state_dict(flow.state_dict())
    fresh.init_from_data(data_batch(32, seed=9))  # already initialised: must not reset ActNorm
    x = data_batch(16)
    torch.testing.assert_close(fresh.log_prob(x), flow.log_prob(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_arguments_are_checked(name):
    flow = make_flow(name)
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(torch.zeros(4, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="samples"):
        flow.sample(0)
    with pytest.raises(ValueError, match="direction"):
        flow.layer_states(data_batch(4), "sideways")


# ---- single components ---------------------------------------------------

def test_actnorm_standardises_the_first_batch():
    torch.manual_seed(0)
    layer = flows.ActNorm(3).to(DTYPE)
    scale, shift = torch.tensor([0.5, 2.0, 7.0], dtype=DTYPE), torch.tensor([1.0, -3.0, 0.0], dtype=DTYPE)
    x = torch.randn(500, 3, dtype=DTYPE) * scale + shift
    layer.initialize(x)
    z, log_det = layer(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=DTYPE), rtol=0, atol=1e-12)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(3, dtype=DTYPE), rtol=0, atol=1e-12)
    torch.testing.assert_close(log_det[0], -torch.log(x.std(0, unbiased=False)).sum())


def test_invertible_linear_log_det_is_that_of_its_matrix():
    torch.manual_seed(0)
    layer = flows.InvertibleLinear(5).to(DTYPE)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    W = layer.weight()
    x = torch.randn(4, 5, dtype=DTYPE)
    z, log_det = layer(x)
    torch.testing.assert_close(z, x @ W.T)
    torch.testing.assert_close(log_det, torch.linalg.slogdet(W)[1].expand(4))


def test_spline_is_monotone_maps_the_box_onto_itself_and_has_identity_tails():
    torch.manual_seed(0)
    B, K, n = 3.0, 6, 2001
    raw = [torch.randn(k, dtype=DTYPE).expand(n, k) for k in (K, K, K - 1)]
    x = torch.linspace(-5, 5, n, dtype=DTYPE)
    y, log_det = flows.rational_quadratic_spline(x, *raw, bound=B)
    assert (y[1:] > y[:-1]).all()
    outside = x.abs() > B
    torch.testing.assert_close(y[outside], x[outside], rtol=0, atol=0)
    assert (log_det[outside] == 0).all()
    ends = torch.tensor([-B, B], dtype=DTYPE)
    torch.testing.assert_close(flows.rational_quadratic_spline(ends, *[r[:2] for r in raw], bound=B)[0], ends)
    # the log-derivative against central differences, and the inverse
    eps = 1e-6
    y_plus = flows.rational_quadratic_spline(x + eps, *raw, bound=B)[0]
    y_minus = flows.rational_quadratic_spline(x - eps, *raw, bound=B)[0]
    inner = (x.abs() - B).abs() > 1e-3
    torch.testing.assert_close(log_det[inner], torch.log((y_plus - y_minus) / (2 * eps))[inner], rtol=0, atol=1e-6)
    x_back, log_det_back = flows.rational_quadratic_spline(y, *raw, bound=B, inverse=True)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det_back, -log_det, rtol=0, atol=1e-10)


def test_maf_on_one_dimensional_data_is_a_normalised_density():
    spec = MODELS["maf"]
    torch.manual_seed(0)
    flow = spec.cls((1,), C.make(spec.config_cls, SMALL)).to(DTYPE)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.linspace(-12, 12, 4001, dtype=DTYPE)[:, None]
    mass = torch.trapezoid(flow.log_prob(x).exp(), x[:, 0]).item()
    assert abs(mass - 1) < 1e-4


def test_bad_settings_are_refused_with_a_reason():
    with pytest.raises(ConfigError, match="layers"):
        C.make(flows.FlowConfig, {"layers": 0})
    with pytest.raises(ConfigError, match="bins"):
        C.make(flows.SplineFlowConfig, {"bins": 1})
    spec = MODELS["realnvp"]
    with pytest.raises(ConfigError, match="at least 2 dimensions"):
        spec.cls((1,), C.make(spec.config_cls))
