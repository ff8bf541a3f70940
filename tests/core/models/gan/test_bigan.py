"""BiGAN: the value at the optimal joint discriminator against 2 JS - log 4 on known 1D laws,
a joint discriminator that sees what a marginal one cannot, the two sides' losses, a short
training that brings G(z) onto the data, and the CLI."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from core import registry
from core.cli import main
from core.config import TrainConfig, make
from core.errors import DataError, LogProbUnavailable
from core.metrics import mmd
from core.models.gan import BiGAN, BiGANConfig
from core.train import Trainer

_f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
P, Q = Normal(_f64(0.0), _f64(1.0)), Normal(_f64(0.5), _f64(1.2))  # the data and the law of G(z)
LOG4 = math.log(4.0)


class Pairs(nn.Module):
    """A discriminator given as a function of (x, z): (n, 2) -> (n, 1)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, xz):
        return self.fn(xz[:, :1], xz[:, 1:]) + 0 * self.unused


def _affine(w: float, b: float) -> nn.Linear:
    lin = nn.Linear(1, 1).double()
    with torch.no_grad():
        lin.weight.fill_(w)
        lin.bias.fill_(b)
    return lin


def _bigan(G, E, D, loss="non_saturating") -> BiGAN:
    return BiGAN((1,), BiGANConfig(latent=1, hidden=8, layers=1, generator_loss=loss), G=G, E=E, D=D).double()


def _js(p: Normal, q: Normal) -> float:
    x = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    lp, lq = p.log_prob(x), q.log_prob(x)
    lm = torch.logaddexp(lp, lq) - math.log(2)
    f = 0.5 * lp.exp() * (lp - lm) + 0.5 * lq.exp() * (lq - lm)
    return (f.sum() * (x[1] - x[0])).item()


def test_the_value_at_the_optimal_joint_discriminator_is_2_js_minus_log_4():
    # G(z) = 0.5 + 1.2 z and E = G^-1: both joint laws live on the graph z = E(x), where
    # D*(x, z) = p(x) / (p(x) + q(x)), and the D loss -V(D*) = log 4 - 2 JS(P, Q) (Prop. 1).
    G, E = _affine(Q.scale.item(), Q.loc.item()), _affine(1 / Q.scale.item(), -Q.loc.item() / Q.scale.item())
    log_ratio = lambda x, z: P.log_prob(x) - Q.log_prob(x)  # noqa: E731 - the logit of D*
    model = _bigan(G, E, Pairs(log_ratio))
    torch.manual_seed(0)
    x = P.sample((400_000, 1))
    best = model.d_loss(x)["loss"].item()
    assert best == pytest.approx(LOG4 - 2 * _js(P, Q), abs=4e-3)
    for worse in (lambda x, z: log_ratio(x, z) + 0.5, lambda x, z: 1.5 * log_ratio(x, z),
                  lambda x, z: log_ratio(x, z) + 0.3 * z):
        torch.manual_seed(0)
        assert _bigan(G, E, Pairs(worse)).d_loss(x)["loss"].item() > best + 1e-3


def test_the_joint_discriminator_catches_an_encoder_that_is_not_the_inverse():
    # P = law of G(z): the marginals agree, so a critic of x alone can do no better than log 4;
    # with E(x) = x + 0.3 the joint laws sit on two parallel lines, and a critic of (x, z) separates them
    # (JS = log 2, -V -> 0).
    G, E = _affine(1.0, 0.0), _affine(1.0, 0.3)
    torch.manual_seed(1)
    x = P.sample((100_000, 1))
    apart = _bigan(G, E, Pairs(lambda x, z: 100.0 * ((z - x).abs() - 0.15)))
    assert apart.d_loss(x)["loss"].item() < 1e-5
    torch.manual_seed(1)
    marginal = _bigan(G, E, Pairs(lambda x, z: 0.7 * x - 0.2))
    assert marginal.d_loss(x)["loss"].item() > LOG4 - 5e-3


def test_the_generator_side_flips_the_sign_of_the_encoders_pairs():
    G, E = _affine(1.3, 0.2), _affine(0.6, -0.1)
    D = Pairs(lambda x, z: 0.8 * x - 0.5 * z + 0.1)
    x = P.sample((500, 1))
    minimax = _bigan(G, E, D, "minimax")
    torch.manual_seed(3)
    d_loss = minimax.d_loss(x)["loss"]
    torch.manual_seed(3)
    assert minimax.g_loss(x)["loss"].item() == pytest.approx(-d_loss.item(), rel=1e-12)  # V itself
    ns = _bigan(G, E, D, "non_saturating")
    torch.manual_seed(3)
    z = torch.randn(500, 1, dtype=torch.float64)
    real, fake = 0.8 * x - 0.5 * E(x) + 0.1, 0.8 * G(z) - 0.5 * z + 0.1
    expected = -torch.log1p(-torch.sigmoid(real)).mean() - torch.log(torch.sigmoid(fake)).mean()
    torch.manual_seed(3)
    assert ns.g_loss(x)["loss"].item() == pytest.approx(expected.item(), rel=1e-9)


def test_a_short_training_moves_the_samples_onto_the_data():
    # (How well E inverts G swings widely over a short run, as the two players chase each other;
    # the closed forms above check what the joint discriminator rewards.)
    torch.manual_seed(0)
    data = registry.load_dataset("eight_gaussians")
    model = BiGAN((2,), BiGANConfig(hidden=32, layers=2))
    g = torch.Generator().manual_seed(9)
    x = data.sample(500, g)
    before = mmd(model.sample(500), x)
    cfg = make(TrainConfig, {"n_data": 2000, "batch_size": 128, "steps": 200, "lr": 1e-3})
    Trainer(model, data, cfg, "cpu", n_reference=200, n_eval=200).fit(200, log_every=200)
    after = mmd(model.sample(500), x)
    assert after < 0.2 * before, (before, after)
    codes = model.encode(x)
    assert codes.shape == (500, 2) and torch.isfinite(codes).all()


def test_shapes_and_refusals():
    model = registry.build_model("bigan", (2,), {"hidden": 16, "layers": 2, "latent": 3})
    x = torch.randn(7, 2)
    assert model.encode(x).shape == (7, 3) and model.reconstruct(x).shape == (7, 2)
    with pytest.raises(DataError, match=r"\(n, 2\)"):
        model.d_loss(torch.randn(4, 3))
    with pytest.raises(LogProbUnavailable, match="no density"):
        model.log_prob(x)


def test_cli_trains_and_samples(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "bigan", "--data", "two_moons", "--steps", "4", "--batch-size", "32",
                 "--set", "hidden=16", "--set", "layers=2", "--set", "n_data=200",
                 "--metrics-every", "2", "--n-samples", "50", "--out", str(out), "--quiet"]) == 0
    assert np.load(out / "samples.npy").shape == (50, 2)
    assert main(["sample", str(out), "--n", "30", "--out", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (30, 2) and np.isfinite(samples).all()
    capsys.readouterr()
