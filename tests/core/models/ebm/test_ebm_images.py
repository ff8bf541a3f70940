"""The EBM on images: the CD gradient, the clipped Langevin chain, the replay buffer, and real digits."""

import copy
import math

import pytest
import torch
from torch import nn

from core import registry
from core.config import make
from core.errors import ConfigError, LogProbUnavailable
from core.models.ebm import EBM, EBMConfig
from core.nets import MLP
from core.nets.conv_energy import ConvEnergy

SHAPE = (1, 8, 8)
F64 = torch.float64


class Linear(nn.Module):
    """E(x) = -theta . x: an exponential family with sufficient statistic T(x) = x, dE/dtheta = -x."""

    def __init__(self, theta: torch.Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, x):
        return -(self.theta * x).flatten(1).sum(1, keepdim=True)


class Quadratic(nn.Module):
    """E(x) = |x - m|^2 / (2 v): exp(-E / T) is N(m, T v I)."""

    def __init__(self, m: torch.Tensor, v: float):
        super().__init__()
        self.register_buffer("m", m)
        self.v = v

    def forward(self, x):
        return ((x - self.m) ** 2).flatten(1).sum(1, keepdim=True) / (2 * self.v)


def images_model(net: nn.Module | None = None, shape=SHAPE, **overrides) -> EBM:
    model = EBM(shape, make(EBMConfig, overrides), net=net)
    model.init_from_data(torch.rand(4, *shape))
    return model


def digits(n: int, seed: int = 0, held_out: bool = False) -> torch.Tensor:
    from core.data.mnist import MNIST

    data = MNIST()
    if held_out:
        return data.held_out()[0][:n]
    return data.training_set(n, seed)


# ---- the model on images ------------------------------------------------------------------------
def test_auto_picks_a_conv_energy_on_images_and_an_mlp_on_points():
    assert isinstance(registry.build_model("ebm", SHAPE).energy_net, ConvEnergy)
    assert isinstance(registry.build_model("ebm", (1, 28, 28)).energy_net, ConvEnergy)
    assert isinstance(registry.build_model("ebm", (2,)).energy_net, MLP)
    flat = registry.build_model("ebm", SHAPE, {"net": "mlp", "hidden": 16, "layers": 2})
    assert isinstance(flat.energy_net, MLP) and flat.energy(torch.rand(5, *SHAPE)).shape == (5,)
    with pytest.raises(ConfigError, match="net=conv needs images"):
        registry.build_model("ebm", (2,), {"net": "conv"})
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        registry.build_model("ebm", (3,))


def test_images_have_no_density_and_say_so():
    model = registry.build_model("ebm", SHAPE)
    assert not model.has_log_prob and not model.live_kl and "no density" in model.density_note
    with pytest.raises(LogProbUnavailable, match="no density"):
        model.log_prob(torch.rand(3, *SHAPE))
    points = registry.build_model("ebm", (2,))
    assert points.has_log_prob and points.live_kl and "grid normalisation" in points.density_note


def test_the_conv_energy_gives_each_image_its_own_energy():
    # no batch norm: E(x_i) does not depend on the other images of the batch
    for shape in (SHAPE, (1, 28, 28)):
        torch.manual_seed(0)
        net = ConvEnergy(shape, channels=4)
        x = torch.rand(6, *shape)
        e = net(x)
        assert e.shape == (6, 1)
        torch.testing.assert_close(net(x[2:3]), e[2:3])
        torch.testing.assert_close(net(torch.cat([x[2:3], torch.zeros(5, *shape)]))[:1], e[2:3])
    with pytest.raises(ValueError, match="side at least 8"):
        ConvEnergy((1, 4, 4))


def test_spectral_norm_bounds_each_layers_largest_singular_value():
    torch.manual_seed(0)
    net = ConvEnergy(SHAPE, channels=4, spectral_norm=True)
    for _ in range(30):  # the power iteration converges as the net runs in training mode
        net(torch.rand(8, *SHAPE))
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 4
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert abs(float(sigma) - 1) < 0.05, float(sigma)
    plain = ConvEnergy(SHAPE, channels=4)
    assert any(torch.linalg.matrix_norm(m.weight.flatten(1), ord=2) < 0.9 for m in plain.modules()
               if isinstance(m, nn.Conv2d))  # so the bound above is spectral norm's doing


