"""What every dataset provides.

A dataset draws samples, knows its shape and plotting bounds, and, where one
exists, evaluates its exact log-density (so a model can be scored by
KL(p_data || q) = E_p[log p - log q]). Mixture datasets also expose their modes,
for the modes-covered and high-quality-sample metrics.
"""

from __future__ import annotations

import torch


class Dataset:
    name: str = ""
    shape: tuple = (2,)
    has_density: bool = False
    # For mixtures of isotropic Gaussians: (K, D) centres and their common std.
    modes: torch.Tensor | None = None
    mode_std: float | None = None
    # Axis-aligned box that holds (almost) all the mass: ((xmin, xmax), (ymin, ymax)).
    bounds: tuple = ((-4.0, 4.0), (-4.0, 4.0))
    labels_name: str | None = None

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, *shape) samples; deterministic given the generator."""
        raise NotImplementedError

    def sample_with_labels(self, n: int, generator: torch.Generator | None = None):
        """Samples and an integer label each (mixture component, digit); -1 if none."""
        x = self.sample(n, generator)
        return x, torch.full((n,), -1, dtype=torch.long)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density at x: (n, *shape) -> (n,)."""
        raise NotImplementedError(f"dataset {self.name!r} has no known density")

    def training_set(self, n: int, seed: int) -> torch.Tensor:
        """A fixed training set of n points drawn with `seed`."""
        g = torch.Generator().manual_seed(seed)
        return self.sample(n, g)
