"""Views of grey images in [0, 1], and likelihoods in the units papers report.

MNIST's pixels are 8-bit grey levels x in {0, 1/255, ..., 1}. Models read them in one of
four ways (a model's `pixels`):

- "grey": as they are, real numbers in [0, 1] (GANs, DDPM, flow matching);
- "binary": b ~ Bernoulli(x), drawn afresh for every batch: the dynamically binarized MNIST
  of autoregressive models and VAEs (Salakhutdinov and Murray 2008 fixed one such draw);
- "threshold": b = [x > 1/2], a fixed binarization;
- "dequantized": y = (255 x + u) / 256 with u ~ U[0, 1)^D (Uria et al. 2013; Theis et al.
  2016), a continuous density on [0, 1]^D for flows.

Their likelihoods, per digit of D pixels:

    binary:       NLL = -log p(b)                                  in nats
    dequantized:  NLL = -log p(y) + D log 256                      in nats of the discrete
                  digit: a density p on [0, 1]^D puts mass p(y) / 256^D on each cell of side
                  1/256, and E_u[log p(y)] - D log 256 <= log P(x) (Theis et al. 2016), so
                  this NLL bounds the discrete one from above
    bits/dim:     NLL / (D ln 2)

A uniform density on [0, 1]^D has log p(y) = 0 and so 8 bits per dimension: it spends all
8 bits of every pixel.
"""

from __future__ import annotations

import math

import torch

PIXELS = ("grey", "binary", "threshold", "dequantized")
LEVELS = 256  # grey levels of an 8-bit pixel


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stochastic binarization: each pixel is 1 with probability its grey level."""
    u = torch.rand(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
    return (u.to(x.device) < x).to(x.dtype)


def threshold(x: torch.Tensor, level: float = 0.5) -> torch.Tensor:
    """Fixed binarization: 1 where the grey level exceeds `level`."""
    return (x > level).to(x.dtype)


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization y = (k + u) / 256 of the grey level k = round(255 x), u ~ U[0, 1)."""
    k = torch.round(x.clamp(0.0, 1.0) * (LEVELS - 1))
    u = torch.rand(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
    return (k + u.to(x.device)) / LEVELS


def view(x: torch.Tensor, pixels: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The images x (grey, in [0, 1]) as a model with `pixels` reads them."""
    if pixels == "grey":
        return x
    if pixels == "binary":
        return binarize(x, generator)
    if pixels == "threshold":
        return threshold(x)
    if pixels == "dequantized":
        return dequantize(x, generator)
    raise ValueError(f"unknown pixel view {pixels!r}; valid views: {', '.join(PIXELS)}")


def nll_nats(log_prob: torch.Tensor, pixels: str, dim: int) -> torch.Tensor:
    """Per-digit negative log-likelihood in nats of the discrete digit, from a model's log_prob
    of its view: -log p(b) for binary views, -log p(y) + D log 256 for the dequantized one."""
    if pixels not in PIXELS:
        raise ValueError(f"unknown pixel view {pixels!r}; valid views: {', '.join(PIXELS)}")
    nll = -log_prob
    if pixels == "dequantized":
        nll = nll + dim * math.log(LEVELS)
    return nll


def bits_per_dim(nats, dim: int):
    """Nats per digit -> bits per pixel: NLL / (D ln 2)."""
    return nats / (dim * math.log(2.0))
