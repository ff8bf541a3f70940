"""NCSN on digits: the U-Net by itself, scores learned on [-1, 1] and converted back to the data's
levels, a bounded annealed Langevin picture, training on real MNIST, the average and the CLI."""

from __future__ import annotations

import torch

from core import registry
from core.cli import main
from core.nets import TimeMLP
from core.nets.unet import UNet
from tests.core.models.images import check_cli_on_mnist, check_samples_come_from_the_average, mnist_losses
from tests.fakes import TinyImages

TINY = {"channels": 4, "L": 3, "steps_per_level": 3}


def test_auto_picks_the_unet_for_images_and_the_mlp_for_points():
    assert isinstance(registry.build_model("ncsn", (1, 28, 28)).net, UNet)
    assert isinstance(registry.build_model("ncsn", (2,)).net, TimeMLP)
    assert isinstance(registry.build_model("dsm", (1, 8, 8)).net, torch.nn.Module)  # dsm is left as it was


def test_score_at_converts_the_score_learned_on_rescaled_pixels_to_the_datas_levels():
    # Pixels X ~ N(mu, s^2) independently; the network works on Y = 2 X - 1 ~ N(2 mu - 1, 4 s^2), whose
    # blurred score is s(y, sigma) = -(y - (2 mu - 1)) / (4 s^2 + sigma^2). The law of alpha X + sigma eps
    # is N(alpha mu, alpha^2 s^2 + sigma^2), with score -(z - alpha mu) / (alpha^2 s^2 + sigma^2).
    mu, s = 0.3, 0.2
    model = registry.build_model("ncsn", (1, 8, 8), TINY)
    model.score = lambda y, sigma: -(y - (2 * mu - 1)) / (4 * s**2 + sigma**2)
    z = torch.randn(5, 1, 8, 8)
    for alpha, sigma in [(1.0, 0.1), (0.6, 0.8), (2.0, 0.0)]:
        want = -(z - alpha * mu) / (alpha**2 * s**2 + sigma**2)
        torch.testing.assert_close(model.score_at(z, alpha, sigma), want)


def test_the_network_is_trained_on_rescaled_pixels():
    # With f_theta = 0 (an untrained U-Net) the loss is E|eps|^2 / D whatever the pixels; the network's
    # input is 2 x - 1 + sigma_i eps.
    model = registry.build_model("ncsn", (1, 8, 8), TINY)
    seen = []
    model.net.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    x = torch.zeros(16, 1, 8, 8)  # black digits: -1 in [-1, 1]
    torch.manual_seed(0)
    model.loss(x)
    torch.manual_seed(0)
    i = torch.randint(0, 3, (16,))
    eps = torch.randn(16, 64)
    torch.testing.assert_close(seen[0], -1.0 + model.sigmas()[i][:, None].float() * eps)


def test_the_live_chain_on_digits_visits_every_level_in_few_steps():
    torch.manual_seed(0)
    model = registry.build_model("ncsn", (1, 8, 8), {"channels": 4})  # L = 10, 20 steps per level
    model.init_from_data(TinyImages().sample(64))
    tr = model.eval().traces(TinyImages().sample(40))
    L, k = model.config.L, model.TRACE_IMAGE_STEPS
    assert tr["chain"].shape == (L * k + 1, 8, 1, 8, 8)
    levels = model.sigmas().float().numpy()
    assert tr["chain_sigma"][0] == levels[0] and tr["chain_sigma"][-1] == levels[-1]
    assert sorted(set(tr["chain_sigma"].tolist()), reverse=True) == levels.tolist()
    assert tr["chain"].min() >= 0 and tr["chain"].max() <= 1
    s = model.sample(3)
    assert s.shape == (3, 1, 8, 8) and s.min() >= 0 and s.max() <= 1


def test_chains_start_from_the_rescaled_datas_spread():
    model = registry.build_model("ncsn", (1, 8, 8), TINY)
    x = TinyImages().sample(256, torch.Generator().manual_seed(0))
    model.init_from_data(x)
    torch.testing.assert_close(model.x0_mean, (2 * x - 1).reshape(256, 64).mean(0))


def test_training_on_real_digits_lowers_the_loss(mnist_dir):
    _, losses = mnist_losses("ncsn", {"channels": 8})
    first, last = losses[:8].mean(), losses[-8:].mean()
    assert first > 0.6  # an untrained f = 0 scores E|eps|^2 / D = 1
    assert last < 0.8 * first, (first, last)


def test_samples_come_from_the_weight_average():
    check_samples_come_from_the_average("ncsn", TINY)


def test_train_and_sample_on_mnist_through_the_cli(mnist_dir, tmp_path):
    check_cli_on_mnist(main, "ncsn", ["channels=4", "L=2", "steps_per_level=1"], tmp_path, logprob=False)
