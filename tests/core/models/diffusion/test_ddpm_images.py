"""DDPM on digits: the U-Net by itself, [-1, 1] inside and [0, 1] out, its density's Jacobian,
a bounded live picture, training on real MNIST, the weight average and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from core import registry
from core.cli import main
from core.errors import ConfigError
from core.models.diffusion.likelihood import pf_ode_log_prob
from core.nets import TimeMLP
from core.nets.unet import UNet
from tests.core.models.images import check_cli_on_mnist, check_samples_come_from_the_average, mnist_losses
from tests.fakes import TinyImages

TINY = {"channels": 4, "T": 10}


def test_auto_picks_the_unet_for_images_and_the_mlp_for_points():
    assert isinstance(registry.build_model("ddpm", (1, 28, 28)).eps_net, UNet)
    assert isinstance(registry.build_model("ddpm", (2,)).eps_net, TimeMLP)
    assert isinstance(registry.build_model("ddpm", (1, 8, 8), {"net": "mlp"}).eps_net, TimeMLP)
    with pytest.raises(ConfigError, match="net=unet needs images"):
        registry.build_model("ddpm", (2,), {"net": "unet"})


def test_the_network_sees_pixels_in_minus_one_one():
    # L_simple's x_0 is 2 x - 1: with eps_theta = 0 the loss is E|eps|^2 / D whatever x_0, and the
    # network's input at t = 1 index is sqrt(ab_1) (2 x - 1) + sqrt(1 - ab_1) eps.
    model = registry.build_model("ddpm", (1, 8, 8), TINY)
    seen = []
    model.eps_net.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    x = torch.ones(64, 1, 8, 8)  # white digits: 1 in [0, 1], +1 in [-1, 1]
    torch.manual_seed(0)
    model.loss(x)
    torch.manual_seed(0)
    t_index = torch.randint(1, 11, (64,))
    eps = torch.randn(64, 64)
    sab, s1m = model.schedule.sqrt_alpha_bar[t_index, None].float(), model.schedule.sqrt_one_minus_alpha_bar[t_index, None].float()
    torch.testing.assert_close(seen[0], sab * 1.0 + s1m * eps)


def test_samples_are_images_in_zero_one():
    torch.manual_seed(0)
    model = registry.build_model("ddpm", (1, 8, 8), TINY)
    with torch.no_grad():
        for p in model.eps_net.out.parameters():
            p.normal_(0, 1.0)  # a wild noise predictor: the chain leaves [-1, 1]
    s = model.eval().sample(6)
    assert s.shape == (6, 1, 8, 8) and s.min() >= 0 and s.max() <= 1


def test_log_prob_of_digits_adds_the_jacobian_of_the_rescaling():
    # log p_x(x) = log p_y(2 x - 1) + D log 2, with the same Hutchinson probe for both.
    torch.manual_seed(0)
    model = registry.build_model("ddpm", (1, 8, 8), {**TINY, "ode_steps": 4}).eval()
    x = TinyImages().sample(3, torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    got = model.log_prob(x)
    torch.manual_seed(7)
    y = model.flat(2 * x - 1)
    want = pf_ode_log_prob(model.eps_theta, model.schedule, y, steps=4, t_eps=model.ODE_T_EPS, exact=False)
    torch.testing.assert_close(got, want + 64 * math.log(2))


def test_the_live_picture_on_digits_is_a_short_chain_of_eight_digits():
    torch.manual_seed(0)
    model = registry.build_model("ddpm", (1, 8, 8), {"channels": 4}).eval()  # T = 100, ancestral
    with torch.no_grad():
        for p in model.eps_net.out.parameters():
            p.normal_(0, 0.1)
    x = TinyImages().sample(40)
    tr = model.traces(x)
    S = model.TRACE_IMAGE_STEPS
    assert tr["trajectory"].shape == (S + 1, 8, 1, 8, 8) and tr["trajectory_t"].shape == (S + 1,)
    assert tr["trajectory_t"][0] == pytest.approx((1 + (S - 1) * 100 // S) / 100) and tr["trajectory_t"][-1] == 0
    assert tr["trajectory"].min() >= 0 and tr["trajectory"].max() <= 1
    # the forward strip starts at the digits themselves, shown in [0, 1]
    torch.testing.assert_close(torch.from_numpy(tr["forward"][0]), x[:8])
    # its last frame is the respaced ancestral chain of S steps from the fixed noise, clipped, in [0, 1]
    g = torch.Generator().manual_seed(0)
    traj = model.reverse_trajectory(8, "ancestral", S, generator=g)
    torch.testing.assert_close(torch.from_numpy(tr["trajectory"][-1]), ((traj[-1] + 1) / 2).clamp(0, 1))
    assert model.traces(x)["trajectory"].tobytes() == tr["trajectory"].tobytes()  # frames stay put
    model.config.sampler, model.config.ddim_steps = "ddim", 7
    assert model.traces(x)["trajectory"].shape[0] == 8  # DDIM's own steps when fewer


def test_training_on_real_digits_lowers_the_loss(mnist_dir):
    _, losses = mnist_losses("ddpm", {"channels": 8})
    first, last = losses[:8].mean(), losses[-8:].mean()
    assert first > 0.6  # an untrained eps_theta = 0 scores E|eps|^2 / D = 1
    assert last < 0.75 * first, (first, last)


def test_samples_come_from_the_weight_average():
    check_samples_come_from_the_average("ddpm", {"channels": 4, "T": 5})


def test_train_sample_and_logprob_on_mnist_through_the_cli(mnist_dir, tmp_path):
    check_cli_on_mnist(main, "ddpm", ["channels=4", "T=4", "ode_steps=4"], tmp_path, logprob=True)


@pytest.mark.parametrize("name", ["ancestral", "ddim"])
def test_clipping_the_predicted_x0_keeps_the_chain_in_the_box(name):
    # For data that are one point c, the exact noise predictor is eps(x_t) = (x_t - sqrt(ab_t) c) / sqrt(1 - ab_t),
    # so x0_hat = c at every step. Inside the box clipping changes nothing; outside, every step is the
    # posterior mean given x0_hat on the box's face, and the chain ends there (the last step has no noise).
    from core.dynamics.schedules import NoiseSchedule
    from core.models.diffusion.samplers import make_sampler

    schedule = NoiseSchedule(20, "cosine")
    x_T = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def oracle(c):
        def eps_fn(x, t):
            ab = float(schedule.alpha_bar[int(round(float(t[0]) * schedule.T))])
            return (x - math.sqrt(ab) * c) / math.sqrt(1 - ab)
        return eps_fn

    def run(c, clip):
        return make_sampler(name, 10, clip=clip)(oracle(c), schedule, x_T, generator=torch.Generator().manual_seed(1))

    torch.testing.assert_close(run(0.5, (-1.0, 1.0)), run(0.5, None))
    torch.testing.assert_close(run(3.0, (-1.0, 1.0)), torch.ones(5, 3, dtype=torch.float64))
    torch.testing.assert_close(run(3.0, None), torch.full((5, 3), 3.0, dtype=torch.float64))
    with pytest.raises(ConfigError, match="lo < hi"):
        make_sampler(name, 10, clip=(1.0, -1.0))
