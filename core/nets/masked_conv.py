"""Causal masked convolutions and the PixelCNN stack built from them.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks"
(https://arxiv.org/abs/1601.06759), section 3.4 and figure 5. A k x k convolution reads
the pixels around (r, c); a mask on its kernel keeps only those before (r, c) in raster
order, so that an output at (r, c) is a function of x_<(r, c) alone:

    mask A (first layer):  keep (r', c') with r' < r, or r' = r and c' <  c   (not the pixel itself)
    mask B (later layers): keep (r', c') with r' < r, or r' = r and c' <= c   (the pixel's own features,
                           which after a mask-A layer already read only x_<(r, c))

With one colour channel there is no split of the channels by colour, so a 1 x 1 mask-B
convolution is an ordinary 1 x 1 convolution. A stack of one mask-A layer and any number
of mask-B layers keeps the property: output (r, c) reads inputs strictly before (r, c).

Every activation of the stack at (r, c) reads only activations at (r, c) and before it, so a
sampler that visits the pixels in raster order can compute each layer at (r, c) alone, from
the activations it has kept for the pixels before (the caching of Ramachandran et al. 2017,
"Fast Generation for Convolutional Autoregressive Models"): `PixelCNNNet.logit_at` gives the
same logit as the whole forward pass at a few small products per layer and pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_TYPES = ("A", "B")


def causal_mask(k: int, mask_type: str) -> torch.Tensor:
    """(k, k) kernel mask, 1 where a tap reads a pixel before the centre in raster order
    (and the centre itself for mask B)."""
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
    if k < 1 or k % 2 == 0:
        raise ValueError(f"a causal kernel needs an odd size k >= 1 (its centre is the pixel), got {k}")
    mask = torch.zeros(k, k)
    centre = k // 2
    mask[:centre, :] = 1  # every row above
    mask[centre, :centre] = 1  # the centre row, left of the centre
    if mask_type == "B":
        mask[centre, centre] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution, padded to keep H x W, whose kernel is masked (type "A" or "B")."""

    def __init__(self, in_channels: int, out_channels: int, k: int, mask_type: str):
        super().__init__(in_channels, out_channels, k, padding=k // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(k, mask_type)[None, None].to(self.weight.dtype))

    def masked_weight(self) -> torch.Tensor:
        """(out, in * k * k): the masked kernel as one matrix, for a patch flattened the same way."""
        return (self.weight * self.mask).flatten(1)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """Figure 5 of the paper: 2h -> 1x1 -> h -> 3x3 mask B -> h -> 1x1 -> 2h, added to its input."""

    def __init__(self, h: int):
        super().__init__()
        self.down = nn.Conv2d(2 * h, h, 1)
        self.conv = MaskedConv2d(h, h, 3, "B")
        self.up = nn.Conv2d(h, 2 * h, 1)

    def forward(self, x):  # (n, 2h, H, W)
        y = self.down(F.relu(x))
        y = self.conv(F.relu(y))
        return x + self.up(F.relu(y))


class PixelCNNNet(nn.Module):
    """x (n, C, H, W) -> logits (n, out, H, W), the logits at (r, c) a function of x_<(r, c) only.

    A 7 x 7 mask-A layer to 2h channels, `blocks` residual blocks, then ReLU, a 1 x 1 layer
    and ReLU, and a 1 x 1 layer to `out` channels (the paper's two 1 x 1 output layers).
    """

    def __init__(self, in_channels: int = 1, out: int = 1, h: int = 16, blocks: int = 4, first_kernel: int = 7):
        super().__init__()
        self.first = MaskedConv2d(in_channels, 2 * h, first_kernel, "A")
        self.blocks = nn.Sequential(*[ResidualBlock(h) for _ in range(blocks)])
        self.head = nn.Conv2d(2 * h, 2 * h, 1)
        self.out = nn.Conv2d(2 * h, out, 1)

    def forward(self, x):
        h = self.blocks(self.first(x))  # (n, 2h, H, W)
        return self.out(F.relu(self.head(F.relu(h))))  # (n, out, H, W)

    @torch.no_grad()
    def logit_at(self, x: torch.Tensor, r: int, c: int, cache: dict) -> torch.Tensor:
        """forward(x)[:, :, r, c] (n, out), for a sampler that calls it at every pixel in raster order
        with one `cache` (empty at (0, 0)): each layer is evaluated at (r, c) only, its inputs read
        from zero-padded maps of the activations kept for earlier pixels (zero where not yet
        computed: the masks give those taps weight zero, as they do to the padding)."""
        n, C, H, W = x.shape
        p = self.first.kernel_size[0] // 2
        if not cache:  # every kernel as a matrix, once per pass
            cache["x"] = x.new_zeros(n, C, H + 2 * p, W + 2 * p)
            cache["first"] = (self.first.masked_weight(), self.first.bias)  # (2h, C k k)
            cache["blocks"] = [(b.down.weight.flatten(1), b.down.bias, b.conv.masked_weight(), b.conv.bias,
                                b.up.weight.flatten(1), b.up.bias) for b in self.blocks]
            cache["maps"] = [x.new_zeros(n, b.conv.in_channels, H + 2, W + 2) for b in self.blocks]
            cache["head"] = (self.head.weight.flatten(1), self.head.bias, self.out.weight.flatten(1), self.out.bias)
        elif c > 0 or r > 0:  # the pixel drawn since the last call
            r_, c_ = divmod(r * W + c - 1, W)
            cache["x"][:, :, r_ + p, c_ + p] = x[:, :, r_, c_]
        k = 2 * p + 1
        a = F.linear(cache["x"][:, :, r:r + k, c:c + k].flatten(1), *cache["first"])  # (n, 2h): mask A at (r, c)
        for (w_down, b_down, w_conv, b_conv, w_up, b_up), u in zip(cache["blocks"], cache["maps"]):
            u[:, :, r + 1, c + 1] = F.relu(F.linear(F.relu(a), w_down, b_down))  # (n, h)
            y = F.linear(u[:, :, r:r + 3, c:c + 3].flatten(1), w_conv, b_conv)  # (n, h): mask B at (r, c)
            a = a + F.linear(F.relu(y), w_up, b_up)
        w_head, b_head, w_out, b_out = cache["head"]
        return F.linear(F.relu(F.linear(F.relu(a), w_head, b_head)), w_out, b_out)  # (n, out)
