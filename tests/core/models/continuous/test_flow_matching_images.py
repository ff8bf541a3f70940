"""Flow matching on digits: the U-Net by itself, straight paths between [-1, 1] digits and noise,
the density's Jacobian, a bounded live picture, training on real MNIST, the average and the CLI."""

from __future__ import annotations

import math

import torch

from core import registry
from core.cli import main
from core.dynamics.ode import log_likelihood
from core.models.continuous.base import VelocityNet
from core.nets.unet import UNet
from tests.core.models.images import check_cli_on_mnist, check_samples_come_from_the_average, mnist_losses
from tests.fakes import TinyImages

TINY = {"channels": 4, "steps": 4, "log_prob_steps": 3}


def test_auto_picks_the_unet_for_images_and_the_mlp_for_points():
    assert isinstance(registry.build_model("flow_matching", (1, 28, 28)).velocity, UNet)
    assert isinstance(registry.build_model("flow_matching", (2,)).velocity, VelocityNet)
    assert isinstance(registry.build_model("cnf", (1, 8, 8)).velocity, VelocityNet)  # the CNF keeps its MLP


def test_the_regression_target_is_the_velocity_between_a_rescaled_digit_and_its_noise():
    # With v_theta = 0 (an untrained U-Net), L_CFM = E|x_1 - (2 x - 1)|^2 / D exactly.
    model = registry.build_model("flow_matching", (1, 8, 8), TINY)
    x = TinyImages().sample(32, torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    x_1 = torch.randn(32, 64)
    want = ((x_1 - (2 * x.reshape(32, 64) - 1)) ** 2).mean()
    torch.testing.assert_close(out["loss"], want)


def test_log_prob_of_digits_adds_the_jacobian_of_the_rescaling():
    torch.manual_seed(0)
    model = registry.build_model("flow_matching", (1, 8, 8), TINY).eval()
    with torch.no_grad():
        for p in model.velocity.out.parameters():
            p.normal_(0, 0.1)  # a field that is not zero, so the divergence counts
    x = TinyImages().sample(3, torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    got = model.log_prob(x)
    torch.manual_seed(7)
    want = log_likelihood(model.v, model.flat(2 * x - 1), model._grid(3, 0.0, 1.0), "rk4", exact=False)
    torch.testing.assert_close(got, want + 64 * math.log(2))


def test_samples_and_the_live_picture_are_digits_in_zero_one():
    torch.manual_seed(0)
    model = registry.build_model("flow_matching", (1, 8, 8), TINY).eval()
    with torch.no_grad():
        for p in model.velocity.out.parameters():
            p.normal_(0, 1.0)
    s = model.sample(5)
    assert s.shape == (5, 1, 8, 8) and s.min() >= 0 and s.max() <= 1
    tr = model.traces(TinyImages().sample(40))
    S = model.TRACE_IMAGE_STEPS
    assert tr["paths"].shape == (S + 1, 8, 1, 8, 8) and tr["paths"].min() >= 0 and tr["paths"].max() <= 1
    assert tr["paths_t"][0] == 1 and tr["paths_t"][-1] == 0
    # the picture is Euler's: its last frame is x_1 - sum_k h v(x_k, t_k), from the same fixed noise
    g = torch.Generator().manual_seed(0)
    x = model._noise(8, g)
    for k in range(S):
        x = x - (1.0 / S) * model.v(1.0 - k / S, x)
    torch.testing.assert_close(torch.from_numpy(tr["paths"][-1]).reshape(8, 64), ((x + 1) / 2).clamp(0, 1))


def test_no_score_levels_on_rescaled_digits():
    assert registry.build_model("flow_matching", (1, 8, 8), TINY).score_levels() == []
    assert len(registry.build_model("flow_matching", (2,)).score_levels()) == 3


def test_training_on_real_digits_lowers_the_loss(mnist_dir):
    _, losses = mnist_losses("flow_matching", {"channels": 8})
    first, last = losses[:8].mean(), losses[-8:].mean()
    assert first > 1.2  # v = 0 scores E|x_1 - y|^2 / D = 1 + E[y^2], and most pixels are y = -1
    assert last < 0.8 * first, (first, last)


def test_samples_come_from_the_weight_average():
    check_samples_come_from_the_average("flow_matching", TINY)


def test_train_sample_and_logprob_on_mnist_through_the_cli(mnist_dir, tmp_path):
    check_cli_on_mnist(main, "flow_matching", ["channels=4", "steps=2", "log_prob_steps=2"], tmp_path, logprob=True)
