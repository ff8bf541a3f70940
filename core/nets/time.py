"""Networks of a point and a time: f(x, t), t in [0, 1] (core.dynamics's convention)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .mlp import ACTIVATIONS


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style features of a time t in [0, 1]; t: (n,) -> (n, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
    args = 1000.0 * t[:, None] * freqs[None]  # (n, half); 1000 spreads t in [0,1] over the frequencies
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeMLP(nn.Module):
    """f(x, t): an MLP on [x, embed(t)] with the time embedding added to every hidden layer."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3, t_dim: int = 32, activation: str = "silu", out_dim: int | None = None):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.t_dim = t_dim
        self.t_proj = nn.Sequential(nn.Linear(t_dim, hidden), act(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(layers - 1)])
        self.act = act()
        self.out = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (n, dim), t: (n,) in [0, 1], or (1,) for one time shared by every row -> (n, out_dim)."""
        temb = self.t_proj(sinusoidal_embedding(t, self.t_dim))  # (n, hidden)
        h = self.act(self.inp(x) + temb)
        for block in self.blocks:
            h = self.act(block(h) + temb)
        return self.out(h)
