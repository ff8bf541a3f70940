"""Six classic flow recipes built from the same few layers.

    nice     additive couplings + a diagonal scaling   (Dinh et al. 2014)
    realnvp  affine couplings                          (Dinh et al. 2016)
    glow     ActNorm -> invertible linear -> affine coupling, per step (Kingma & Dhariwal 2018)
    maf      masked autoregressive, affine             (Papamakarios et al. 2017)
    iaf      inverse of the masked autoregressive layer (Kingma et al. 2016)
    nsf      rational-quadratic spline couplings       (Durkan et al. 2019)

Each recipe is a Flow subclass that only says which transforms to stack.
"""

from __future__ import annotations

import dataclasses

import torch

from ...config import param
from ...errors import ConfigError
from .autoregressive import MaskedAutoregressive
from .base import Flow, Inverse, Transform
from .coupling import Coupling, DiagonalScale, alternating_mask
from .elementwise import Additive, Affine, ElementwiseMap
from .glow import ActNorm, InvertibleLinear
from .spline import RationalQuadratic

ACTIVATION_CHOICES = ("relu", "silu", "tanh", "leaky_relu", "elu")


@dataclasses.dataclass
class FlowConfig:
    """Every flow: how many steps, and the size of the networks that condition them."""

    layers: int = param(8, lo=1, hi=64, help="flow steps stacked (coupling or autoregressive layers)")
    hidden: int = param(64, lo=2, hi=1024, help="hidden units of each conditioner network")
    depth: int = param(2, lo=1, hi=8, help="hidden layers of each conditioner network")
    activation: str = param("relu", choices=ACTIVATION_CHOICES, help="nonlinearity of the conditioner networks")


@dataclasses.dataclass
class SplineFlowConfig(FlowConfig):
    """A spline flow adds the spline's resolution and the box it acts on."""

    bins: int = param(8, lo=2, hi=64, help="spline bins per dimension")
    tail_bound: float = param(5.0, lo=0.5, hi=1000.0, help="the spline acts on [-B, B]; identity outside")


class _CouplingFlow(Flow):
    """Alternating coupling layers with one elementwise map."""

    def _tau(self) -> ElementwiseMap:
        raise NotImplementedError

    def _coupling(self, i: int) -> Coupling:
        c = self.config
        return Coupling(alternating_mask(self.dim, i), self._tau(), c.hidden, c.depth, c.activation)

    def build_transforms(self):
        if self.dim < 2:
            raise ConfigError(f"{type(self).__name__} splits each point into two parts, so it needs at least "
                              f"2 dimensions; the data has {self.dim}. Try maf instead.")
        return [self._coupling(i) for i in range(self.config.layers)]


class NICE(_CouplingFlow):
    """Additive couplings (volume-preserving), then one diagonal scaling."""

    def _tau(self):
        return Additive()

    def build_transforms(self):
        return super().build_transforms() + [DiagonalScale(self.dim)]


class RealNVP(_CouplingFlow):
    """Affine couplings z_b = x_b * exp(s(x_a)) + t(x_a)."""

    def _tau(self):
        return Affine()


class NSF(_CouplingFlow):
    """Rational-quadratic spline couplings on [-tail_bound, tail_bound], the kept half splined too.

    Each layer bends x_b given x_a and x_a on its own (coupling.py, `transform_kept`):
    for 2D data the autoregressive layer of Durkan et al. (2019), both coordinates
    per layer for about the cost of one, so half the layers of plain couplings do.
    As in MAF's first layer (order 0, 1), the first layer keeps x_1 and moves x_2
    given x_1, then the roles swap from layer to layer.
    """

    def _tau(self):
        return RationalQuadratic(self.config.bins, self.config.tail_bound)

    def _coupling(self, i):
        c = self.config
        return Coupling(alternating_mask(self.dim, i + 1), self._tau(), c.hidden, c.depth, c.activation,
                        transform_kept=True)


class Glow(RealNVP):
    """Each of the `layers` steps is ActNorm -> invertible linear -> affine coupling."""

    def build_transforms(self):
        steps = super().build_transforms()
        return [t for coupling in steps for t in (ActNorm(self.dim), InvertibleLinear(self.dim), coupling)]


class MAF(Flow):
    """Autoregressive layers whose order is reversed from one layer to the next.

    Points only: one direction of an autoregressive layer takes D passes of its network,
    7,840 passes for ten layers on a 784-pixel digit (MAF's samples, IAF's density and so its
    training), too slow for live pictures or for training at all on a CPU; realnvp_ms is the
    flow built for digits.
    """

    data_kinds = ("points",)

    def _layer(self, i: int) -> Transform:
        c = self.config
        order = torch.arange(self.dim) if i % 2 == 0 else torch.arange(self.dim).flip(0)
        return MaskedAutoregressive(self.dim, Affine(), c.hidden, c.depth, order, c.activation)

    def build_transforms(self):
        return [self._layer(i) for i in range(self.config.layers)]


class IAF(MAF):
    """MAF's layers run backwards: sampling is the one-pass direction."""

    def _layer(self, i):
        return Inverse(super()._layer(i))
