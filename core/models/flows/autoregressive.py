"""Masked autoregressive flows (Papamakarios et al. 2017 "MAF") and their inverse
(Kingma et al. 2016 "IAF"), conditioned by MADE (Germain et al. 2015; core.nets.masked),
whose output theta_i depends on x_<i only.

MAF, data -> base in one pass, every dimension at once (eq. 3, with tau affine):

    z_i = tau(x_i; theta_i(x_<i)),     log|det dz/dx| = sum_i log|d tau / d x_i|.

base -> data is sequential: x_i needs x_<i first, so D passes of the network.
IAF is the same layer run the other way round, `Inverse(MaskedAutoregressive)`:
sampling takes one pass and the density takes D.
"""

from __future__ import annotations

import torch

from ...nets import MADE
from .base import Transform
from .elementwise import ElementwiseMap


class MaskedAutoregressive(Transform):
    """z_i = tau(x_i; theta_i(x_<i)) in one pass; its inverse in D passes."""

    def __init__(self, dim: int, tau: ElementwiseMap, hidden: int = 64, depth: int = 2,
                 order: torch.Tensor | None = None, activation: str = "relu", made: MADE | None = None):
        super().__init__()
        self.tau = tau
        self.made = made or MADE(dim, tau.params_per_dim, hidden, depth, order, activation)

    def forward(self, x):
        z, log_det = self.tau.forward(x, self.made(x))
        return z, log_det.sum(1)

    def passes(self, direction, dim):
        return 1 if direction == "forward" else dim

    def inverse(self, z):
        # After pass k the first k dimensions in the order are exact (they only
        # needed x_<k, exact from earlier passes); D passes finish the vector.
        x = torch.zeros_like(z)
        for _ in range(z.shape[1]):
            x, log_det = self.tau.inverse(z, self.made(x))
        return x, log_det.sum(1)
