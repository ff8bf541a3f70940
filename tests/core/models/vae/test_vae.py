"""VAE: the ELBO's terms against their definitions, the IWAE estimate against an
exact log-density by quadrature over a 2D latent space, and normalisation."""

import itertools
import json
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from core import checkpoint
from core.config import describe
from core.errors import DataError
from core.registry import build_model
from core.models.vae import VAE, VAEConfig


def _vae(data_shape=(2,), seed=0, **cfg) -> VAE:
    torch.manual_seed(seed)
    return VAE(data_shape, VAEConfig(**{"hidden": 32, "layers": 2, **cfg})).double()


@pytest.fixture(scope="module")
def sharp_vae():
    """A random 2D VAE with a spread-out decoder and sigma^2 = 0.02, so the
    encoder's q(z|x) is far from the true posterior and the bounds have room."""
    m = _vae()
    with torch.no_grad():
        m.decoder[-1].weight.mul_(4.0)
        m.log_var_x.fill_(math.log(0.02))
    torch.manual_seed(1)
    x = m.sample(60)  # points where the model puts its mass
    return m, x, _log_p_by_quadrature(m, x)


def _log_p_by_quadrature(m: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log int N(z; 0, I) p(x|z) dz on a 161 x 161 grid over [-6, 6]^2."""
    axis = torch.linspace(-6, 6, 161, dtype=torch.float64)
    zy, zx = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([zx.reshape(-1), zy.reshape(-1)], 1)  # (Z, 2)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)  # (Z,)
    with torch.no_grad():
        log_px_z = m._log_likelihood(x[:, None, :], z[None])  # (n, Z)
    return torch.logsumexp(log_px_z + log_pz, 1) + 2 * math.log(axis[1] - axis[0])


def test_kl_term_is_the_closed_form_of_its_monte_carlo_estimate():
    m = _vae(latent=3)
    with torch.no_grad():
        m.encoder[-1].weight.mul_(3.0)
        m.encoder[-1].bias.copy_(torch.tensor([1.0, -0.5, 0.8, -1.0, 0.7, 0.3]))  # means, log variances off the prior's
    x = torch.randn(6, 2, dtype=torch.float64)
    kl = m.elbo_terms(x)["kl"]  # (6,)
    mu, var = m.encode(x)
    q = Normal(mu, var.sqrt())
    torch.manual_seed(2)
    z = q.sample((100_000,))  # (S, 6, 3)
    log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (S, 6)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert kl.min() > 0.5  # a non-trivial KL
    assert torch.all((kl - mc).abs() < 4 * se + 1e-3), (kl, mc, se)


def test_gaussian_loss_terms_by_hand_and_beta_is_live():
    m = _vae(latent=2)
    torch.manual_seed(3)
    x = 2 * torch.randn(64, 2, dtype=torch.float64)
    m.init_from_data(x)
    m.config.beta = 0.5
    torch.manual_seed(4)
    out = m.loss(x)

    mu, var = m.encode(x)
    torch.manual_seed(4)  # the same eps as the loss drew
    z = mu + var.sqrt() * torch.randn(1, *mu.shape, dtype=torch.float64)[0]
    mean, sigma = m.decode_mean(z), (0.5 * m.log_var_x).exp()
    recon = -Normal(mean, sigma).log_prob(x).sum(1).mean()
    kl = 0.5 * (var + mu**2 - 1 - var.log()).sum(1).mean()
    assert torch.allclose(out["recon"], recon, rtol=1e-10)
    assert torch.allclose(out["kl"], kl, rtol=1e-10)
    assert torch.allclose(out["loss"], recon + 0.5 * kl, rtol=1e-10)
    assert torch.allclose(out["elbo"], -(recon + kl), rtol=1e-10)

    m.config.beta = 3.0  # changed between calls, read by the next one
    torch.manual_seed(4)
    assert torch.allclose(m.loss(x)["loss"], recon + 3.0 * kl, rtol=1e-10)


def test_init_from_data_centres_the_decoder_at_a_tenth_of_the_variance():
    m = _vae()
    x = torch.tensor([[1.0, 10.0], [3.0, 14.0], [5.0, 18.0]], dtype=torch.float64)
    m.init_from_data(x)
    assert torch.allclose(m.decoder[-1].bias, x.mean(0))
    assert torch.allclose(m.log_var_x.exp(), 0.1 * x.var(0))


def test_iwae_with_one_sample_is_the_elbo_in_expectation(sharp_vae):
    m, x, _ = sharp_vae
    torch.manual_seed(5)
    elbo = m.elbo_terms(x, samples=2000)["elbo"]  # (n,) E_q[log p(x|z)] - KL, near exact
    iwae_1 = m.log_prob(x.repeat(1000, 1), K=1).reshape(1000, len(x))
    diff = iwae_1 - elbo
    se = diff.std() / math.sqrt(diff.numel())
    assert diff.mean().abs() < 4 * se + 2e-3, (diff.mean(), se)


def test_iwae_rises_with_k_towards_log_p_and_stays_below_it(sharp_vae):
    m, x, log_p = sharp_vae
    torch.manual_seed(6)
    elbo = m.elbo_terms(x, samples=2000)["elbo"]
    gaps = []
    for K in (1, 10, 100, 1000):
        reps = 1000 // K
        iwae = m.log_prob(x.repeat(reps, 1), K=K).reshape(reps, len(x)).mean(0)  # E[IWAE_K], (n,)
        gaps.append((log_p - iwae).mean().item())
    elbo_gap = (log_p - elbo).mean().item()
    assert elbo_gap > 1.0  # the ELBO is loose here, so the comparisons below mean something
    assert abs(gaps[0] - elbo_gap) < 0.05  # K = 1 is the ELBO
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps  # tighter with every K
    assert min(gaps) > -0.01, gaps  # a lower bound on log p(x) (up to Monte-Carlo noise)
    assert gaps[-1] < 0.02, gaps  # and nearly tight at K = 1000


def test_exp_of_log_prob_integrates_to_one():
    """exp(IWAE) is an unbiased estimate of p(x), so its integral over the plane is ~1."""
    m = _vae(seed=7)
    with torch.no_grad():
        m.decoder[-1].weight.mul_(2.0)
        m.log_var_x.fill_(math.log(0.1))
    axis = torch.linspace(-4, 4, 121, dtype=torch.float64)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    plane = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    torch.manual_seed(8)
    p = m.log_prob(plane, K=16).exp()
    integral = p.sum() * (axis[1] - axis[0]) ** 2
    assert abs(integral.item() - 1.0) < 0.02, integral


def test_sample_is_decoder_mean_plus_decoder_noise():
    """x = m(z) + sigma * eps: mean E[m(z)] and per-dimension variance Var[m(z)] + sigma^2."""
    m = _vae(seed=9)
    with torch.no_grad():
        m.log_var_x.copy_(torch.tensor([math.log(0.3), math.log(0.05)]))
    torch.manual_seed(10)
    x = m.sample(100_000)
    means = m.decode_mean(torch.randn(100_000, 2, dtype=torch.float64))
    want_var = means.var(0) + m.log_var_x.exp()
    assert torch.allclose(x.mean(0), means.mean(0), atol=0.015)
    assert torch.allclose(x.var(0), want_var, rtol=0.03)


def _last_layer(net: torch.nn.Module) -> torch.nn.Module:
    return [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d))][-1]


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_bernoulli_likelihood_by_hand_and_normalised_over_all_binary_images(net):
    m = _vae((1, 3, 3), likelihood="bernoulli", latent=2, seed=11, net=net)
    with torch.no_grad():
        _last_layer(m.decoder).weight.mul_(3.0)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9)), dtype=torch.float64)  # all 512
    z = torch.randn(512, 2, dtype=torch.float64)
    by_hand = Bernoulli(probs=m.decode_mean(z).reshape(512, 9)).log_prob(images).sum(1)
    with torch.no_grad():
        assert torch.allclose(m._log_likelihood(images, z), by_hand, rtol=1e-9)
    torch.manual_seed(12)
    total = m.log_prob(images.reshape(512, 1, 3, 3), K=64).exp().sum()  # sum_x p(x) = 1
    assert abs(total.item() - 1.0) < 0.03, total


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_bernoulli_on_image_shaped_data(net):
    m = _vae((1, 4, 4), likelihood="bernoulli", latent=3, seed=13, net=net)
    x = (torch.rand(10, 1, 4, 4, dtype=torch.float64) > 0.5).double()
    out = m.loss(x)
    assert set(out) == {"loss", "recon", "kl", "elbo"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n != "log_var_x")
    s = m.sample(5)
    assert s.shape == (5, 1, 4, 4) and s.min() >= 0 and s.max() <= 1
    lp = m.log_prob(x)
    assert lp.shape == (10,) and torch.isfinite(lp).all()
    t = m.traces(x, None)
    shapes = {k: v.shape for k, v in t.items()}
    assert shapes == {"z_mean": (10, 3), "z_var": (10, 3), "recon": (10, 16), "latent_grid": (64, 2),
                      "decoded_grid": (64, 16), "samples": (10, 16), "sample_means": (10, 16),
                      "elbo_recon": (10,), "elbo_kl": (10,)}
    with pytest.raises(DataError):
        m.init_from_data(2 * x)  # outside [0, 1]: refused where training starts (the loss does not read values back)
    with pytest.raises(DataError):
        m.loss(x.reshape(10, 16))  # wrong shape


def test_traces_2d():
    m = _vae(latent=3, seed=14)
    x = torch.randn(50, 2, dtype=torch.float64)
    t = m.traces(x, torch.zeros(16, 2))
    shapes = {k: v.shape for k, v in t.items()}
    assert shapes == {"z_mean": (50, 3), "z_var": (50, 3), "recon": (50, 2), "latent_grid": (225, 2),
                      "decoded_grid": (225, 2), "samples": (50, 2), "sample_means": (50, 2),
                      "elbo_recon": (50,), "elbo_kl": (50,)}
    mu, var = m.encode(x)
    assert torch.allclose(torch.from_numpy(t["z_mean"]).double(), mu, atol=1e-6)
    assert (t["z_var"] > 0).all()
    grid = torch.from_numpy(t["latent_grid"])
    assert grid[0].tolist() == [-3.0, -3.0] and grid[1, 1] == -3.0 and grid[-1].tolist() == [3.0, 3.0]  # row-major
    z = torch.cat([grid.double(), torch.zeros(225, 1, dtype=torch.float64)], 1)  # other dims at 0
    assert torch.allclose(torch.from_numpy(t["decoded_grid"]).double(), m.decode_mean(z), atol=1e-5)
    assert torch.allclose(torch.from_numpy(t["recon"]).double(), m.decode_mean(mu), atol=1e-5)

    line = _vae(latent=1).traces(x, None)  # a 1D latent space is drawn as a line
    assert line["latent_grid"].shape == (15, 1) and line["decoded_grid"].shape == (15, 2)


def test_registered_and_trains_on_points():
    m = build_model("vae", (2,), {"hidden": 32})
    assert m.has_log_prob and not m.log_prob_is_exact
    torch.manual_seed(15)
    x = torch.randn(256, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    m.init_from_data(x)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = m.loss(x)["loss"].item()
    for _ in range(100):
        loss = m.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    # a Gaussian's entropy bounds the best possible -ELBO from below
    nll_floor = 0.5 * torch.log(2 * math.pi * math.e * x.var(0)).sum().item()
    assert m.loss(x)["loss"].item() < first - 1.0
    assert m.loss(x)["loss"].item() < nll_floor + 0.3


# ---- likelihood=auto: chosen from the data's shape ---------------------------------------
def test_likelihood_defaults_to_auto_with_the_explicit_choices_beside_it():
    fields = describe(VAEConfig)
    assert fields["likelihood"]["default"] == "auto"
    assert fields["likelihood"]["choices"] == ("auto", "gaussian", "bernoulli")


@pytest.mark.parametrize("shape,chosen", [((1, 4, 4), "bernoulli"), ((2,), "gaussian")])
def test_auto_likelihood_is_the_explicit_one_for_the_data_shape(shape, chosen):
    torch.manual_seed(16)
    auto = build_model("vae", shape, {"hidden": 16})
    torch.manual_seed(16)
    explicit = build_model("vae", shape, {"hidden": 16, "likelihood": chosen})
    assert auto.config.likelihood == chosen and auto.auto_likelihood and not explicit.auto_likelihood
    x = (torch.rand(8, *shape) > 0.5).float()  # binary: valid data for either likelihood
    z = torch.randn(8, auto.config.latent)
    with torch.no_grad():
        assert torch.equal(auto._log_likelihood(auto.flat(x), z), explicit._log_likelihood(explicit.flat(x), z))
        mean = auto.decode_mean(z)
    if chosen == "bernoulli":
        by_hand = Bernoulli(probs=mean.reshape(8, -1)).log_prob(auto.flat(x)).sum(1)
        assert mean.min() >= 0 and mean.max() <= 1
    else:
        by_hand = Normal(mean, (0.5 * auto.log_var_x).exp()).log_prob(x).sum(1)
    with torch.no_grad():
        assert torch.allclose(auto._log_likelihood(auto.flat(x), z), by_hand, rtol=1e-5, atol=1e-5)


def test_an_explicit_likelihood_wins_over_the_data_shape():
    gaussian_images = build_model("vae", (1, 4, 4), {"hidden": 16, "likelihood": "gaussian"})
    assert gaussian_images.config.likelihood == "gaussian"
    gaussian_images.loss(3 * torch.randn(5, 1, 4, 4))  # any real values are fine for a gaussian
    bernoulli_points = build_model("vae", (2,), {"hidden": 16, "likelihood": "bernoulli"})
    assert bernoulli_points.config.likelihood == "bernoulli"
    assert bernoulli_points.sample(20).min() >= 0  # decoder means: probabilities
    with pytest.raises(DataError, match=r"needs data in \[0, 1\]"):
        bernoulli_points.init_from_data(torch.randn(5, 2))


def test_auto_still_refuses_images_outside_the_unit_interval():
    m = build_model("vae", (1, 4, 4), {"hidden": 16})
    with pytest.raises(DataError, match=r"likelihood=auto picks it for images\) needs data in \[0, 1\]"):
        m.init_from_data(2 * torch.rand(5, 1, 4, 4) - 0.5)


def test_the_choice_auto_made_is_saved_and_reloaded(tmp_path):
    torch.manual_seed(17)
    m = build_model("vae", (1, 4, 4), {"hidden": 16})
    checkpoint.save(tmp_path, "vae", m)
    loaded, meta = checkpoint.load(tmp_path)
    assert json.loads(meta["config"])["likelihood"] == "bernoulli"
    x = (torch.rand(6, 1, 4, 4) > 0.5).float()
    z = torch.randn(6, m.config.latent)
    with torch.no_grad():
        assert torch.equal(loaded._log_likelihood(loaded.flat(x), z), m._log_likelihood(m.flat(x), z))
