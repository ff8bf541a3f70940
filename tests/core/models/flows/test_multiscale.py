"""The multi-scale RealNVP on images: exact inverses, log-dets against autograd, a normalised
density, the dequantization's log 256 term, its layout and latents, training on digits, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import core.models.flows as flows
from core import config as C
from core import checkpoint, registry
from core.cli import main
from core.data import pixels
from core.data.mnist import MNIST
from core.errors import ConfigError, DataError
from core.model import check_traces
from core.models.flows.multiscale import TRACE_DIGITS, TRACE_SAMPLES

DTYPE = torch.float64
TINY = {"hidden": 8, "layers": 2, "blocks": 1}


def make_flow(shape=(1, 4, 4), seed: int = 0, scale: float = 0.1, **overrides) -> flows.MultiScaleRealNVP:
    """A float64 flow whose weights are moved off their start, so no coupling is the identity."""
    torch.manual_seed(seed)
    cfg = C.make(flows.MultiScaleConfig, {**TINY, **overrides})
    flow = flows.MultiScaleRealNVP(shape, cfg).to(DTYPE)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def digits_like(n: int, shape=(1, 4, 4), seed: int = 0) -> torch.Tensor:
    """Dequantized images in [0, 1): (n, *shape)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g, dtype=DTYPE)


def autograd_log_det(fn, h: torch.Tensor) -> torch.Tensor:
    """log|det J| of fn at each row of h, from the full autograd Jacobian: (n,)."""
    out = []
    for point in h:
        J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], point)
        out.append(torch.linalg.slogdet(J)[1])
    return torch.stack(out)


# ---- the layers and the whole flow -----------------------------------------------------------

@pytest.mark.parametrize("shape,scales", [((1, 4, 4), 2), ((1, 8, 8), 3), ((2, 4, 4), 1)])
def test_every_layer_and_the_whole_flow_invert(shape, scales):
    flow = make_flow(shape, scales=scales)
    y = digits_like(16, shape)
    D = flow.dim
    forward_states = flow.layer_states(y, "forward")
    for layer, h in zip(flow.transforms, forward_states):
        out, log_det = layer(h)
        if not isinstance(layer, flows.Squeeze):
            assert (out - h).abs().max() > 1e-3, f"{type(layer).__name__} is still the identity"
        back, log_det_back = layer.inverse(out)
        torch.testing.assert_close(back, h, rtol=0, atol=1e-10)
        torch.testing.assert_close(log_det + log_det_back, torch.zeros_like(log_det), rtol=0, atol=1e-10)
    y_back = flow.layer_states(forward_states[-1], "inverse")[-1]
    assert (y_back - y.reshape(16, D)).abs().max() < 1e-4
    # from the base: to u, the logit of the data, and back (beyond |u| ~ 37 the inverse logit
    # rounds to 1 in float64, a loss of the pre-processing, not of the layers after it)
    z = torch.randn(16, D, dtype=DTYPE)
    u = flow.layer_states(z, "inverse")[-2]
    z_back = u
    for layer in flow.transforms[1:]:
        z_back = layer(z_back)[0]
    assert (z_back - z).abs().max() < 1e-4


@pytest.mark.parametrize("shape,scales,n", [((1, 4, 4), 2, 3), ((2, 4, 4), 2, 1)])
def test_log_dets_equal_slogdet_of_the_autograd_jacobian(shape, scales, n):
    flow = make_flow(shape, scales=scales)
    y = digits_like(n, shape, seed=1)
    states = flow.layer_states(y, "forward")
    kinds = set()
    for layer, h in zip(flow.transforms, states):
        kinds.add(type(layer).__name__)
        torch.testing.assert_close(layer(h)[1], autograd_log_det(layer, h), rtol=0, atol=1e-8)
        torch.testing.assert_close(layer.inverse(layer(h)[0])[1], autograd_log_det(layer.inverse, layer(h)[0]),
                                   rtol=0, atol=1e-8)
    assert kinds == {"Logit", "Squeeze", "ChannelCoupling"}
    # the whole flow: log p(y) = log N(f(y); 0, I) + log|det df/dy|
    f = lambda v: (flow.layer_states(v, "forward")[-1], None)  # noqa: E731
    expected = flows.standard_normal_log_prob(states[-1]) + autograd_log_det(f, states[0])
    torch.testing.assert_close(flow.log_prob(y), expected, rtol=0, atol=1e-8)


