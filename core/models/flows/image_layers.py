"""The layers of a multi-scale flow on images (Dinh et al. 2017, "Density estimation using Real NVP").

They speak the flat protocol of base.py, (n, D) -> ((n, D), log_det (n,)), so a multi-scale
flow is an ordinary Flow. The state is one flat vector whose head holds the latents already
factored out and whose tail is the part still being transformed, an image h (C, H, W):

    x = [ z_1 | ... | z_{s-1} | h ],    h = x[:, offset:].view(C, H, W).

Every layer acts on the tail only and passes the head through, which adds nothing to the
log-determinant (an identity block). Factoring out half the channels at the end of a scale
(section 3.6) is therefore no layer at all: the next scale's layers start at a larger offset.

    Logit (section 4.1): the data y in [0, 1]^D are mapped to the real line,
        s = alpha + (1 - 2 alpha) y,    u = logit(s) = log s - log(1 - s),
        log|det du/dy| = sum_i [ log(1 - 2 alpha) - log s_i - log(1 - s_i) ].
    Squeeze (section 3.6, figure 3): each 2 x 2 block of each channel becomes 4 channels,
        (C, H, W) -> (4C, H/2, W/2); a permutation, log|det| = 0.
    ChannelCoupling (sections 3.2, 3.4): the channels split into kept ones a and transformed ones b,
        z_a = h_a,    z_b = h_b * exp(s(h_a)) + t(h_a),    log|det| = sum s(h_a),
        with s, t from one convolutional ResNet (core.nets.resnet) whose read-out starts at zero.

RealNVP's two masks are both channel masks on the squeezed image. Its checkerboard mask
keeps the pixels (i, j) with i + j even; after a squeeze, pixel (2p + di, 2q + dj) sits in
channel 4c + 2di + dj at (p, q), and i + j is even exactly when di + dj is, so the
checkerboard keeps channels {4c, 4c + 3} and transforms {4c + 1, 4c + 2} (`checkerboard`).
The same partition of pixels, with the network at half the resolution, costs a quarter of
the positions. The channel-wise mask (`channel_halves`) keeps the first half of the channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...nets.resnet import ResNet
from .base import Transform
from .elementwise import Affine


def checkerboard(channels: int, parity: int) -> torch.Tensor:
    """True on the channels of a squeezed image that RealNVP's checkerboard mask transforms:
    sub-pixel (di, dj) of each 2 x 2 block with di + dj = parity (mod 2). (channels,) bool."""
    if channels % 4:
        raise ValueError(f"a checkerboard needs the 4 sub-pixel channels of a squeeze, got {channels} channels")
    sub = torch.arange(channels) % 4  # 2 di + dj
    return (sub // 2 + sub % 2) % 2 == parity % 2


def channel_halves(channels: int, parity: int) -> torch.Tensor:
    """True on the second half of the channels (parity 0) or the first half (parity 1). (channels,) bool."""
    return (torch.arange(channels) >= channels // 2) ^ bool(parity % 2)


class Logit(Transform):
    """u = logit(alpha + (1 - 2 alpha) y), elementwise on the whole flat vector."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0.0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 1/2), got {alpha}")
        self.alpha = float(alpha)

    def _log_det(self, u: torch.Tensor) -> torch.Tensor:
        # -log s - log(1 - s) = softplus(-u) + softplus(u), stable at large |u|
        return (math.log(1 - 2 * self.alpha) + F.softplus(-u) + F.softplus(u)).sum(1)

    def forward(self, y):
        s = self.alpha + (1 - 2 * self.alpha) * y
        u = torch.log(s) - torch.log1p(-s)
        return u, self._log_det(u)

    def inverse(self, u):
        y = (torch.sigmoid(u) - self.alpha) / (1 - 2 * self.alpha)
        return y, -self._log_det(u)


