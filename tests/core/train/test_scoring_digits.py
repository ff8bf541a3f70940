"""Scoring on digits: NLL in the units papers report, on held-out digits, and the classifier's view."""

import math

import pytest
import torch

from core.model import GenerativeModel
from core.train.scoring import Scoring


class Known(GenerativeModel):
    """A model with a density worked out by hand: uniform on [0, 1]^D (dequantized) or every
    pixel a fair coin (binary). Its samples are held-out digits, or a single one repeated."""

    family, has_log_prob, log_prob_is_exact = "test", True, True

    def __init__(self, pixels: str, digits: torch.Tensor):
        super().__init__((1, 28, 28), None)
        self.pixels, self.digits, self.seen = pixels, digits, []

    def log_prob(self, x):
        self.seen.append(x.clone())
        if self.pixels == "dequantized":
            inside = ((x >= 0) & (x < 1)).flatten(1).all(1)
            return torch.where(inside, 0.0, -math.inf)
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        return torch.full((x.shape[0],), self.dim * math.log(0.5))

    def sample(self, n):
        return self.digits[torch.arange(n) % self.digits.shape[0]]


@pytest.fixture(scope="module")
def digits(mnist_dir_module):
    from core.data.mnist import MNIST

    return MNIST()


@pytest.fixture(scope="module")
def mnist_dir_module():
    import os
    from pathlib import Path

    if not (Path(os.environ["PLAYGROUND_DATA"]) / "mnist").is_dir():
        pytest.skip("the MNIST test split (../shared/data/mnist) is not beside this checkout")


def test_nll_of_hand_worked_densities_on_held_out_digits(digits):
    s = Scoring(digits, 1000, 100, seed=0)
    held = digits.held_out()[0]
    assert torch.equal(s.reference, held)  # scored against digits no model trains on
    uniform = Known("dequantized", held)
    out = s.held_out_nll(uniform)
    assert out["bits_per_dim"] == pytest.approx(8.0, abs=1e-9)  # all 8 bits of every pixel
    assert out["nll"] == pytest.approx(784 * math.log(256), rel=1e-12)
    seen = torch.cat(uniform.seen)
    assert torch.equal((seen * 256).floor(), torch.round(held[: seen.shape[0]] * 255))  # dequantized in its cell
    coins = Known("binary", held)
    out = s.held_out_nll(coins)
    assert out["nll"] == pytest.approx(784 * math.log(2), rel=1e-6) and out["bits_per_dim"] == pytest.approx(1.0)
    first = torch.cat(coins.seen)
    coins.seen.clear()
    s.held_out_nll(coins)
    assert torch.equal(torch.cat(coins.seen), first)  # the same binarization at every evaluation


def test_digit_metrics_of_real_and_collapsed_samples(digits):
    s = Scoring(digits, 1000, 200, seed=0, image_samples=200)
    assert s.n_eval == 200
    real = s.evaluate(Known("binary", digits.images[:400]))
    ones = s.evaluate(Known("binary", digits.images[digits.labels == 1][:200]))
    assert set(real) >= {"nll", "bits_per_dim", "classes", "confidence", "fd", "mmd"}
    assert min(real["classes"]) > 0.03 and ones["classes"][1] > 0.9
    floor = s.floors()["fd"]
    assert real["fd"] < 2 * floor < ones["fd"]  # training digits score about what real digits score