def test_the_logit_log_det_is_the_closed_form():
    alpha = 0.05
    y = digits_like(5, (16,))
    u, log_det = flows.Logit(alpha)(y)
    s = alpha + (1 - 2 * alpha) * y
    torch.testing.assert_close(u, torch.log(s / (1 - s)))
    torch.testing.assert_close(log_det, (math.log(1 - 2 * alpha) - torch.log(s) - torch.log(1 - s)).sum(1))


def test_the_density_integrates_to_one_by_importance_sampling():
    """A 1 x 2 x 2 flow, D = 4. The inverse logit lands in the box (-a, 1 + a)^4, a = alpha / (1 - 2 alpha),
    so p integrates to one there; on [0, 1]^4 it leaves out what its samples put outside."""
    flow = make_flow((1, 2, 2), scales=1)
    alpha, n = flow.config.alpha, 1 << 15
    a = alpha / (1 - 2 * alpha)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        box = -a + (1 + 2 * a) * torch.rand(n, 4, generator=g, dtype=DTYPE)  # uniform proposal on the box
        w = torch.exp(super(flows.MultiScaleRealNVP, flow).log_prob(box)) * (1 + 2 * a) ** 4
        mass, se = w.mean().item(), w.std().item() / math.sqrt(n)
        cube = torch.rand(n, 4, generator=g, dtype=DTYPE)  # uniform on [0, 1]^4, of volume one
        wc = torch.exp(flow.log_prob(cube.reshape(n, 1, 2, 2)))
        mass_cube, se_cube = wc.mean().item(), wc.std().item() / math.sqrt(n)
        raw = flow.layer_states(torch.randn(n, 4, generator=g, dtype=DTYPE), "inverse")[-1]
        outside = ((raw < 0) | (raw > 1)).any(1).double().mean().item()
    se_outside = math.sqrt(outside * (1 - outside) / n)
    assert se < 0.01 and se_cube < 0.01  # precise enough that the checks below can fail
    assert abs(mass - 1.0) < 4 * se
    assert outside > 10 * se_outside  # this flow does leak, so the second check is not the first
    assert abs(mass_cube + outside - 1.0) < 4 * (se_cube + se_outside)


class Probit(flows.Transform):
    """z = Phi^{-1}(y): pushes the uniform density on [0, 1]^D to N(0, I), log|det| = -log N(z; 0, I)."""

    def forward(self, y):
        z = math.sqrt(2.0) * torch.special.erfinv(2 * y - 1)
        return z, -flows.standard_normal_log_prob(z)

    def inverse(self, z):
        return torch.special.ndtr(z), flows.standard_normal_log_prob(z)


def test_the_uniform_density_scores_exactly_8_bits_per_dim():
    """A flow whose density is uniform on [0, 1]^D (log p = 0) spends the D log 256 nats of the
    dequantization and nothing else: 8 bits per dimension."""
    cfg = C.make(flows.MultiScaleConfig, TINY)
    uniform = flows.MultiScaleRealNVP((1, 4, 4), cfg, transforms=[Probit()]).to(DTYPE)
    x = torch.rand(64, 1, 4, 4, dtype=DTYPE)
    torch.testing.assert_close(uniform.log_prob(digits_like(64)), torch.zeros(64, dtype=DTYPE), rtol=0, atol=1e-9)
    terms = uniform.loss(x)
    assert terms["loss"].item() == pytest.approx(8.0, abs=1e-9)
    assert terms["nll"].item() == pytest.approx(16 * math.log(256), abs=1e-7)


def test_the_loss_is_bits_per_dim_of_freshly_dequantized_digits():
    flow = make_flow((1, 4, 4))
    x = torch.round(255 * digits_like(32)) / 255  # 8-bit grey levels
    torch.manual_seed(11)
    terms = flow.loss(x)
    torch.manual_seed(11)
    y = pixels.dequantize(x.reshape(32, 16))
    assert ((y * 256).floor() == torch.round(255 * x.reshape(32, 16))).all()  # inside the digit's own cell
    nll = -flow.log_prob(y).mean() + 16 * math.log(256)
    torch.testing.assert_close(terms["nll"], nll)
    torch.testing.assert_close(terms["loss"], nll / (16 * math.log(2)))
    torch.manual_seed(12)
    assert not torch.equal(flow.loss(x)["loss"], terms["loss"])  # a fresh dequantization every batch


