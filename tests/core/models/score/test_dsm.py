"""Denoising score matching: its loss's closed form, its learned score against the exact one,
and Langevin sampling with an exact mixture score against a wrong one."""

from __future__ import annotations

import pytest
import torch

from core import registry
from core.dynamics import langevin
from core.metrics import mmd, score_error


def _train(model, dataset, steps: int, seed: int = 0, batch: int = 256, lr: float = 3e-3):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = dataset.sample(4096, g)
    model.init_from_data(data[:512])
    opt = torch.optim.Adam(model.parameters(), lr)
    for _ in range(steps):
        loss = model.loss(data[torch.randint(0, len(data), (batch,), generator=g)])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_the_loss_of_the_exact_score_of_gaussian_data_is_its_closed_form():
    # Data N(0, s^2 I) blurred by sigma has score -x / (s^2 + sigma^2); with it,
    # (1/D) E|sigma s(x~) + eps|^2 = s^2 / (s^2 + sigma^2), and the zero score gives 1.
    s, sigma = 0.6, 0.3
    model = registry.build_model("dsm", (2,), {"sigma": sigma})
    x = s * torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.net = torch.nn.Linear(2, 2, bias=False)  # f = sigma * score
        model.net.weight.copy_(-sigma / (s**2 + sigma**2) * torch.eye(2))
        assert float(model.loss(x)["loss"]) == pytest.approx(s**2 / (s**2 + sigma**2), rel=0.02)
        grid = torch.randn(5, 2)
        torch.testing.assert_close(model.score_at(grid, 1.0, sigma), -grid / (s**2 + sigma**2))
        model.net.weight.zero_()
        assert float(model.loss(x)["loss"]) == pytest.approx(1.0, rel=0.02)


def test_a_trained_dsm_score_approaches_the_exact_mixture_score():
    dataset = registry.load_dataset("eight_gaussians")
    torch.manual_seed(0)
    model = registry.build_model("dsm", (2,), {"sigma": 0.5, "hidden": 64, "layers": 2})
    model.init_from_data(dataset.sample(256, torch.Generator().manual_seed(1)))
    before = score_error(dataset, model, 1000, torch.Generator().manual_seed(5))
    _train(model, dataset, 400)
    after = score_error(dataset, model, 1000, torch.Generator().manual_seed(5))
    assert before > 0.8 and after < 0.3 * before, (before, after)


def test_langevin_with_the_exact_mixture_score_samples_the_mixture():
    dataset = registry.load_dataset("eight_gaussians")
    g = torch.Generator().manual_seed(2)
    truth, other = dataset.sample(1000, g).double(), dataset.sample(1000, g).double()
    x_0 = 2.0 * torch.randn(1000, 2, generator=g, dtype=torch.float64)

    def exact(x):
        return dataset.score(x, 0.0)

    def too_wide(x):  # the score of the data blurred by 0.7: modes far wider than the data's
        return dataset.score(x, 0.7)

    right = langevin(exact, x_0, 0.01, 300, generator=torch.Generator().manual_seed(3))
    wrong = langevin(too_wide, x_0, 0.01, 300, generator=torch.Generator().manual_seed(3))
    floor = mmd(truth, other)
    assert mmd(right, truth) < 2 * floor
    assert mmd(wrong, truth) > 3 * mmd(right, truth)


def test_dsm_draws_its_own_level_whatever_the_slider():
    model = registry.build_model("dsm", (2,), {"sigma": 0.2, "hidden": 16, "layers": 1})
    assert model.score_levels() == [(1.0, 0.2)]
    grid = torch.randn(9, 2)
    tr = model.traces(torch.randn(8, 2), grid, sigma=1.7)
    assert tr["field_level"].tolist() == pytest.approx([1.0, 0.2])
    with torch.no_grad():  # the field is s_theta = f_theta / sigma at the grid points
        torch.testing.assert_close(torch.from_numpy(tr["score_field"]), model.net(grid) / 0.2)
    with pytest.raises(ValueError, match="one level"):
        model.score_at(torch.zeros(2, 2), 1.0, 0.5)
