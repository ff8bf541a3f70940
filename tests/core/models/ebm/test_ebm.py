import copy
import math

import pytest
import torch
from torch import nn

from core import registry
from core.config import make
from core.errors import ConfigError
from core.models.ebm import EBM, EBMConfig

F64 = torch.float64


class Quadratic(nn.Module):
    """E(x) = a |x|^2 / 2 + b . x, the energy of N(-b / a, I / a): an exponential family in (a, b)."""

    def __init__(self, a: float, b):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a)))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float32))

    def forward(self, x):
        return (0.5 * self.a * (x * x).sum(1) + x @ self.b)[:, None]


def quadratic_model(a=1.0, b=(0.0, 0.0), box=6.0, **overrides) -> EBM:
    model = EBM((2,), make(EBMConfig, overrides), net=Quadratic(a, b))
    with torch.no_grad():
        model.box.copy_(torch.tensor([[-box, -box], [box, box]]))
    return model


def small_model(seed=0, **overrides) -> EBM:
    torch.manual_seed(seed)
    model = registry.build_model("ebm", (2,), {"hidden": 16, "layers": 2, **overrides})
    with torch.no_grad():  # an energy with some relief, not the near-flat start
        for p in model.parameters():
            p.mul_(3.0)
    model.init_from_data(torch.randn(256, 2, generator=torch.Generator().manual_seed(seed)) * 1.5)
    return model


def test_the_grid_normalised_density_integrates_to_one_on_a_finer_grid():
    for seed in (0, 1):
        model = small_model(seed)
        centres, log_cell = model.cells(grid_size=301)  # a finer grid over the same box, no centre shared
        for grid_size, tol in ((64, 1e-2), (256, 1e-3)):  # the default normaliser, then a finer one
            model.config.grid_size = grid_size
            mass = torch.exp(model.log_prob(centres.float()) + log_cell).sum()
            assert abs(float(mass) - 1) < tol, (seed, grid_size, float(mass))


