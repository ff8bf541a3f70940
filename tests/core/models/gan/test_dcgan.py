"""GANs on images: DCGAN's networks, the critic's norm against WGAN-GP's per-sample penalty,
the fixed noise the live view follows, learning on real digits, and the CLI on MNIST."""

import numpy as np
import pytest
import torch
from torch import nn

from core import checkpoint
from core.cli import main
from core.errors import ConfigError
from core.models.gan import GAN, LOSSES
from core.models.gan.gan import CRITIC_NORMS, FIXED_Z, IMAGE_LATENT
from core.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from core.registry import build_model, load_dataset, model_config, model_spec, train_config

DIGIT, TINY = (1, 28, 28), (1, 8, 8)


def _small(name, shape=TINY, **over):
    torch.manual_seed(0)
    return build_model(name, shape, {"channels": 8, **over})


# ---- the networks -----------------------------------------------------------------

@pytest.mark.parametrize("shape,start,d_out", [(DIGIT, (7, 7), (7, 7)), (TINY, (2, 2), (2, 2)),
                                               ((3, 12, 10), (3, 3), (3, 2))])
def test_dcgan_shapes_through_the_layers(shape, start, d_out):
    """G: z -> (2c, ceil(H/4), ceil(W/4)) -> twice the sides -> four times, cropped to (C, H, W), in [0, 1];
    D: (C, H, W) -> (c, H/2, W/2) -> (2c, H/4, W/4) (rounded down) -> one logit (or mmdgan's features)."""
    C, H, W = shape
    G, D = DCGANGenerator(5, shape, channels=4), DCGANDiscriminator(shape, out=1, channels=4)
    z = torch.randn(6, 5)
    h0 = G.project(z).reshape(6, *G.start)
    assert G.start == (8, *start)
    assert G.body[:3](h0).shape == (6, 4, 2 * start[0], 2 * start[1])
    x = G(z)
    assert x.shape == (6, C * H * W) and x.min() >= 0 and x.max() <= 1
    assert D.body[:2](x.reshape(6, *shape)).shape == (6, 4, H // 2, W // 2)
    assert D.body(x.reshape(6, *shape)).shape == (6, 8, *d_out)
    assert D(x).shape == (6, 1)
    assert DCGANDiscriminator(shape, out=7, channels=4)(x).shape == (6, 7)  # mmdgan's feature map


def test_generator_output_is_the_tanh_read_in_zero_one():
    G = DCGANGenerator(3, TINY, channels=4).eval()
    z = torch.randn(4, 3)
    a = G.body(G.project(z).reshape(4, *G.start))  # (4, 1, 8, 8), the pre-activation
    assert torch.allclose(G(z), (0.5 * (1 + torch.tanh(a))).flatten(1), atol=1e-6)
    G.start_at(torch.full(TINY, 0.13))
    with torch.no_grad():
        G.body[-1].weight.zero_()  # a zero pre-activation but for the bias: the output is the mean
    assert torch.allclose(G(z), torch.full((4, 64), 0.13), atol=1e-5)


def test_the_discriminator_refuses_images_too_small_to_halve_twice():
    with pytest.raises(ValueError, match="at least 4 x 4"):
        DCGANDiscriminator((1, 3, 3))


# ---- which networks, which norm ---------------------------------------------------

def test_auto_picks_conv_for_images_and_mlp_for_points():
    for name in LOSSES:
        img, pts = build_model(name, TINY), build_model(name, (2,))
        assert isinstance(img.G, DCGANGenerator) and isinstance(img.D, DCGANDiscriminator), name
        assert not any(isinstance(m, nn.Conv2d) for m in pts.modules()), name
        assert (img.latent, pts.latent) == (IMAGE_LATENT, 2), name
    mlp = build_model("nsgan", TINY, {"net": "mlp", "latent": 5})
    assert not any(isinstance(m, nn.Conv2d) for m in mlp.modules()) and mlp.latent == 5
    assert mlp.G(torch.randn(3, 5)).shape == (3, 64)
    with pytest.raises(ConfigError, match="net=conv needs image data"):
        build_model("nsgan", (2,), {"net": "conv"})


def test_critic_norm_follows_the_objective_and_wgan_gp_has_no_batch_norm():
    for name in LOSSES:
        D = build_model(name, TINY).D
        kinds = {type(m) for m in D.modules()}
        assert (nn.BatchNorm2d in kinds) == (CRITIC_NORMS[name] == "batch"), name
        assert (nn.GroupNorm in kinds) == (CRITIC_NORMS[name] == "layer"), name
    assert CRITIC_NORMS["wgan_gp"] == "layer"
    assert {type(m) for m in build_model("nsgan", TINY).G.modules()} >= {nn.BatchNorm2d, nn.ConvTranspose2d}


def _rows_alone(D, x):
    """D on each row of x as a batch of one: (n, 1)."""
    return torch.cat([D(x[i:i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
def test_a_samples_critic_value_depends_on_its_batch_only_under_batch_norm(norm):
    torch.manual_seed(1)
    D = DCGANDiscriminator(TINY, channels=4, norm=norm).double().train()
    x = torch.rand(6, 64, dtype=torch.float64)
    same = torch.allclose(D(x), _rows_alone(D, x), atol=1e-10)
    assert same == (norm != "batch")


def _penalty_per_sample(D, x, fake, eps):
    """(1/n) sum_i (|grad D(x_hat_i)| - 1)^2, each gradient from its own backward pass on one sample."""
    terms = []
    for i in range(len(x)):
        x_hat = (eps[i] * x[i] + (1 - eps[i]) * fake[i]).reshape(1, -1).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x_hat).sum(), x_hat)
        terms.append((g.norm() - 1.0) ** 2)
    return torch.stack(terms).mean()


def test_wgan_gp_penalty_matches_a_per_sample_autograd_loop():
    """Gulrajani et al. eq. 3 on digits' shapes: the batched penalty is the per-sample one, with the
    layer-norm critic; with a batch-norm critic the same batched formula would not be."""
    m = _small("wgan_gp").double()
    torch.manual_seed(2)
    x, fake = torch.rand(5, 64, dtype=torch.float64), torch.rand(5, 64, dtype=torch.float64)
    torch.manual_seed(3)
    batched = m._gradient_penalty(x, fake)
    torch.manual_seed(3)
    eps = torch.rand(5, 1, dtype=torch.float64)  # the interpolation weights the penalty drew
    assert batched > 1e-3
    assert torch.allclose(batched, _penalty_per_sample(m.D, x, fake, eps), rtol=1e-9)

    m.D = DCGANDiscriminator(TINY, channels=8, norm="batch").double().train()
    torch.manual_seed(3)
    mixed = m._gradient_penalty(x, fake)
    assert not torch.allclose(mixed, _penalty_per_sample(m.D, x, fake, eps), rtol=1e-3)


def test_the_critics_fixed_output_bias_is_the_heads():
    for name in ("wgan", "wgan_gp", "mmdgan"):
        m = _small(name)
        frozen = [n for n, p in m.D.named_parameters() if not p.requires_grad]
        assert frozen == ["head.bias"] and float(m.D.head.bias.abs().sum()) == 0, name
    assert all(p.requires_grad for p in _small("nsgan").D.parameters())


# ---- the live view's fixed noise ----------------------------------------------------

def test_traces_on_images_follow_the_fixed_noise_and_leave_the_rng_alone():
    m = _small("nsgan").eval()
    x = torch.rand(80, *TINY)
    z = m.fixed_noise()
    assert z.shape == (FIXED_Z, IMAGE_LATENT) and torch.equal(z, _small("lsgan").fixed_noise())
    torch.manual_seed(9)
    t = m.traces(x)
    after = torch.rand(3)
    torch.manual_seed(9)
    assert torch.equal(after, torch.rand(3))  # traces drew nothing from the global generator
    with torch.no_grad():
        fake = m.G(z)
    np.testing.assert_allclose(t["samples"], fake.numpy(), atol=1e-6)
    assert t["samples"].shape == (FIXED_Z, 64)  # at most 64 digits, however many data are given
    np.testing.assert_allclose(t["critic_fake"], torch.sigmoid(m.critic(fake.reshape(-1, *TINY))).numpy(), atol=1e-6)
    np.testing.assert_allclose(t["critic_real"], torch.sigmoid(m.critic(x[:FIXED_Z])).numpy(), atol=1e-6)
    wgan = _small("wgan").eval()
    raw = wgan.traces(x)["critic_real"]  # an unbounded critic is sent raw
    np.testing.assert_allclose(raw, wgan.critic(x[:FIXED_Z]).numpy(), atol=1e-6)


def test_image_train_defaults_differ_from_the_2d_ones():
    for name in LOSSES:
        assert train_config(name).batch_size == 256 and train_config(name).lr == 5e-4, name
        img = train_config(name, kind="images")
        assert img.batch_size in (32, 64) and img.steps >= 2000, name
    assert model_spec("nsgan").train_images["batch_size"] == 64
    assert model_config("wgan_gp").channels == 16 and model_config("nsgan").channels == 32


# ---- real digits ----------------------------------------------------------------------

def _window_means(values, k):
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


def test_on_real_digits_d_learns_against_a_frozen_g_and_then_g_against_a_frozen_d(mnist_dir):
    """At the start, D's phase alone lowers D's loss from near log 4 (it learns to tell digits from
    G's blobs); then G's phase alone, against that D held fixed, lowers G's loss (G learns to fool it)."""
    digits = load_dataset("mnist").training_set(512, 0)  # (512, 1, 28, 28)
    torch.manual_seed(4)
    m = build_model("nsgan", DIGIT, {"channels": 8, "latent": 16})
    m.init_from_data(digits[:64])
    d_phase, g_phase = m.phases(5e-4)
    batches = torch.Generator().manual_seed(5)

    def run(phase, steps):
        opt = torch.optim.Adam(phase.params, 1e-3, betas=(0.5, 0.9))
        out = []
        for _ in range(steps):
            x = digits[torch.randint(0, len(digits), (32,), generator=batches)]
            loss = phase.loss(x)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(float(loss.detach()))
        return out

    g_before = [p.clone() for p in m.G.parameters()]
    d_losses = run(d_phase, 30)
    assert all(torch.equal(a, b) for a, b in zip(g_before, m.G.parameters()))  # G stayed frozen
    first, last = _window_means(d_losses, 5)
    assert abs(first - np.log(4)) < 0.5 and last < first - 0.3, (first, last)

    d_before = [p.clone() for p in m.D.parameters()]
    g_losses = run(g_phase, 30)
    assert all(torch.equal(a, b) for a, b in zip(d_before, m.D.parameters()))  # D stayed frozen
    first, last = _window_means(g_losses, 5)
    assert last < first - 0.3, (first, last)


def test_cli_trains_and_samples_nsgan_on_mnist(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "nsgan", "--data", "mnist", "--steps", "6", "--batch-size", "16", "--set", "channels=4",
                 "--set", "n_data=200", "--metrics-every", "6", "--n-samples", "16", "--out", str(out), "--quiet"])
    assert code == 0
    model, meta = checkpoint.load(out)
    assert isinstance(model, GAN) and meta["dataset"] == "mnist" and isinstance(model.G, DCGANGenerator)
    assert model.config.channels == 4 and model.latent == IMAGE_LATENT
    code = main(["sample", str(out), "--n", "12", "--out", str(tmp_path / "s.npy"), "--seed", "2"])
    assert code == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (12, *DIGIT) and s.min() >= 0 and s.max() <= 1
    np.save(tmp_path / "p.npy", s)
    code = main(["logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy")])
    err = capsys.readouterr().err
    assert code != 0 and "no density" in err and not (tmp_path / "lp.npy").exists()
