"""Pixel views and the units of a likelihood, on cases worked out by hand."""

import math

import pytest
import torch

from core.data import pixels as P


def test_bits_per_dim_of_a_binary_digit_worked_by_hand():
    # four pixels, each with probability 1/2 under the model: log p = 4 log(1/2) = -4 ln 2 nats,
    # so NLL = 4 ln 2 ~ 2.7726 nats = exactly 1 bit per pixel
    log_p = torch.tensor([4 * math.log(0.5)])
    nats = P.nll_nats(log_p, "binary", dim=4)
    assert nats.item() == pytest.approx(2.772588722, abs=1e-8)
    assert P.bits_per_dim(nats, 4).item() == pytest.approx(1.0, abs=1e-12)


def test_dequantized_nll_adds_log_256_per_pixel():
    # the uniform density on [0, 1]^D: log p(y) = 0, so NLL = D log 256 nats and 8 bits per pixel
    D = 784
    nats = P.nll_nats(torch.zeros(3), "dequantized", dim=D)
    assert torch.allclose(nats, torch.full((3,), D * math.log(256.0)))
    assert torch.allclose(P.bits_per_dim(nats, D), torch.full((3,), 8.0))
    # a density of 2^D on [0, 1/2]^D (log p = D ln 2) spends one bit less per pixel: 7 bits
    assert P.bits_per_dim(P.nll_nats(torch.tensor([D * math.log(2.0)]), "dequantized", D), D).item() == pytest.approx(7.0)


def test_dequantization_stays_in_the_cell_of_its_grey_level():
    k = torch.arange(256.0)
    x = (k / 255).repeat(40)  # every grey level, 40 times
    y = P.dequantize(x, torch.Generator().manual_seed(0))
    assert bool(((y * 256).floor() == k.repeat(40)).all())  # y in [k/256, (k+1)/256)
    u = y * 256 - k.repeat(40)
    assert abs(float(u.mean()) - 0.5) < 0.02 and abs(float(u.var()) - 1 / 12) < 0.005  # U[0, 1)


def test_binarization_views():
    x = torch.full((20_000,), 0.3)
    b = P.binarize(x, torch.Generator().manual_seed(1))
    assert set(b.unique().tolist()) == {0.0, 1.0} and abs(float(b.mean()) - 0.3) < 0.015
    assert P.threshold(torch.tensor([0.2, 0.5, 0.51, 1.0])).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert torch.equal(P.view(x, "grey"), x)
    with pytest.raises(ValueError, match="valid views: grey, binary, threshold, dequantized"):
        P.view(x, "sepia")
