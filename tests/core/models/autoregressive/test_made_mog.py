"""made_mog: the autoregressive property, a normalised density, sampling that follows it,
the conditionals its view draws, and the command line."""

import math

import numpy as np
import pytest
import torch

from core import checkpoint, registry
from core.cli import main
from core.config import make
from core.data.toy2d import plane_grid
from core.errors import ConfigError
from core.models.autoregressive import MADEMoG, MADEMoGConfig

F64 = torch.float64


def build(dim=2, perturb=0.0, seed=0, **overrides):
    torch.manual_seed(seed)
    model = MADEMoG((dim,), make(MADEMoGConfig, {"K": 3, "hidden": 24, **overrides})).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    return model


def test_each_conditional_depends_only_on_earlier_coordinates():
    # backpropagate from every output of dimension i: d theta_i / d x_j = 0 for j >= i, != 0 for j < i
    D = 5
    model = build(D, perturb=0.3)
    x = torch.randn(7, D, dtype=F64, requires_grad=True)
    log_pi, mu, log_sigma = model.conditionals(x)
    for name, out in [("log_pi", log_pi), ("mu", mu), ("log_sigma", log_sigma)]:
        for i in range(D):
            for k in range(out.shape[2]):
                (grad,) = torch.autograd.grad(out[:, i, k].sum(), x, retain_graph=True)
                assert (grad[:, i:] == 0).all(), (name, i, k)
                if i > 0:
                    assert (grad[:, :i].abs().sum(0) > 0).all(), (name, i, k)  # and on every earlier one
    # so log p(x_i | x_<i) reads x_i and x_<i only
    lp = model.mixture_log_prob(x, log_pi, mu, log_sigma)  # (n, D)
    for i in range(D):
        (grad,) = torch.autograd.grad(lp[:, i].sum(), x, retain_graph=True)
        assert (grad[:, i + 1:] == 0).all() and (grad[:, i] != 0).all(), i


def test_log_prob_integrates_to_one():
    model = build(perturb=0.3)
    grid, xs, _ = plane_grid(((-10, 10), (-10, 10)), 401, F64)
    step = float(xs[1] - xs[0])
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum().item() * step**2
    assert abs(mass - 1.0) < 1e-3


def set_known_mixture(model, w, mu, sigma):
    """theta_i = (log w_i, mu_i, log sigma_i) for every x: the hidden layers cut off, so the
    coordinates are independent mixtures of known parameters ((D, K) each)."""
    D, K = w.shape
    with torch.no_grad():
        model.made.out.weight.zero_()
        floor = model.LOG_SIGMA_MIN  # log sigma = floor + softplus(raw - floor): invert it
        raw = floor + torch.log(torch.expm1(sigma.log() - floor))
        bias = torch.cat([w.log(), mu, raw], 1)  # (D, 3K): logits, means, log-stds
        model.made.out.bias.copy_(bias.reshape(-1))


def test_a_mixture_set_by_hand_has_its_closed_form_density_and_moments():
    model = build(K=2)
    w = torch.tensor([[0.3, 0.7], [0.5, 0.5]], dtype=F64)
    mu = torch.tensor([[-1.0, 2.0], [0.0, 3.0]], dtype=F64)
    sigma = torch.tensor([[0.5, 0.3], [1.0, 0.2]], dtype=F64)
    set_known_mixture(model, w, mu, sigma)
    x = torch.randn(50, 2, dtype=F64) * 2
    normal = torch.distributions.Normal(mu, sigma)  # (D, K)
    expected = torch.logsumexp(w.log() + normal.log_prob(x[:, :, None]), -1).sum(1)
    torch.testing.assert_close(model.log_prob(x), expected)
    n = 200_000
    s = model.sample(n, torch.Generator().manual_seed(1))
    mean = (w * mu).sum(1)
    var = (w * (sigma**2 + mu**2)).sum(1) - mean**2
    assert torch.allclose(s.mean(0), mean, atol=5 * (var / n).sqrt().max())
    assert torch.allclose(s.var(0), var, rtol=0.02)
    # the share of the first coordinate beyond the components' midpoint: the mixture's CDF there
    cdf = (w[0] * normal.cdf(torch.full((1, 2), 0.5, dtype=F64))[0]).sum()
    assert abs((s[:, 0] < 0.5).double().mean() - cdf) < 0.005


