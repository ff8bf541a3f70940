"""A small convolutional encoder (image -> vector) and its mirror, a decoder (vector -> image).

Two stride-2 convolutions halve the image twice, (C, H, W) -> (c, H/2, W/2) -> (2c, H/4, W/4),
and a dense layer of `hidden` units reads the result out; the decoder runs the same path
backwards, dense layers up to the smallest map and stride-2 transposed convolutions from it. Sizes round up, so any H and W work: 28 -> 14 -> 7 for
MNIST, 8 -> 4 -> 2 for the tests' tiny images. A 3 x 3 convolution of stride 2 and padding 1
maps a side of n to ceil(n / 2); its transposed twin maps m back to 2m - 1 + output_padding,
and output_padding (0 or 1) picks the side the encoder started from.

The layout is the usual one of small MNIST VAEs and DCGAN-style nets (strided convolutions
instead of pooling, Radford et al. 2016); it serves as a VAE's encoder and decoder, and as a
GAN's discriminator and generator or an EBM's energy.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .mlp import ACTIVATIONS


def _halved(side: int) -> int:
    return (side + 1) // 2  # a 3 x 3 convolution of stride 2, padding 1


def _shapes(shape: tuple, channels: int) -> list[tuple]:
    """(C, H, W) and the two smaller feature maps the networks pass through."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"a convolutional net needs an image shape (C, H, W), got {tuple(shape)}")
    c, h, w = (int(s) for s in shape)
    h2, w2 = _halved(h), _halved(w)
    return [(c, h, w), (channels, h2, w2), (2 * channels, _halved(h2), _halved(w2))]


def _up(c_in: int, c_out: int, small: tuple, big: tuple) -> nn.ConvTranspose2d:
    """A stride-2 transposed convolution from a (.., small) map to a (.., big) one."""
    pad = (big[0] - (2 * small[0] - 1), big[1] - (2 * small[1] - 1))  # each 0 or 1
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad)


class ConvEncoder(nn.Module):
    """(n, C, H, W) images, or (n, C*H*W) flattened ones -> (n, out_dim)."""

    def __init__(self, in_shape: tuple, out_dim: int, channels: int = 32, hidden: int = 256, activation: str = "silu"):
        super().__init__()
        act = ACTIVATIONS[activation]
        (c, _, _), s1, s2 = _shapes(in_shape, channels)
        self.in_shape, self.out_dim = tuple(int(s) for s in in_shape), int(out_dim)
        self.features = nn.Sequential(
            nn.Conv2d(c, s1[0], 3, stride=2, padding=1), act(),  # (n, c, H/2, W/2)
            nn.Conv2d(s1[0], s2[0], 3, stride=2, padding=1), act(),  # (n, 2c, H/4, W/4)
            nn.Flatten(),
        )
        self.out = nn.Sequential(nn.Linear(math.prod(s2), hidden), act(), nn.Linear(hidden, out_dim))
        self.width = math.prod(s1)  # the largest activation per image, for callers bounding memory

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x.reshape(x.shape[0], *self.in_shape)))  # (n, out_dim)


class ConvDecoder(nn.Module):
    """(..., in_dim) -> (..., C, H, W): two dense layers to the smallest map, then two
    stride-2 transposed convolutions. The output is unbounded (logits or means)."""

    def __init__(self, in_dim: int, out_shape: tuple, channels: int = 32, hidden: int = 256, activation: str = "silu"):
        super().__init__()
        act = ACTIVATIONS[activation]
        s0, s1, s2 = _shapes(out_shape, channels)
        self.in_dim, self.out_shape, self._smallest = int(in_dim), s0, s2
        self.inp = nn.Sequential(nn.Linear(in_dim, hidden), act(), nn.Linear(hidden, math.prod(s2)), act())
        self.up = nn.Sequential(
            _up(s2[0], s1[0], s2[1:], s1[1:]), act(),  # (m, c, H/2, W/2)
            _up(s1[0], s0[0], s1[1:], s0[1:]),  # (m, C, H, W)
        )
        self.width = math.prod(s1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.inp(z.reshape(-1, self.in_dim)).reshape(-1, *self._smallest)  # (m, 2c, H/4, W/4)
        return self.up(h).reshape(*lead, *self.out_shape)  # (..., C, H, W)
