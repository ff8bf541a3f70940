"""A small U-Net f(x, t) on images: the network of DDPM, flow matching and NCSN on digits.

Ronneberger, Fischer & Brox 2015, "U-Net" (https://arxiv.org/abs/1505.04597), in the form
Ho et al. 2020 (app. B) use for diffusion: residual blocks of GroupNorm, SiLU and 3 x 3
convolutions, a time embedding added to every block, and skip connections from each
resolution on the way down to the same resolution on the way up. Here two downsamplings,

    H x W (c)  ->  H/2 x W/2 (2c)  ->  H/4 x W/4 (2c)  ->  back up, concatenating the skips,

so 28 -> 14 -> 7 on MNIST and 8 -> 4 -> 2 on the tests' tiny images (odd sizes round up on
the way down, and the way up takes each skip's size). A block computes

    h = conv(SiLU(GN(x))) + W_t SiLU(temb),   out = conv(SiLU(GN(h))) + skip(x),

with temb = MLP(sinusoidal_embedding(t * time_scale)) (core.nets.time): the same embedding as
TimeMLP's, shared by every model that conditions on a time or a noise level. The last
convolution starts at zero, so an untrained network outputs 0 (eps = 0, v = 0).

forward(x, t) takes images (n, C, H, W) or flat rows (n, C*H*W), the way the samplers pass
them, and returns the same shape; t is (n,) or (1,) for one time shared by every image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .time import sinusoidal_embedding


def _groups(channels: int, most: int = 8) -> int:
    """The largest number of groups up to `most` that divides `channels`."""
    return next(g for g in range(min(most, channels), 0, -1) if channels % g == 0)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv, + time, GN -> SiLU -> conv, + a 1 x 1 skip where the width changes."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t_proj = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                   # (n, c_out, H, W)
        h = h + self.t_proj(F.silu(temb))[:, :, None, None]     # the time reaches every block
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """f(x, t) -> the shape of x, for images of `shape` (C, H, W); channels: the width c at full size."""

    def __init__(self, shape: tuple, channels: int = 32, t_dim: int = 64, time_scale: float = 1.0):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"a U-Net needs images of shape (C, H, W), got {tuple(shape)}")
        self.shape = tuple(int(s) for s in shape)
        c_img, c = self.shape[0], int(channels)
        self.t_dim, self.time_scale = t_dim, float(time_scale)
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, 2 * t_dim), nn.SiLU(), nn.Linear(2 * t_dim, t_dim))
        self.inp = nn.Conv2d(c_img, c, 3, padding=1)
        self.down1 = ResBlock(c, c, t_dim)                       # H
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)     # H -> ceil(H/2)
        self.down2 = ResBlock(c, 2 * c, t_dim)                   # H/2
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * c, 2 * c, t_dim)                 # H/4
        self.up2 = ResBlock(4 * c, 2 * c, t_dim)                 # H/2, after the skip of down2
        self.up1 = ResBlock(3 * c, c, t_dim)                     # H, after the skip of down1
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, c_img, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (n, C, H, W) or (n, C*H*W); t: (n,) or (1,) -> the shape of x."""
        n = x.shape[0]
        h = x.reshape(n, *self.shape) if x.dim() == 2 else x
        if h.shape[1:] != self.shape:
            raise ValueError(f"this U-Net takes images of shape {self.shape}, got {tuple(x.shape[1:])}")
        temb = self.t_mlp(sinusoidal_embedding(t.reshape(-1) * self.time_scale, self.t_dim))  # (n or 1, t_dim)
        h0 = self.inp(h)                                         # (n, c, H, W)
        h1 = self.down1(h0, temb)                                # (n, c, H, W)
        h2 = self.down2(self.pool1(h1), temb)                    # (n, 2c, H/2, W/2)
        m = self.mid(self.pool2(h2), temb)                       # (n, 2c, H/4, W/4)
        u = F.interpolate(m, size=h2.shape[-2:], mode="nearest")
        u = self.up2(torch.cat([u, h2], 1), temb)                # (n, 2c, H/2, W/2)
        u = F.interpolate(u, size=h1.shape[-2:], mode="nearest")
        u = self.up1(torch.cat([u, h1], 1), temb)                # (n, c, H, W)
        out = self.out(F.silu(self.out_norm(u)))                 # (n, C, H, W)
        return out.reshape(x.shape)
