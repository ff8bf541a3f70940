"""DCGAN's two networks (Radford, Metz and Chintala 2016, "Unsupervised Representation
Learning with Deep Convolutional Generative Adversarial Networks"), sized for digits.

The paper's guidelines (Sec. 3): no pooling, strided convolutions in the discriminator and
fractionally strided (transposed) ones in the generator; batch norm in both, but not on the
generator's output nor the discriminator's input; ReLU in the generator with a tanh output;
LeakyReLU (slope 0.2) in the discriminator; no fully connected hidden layers, only the
projection of z at the start and the logit at the end. For an image of C x H x W, with
h = ceil(H / 4), w = ceil(W / 4) and c base channels:

    generator      z (L,) -> Linear -> (2c, h, w) -> BN, ReLU
                   -> ConvT 4x4 /2 -> (c, 2h, 2w) -> BN, ReLU
                   -> ConvT 4x4 /2 -> (C, 4h, 4w), cropped to (C, H, W) -> x = (1 + tanh a) / 2
    discriminator  x -> 2x - 1 -> Conv 4x4 /2 -> (c, H/2, W/2) -> LeakyReLU
                   -> Conv 4x4 /2 -> (2c, H/4, W/4) -> norm -> LeakyReLU -> Linear -> out

28 x 28 digits go through 7 x 7 and 14 x 14; 8 x 8 images through 2 x 2 and 4 x 4. Both
networks speak flat vectors, (n, C*H*W), as the MLPs they stand in for do, so a method
written for points (a gradient penalty's norm over dim 1, a kernel on [x, phi(x)]) runs
on images unchanged. Pixels are in [0, 1] outside, [-1, 1] inside, as in the paper.

The discriminator's norm is a choice: "batch" as in the paper; "layer" (each sample
normalised over all its features, Ba et al. 2016), which WGAN-GP asks for (Gulrajani et
al. 2017, Sec. 4: the penalty is on each sample's own gradient, and batch norm makes a
sample's output depend on the rest of its batch); or "none".
"""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("batch", "layer", "none")
SLOPE = 0.2  # LeakyReLU's, the paper's


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"the DCGAN networks take images shaped (C, H, W), got {shape}")
    return shape


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group: mean and variance over (C, H, W) of each sample
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


class DCGANGenerator(nn.Module):
    """z (n, latent) -> images (n, C*H*W) in [0, 1]."""

    def __init__(self, latent: int, shape, channels: int = 32):
        super().__init__()
        self.shape = C, H, W = _check_shape(shape)
        self.start = (2 * channels, math.ceil(H / 4), math.ceil(W / 4))
        self.project = nn.Linear(latent, math.prod(self.start), bias=False)  # BN follows: no bias
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * channels), nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.ConvTranspose2d(channels, C, 4, 2, 1),
        )

    @property
    def out(self) -> nn.ConvTranspose2d:
        return self.body[-1]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _, H, W = self.shape
        a = self.body(self.project(z).reshape(-1, *self.start))[:, :, :H, :W]  # (n, C, H, W)
        return (0.5 * (1.0 + torch.tanh(a))).flatten(1)  # (n, C*H*W)

    @torch.no_grad()
    def start_at(self, mean: torch.Tensor) -> None:
        """Set the output bias so that a zero pre-activation gives each channel's mean grey level."""
        m = mean.reshape(self.shape).mean((1, 2)).clamp(0.02, 0.98)  # (C,)
        self.out.bias.copy_(torch.atanh(2 * m - 1))


class DCGANDiscriminator(nn.Module):
    """images (n, C*H*W) in [0, 1] -> (n, out): a logit, a critic's score or features."""

    def __init__(self, shape, out: int = 1, channels: int = 32, norm: str = "batch"):
        super().__init__()
        self.shape = C, _, _ = _check_shape(shape)
        self.norm = norm
        self.body = nn.Sequential(
            nn.Conv2d(C, channels, 4, 2, 1), nn.LeakyReLU(SLOPE),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=norm == "none"), _norm(norm, 2 * channels),
            nn.LeakyReLU(SLOPE),
        )
        _, H, W = self.shape
        h, w = H // 2 // 2, W // 2 // 2  # each conv 4x4 /2 (padding 1) halves a side, rounding down
        if h < 1 or w < 1:
            raise ValueError(f"the DCGAN discriminator needs images of at least 4 x 4 pixels, got {H} x {W}")
        self.head = nn.Linear(2 * channels * h * w, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(2.0 * x.reshape(-1, *self.shape) - 1.0)  # (n, 2c, H/4, W/4)
        return self.head(h.flatten(1))  # (n, out)
