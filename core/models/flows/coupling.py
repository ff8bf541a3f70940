"""Coupling layers (Dinh et al. 2014 "NICE", 2016 "RealNVP"; Durkan et al. 2019 "NSF").

Split x by a binary mask into a kept part x_a and a transformed part x_b:

    z_a = x_a,    z_b = tau(x_b; theta(x_a)),    log|det dz/dx| = sum_i log|d tau / d x_b,i|

The Jacobian is block-triangular, so the log-det is the elementwise one of tau,
and the inverse needs theta(x_a) = theta(z_a) only, never an inverse of the
network. One class serves every variant through its elementwise map tau:
Additive (NICE), Affine (RealNVP, Glow) or RationalQuadratic (NSF).

With `transform_kept`, the kept part moves too, through tau with parameters phi
learned directly rather than predicted:

    z_a = tau(x_a; phi),    z_b = tau(x_b; theta(x_a)).

The Jacobian stays block-triangular, and the inverse takes one pass still:
x_a = tau^{-1}(z_a; phi) first, then theta(x_a). It is the masked autoregressive
layer (Papamakarios et al. 2017) over two blocks, x_a before x_b: for 2D data
exactly MAF's layer, moving both coordinates for about the cost of one, since
tau runs once over all D dimensions with the parameters [phi, theta(x_a)].

NICE also ends with a diagonal scaling layer (Dinh et al. 2014, section 3.3),
since additive couplings alone preserve volume: `DiagonalScale`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nets import MLP
from .base import Transform
from .elementwise import ElementwiseMap


def alternating_mask(dim: int, parity: int) -> torch.Tensor:
    """True on the dimensions a layer transforms: every other index of the flat vector.

    For 2D points the layers alternate between transforming y given x and x given y;
    for a flattened image this is a stripe pattern over the flat pixel order.
    """
    return torch.arange(dim) % 2 == parity % 2


def _as_slice(idx: list[int]) -> slice | None:
    """Sorted, evenly spaced indices as a slice (basic slicing is a view, indexing a copy); else None."""
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if all(b - a == step for a, b in zip(idx, idx[1:])):
        return slice(idx[0], idx[-1] + 1, step)
    return None


class Coupling(Transform):
    """z_b = tau(x_b; theta(x_a)), z_a = x_a; theta is an MLP that starts at zero (identity layer).

    transform_kept: z_a = tau(x_a; phi) as well, with phi (d_a, P) a parameter that starts at zero.
    """

    def __init__(self, mask: torch.Tensor, tau: ElementwiseMap, hidden: int = 64, depth: int = 2,
                 activation: str = "relu", conditioner: nn.Module | None = None, transform_kept: bool = False):
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.dim() != 1 or mask.all() or not mask.any():
            raise ValueError("a coupling layer needs a flat mask with at least one kept and one transformed dimension")
        # the index bookkeeping in plain Python: a few dozen tiny tensor operations otherwise, each
        # a trip into torch that a model of ten layers, built on a busy server, paid for
        flags = mask.tolist()
        kept = [i for i, f in enumerate(flags) if not f]
        moved = [i for i, f in enumerate(flags) if f]
        self.register_buffer("idx_a", torch.tensor(kept, dtype=torch.long), persistent=False)  # kept
        self.register_buffer("idx_b", torch.tensor(moved, dtype=torch.long), persistent=False)  # transformed
        self._slice_a, self._slice_b = _as_slice(kept), _as_slice(moved)
        # The two parts are put back together by one concatenation, [a, b] or [b, a]
        # as they lie in x; only where they interleave does a permutation follow.
        self._b_first = max(moved) < min(kept)
        order = moved + kept if self._b_first else kept + moved
        in_order = order == list(range(len(flags)))
        unsort = None if in_order else torch.argsort(torch.tensor(order, dtype=torch.long))
        self.register_buffer("_unsort", unsort, persistent=False)
        self.tau = tau
        P = tau.params_per_dim
        # theta(x_a): (n, d_a) -> (n, d_b * P); the default MLP starts at zero, so the layer at the identity
        self.conditioner = conditioner or MLP(len(self.idx_a), len(self.idx_b) * P, hidden, depth, activation).zero_last()
        self.phi = nn.Parameter(torch.zeros(len(self.idx_a), P)) if transform_kept else None

    def _part_a(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, self._slice_a] if self._slice_a is not None else h.index_select(1, self.idx_a)

    def _part_b(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, self._slice_b] if self._slice_b is not None else h.index_select(1, self.idx_b)

    def _join(self, h_a: torch.Tensor, h_b: torch.Tensor) -> torch.Tensor:
        """The kept and the transformed part side by side, in the order of x's dimensions."""
        h = torch.cat([h_b, h_a] if self._b_first else [h_a, h_b], 1)
        return h if self._unsort is None else h[:, self._unsort]

    def _theta(self, h_a: torch.Tensor) -> torch.Tensor:
        return self.conditioner(h_a).view(h_a.shape[0], -1, self.tau.params_per_dim)  # (n, d_b, P)

    def _phi(self, n: int) -> torch.Tensor:
        return self.phi.expand(n, -1, -1)  # (n, d_a, P)

    def forward(self, x):
        x_a = self._part_a(x)
        if self.phi is not None:
            # both parts in one evaluation of tau, over all D dimensions
            z, log_det = self.tau.forward(x, self._join(self._phi(len(x)), self._theta(x_a)))
            return z, log_det.sum(1)
        z_b, log_det = self.tau.forward(self._part_b(x), self._theta(x_a))
        return self._join(x_a, z_b), log_det.sum(1)

    def inverse(self, z):
        if self.phi is not None:
            x_a, log_det_a = self.tau.inverse(self._part_a(z), self._phi(len(z)))  # x_a first: theta needs it
            log_det_a = log_det_a.sum(1)
        else:
            x_a, log_det_a = self._part_a(z), 0
        x_b, log_det_b = self.tau.inverse(self._part_b(z), self._theta(x_a))
        return self._join(x_a, x_b), log_det_a + log_det_b.sum(1)


class DiagonalScale(Transform):
    """z = x * exp(s), one learned log-scale per dimension: log|det| = sum_i s_i."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z):
        return z * torch.exp(-self.log_scale), (-self.log_scale.sum()).expand(z.shape[0])
