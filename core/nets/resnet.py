"""A small convolutional residual network that keeps the image size (He et al. 2016).

The conditioner of an image coupling layer (RealNVP, Dinh et al. 2017, section 4.1, uses
deep residual networks for s and t): a 3 x 3 convolution lifts the C_in input channels to
`hidden`, then `blocks` residual blocks

    h <- h + conv(act(conv(act(h)))),

then a last 3 x 3 convolution reads out C_out channels. Padding 1 keeps every convolution
at H x W, so the network works at any size (28 x 28 or 14 x 14 digits, 2 x 2 test images).
`zero_last()` zeroes the read-out, so a coupling layer built on it starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from .mlp import ACTIVATIONS


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResidualBlock(nn.Module):
    """h + conv(act(conv(act(h)))), at a fixed width and size."""

    def __init__(self, hidden: int, activation: str = "relu"):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(act(), _conv(hidden, hidden), act(), _conv(hidden, hidden))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class ResNet(nn.Module):
    """(n, in_channels, H, W) -> (n, out_channels, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, blocks: int = 1,
                 activation: str = "relu"):
        super().__init__()
        if min(in_channels, out_channels, hidden) < 1 or blocks < 0:
            raise ValueError(f"a ResNet needs at least one channel in, out and hidden and blocks >= 0, got "
                             f"in {in_channels}, out {out_channels}, hidden {hidden}, blocks {blocks}")
        self.inp = _conv(in_channels, hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, activation) for _ in range(blocks)))
        self.out = nn.Sequential(ACTIVATIONS[activation](), _conv(hidden, out_channels))
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)

    def zero_last(self) -> "ResNet":
        """Start as the zero map: a coupling layer then begins as the identity."""
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.inp(x)))  # (n, out_channels, H, W)
