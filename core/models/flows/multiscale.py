"""RealNVP's multi-scale architecture on dequantized digits (Dinh et al. 2017, sections 3.6 and 4.1).

The data. An 8-bit digit x in {0, 1/255, ..., 1}^D is dequantized, y = (255 x + u) / 256 with
u ~ U[0, 1)^D (core.data.pixels), and the flow models a density p(y) on [0, 1]^D. Since p
puts mass p(y) / 256^D on the cell of side 1/256 around each digit, the NLL of the discrete
digit is bounded by

    NLL(x) <= -E_u[log p(y)] + D log 256    nats,    bits/dim = NLL / (D ln 2);

the uniform density on [0, 1]^D (log p = 0) scores exactly 8 bits/dim. The loss is bits/dim.

The flow, data -> base (image_layers.py), with the change of variables of base.py:

    u = logit(alpha + (1 - 2 alpha) y)             the logit pre-processing; its log-det counts
    for each scale s = 1..S:
        squeeze (C, H, W) -> (4C, H/2, W/2)
        `layers` couplings with the checkerboard mask, alternating which half moves
        `layers` couplings with the channel-wise mask, alternating likewise
        all but the last scale: factor out half the channels as z_s ~ N(0, I)
    z = [z_1, ..., z_S],   log p(y) = log N(z; 0, I) + sum_l log|det dh_l / dh_{l-1}|.

On a 1 x 28 x 28 digit with two scales: z_1 is 2 x 14 x 14, factored out after the first
scale, and the final z_2 is 8 x 7 x 7. The symmetric logit is the one of MAF's
pre-processing (Papamakarios et al. 2017), alpha = 0.05 as RealNVP used. The inverse logit
reaches the box (-a, 1 + a)^D, a = alpha / (1 - 2 alpha), where p integrates to one; on
[0, 1]^D its mass is at most one, so the NLL above remains an upper bound, and sample()
clamps what lands outside onto the cube.

What differs from the paper: the checkerboard couplings run on the squeezed image (the same
partition of pixels, see image_layers.py), so every scale opens with its squeeze; no batch
normalisation (the conditioners' zero read-out starts each layer at the identity, and the
soft-clamped log-scale keeps it stable); a small convolutional net per coupling, by default
conv 3 x 3, ReLU, conv 3 x 3 with 64 channels (core.nets.resnet with no residual block), so
a step takes about 2.3 GFLOP at batch 64 and trains at a few steps a second on a CPU. Published on MNIST:
1.06 bits/dim for RealNVP (Grathwohl et al. 2019, FFJORD, Table 2).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...config import param
from ...data.pixels import bits_per_dim, dequantize, nll_nats, view
from ...errors import ConfigError, DataError
from ...model import to_numpy
from .base import Flow, _finite_or_nan, standard_normal_log_prob
from .image_layers import ChannelCoupling, Logit, Squeeze, channel_halves, checkerboard
from .recipes import ACTIVATION_CHOICES

_TRACE_SEED = 1234  # the same noise and dequantization every frame, so the pictures move smoothly
TRACE_DIGITS = 8  # digits pulled back to the base in traces()
TRACE_SAMPLES = 32  # base samples pushed to the data in traces()


@dataclasses.dataclass
class MultiScaleConfig:
    scales: int = param(2, lo=1, hi=4, help="scales; each squeezes 2 x 2, all but the last factor out half the channels")
    layers: int = param(3, lo=1, hi=8, help="checkerboard couplings per scale, then as many channel-wise ones")
    hidden: int = param(64, lo=2, hi=256, help="channels of each coupling's ResNet")
    blocks: int = param(0, lo=0, hi=8, help="residual blocks of each coupling's ResNet (0: conv, act, conv)")
    activation: str = param("relu", choices=ACTIVATION_CHOICES, help="nonlinearity of the ResNets")
    alpha: float = param(0.05, lo=1e-6, hi=0.25, help="logit pre-processing: u = logit(alpha + (1 - 2 alpha) y)")


class MultiScaleRealNVP(Flow):
    """Squeeze, checkerboard and channel-wise couplings, factor out half: RealNVP on images."""

    data_kinds = ("images",)
    pixels = "dequantized"
    live_kl = False
    # States in the image's layout (the inverse of the squeezes), k digits and s samples;
    # latents: z of the k digits in scale order [z_1, ..., z_S], of shapes latent_shapes (S, 3).
    TRACES = {"forward_states": ("L+1", "k", "D"), "inverse_states": ("L+1", "s", "D"), "log_dets": ("L",),
              "latents": ("k", "D"), "latent_shapes": ("S", 3), "latent_digits": ("k", "x")}
    GRID_TRACES = {}

    def build_transforms(self):
        c = self.config
        if len(self.data_shape) != 3:
            raise ConfigError(f"{type(self).__name__} is built for images (C, H, W), got data of shape "
                              f"{self.data_shape}; for points try realnvp or nsf")
        C, H, W = self.data_shape
        side = 2 ** c.scales
        if H % side or W % side:
            fits = [s for s in range(1, 5) if H % 2**s == 0 and W % 2**s == 0]
            raise ConfigError(f"{c.scales} scales halve the image {c.scales} times, so its sides must be multiples "
                              f"of {side}; {H} x {W} allows scales in {fits or 'none (odd sides)'}")
        layers: list = [Logit(c.alpha)]
        offset, shape, self.latent_shapes = 0, (C, H, W), []
        for s in range(c.scales):
            squeeze = Squeeze(offset, shape)
            layers.append(squeeze)
            shape = squeeze.out_shape
            for mask in (checkerboard, channel_halves):
                layers += [ChannelCoupling(offset, shape, mask(shape[0], i), c.hidden, c.blocks, c.activation)
                           for i in range(c.layers)]
            if s < c.scales - 1:  # factor out the first half of the channels
                kept = shape[0] // 2
                self.latent_shapes.append((kept, *shape[1:]))
                offset += kept * shape[1] * shape[2]
                shape = (shape[0] - kept, *shape[1:])
        self.latent_shapes.append(shape)
        return layers

    # ---- density and samples ---------------------------------------------
    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y), the exact density of dequantized digits y in [0, 1]^D: (n, *shape) -> (n,)."""
        y = self._flat_checked(y, "y")
        if not bool(((y >= 0) & (y <= 1)).all()):
            raise DataError(f"{type(self).__name__} is a density on [0, 1]^D (dequantized digits, "
                            f"core.data.pixels.dequantize); got values in [{float(y.min()):.3g}, {float(y.max()):.3g}]")
        return super().log_prob(y)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = f^{-1}(z), z ~ N(0, I), clamped to [0, 1] (the inverse logit reaches alpha / (1 - 2 alpha) beyond)."""
        return super().sample(n, generator).clamp(0.0, 1.0)

    def loss(self, x: torch.Tensor) -> dict:
        """bits/dim of the digits x: -E[log p(y)] / (D ln 2) + 8 with y their fresh dequantization;
        nll is the same in nats per digit."""
        y = view(self._flat_checked(x), self.pixels)  # (n, D) in [0, 1)
        states, log_dets = self._run(y, "forward")
        log_det = sum(log_dets, torch.zeros_like(y[:, 0]))  # (n,)
        log_p = standard_normal_log_prob(states[-1]) + log_det
        nll = nll_nats(log_p, self.pixels, self.dim).mean()
        bits = bits_per_dim(nll, self.dim)
        return {"loss": bits, "nll": nll.detach(), "log_det": log_det.mean().detach()}

    # ---- pictures -----------------------------------------------------------
    def image_layout(self, h: torch.Tensor, layers_done: int) -> torch.Tensor:
        """A state after the first `layers_done` layers, put back in the image's pixel order by
        undoing their squeezes (factored-out latents sit where their pixels came from): (n, D)."""
        for layer in reversed(self.transforms[:layers_done]):
            if isinstance(layer, Squeeze):
                h = layer.inverse(h)[0]
        return h

    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """For TRACE_DIGITS digits of x, dequantized with a fixed seed, and TRACE_SAMPLES fixed
        base samples: forward_states (L+1, k, D) the digits pulled to the base, inverse_states
        (L+1, s, D) the samples pushed to the data (the last clamped to [0, 1], as sample() does),
        every state in the image's layout; log_dets (L,) per layer on the digits; latents (k, D)
        z in scale order, latent_shapes (S, 3) and latent_digits (k, *shape) the y they come from."""
        x = self._flat_checked(x)[:TRACE_DIGITS]
        g = torch.Generator().manual_seed(_TRACE_SEED)
        y = dequantize(x, generator=g)
        forward_states, log_dets = self._run(y, "forward")
        z = torch.randn(TRACE_SAMPLES, self.dim, generator=g, dtype=y.dtype).to(y.device)
        inverse_states = self._run(z, "inverse")[0]
        L = len(self.transforms)
        inverse_states[-1] = inverse_states[-1].clamp(0.0, 1.0)
        out = {
            "forward_states": torch.stack([self.image_layout(h, l) for l, h in enumerate(forward_states)]),
            "inverse_states": torch.stack([self.image_layout(h, L - l) for l, h in enumerate(inverse_states)]),
            "log_dets": torch.stack(log_dets).mean(1),
            "latents": forward_states[-1],
            "latent_shapes": torch.tensor(self.latent_shapes, dtype=torch.float32),
            "latent_digits": self.unflat(y),
        }
        return {k: _finite_or_nan(to_numpy(v)) for k, v in out.items()}