# ---- the contrastive-divergence gradient ---------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_the_cd_gradient_of_an_exponential_family_is_the_difference_of_its_statistics(alpha):
    # L = mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2) with E = -theta . x:
    # dL/dtheta = E_data[dE/dtheta] - E_samples[dE/dtheta] + 2 alpha (E[E(x+) dE/dtheta] + E[E(x-) dE/dtheta])
    #           = -mean x+ + mean x- - 2 alpha (mean E(x+) x+ + mean E(x-) x-)
    theta = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    model = images_model(Linear(theta), alpha=alpha, reinit=0.2, langevin_steps=5, image_buffer=256)
    twin = copy.deepcopy(model)
    x_pos = torch.rand(64, *SHAPE, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    model.loss(x_pos)["loss"].backward()
    torch.manual_seed(7)
    x_neg = twin.negatives(64)  # the negatives the loss drew: the same buffer, the same draws
    e_pos, e_neg = -(theta * x_pos).flatten(1).sum(1), -(theta * x_neg).flatten(1).sum(1)
    expected = -x_pos.mean(0) + x_neg.mean(0) - 2 * alpha * ((e_pos[:, None, None, None] * x_pos).mean(0)
                                                               + (e_neg[:, None, None, None] * x_neg).mean(0))
    torch.testing.assert_close(model.energy_net.theta.grad, expected, atol=1e-5, rtol=1e-5)
    assert (x_neg - x_pos.mean(0)).abs().mean() > 0.05  # the negatives are not the data: both terms count


def test_the_loss_on_images_reports_the_energies_it_contrasts():
    theta = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    model = images_model(Linear(theta), alpha=0.1)
    twin = copy.deepcopy(model)
    x = torch.rand(32, *SHAPE)
    torch.manual_seed(2)
    out = model.loss(x)
    torch.manual_seed(2)
    e_neg = model.energy(twin.negatives(32))
    torch.testing.assert_close(out["E_data"], model.energy(x).mean())
    torch.testing.assert_close(out["E_model"], e_neg.mean())
    torch.testing.assert_close(out["cd"], out["E_data"] - out["E_model"])
    torch.testing.assert_close(out["loss"], out["cd"] + 0.1 * (model.energy(x).pow(2).mean() + e_neg.pow(2).mean()))


# ---- Langevin on images --------------------------------------------------------------------------
@pytest.mark.parametrize("lam,sigma", [(1.0, 0.01), (0.5, 0.02)])
def test_langevin_on_a_quadratic_energy_samples_its_gaussian(lam, sigma):
    # x - lambda grad E + sigma z on E = |x - m|^2 / (2 v) is the AR(1) chain
    # x' - m = (1 - lambda / v)(x - m) + sigma z, which settles at N(m, sigma^2 / (1 - (1 - lambda / v)^2))
    # = N(m, T v / (1 - lambda / (2 v))) with T = sigma^2 / (2 lambda): Langevin for exp(-E / T), within O(lambda / v)
    v = 2.0
    m = torch.linspace(0.3, 0.7, 64).reshape(SHAPE)
    torch.manual_seed(0)
    model = images_model(Quadratic(m, v), image_step=lam, image_noise=sigma)
    x = model.run_langevin(model._uniform(1024), 60).double()  # from noise; it contracts by 0.5-0.75 a step
    var = sigma**2 / (2 * lam) * v / (1 - lam / (2 * v))
    torch.testing.assert_close(x.mean(0), m.double(), atol=4 * math.sqrt(var / 1024), rtol=0)
    pixel_var = x.var(0)  # (1, 8, 8), 1024 draws each
    assert abs(float(pixel_var.mean()) / var - 1) < 0.03, float(pixel_var.mean()) / var
    torch.testing.assert_close(pixel_var, torch.full_like(pixel_var, var), rtol=0.2, atol=0)
    assert abs(float(pixel_var.mean()) / (sigma**2 / (2 * lam) * v) - 1) > 0.1  # the O(lambda / v) term is seen


def test_chains_stay_in_the_pixel_range():
    theta = torch.full(SHAPE, 50.0)
    theta[0, :4] = -50.0  # a steep slope out of [0, 1] on every pixel: up on the lower rows, down on the upper
    model = images_model(Linear(theta), image_step=1.0, langevin_steps=3)
    x = model.run_langevin(torch.rand(16, *SHAPE), 3, return_intermediates=True)
    assert x.shape == (4, 16, *SHAPE) and x.min() >= 0 and x.max() <= 1
    assert (x[-1, :, 0, :4] == 0).all() and (x[-1, :, 0, 4:] == 1).all()


# ---- the replay buffer --------------------------------------------------------------------------
@pytest.mark.parametrize("reinit", [0.05, 0.3])
def test_a_reinit_share_of_chains_restarts_from_uniform_noise(reinit):
    # E = 0: a chain only diffuses (sigma sqrt(K) = 0.045), so a restart shows as a uniform image
    model = images_model(Linear(torch.zeros(SHAPE)), reinit=reinit, image_buffer=8192, langevin_steps=20)
    with torch.no_grad():
        model.replay.fill_(0.5)
    torch.manual_seed(0)
    n = 4000
    x = model.negatives(n)
    fresh = x.flatten(1).std(1) > 0.15  # U[0, 1] has std 0.29 per pixel; a kept chain about 0.045
    assert abs(float(fresh.float().mean()) - reinit) < 4 * math.sqrt(reinit * (1 - reinit) / n)
    torch.testing.assert_close(x[fresh].var(), torch.tensor(1 / 12), rtol=0.05, atol=0)
    # the negatives were written back over the entries they started from
    touched = (model.replay != 0.5).flatten(1).any(1)
    expected_unique = 8192 * (1 - (1 - 1 / 8192) ** n)  # distinct entries among n draws with replacement
    assert abs(int(touched.sum()) - expected_unique) < 4 * math.sqrt(expected_unique)
    assert float(model.replay[touched].flatten(1).std(1).gt(0.15).float().mean()) == pytest.approx(reinit, abs=0.03)


def test_sample_runs_k_more_steps_from_the_buffer_and_leaves_it_alone():
    model = images_model(Linear(torch.zeros(SHAPE)), image_noise=0.01, langevin_steps=4, image_buffer=64)
    with torch.no_grad():
        model.replay.copy_(torch.rand(64, *SHAPE) * 0.5 + 0.25)
    before = model.replay.clone()
    x = model.sample(200)
    assert x.shape == (200, *SHAPE) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(model.replay, before)
    # each sample is a buffer entry plus 4 steps of noise 0.01: within 0.1 of one entry, everywhere
    gap = (x[:, None] - before[None]).flatten(2).abs().amax(2).min(1).values
    assert (gap < 0.1).all() and (gap > 0).all()


def test_image_traces_show_the_buffer_its_energies_and_chains_from_noise():
    torch.manual_seed(0)
    model = registry.build_model("ebm", SHAPE, {"channels": 4, "image_buffer": 100})
    model.init_from_data(torch.rand(8, *SHAPE))
    x = torch.rand(80, *SHAPE)
    a, b = model.traces(x), model.traces(x)
    assert a["buffer"].shape == (64, *SHAPE) and torch.equal(torch.from_numpy(a["buffer"]), model.replay[:64])
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(a["energy_data"]), model.energy(x[:64]))
        torch.testing.assert_close(torch.from_numpy(a["energy_buffer"]), model.energy(model.replay[:64]))
    chains = a["noise_chains"]
    assert list(a["noise_steps"]) == [0, 10, 20, 30, 40, 50, 60] and chains.shape == (7, 4, *SHAPE)
    assert (chains == b["noise_chains"]).all() and chains.min() >= 0 and chains.max() <= 1
    assert abs(chains[0].mean() - 0.5) < 0.06 and abs(chains[0].var() - 1 / 12) < 0.02  # they start uniform


# ---- real digits ------------------------------------------------------------------------------------
def test_a_few_steps_on_mnist_open_the_energy_gap_that_cd_predicts(mnist_dir):
    # CD lowers E on the data and raises it on the negatives: E_model - E_data (= -cd) grows above zero,
    # and held-out digits end with lower energy than uniform noise
    torch.manual_seed(0)
    model = registry.build_model("ebm", (1, 28, 28), {"channels": 4, "langevin_steps": 5, "image_buffer": 256})
    x = digits(1024)
    model.init_from_data(x[:32])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(1)
    gaps = []
    for _ in range(40):
        out = model.loss(x[torch.randint(0, 1024, (32,), generator=g)])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        gaps.append(float(out["E_model"] - out["E_data"]))
        assert torch.isclose(out["cd"], out["E_data"] - out["E_model"])
    first, last = sum(gaps[:5]) / 5, sum(gaps[-10:]) / 10
    assert last > 0.5 and last > first + 0.5, (first, last)
    with torch.no_grad():
        e_digits = model.energy(digits(200, held_out=True)).mean()
        e_noise = model.energy(torch.rand(200, 1, 28, 28)).mean()
    assert e_noise - e_digits > 0.5, (float(e_digits), float(e_noise))