def test_samples_follow_the_density_of_a_dependent_model():
    # a perturbed network: x_2's mixture moves with x_1, so the D passes must respect the order
    model = build(perturb=0.4, seed=2)
    n, bins, lo, hi = 60_000, 24, -6.0, 6.0
    s = model.sample(n, torch.Generator().manual_seed(3)).numpy()
    hist = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=[[lo, hi], [lo, hi]])[0] / n
    fine = 8  # points per bin side for the density's integral over each bin
    grid, xs, _ = plane_grid(((lo, hi), (lo, hi)), bins * fine + 1, F64)
    with torch.no_grad():
        p = model.log_prob(grid).exp().reshape(bins * fine + 1, bins * fine + 1).numpy()
    cell = (xs[1] - xs[0]).item() ** 2
    mid = 0.25 * (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) * cell  # rows: x2, columns: x1
    mass = mid.reshape(bins, fine, bins, fine).sum((1, 3)).T  # (x1 bin, x2 bin), as histogram2d
    assert abs(mass.sum() - 1) < 0.01
    assert 0.5 * np.abs(hist - mass).sum() < 0.03  # total variation between samples and density


def test_traces_conditional_and_marginal_are_those_of_the_density():
    model = build(perturb=0.3)
    grid, xs, ys = plane_grid(((-5, 5), (-4, 4)), 81, F64)
    tr = model.traces(torch.randn(30, 2, dtype=F64), grid, x1=0.7)
    assert tr["samples"].shape == (30, 2) and tr["log_density"].shape == (81 * 81,)
    assert tr["x1"].tolist() == [pytest.approx(0.7)]
    np.testing.assert_allclose(tr["x2_values"], ys.numpy(), atol=1e-6)
    np.testing.assert_allclose(tr["x1_values"], xs.numpy(), atol=1e-6)
    # p(x2 | x1) p(x1) = p(x1, x2)
    joint = model.log_prob(torch.stack([torch.full_like(ys, 0.7), ys], 1)).exp().detach().numpy()
    marginal_at = model.traces(torch.zeros(1, 2, dtype=F64), torch.tensor([[0.7, 0.0]] * 4, dtype=F64))["marginal"][0]
    np.testing.assert_allclose(tr["conditional"] * marginal_at, joint, rtol=1e-4)
    # the marginal is the joint integrated over x2 (the box holds nearly all the mass)
    fine, fx, fy = plane_grid(((-5, 5), (-12, 12)), 601, F64)
    p = model.log_prob(fine).exp().detach().reshape(601, 601).numpy()
    by_x1 = p.sum(0) * (fy[1] - fy[0]).item()
    np.testing.assert_allclose(np.interp(xs.numpy(), fx.numpy(), by_x1), tr["marginal"], rtol=2e-3, atol=1e-4)
    # without a grid (and for images) only samples
    assert set(model.traces(torch.randn(5, 2, dtype=F64), None)) == {"samples"}


def test_image_shaped_data():
    torch.manual_seed(0)
    model = MADEMoG((1, 3, 3), make(MADEMoGConfig, {"K": 2, "hidden": 16}))
    x = torch.rand(10, 1, 3, 3)
    model.init_from_data(x)
    out = model.loss(x)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.sample(4).shape == (4, 1, 3, 3)
    assert model.log_prob(x).shape == (10,)
    assert model.traces(x, None)["samples"].shape == (10, 1, 3, 3)


def test_registered_and_bad_settings_refused():
    spec = registry.model_spec("made_mog")
    assert spec.family == "autoregressive" and spec.cls is MADEMoG and spec.quality.metric == "kl"
    assert MADEMoG.has_log_prob and MADEMoG.log_prob_is_exact and MADEMoG.live_kl
    for bad, needle in [({"K": 0}, "K=0 is out of range"), ({"depth": 0}, "depth=0 is out of range"),
                        ({"hidden": 4}, "hidden=4 is out of range")]:
        with pytest.raises(ConfigError, match=needle):
            registry.build_model("made_mog", (2,), bad)


def test_command_line_train_sample_and_logprob(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "made_mog", "--data", "eight_gaussians", "--steps", "30", "--batch-size", "128",
                 "--set", "hidden=16", "--set", "K=3", "--set", "n_data=1000", "--metrics-every", "30",
                 "--n-samples", "200", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    model, meta = checkpoint.load(out)
    assert meta["model"] == "made_mog" and model.config.K == 3
    assert main(["sample", str(out), "--n", "50", "--out", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (50, 2) and np.isfinite(s).all()
    pts = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    assert main(["logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    with torch.no_grad():
        expect = model.log_prob(torch.from_numpy(pts)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "lp.npy"), expect, atol=1e-5)
    assert math.isfinite(expect.sum())
