"""A small convolutional energy E(x): images (n, C, H, W) -> one number each.

After the energy networks of Du & Mordatch 2019 (a few convolutions with a
smooth activation, no batch norm, optionally spectral norm): strided 4 x 4
convolutions that halve the side and double the channels, then a linear
read-out of the flattened features,

    x (C, H, W) -> c (H/2, W/2) -> 2c (H/4, W/4) -> 4c (H/8, W/8) -> E(x) (1),

so MNIST's 28 x 28 becomes 14, 7 and 3 (sides are floored). No layer runs at
full resolution: every Langevin step is a forward and a backward pass through
this network, and on a CPU the same network with a 3 x 3 first layer at full
size took 3.5 times as long per step (batch 32, 16 channels).

Batch norm is left out on purpose: it would make E(x) depend on the other
images of the batch, and the Langevin chains need one energy per image. The
activation must be smooth (SiLU by default) so that grad_x E, which drives the
chains, is continuous. Pixels in [0, 1] are read as 2x - 1, centred on zero.
Any side of at least 2^downsamples works (8 by default: MNIST's 28 and the tests' 8).
"""

from __future__ import annotations

import torch
from torch import nn

from .mlp import ACTIVATIONS


class ConvEnergy(nn.Module):
    """E(x): (n, C, H, W) -> (n, 1); c channels after the first convolution, doubled at each next one."""

    def __init__(self, shape: tuple, channels: int = 16, downsamples: int = 3, activation: str = "silu",
                 spectral_norm: bool = False):
        super().__init__()
        c_in, h, w = (int(s) for s in shape)
        if min(h, w) < 2 ** downsamples:
            raise ValueError(f"ConvEnergy halves the side {downsamples} times and needs images of side at least "
                             f"{2 ** downsamples}, got {h} x {w}")
        act = ACTIVATIONS[activation]
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        c_out = channels
        for _ in range(downsamples):
            layers += [sn(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), act()]  # side s -> floor(s / 2)
            c_in, c_out, h, w = c_out, 2 * c_out, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.readout = sn(nn.Linear(c_in * h * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(2 * x - 1)                  # (n, 4c, H/8, W/8)
        return self.readout(h.flatten(1))             # (n, 1)
