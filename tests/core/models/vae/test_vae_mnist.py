"""The VAE on digits: the conv encoder and decoder, binarized pixels and training on real MNIST."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import registry
from core.config import make
from core.errors import ConfigError
from core.models.vae import VAE, VAEConfig
from core.nets.conv import ConvDecoder, ConvEncoder

TINY = {"hidden": 16, "channels": 4}


# ---- the networks ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 5, 7)])
def test_conv_encoder_and_decoder_shapes(shape):
    torch.manual_seed(0)
    enc, dec = ConvEncoder(shape, 6, channels=4, hidden=8), ConvDecoder(3, shape, channels=4, hidden=8)
    x = torch.rand(5, *shape)
    assert enc(x).shape == (5, 6)
    assert torch.equal(enc(x.reshape(5, -1)), enc(x))  # flattened images read the same
    assert dec(torch.randn(5, 3)).shape == (5, *shape)
    z = torch.randn(4, 5, 3)  # leading dims, as K importance samples of n points
    out = dec(z)
    assert out.shape == (4, 5, *shape)
    assert torch.allclose(out[2], dec(z[2]), atol=1e-6)  # each z decoded on its own
    side = (math.ceil(shape[1] / 2), math.ceil(shape[2] / 2))
    assert enc.width == 4 * side[0] * side[1] == dec.width  # the first (largest) feature map


def test_conv_decoder_pixels_depend_on_z_and_encoder_on_every_pixel():
    torch.manual_seed(1)
    enc, dec = ConvEncoder((1, 8, 8), 4, channels=4, hidden=8), ConvDecoder(2, (1, 8, 8), channels=4, hidden=8)
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    enc(x).sum().backward()
    assert (x.grad != 0).all()  # stride 2, kernel 3: every pixel reaches the code
    z = torch.randn(1, 2, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda v: dec(v).reshape(-1), z)  # (64, 1, 2)
    assert (jac.abs().sum(-1) > 0).all()  # every output pixel moves with z


# ---- the model on digits --------------------------------------------------------------------
def test_images_pick_conv_nets_binary_pixels_and_bernoulli_points_keep_the_mlp():
    m = registry.build_model("vae", (1, 28, 28), TINY)
    assert m.config.net == "conv" and m.config.likelihood == "bernoulli" and m.pixels == "binary"
    assert isinstance(m.encoder, ConvEncoder) and isinstance(m.decoder, ConvDecoder)
    p = registry.build_model("vae", (2,), TINY)
    assert p.config.net == "mlp" and p.pixels == "grey" and not isinstance(p.encoder, ConvEncoder)
    mlp_digits = registry.build_model("vae", (1, 28, 28), {**TINY, "net": "mlp"})
    assert not isinstance(mlp_digits.encoder, ConvEncoder) and mlp_digits.pixels == "binary"
    with pytest.raises(ConfigError, match=r"net=conv needs images shaped \(C, H, W\)"):
        registry.build_model("vae", (2,), {"net": "conv"})


def test_the_loss_binarizes_every_batch_afresh_and_is_the_bernoulli_elbo_of_the_draw():
    torch.manual_seed(2)
    m = VAE((1, 8, 8), make(VAEConfig, TINY)).double()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)  # grey levels
    torch.manual_seed(3)
    out = m.loss(x)

    torch.manual_seed(3)  # the same draws, by hand: b ~ Bernoulli(x), then eps
    b = (torch.rand(6, 1, 8, 8) < x).double().reshape(6, 64)  # core.data.pixels draws u in float32
    eps = torch.randn(1, 6, m.config.latent, dtype=torch.float64)[0]
    mu, var = m.encode(b.reshape(6, 1, 8, 8))
    logits = m.decoder(mu + var.sqrt() * eps).reshape(6, 64)
    recon = F.binary_cross_entropy_with_logits(logits, b, reduction="none").sum(1).mean()
    kl = 0.5 * (var + mu**2 - 1 - var.log()).sum(1).mean()
    assert torch.allclose(out["recon"], recon, rtol=1e-10) and torch.allclose(out["kl"], kl, rtol=1e-10)
    assert torch.allclose(out["elbo"], -(recon + kl), rtol=1e-10)
    torch.manual_seed(4)
    assert not torch.allclose(m.loss(x)["recon"], recon)  # another batch, another binarization


def test_samples_are_binary_draws_of_the_decoder_means():
    torch.manual_seed(5)
    m = VAE((1, 8, 8), make(VAEConfig, TINY)).double()
    torch.manual_seed(6)
    s = m.sample(4000)
    assert s.shape == (4000, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(7)
    means = m.decode_mean(torch.randn(4000, m.config.latent, dtype=torch.float64))
    # E[x] = E_z[m(z)] pixel by pixel; Bernoulli draws add at most 1/4 to the variance
    se = (s.reshape(4000, -1).std(0) / math.sqrt(4000)).max()
    assert torch.allclose(s.mean(0), means.mean(0), atol=5 * se.item())
    t = m.traces(torch.rand(10, 1, 8, 8, dtype=torch.float64))
    assert set(np.unique(t["samples"])) <= {0.0, 1.0} and 0 < t["sample_means"].min() < t["sample_means"].max() < 1


def test_traces_on_digits_stay_tile_sized(mnist_dir):
    from core.data.mnist import MNIST

    m = registry.build_model("vae", (1, 28, 28), TINY).eval()
    x = MNIST(mnist_dir).images[:300]
    t = m.traces(x)
    assert t["z_mean"].shape == (300, 2) and t["elbo_recon"].shape == (200,) and t["elbo_kl"].shape == (200,)
    assert t["recon"].shape == (16, 784) and t["samples"].shape == (64, 784) and t["decoded_grid"].shape == (64, 784)
    assert (t["elbo_kl"] >= 0).all() and (t["elbo_recon"] > 0).all()  # a KL, and -log of a pmf


def test_a_few_steps_on_real_digits_lower_the_negative_elbo(mnist_dir):
    from core.data import pixels as P
    from core.data.mnist import MNIST

    data = MNIST(mnist_dir)
    torch.manual_seed(8)
    m = registry.build_model("vae", data.shape, {"hidden": 32, "channels": 8})
    x = data.training_set(512, seed=0)
    m.init_from_data(x)
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    g = torch.Generator().manual_seed(9)
    losses = []
    for _ in range(30):
        batch = x[torch.randint(0, len(x), (32,), generator=g)]
        loss = m.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 60, (first, last)  # about 480 nats down to about 350 by now
    held = P.binarize(data.held_out()[0][:32], torch.Generator().manual_seed(10))
    torch.manual_seed(11)
    nll = -m.log_prob(held, K=8).mean().item()
    assert nll < 784 * math.log(2) - 60, nll  # held-out digits: well below D log 2, every pixel a coin flip


def test_a_gaussian_conv_decoder_starts_at_each_channels_mean():
    torch.manual_seed(12)
    m = VAE((2, 4, 4), make(VAEConfig, {**TINY, "likelihood": "gaussian"}))
    assert m.config.net == "conv" and m.pixels == "grey"
    x = torch.randn(50, 2, 4, 4) * 0.5 + torch.tensor([3.0, -1.0])[None, :, None, None]
    m.init_from_data(x)
    last = m.decoder.up[-1]
    assert torch.allclose(last.bias, x.mean((0, 2, 3)), atol=1e-5)  # one bias per channel
    assert torch.allclose(m.log_var_x.exp(), 0.1 * x.reshape(50, -1).var(0), rtol=1e-4)
    assert torch.isfinite(m.loss(x)["loss"])