def test_log_prob_of_a_quadratic_energy_is_the_gaussian_density():
    a, b = 2.0, (1.0, -0.5)
    model = quadratic_model(a, b, box=8.0, grid_size=200)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    mean, var = -torch.tensor(b, dtype=F64) / a, 1 / a
    exact = (-0.5 * ((x.double() - mean) ** 2).sum(1) / var - math.log(2 * math.pi * var))
    assert model.log_prob(x).dtype == F64
    torch.testing.assert_close(model.log_prob(x), exact, atol=1e-4, rtol=0)
    # points outside the box get the same formula
    far = torch.tensor([[9.0, -9.5]])
    torch.testing.assert_close(model.log_prob(far), exact.new_tensor([
        -0.5 * float(((far.double() - mean) ** 2).sum()) / var - math.log(2 * math.pi * var)]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("noise_scale", [1.0, 0.5])
def test_langevin_negatives_of_a_quadratic_energy_have_the_chains_stationary_moments(noise_scale):
    # the chain x - (eps/2) grad E + s sqrt(eps) z on E = a|x|^2/2 + b.x settles at
    # N(m, s^2 / (a (1 - eps a / 4))) with m = -b / a
    a, b, eps = 4.0, (2.0, -1.0), 0.05
    torch.manual_seed(0)
    model = quadratic_model(a, b, step_size=eps, noise_scale=noise_scale, langevin_steps=10, reinit=0.0,
                            buffer_size=2048)
    for _ in range(40):  # persistent chains: each call continues from the buffer
        model.negatives(2048)
    x = model.replay.double()
    var = noise_scale**2 / (a * (1 - eps * a / 4))
    torch.testing.assert_close(x.mean(0), torch.tensor([-0.5, 0.25], dtype=F64), atol=4 * math.sqrt(var / 2048), rtol=0)
    torch.testing.assert_close(x.var(0), torch.full((2,), var, dtype=F64), rtol=0.08, atol=0)


def test_fresh_chains_start_uniform_over_the_box():
    torch.manual_seed(0)
    model = quadratic_model(box=3.0, reinit=1.0, langevin_steps=1, step_size=1e-6, buffer_size=4096)
    x = model.negatives(4096)
    assert x.min() >= -3 and x.max() <= 3
    torch.testing.assert_close(x.var(0), torch.full((2,), 6.0**2 / 12), rtol=0.06, atol=0)  # U(-3, 3): 36 / 12


def test_the_cd_gradient_matches_the_log_likelihood_gradient_of_an_exponential_family():
    # -d/dtheta E_data log p = E_data[T] - E_p[T] with T(x) = (|x|^2 / 2, x): the CD loss's gradient
    # (alpha = 0) once the buffer's negatives follow p = N(m, v I), m = -b / a, v = 1 / a up to the
    # chain's O(eps) widening 1 / (1 - eps a / 4), here 1.25%
    a, b, eps = 1.0, (0.5, 0.0), 0.05
    torch.manual_seed(1)
    model = quadratic_model(a, b, box=4.0, step_size=eps, langevin_steps=20, reinit=0.0, alpha=0.0,
                            buffer_size=4096)
    for _ in range(30):
        model.negatives(4096)
    x_data = torch.randn(4096, 2, generator=torch.Generator().manual_seed(2)) * 0.7 + torch.tensor([1.0, -1.0])
    model.zero_grad()
    model.loss(x_data)["loss"].backward()
    m, v = -torch.tensor(b) / a, 1 / (a * (1 - eps * a / 4))
    e_p = torch.cat([((m * m).sum() + 2 * v).reshape(1) / 2, m])  # E_p[|x|^2/2], E_p[x]
    t_data = torch.cat([(x_data * x_data).sum(1).mean().reshape(1) / 2, x_data.mean(0)])
    grad = torch.cat([model.energy_net.a.grad.reshape(1), model.energy_net.b.grad])
    torch.testing.assert_close(grad, t_data - e_p, atol=0.06, rtol=0)
    # and it is not the gradient of a wrong sign or of the data term alone
    assert (grad - t_data).abs().max() > 0.4


def test_the_loss_adds_alpha_times_the_squared_energies():
    model = quadratic_model(a=1.0, alpha=0.3, reinit=0.0)
    twin = copy.deepcopy(model)
    x = torch.randn(64, 2)
    torch.manual_seed(5)
    out = model.loss(x)
    e_pos = model.energy(x)
    torch.manual_seed(5)
    x_neg = twin.negatives(64)  # the same buffer, the same draws
    e_neg = model.energy(x_neg)
    torch.testing.assert_close(out["cd"], e_pos.mean() - e_neg.mean())
    torch.testing.assert_close(out["loss"], out["cd"] + 0.3 * (e_pos.pow(2).mean() + e_neg.pow(2).mean()))


def test_score_is_minus_the_energy_gradient():
    model = quadratic_model(a=2.0, b=(1.0, 0.0))
    x = torch.randn(10, 2)
    torch.testing.assert_close(model.score_at(x, 1.0, 0.0), -(2.0 * x + torch.tensor([1.0, 0.0])))
    assert model.score_levels() == [(1.0, 0.0)]
    with pytest.raises(ValueError, match="sigma 0"):
        model.score_at(x, 0.5, 0.5)


@pytest.mark.parametrize("sampler", ["grid", "langevin"])
def test_samples_of_a_quadratic_energy_have_its_moments(sampler):
    a, b = 4.0, (-2.0, 1.0)  # N((0.5, -0.25), I / 4)
    torch.manual_seed(0)
    model = quadratic_model(a, b, box=4.0, sampler=sampler, step_size=0.01, sample_steps=300)
    x = model.sample(4000).double()
    var = 1 / a / (1 - 0.01 * a / 4) if sampler == "langevin" else 1 / a
    torch.testing.assert_close(x.mean(0), torch.tensor([0.5, -0.25], dtype=F64), atol=0.04, rtol=0)
    torch.testing.assert_close(x.var(0), torch.full((2,), var, dtype=F64), rtol=0.08, atol=0)


def test_the_box_and_buffer_are_persistent_and_set_from_the_first_batch():
    model = small_model(pad=0.5, buffer_size=500)
    x = torch.tensor([[0.0, -1.0], [2.0, 3.0]])
    model.init_from_data(x)
    torch.testing.assert_close(model.box, torch.tensor([[-1.0, -3.0], [3.0, 5.0]]))
    assert {"box", "replay"} <= set(model.state_dict()) and model.replay.shape == (500, 2)
    assert (model.replay >= model.box[0]).all() and (model.replay <= model.box[1]).all()


def test_traces_chains_start_from_the_buffer_and_repeat_with_fixed_noise():
    model = small_model(reinit=0.05, langevin_steps=7)
    grid = torch.randn(9, 2)
    a, b = model.traces(torch.zeros(4, 2), grid), model.traces(torch.zeros(4, 2), grid)
    assert a["chains"].shape == (8, 100, 2)
    assert (a["chains"] == b["chains"]).all()
    torch.testing.assert_close(torch.from_numpy(a["chains"][0, 5:]), model.replay[5:100])
    torch.testing.assert_close(torch.from_numpy(a["log_density"]).double(), model.log_prob(grid), atol=1e-5, rtol=0)


def test_data_neither_2d_nor_images_are_refused_with_a_reason():
    for shape in ((3,), (28, 28)):
        with pytest.raises(ConfigError, match=r"2D points .* or images shaped \(C, H, W\)"):
            registry.build_model("ebm", shape)
