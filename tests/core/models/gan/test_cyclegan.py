"""CycleGAN on 2D points: the cycle loss of an exact inverse pair of affine maps, the papers'
least-squares terms at a constant discriminator, both domains through the trainer, a short
training that lowers the cycle error and moves G(A) towards B, the CLI, and the refusals."""

import numpy as np
import pytest
import torch
from torch import nn

from core import registry
from core.cli import main
from core.config import TrainConfig, make
from core.data.base import Batch
from core.errors import ConfigError, DataError, LogProbUnavailable
from core.metrics import mmd
from core.models.gan import CycleGAN, CycleGANConfig
from core.models.gan.cyclegan import SOURCES
from core.train import Trainer

M = torch.tensor([[1.5, -0.4], [0.3, 0.8]], dtype=torch.float64)
C = torch.tensor([0.7, -1.2], dtype=torch.float64)


def _affine(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(2, 2).double()
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return lin


def _pair(delta=(0.0, 0.0)):
    """G(a) = M a + c and F(b) = M^-1 (b - c) + delta (delta = 0: F is G's exact inverse)."""
    m_inv = torch.linalg.inv(M)
    return _affine(M, C), _affine(m_inv, -m_inv @ C + torch.tensor(delta, dtype=torch.float64))


def _model(**cfg) -> CycleGAN:
    return CycleGAN((2,), CycleGANConfig(hidden=16, layers=2, **cfg))


def test_the_sources_are_registered_2d_datasets():
    for name in SOURCES:
        assert registry.load_dataset(name).shape == (2,), name
    assert set(SOURCES) == {n for n in registry.dataset_names() if _loads_as_points(n)}


def _loads_as_points(name: str) -> bool:
    """A built-in dataset of 2D points; one that needs files absent here (MNIST) is not a source."""
    try:
        return registry.load_dataset(name).shape == (2,)
    except DataError:
        return False


def test_cycle_loss_is_zero_for_an_exact_inverse_pair_and_the_l1_gap_otherwise():
    torch.manual_seed(0)
    a, b = torch.randn(300, 2, dtype=torch.float64), 2 * torch.randn(300, 2, dtype=torch.float64)
    G, F = _pair()
    model = CycleGAN((2,), CycleGANConfig(hidden=8, layers=1), G=G, F=F).double()
    assert model.cycle_loss(a, b).item() == pytest.approx(0.0, abs=1e-12)
    # F off by delta: F(G(a)) - a = delta and G(F(b)) - b = M delta, for every point
    delta = torch.tensor([0.2, -0.5], dtype=torch.float64)
    G, F = _pair(delta.tolist())
    model = CycleGAN((2,), CycleGANConfig(hidden=8, layers=1), G=G, F=F).double()
    expected = delta.abs().sum() + (M @ delta).abs().sum()
    assert model.cycle_loss(a, b).item() == pytest.approx(expected.item(), rel=1e-10)
    terms = model.g_loss(Batch(x=b, a=a))
    assert terms["cycle"].item() == pytest.approx(expected.item(), rel=1e-10)


class Constant(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full((x.shape[0], 1), self.c, dtype=x.dtype) + 0 * self.unused


def test_least_squares_terms_are_the_papers_at_a_constant_discriminator():
    torch.manual_seed(1)
    model = _model(cycle_weight=0.0).double()
    model.D_A, model.D_B = Constant(0.3), Constant(-0.6)
    batch = Batch(x=torch.randn(64, 2, dtype=torch.float64), a=torch.randn(64, 2, dtype=torch.float64))
    d_b = model.d_b_loss(batch)  # 1/2 E (D_B(b) - 1)^2 + 1/2 E D_B(G(a))^2
    assert d_b["loss"].item() == pytest.approx(0.5 * (-0.6 - 1) ** 2 + 0.5 * 0.6**2)
    assert model.d_a_loss(batch)["loss"].item() == pytest.approx(0.5 * (0.3 - 1) ** 2 + 0.5 * 0.3**2)
    g = model.g_loss(batch)  # E (D_B(G(a)) - 1)^2 + E (D_A(F(b)) - 1)^2, lambda = 0
    assert g["g_adv"].item() == pytest.approx((-0.6 - 1) ** 2)
    assert g["f_adv"].item() == pytest.approx((0.3 - 1) ** 2)
    assert g["loss"].item() == pytest.approx((-0.6 - 1) ** 2 + (0.3 - 1) ** 2)


def test_identity_loss_is_zero_for_identity_maps_and_enters_with_its_weight():
    torch.manual_seed(2)
    eye = torch.eye(2, dtype=torch.float64)
    zero = torch.zeros(2, dtype=torch.float64)
    model = CycleGAN((2,), CycleGANConfig(hidden=8, layers=1, identity_weight=5.0),
                     G=_affine(eye, zero), F=_affine(2 * eye, zero)).double()
    a, b = torch.randn(50, 2, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    terms = model.g_loss(Batch(x=b, a=a))
    # G = id: |G(b) - b| = 0; F = 2 id: |F(a) - a|_1 = |a|_1
    assert terms["identity"].item() == pytest.approx(a.abs().sum(1).mean().item())
    rest = terms["g_adv"] + terms["f_adv"] + model.config.cycle_weight * terms["cycle"]
    assert (terms["loss"] - rest).item() == pytest.approx(5.0 * terms["identity"].item())


def test_a_batch_carries_both_domains_through_the_trainer():
    torch.manual_seed(0)
    model = _model(source="two_moons")
    target = registry.load_dataset("eight_gaussians")
    cfg = make(TrainConfig, {"n_data": 300, "batch_size": 32, "steps": 2, "lr": 1e-3, "seed": 4})
    seen = []
    original = model.g_loss
    model.g_loss = lambda batch: (seen.append(batch), original(batch))[1]  # the phases are made with the engine
    trainer = Trainer(model, target, cfg, "cpu", n_reference=100, n_eval=100)
    data = trainer.training_data
    assert data.fields == ("x", "a")
    torch.testing.assert_close(data.groups[0]["x"], target.training_set(300, 4))
    torch.testing.assert_close(data.groups[1]["a"], registry.load_dataset("two_moons").training_set(300, 5))
    trainer.fit(2, log_every=1)
    assert seen and all(isinstance(bt, Batch) and set(bt) == {"x", "a"} for bt in seen)
    rows_a = {tuple(r) for r in data.groups[1]["a"].tolist()}
    assert all(tuple(r) in rows_a for r in seen[0]["a"].tolist())


def _translation_stats(model: CycleGAN, target, n: int = 400) -> tuple[float, float]:
    g = torch.Generator().manual_seed(11)
    a = model.source.sample(n, g)
    with torch.no_grad():
        return model.cycle_loss(a, target.sample(n, g)).item(), mmd(model.G(a), target.sample(n, g))


def test_a_short_training_lowers_the_cycle_error_and_moves_g_of_a_towards_b():
    torch.manual_seed(0)
    target = registry.load_dataset("eight_gaussians")
    model = CycleGAN((2,), CycleGANConfig(hidden=32, layers=2, source="two_moons"))
    cycle_0, mmd_0 = _translation_stats(model, target)
    cfg = make(TrainConfig, {"n_data": 2000, "batch_size": 128, "steps": 300, "lr": 2e-3})
    Trainer(model, target, cfg, "cpu", n_reference=200, n_eval=200).fit(300, log_every=300)
    cycle_1, mmd_1 = _translation_stats(model, target)
    assert cycle_1 < 0.5 * cycle_0, (cycle_0, cycle_1)
    assert mmd_1 < 0.5 * mmd_0, (mmd_0, mmd_1)


def test_refusals_say_what_is_wrong():
    with pytest.raises(ConfigError, match="2D point sets"):
        CycleGAN((1, 8, 8), CycleGANConfig())
    with pytest.raises(ConfigError, match="source"):
        registry.build_model("cyclegan", (2,), {"source": "mnist"})
    model = _model()
    with pytest.raises(DataError, match="as many points of A"):
        model.g_loss(Batch(x=torch.randn(5, 2), a=torch.randn(4, 2)))
    with pytest.raises(DataError, match=r"\(n, 2\)"):
        model.d_a_loss(torch.randn(5, 3))
    with pytest.raises(LogProbUnavailable, match="no density"):
        model.log_prob(torch.randn(3, 2))


def test_cli_trains_and_samples(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "cyclegan", "--data", "eight_gaussians", "--steps", "4", "--batch-size", "32",
                 "--set", "hidden=16", "--set", "layers=2", "--set", "n_data=200", "--set", "source=rings",
                 "--metrics-every", "2", "--n-samples", "50", "--out", str(out), "--quiet"]) == 0
    assert np.load(out / "samples.npy").shape == (50, 2)
    assert main(["sample", str(out), "--n", "30", "--out", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (30, 2) and np.isfinite(samples).all()
    capsys.readouterr()