class _OnTail(Transform):
    """A layer acting on the image tail x[:, offset:] shaped `shape` (C, H, W)."""

    def __init__(self, offset: int, shape: tuple):
        super().__init__()
        self.offset, self.shape = int(offset), tuple(int(s) for s in shape)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, : self.offset], x[:, self.offset:].reshape(x.shape[0], *self.shape)

    def _join(self, head: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h = h.reshape(h.shape[0], -1)
        return torch.cat([head, h], 1) if self.offset else h


class Squeeze(_OnTail):
    """(C, H, W) -> (4C, H/2, W/2): channel 4c + 2 di + dj holds pixels (2p + di, 2q + dj) of channel c."""

    def __init__(self, offset: int, shape: tuple):
        super().__init__(offset, shape)
        c, h, w = self.shape
        if h % 2 or w % 2:
            raise ValueError(f"a squeeze halves the image, so its sides must be even, got {h} x {w}")
        self.out_shape = (4 * c, h // 2, w // 2)

    def forward(self, x):
        head, h = self._split(x)
        n, (c, H, W) = x.shape[0], self.shape
        h = h.reshape(n, c, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (n, c, di, dj, H/2, W/2)
        return self._join(head, h), x.new_zeros(n)

    def inverse(self, z):
        n, (c, H, W) = z.shape[0], self.shape
        head, h = z[:, : self.offset], z[:, self.offset:].reshape(n, c, 2, 2, H // 2, W // 2)
        return self._join(head, h.permute(0, 1, 4, 2, 5, 3)), z.new_zeros(n)  # (n, c, H/2, di, W/2, dj)


class ChannelCoupling(_OnTail):
    """z_b = h_b * exp(s(h_a)) + t(h_a), z_a = h_a, over the channels of the tail image.

    transformed: (C,) bool, True on the channels b. The log-scale is soft-clamped as in
    elementwise.Affine (RealNVP bounds it with a tanh too).
    """

    def __init__(self, offset: int, shape: tuple, transformed: torch.Tensor, hidden: int = 32, blocks: int = 1,
                 activation: str = "relu"):
        super().__init__(offset, shape)
        mask = torch.as_tensor(transformed, dtype=torch.bool)
        if mask.shape != (self.shape[0],) or mask.all() or not mask.any():
            raise ValueError(f"a channel coupling needs a mask over the {self.shape[0]} channels with at least "
                             f"one kept and one transformed channel, got {mask.tolist()}")
        self.register_buffer("idx_a", torch.nonzero(~mask)[:, 0], persistent=False)  # kept
        self.register_buffer("idx_b", torch.nonzero(mask)[:, 0], persistent=False)  # transformed
        order = torch.cat([self.idx_a, self.idx_b])
        self.register_buffer("unsort", torch.argsort(order), persistent=False)
        self.tau = Affine()
        # theta(h_a): (n, C_a, H, W) -> (n, C_b * 2, H, W), zero at the start: the layer begins as the identity
        self.net = ResNet(len(self.idx_a), len(self.idx_b) * self.tau.params_per_dim, hidden, blocks,
                          activation).zero_last()

    def _theta(self, h_a: torch.Tensor) -> torch.Tensor:
        n, _, H, W = h_a.shape
        return self.net(h_a).reshape(n, len(self.idx_b), self.tau.params_per_dim, H, W).movedim(2, -1)  # (n, C_b, H, W, 2)

    def _couple(self, x: torch.Tensor, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
        head, h = self._split(x)
        h_a, h_b = h.index_select(1, self.idx_a), h.index_select(1, self.idx_b)
        step = self.tau.forward if direction == "forward" else self.tau.inverse
        out_b, log_det = step(h_b, self._theta(h_a))
        out = torch.cat([h_a, out_b], 1).index_select(1, self.unsort)
        return self._join(head, out), log_det.sum((1, 2, 3))

    def forward(self, x):
        return self._couple(x, "forward")

    def inverse(self, z):
        return self._couple(z, "inverse")
