"""Fully visible sigmoid belief network (FVSBN): a logistic regression per pixel.

Frey 1998, "Graphical Models for Machine Learning and Digital Communication" (after Neal
1992's sigmoid belief networks, with every unit visible). In raster order,

    p(x_i = 1 | x_<i) = sigmoid(b_i + sum_{j<i} W_ij x_j),

W strictly lower-triangular: D (D - 1) / 2 weights and D biases, and no hidden units. All D
logits of a batch are one matrix product, s = b + x W^T; a sampler needs only row i of W for
pixel i. It is the simplest model of the family and its baseline: Larochelle & Murray (2011)
report about 97.45 nats on binarized MNIST.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .binary import BinaryAutoregressive


@dataclasses.dataclass
class FVSBNConfig:
    """FVSBN has no hidden units: its size is fixed by the image, D (D - 1) / 2 weights."""


class FVSBN(BinaryAutoregressive):
    def __init__(self, data_shape: tuple, config: FVSBNConfig):
        super().__init__(data_shape, config)
        D = self.dim
        self.W = nn.Parameter(torch.zeros(D, D))  # row i: the weights of x_<i in s_i
        self.b = nn.Parameter(torch.zeros(D))
        self.register_buffer("mask", torch.ones(D, D).tril(-1))  # strictly lower-triangular

    def start_logits(self, s: torch.Tensor) -> None:
        with torch.no_grad():
            self.b.copy_(s.to(self.b))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.b + self.flat(x) @ (self.W * self.mask).T  # (n, D)

    def conditional_logit(self, x: torch.Tensor, i: int, cache: dict) -> torch.Tensor:
        return self.b[i] + x[:, :i] @ self.W[i, :i]  # (n,)