# ---- the layout --------------------------------------------------------------------------------

def test_the_checkerboard_of_the_squeezed_image_is_the_pixel_checkerboard():
    H = W = 6
    i, j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    for C_in in (1, 2):
        parity = ((i + j) % 2).to(DTYPE).expand(C_in, H, W).reshape(1, -1)
        squeezed, _ = flows.Squeeze(0, (C_in, H, W))(parity)
        per_channel = squeezed.reshape(4 * C_in, -1)
        assert (per_channel == per_channel[:, :1]).all()  # each channel holds one parity
        for p in (0, 1):
            moved = flows.checkerboard(4 * C_in, p)
            assert (per_channel[moved, 0] == p).all() and (per_channel[~moved, 0] == 1 - p).all()
    halves = flows.channel_halves(8, 0)
    assert halves.tolist() == [False] * 4 + [True] * 4 and (flows.channel_halves(8, 1) == ~halves).all()


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(2 * 4 * 4, dtype=DTYPE).reshape(1, 2, 4, 4)
    z, log_det = flows.Squeeze(0, (2, 4, 4))(x.reshape(1, -1))
    z = z.reshape(8, 2, 2)
    for c in range(2):
        for di in range(2):
            for dj in range(2):
                torch.testing.assert_close(z[4 * c + 2 * di + dj], x[0, c, di::2, dj::2])
    assert log_det.item() == 0


def test_latents_factor_out_half_at_each_scale():
    flow = flows.MultiScaleRealNVP((1, 28, 28), C.make(flows.MultiScaleConfig, TINY))
    assert flow.latent_shapes == [(2, 14, 14), (8, 7, 7)]
    flow3 = flows.MultiScaleRealNVP((1, 8, 8), C.make(flows.MultiScaleConfig, {**TINY, "scales": 3}))
    assert flow3.latent_shapes == [(2, 4, 4), (4, 2, 2), (16, 1, 1)]
    offsets = sorted({layer.offset for layer in flow3.transforms if hasattr(layer, "offset")})
    assert offsets == [0, 32, 48]  # each scale starts after the latents factored out before it
    # the image layout undoes the squeezes: a permutation of the coordinates
    h = torch.arange(64, dtype=torch.float32)[None]
    L = len(flow3.transforms)
    with torch.no_grad():
        for layer in flow3.transforms[1:]:
            if isinstance(layer, flows.Squeeze):
                h = layer(h)[0]
        assert torch.equal(flow3.image_layout(h, L), torch.arange(64, dtype=torch.float32)[None])


