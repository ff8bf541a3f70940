"""Mixtures of isotropic Gaussians, p(x) = sum_j a_j N(x; c_j, sigma^2 I), and the 2D toys made of them.

eight_gaussians follows FFJORD (Grathwohl et al. 2019); twenty_five_gaussians
is the grid of the GAN mode-collapse literature. The same log-sum-exp serves
the curve datasets' quadrature (core.data.curves).
"""

from __future__ import annotations

import math

import torch

from .base import Dataset

_CHUNK = 2**22  # (points x nodes) entries per block, bounds memory to ~32 MB


def mixture_log_prob(x: torch.Tensor, centres: torch.Tensor, log_weights: torch.Tensor,
                     sigma: float) -> torch.Tensor:
    """log sum_j a_j N(x; c_j, sigma^2 I) for 2D x (n, 2), centres (M, 2), log a (M,).

    Computed in float64, in blocks of points so memory stays bounded; differentiable in x
    (the data's exact score is its gradient).
    """
    x64 = x.to("cpu", torch.float64)
    centres, log_weights = centres.to(torch.float64), log_weights.to(torch.float64)
    out = torch.empty(x64.shape[0], dtype=torch.float64)
    block = max(1, _CHUNK // centres.shape[0])
    for i in range(0, x64.shape[0], block):
        d2 = torch.cdist(x64[i:i + block], centres, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        out[i:i + block] = torch.logsumexp(log_weights - d2 / (2 * sigma**2), dim=1)
    return out - math.log(2 * math.pi * sigma**2)


def check_points(x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got {tuple(x.shape)}")


def check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    return int(n)


# ---- mixtures of Gaussians ------------------------------------------------
class GaussianMixture(Dataset):
    """Equal-weight mixture of isotropic Gaussians N(mu_k, std^2 I)."""

    has_density = True
    has_score = True
    labels_name = "component"

    def __init__(self, name: str, modes: torch.Tensor, std: float, bounds: tuple):
        self.name = name
        self.modes = modes.to(torch.float64)  # (K, 2)
        self.mode_std = float(std)
        self.bounds = bounds

    def sample_with_labels(self, n, generator=None):
        n = check_n(n)
        k = torch.randint(0, self.modes.shape[0], (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = self.modes[k] + self.mode_std * eps
        return x.to(torch.get_default_dtype()), k

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x):
        return self.noised_log_prob(x.detach(), 0.0).to(x.dtype)

    def noised_log_prob(self, x, sigma):
        """The mixture with every component widened: std^2 + sigma^2."""
        check_points(x)
        K = self.modes.shape[0]
        log_w = torch.full((K,), -math.log(K), dtype=torch.float64)
        return mixture_log_prob(x, self.modes, log_w, math.sqrt(self.mode_std**2 + sigma**2))


def eight_gaussians() -> GaussianMixture:
    """8 Gaussians on a circle of radius 2*sqrt(2), std 0.5/sqrt(2) (FFJORD's '8gaussians')."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    modes = 2 * math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture("eight_gaussians", modes, 0.5 / math.sqrt(2), ((-4.5, 4.5), (-4.5, 4.5)))


def twenty_five_gaussians() -> GaussianMixture:
    """A 5x5 grid of Gaussians at {-3, -1.5, 0, 1.5, 3}^2 with std 0.1."""
    c = torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0], dtype=torch.float64)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    modes = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    return GaussianMixture("twenty_five_gaussians", modes, 0.1, ((-4.0, 4.0), (-4.0, 4.0)))
