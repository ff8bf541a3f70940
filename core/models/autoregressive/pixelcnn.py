"""PixelCNN: a stack of causally masked convolutions gives every pixel's conditional at once.

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks"
(https://arxiv.org/abs/1601.06759), the PixelCNN of section 3.4 on binarized MNIST: a 7 x 7
mask-A convolution, residual blocks of 3 x 3 mask-B convolutions (core.nets.masked_conv), and
1 x 1 layers to one logit per pixel:

    p(x_i = 1 | x_<i) = sigmoid(s_i),      s = PixelCNN(x),   s_i reading x_<i only,

so log p(x) = -sum_i BCE(s_i, x_i) in one pass. The paper reports 81.30 nats on binarized
MNIST with a much larger network than the default here, which is sized to train on a CPU.

A sampler needs one logit per step: it evaluates every layer at the new pixel alone, from the
activations kept for the pixels before it (PixelCNNNet.logit_at), the same logit as a pass
over the whole image at a small fraction of its cost.
"""

from __future__ import annotations

import dataclasses

import torch

from ...config import param
from ...errors import DataError
from ...nets.masked_conv import PixelCNNNet
from .binary import BinaryAutoregressive


@dataclasses.dataclass
class PixelCNNConfig:
    hidden: int = param(16, lo=1, hi=128, help="channels h of the residual blocks (2h between them; the paper: 128)")
    layers: int = param(4, lo=1, hi=15, help="residual blocks of 3 x 3 mask-B convolutions (the paper: 15)")


class PixelCNN(BinaryAutoregressive):
    TRACE_DIGITS = 8
    metric_samples = 64  # each sample costs 784 passes of the net's new-pixel step

    def __init__(self, data_shape: tuple, config: PixelCNNConfig):
        super().__init__(data_shape, config)
        if len(self.data_shape) != 3 or self.data_shape[0] != 1:
            raise DataError(f"pixelcnn models one-channel images (1, H, W), got data of shape {self.data_shape}; "
                            "its masks order the pixels of one channel")
        self.net = PixelCNNNet(self.data_shape[0], self.data_shape[0], config.hidden, config.layers)

    def start_logits(self, s: torch.Tensor) -> None:
        with torch.no_grad():
            self.net.out.bias.fill_(float(s.mean()))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat(self.net(x))  # (n, D)

    def conditional_logit(self, x: torch.Tensor, i: int, cache: dict) -> torch.Tensor:
        r, c = divmod(i, self.data_shape[2])
        return self.net.logit_at(self.unflat(x), r, c, cache)[:, 0]  # (n,)