def test_traces_are_bounded_and_consistent():
    flow = make_flow((1, 8, 8), scale=0.05).float()
    x = torch.round(255 * torch.rand(50, 1, 8, 8)) / 255
    tr = flow.traces(x)
    assert not check_traces(flow, tr, n=50, grid_points=None)
    L = len(flow.transforms)
    assert tr["forward_states"].shape == (L + 1, TRACE_DIGITS, 64)
    assert tr["inverse_states"].shape == (L + 1, TRACE_SAMPLES, 64)
    samples = tr["inverse_states"][-1]
    assert samples.min() >= 0 and samples.max() <= 1
    y = torch.from_numpy(tr["latent_digits"])
    assert ((y * 256).floor() == torch.round(255 * x[:TRACE_DIGITS])).all()  # the digits, dequantized
    with torch.no_grad():
        z = flow.layer_states(y, "forward")[-1]
        np.testing.assert_allclose(tr["latents"], z.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(tr["forward_states"][-1], flow.image_layout(z, L).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(tr["log_dets"], flow.layer_log_dets(y).mean(1).numpy(), rtol=1e-4, atol=1e-4)
    assert tr["latent_shapes"].tolist() == [[2, 4, 4], [8, 2, 2]]
    np.testing.assert_allclose(tr["forward_states"][0], y.reshape(TRACE_DIGITS, -1).numpy())
    assert flow.traces(x)["inverse_states"].tobytes() == tr["inverse_states"].tobytes()  # fixed noise: frames agree


def test_bad_shapes_and_values_are_refused_with_a_reason():
    cfg = C.make(flows.MultiScaleConfig, TINY)
    with pytest.raises(ConfigError, match="images"):
        flows.MultiScaleRealNVP((2,), cfg)
    with pytest.raises(ConfigError, match="multiples of 4"):
        flows.MultiScaleRealNVP((1, 6, 6), cfg)
    with pytest.raises(ConfigError, match="built for images"):
        registry.build_model("realnvp_ms", (2,))
    with pytest.raises(ConfigError, match="alpha"):
        C.make(flows.MultiScaleConfig, {"alpha": 0.6})
    flow = make_flow((1, 4, 4))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        flow.log_prob(torch.full((2, 1, 4, 4), 1.5, dtype=DTYPE))


def test_maf_and_iaf_are_refused_on_digits_with_the_models_that_fit():
    for name in ("maf", "iaf"):
        with pytest.raises(ConfigError, match="realnvp_ms"):
            registry.build_model(name, (1, 28, 28))
        registry.build_model(name, (2,))  # their 2D behaviour is kept


# ---- real digits ---------------------------------------------------------------------------------

def test_a_few_steps_on_real_digits_lower_bits_per_dim(mnist_dir):
    torch.manual_seed(0)
    x = MNIST(mnist_dir).training_set(512, 0)
    flow = registry.build_model("realnvp_ms", (1, 28, 28), {"hidden": 8, "layers": 1})
    opt = torch.optim.Adam(flow.parameters(), 2e-3)
    bits = []
    for step in range(30):
        batch = x[torch.randint(0, len(x), (16,))]
        terms = flow.loss(batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        bits.append(terms["loss"].item())
    first, last = np.mean(bits[:5]), np.mean(bits[-5:])
    assert last < first - 0.5, bits
    assert 0 < last < 8  # below the uniform density's 8 bits/dim


def test_cli_trains_samples_and_scores_digits(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "realnvp_ms", "--data", "mnist", "--steps", "4", "--batch-size", "8", "--seed", "1",
                 "--set", "hidden=8", "--set", "layers=1", "--set", "n_data=256", "--n-samples", "6",
                 "--metrics-every", "4", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert np.load(out / "samples.npy").shape == (6, 1, 28, 28)
    assert main(["sample", str(out), "--n", "5", "--out", str(tmp_path / "s.npy"), "--seed", "2"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    y = pixels.dequantize(MNIST(mnist_dir).held_out()[0][:7], torch.Generator().manual_seed(0)).numpy()
    np.save(tmp_path / "y.npy", y)
    assert main(["logprob", str(out), "--points", str(tmp_path / "y.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    lp = np.load(tmp_path / "lp.npy")
    model, _ = checkpoint.load(out)
    with torch.no_grad():
        np.testing.assert_allclose(lp, model.log_prob(torch.from_numpy(y)).double().numpy(), rtol=1e-5)
    bits = pixels.bits_per_dim(pixels.nll_nats(torch.from_numpy(lp), "dequantized", 784), 784)
    assert torch.isfinite(bits).all() and (bits > 0).all()


@pytest.mark.parametrize("name", ["nice", "realnvp", "glow", "nsf"])
def test_the_flat_flows_read_digits_dequantized_and_points_as_they_are(name):
    torch.manual_seed(0)
    flow = registry.build_model(name, (1, 4, 4), {"hidden": 8, "layers": 2}).to(DTYPE)
    x = torch.round(255 * digits_like(16)) / 255
    assert flow.pixels == "dequantized"
    torch.manual_seed(3)
    nll = flow.loss(x)["nll"]
    torch.manual_seed(3)
    torch.testing.assert_close(nll, -flow.log_prob(pixels.dequantize(x)).mean())
    points = registry.build_model(name, (2,), {"hidden": 8, "layers": 2}).to(DTYPE)
    p = torch.randn(16, 2, dtype=DTYPE)
    assert points.pixels == "grey"
    torch.testing.assert_close(points.loss(p)["nll"], -points.log_prob(p).mean())
