"""Normalizing flows: invertible transforms stacked on a standard-normal base.

A flow is a bijection f = f_L o ... o f_1 from data x to base z. By the change
of variables formula (Rezende & Mohamed 2015; Dinh et al. 2016, eq. 3), with
h_0 = x and h_l = f_l(h_{l-1}):

    log q(x) = log N(z; 0, I) + sum_{l=1..L} log |det d h_l / d h_{l-1}|,   z = h_L.

Sampling runs the stack backwards: z ~ N(0, I), x = f_1^{-1}(...f_L^{-1}(z)).

On images the flow is a density of dequantized digits (core.data.pixels): every batch is
read as y = (255 x + u) / 256, u ~ U[0, 1)^D, and -log q(y) + D log 256 bounds the digit's
NLL from above; a density of the raw grey levels, many exactly 0, could grow without bound.

Every transform speaks one protocol (as in nflows): `forward(x) -> (z, log_det)`
maps towards the base, `inverse(z) -> (x, log_det)` maps towards the data, and
log_det is log|det dz/dx| resp. log|det dx/dz|, shape (n,). `Inverse` swaps the
two directions, which turns a masked autoregressive flow (fast density) into an
inverse autoregressive flow (fast sampling).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...data.pixels import view as view_pixels
from ...model import GenerativeModel, to_numpy

DIRECTIONS = ("forward", "inverse")
_TRACE_SEED = 1234  # fixed base samples, so the live view moves smoothly between frames
# The deformed grid is drawn as lines, so it is pushed through the flow on a sub-grid of
# at most this many lines each way (the density heatmap keeps the whole grid).
GRID_LINES = 30
# A picture pushes at most this many rows through the networks in each direction (rows times
# sequential passes): an autoregressive direction takes D passes per layer, 6,272 for eight
# layers on a digit, so it is drawn on a few points only.
TRACE_WORK = 50_000


class Transform(nn.Module):
    """An invertible map with a tractable log-determinant, on flat vectors (n, D)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """data side -> base side: (z, log|det dz/dx|)."""
        raise NotImplementedError

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """base side -> data side: (x, log|det dx/dz|)."""
        raise NotImplementedError

    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation from the inputs this layer sees (ActNorm)."""

    def passes(self, direction: str, dim: int) -> int:
        """Sequential network passes one direction takes on dim-dimensional vectors (1: all at once)."""
        return 1


class Inverse(Transform):
    """transform with its two directions swapped: f^{-1} as a layer of its own."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, x):
        return self.transform.inverse(x)

    def inverse(self, z):
        return self.transform.forward(z)

    def passes(self, direction, dim):
        return self.transform.passes("inverse" if direction == "forward" else "forward", dim)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over dimensions: (n, D) -> (n,)."""
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


class Flow(GenerativeModel):
    """A standard-normal base over self.dim dimensions and a list of transforms.

    Subclasses build their stack in `build_transforms()`; a flow can also be
    given its transforms directly: `Flow(data_shape, config, transforms=[...])`.
    """

    family = "flow"
    has_log_prob = True
    log_prob_is_exact = True
    live_kl = True
    TRACES = {"forward_states": ("L+1", "n", "D"), "inverse_states": ("L+1", "n", "D"), "log_dets": ("L",)}
    GRID_TRACES = {"grid_states": ("L+1", "S", 2), "log_density": ("G",)}

    def __init__(self, data_shape: tuple, config, transforms: list[Transform] | None = None):
        super().__init__(data_shape, config)
        self.transforms = nn.ModuleList(transforms if transforms is not None else self.build_transforms())

    def build_transforms(self) -> list[Transform]:
        raise NotImplementedError

    @property
    def pixels(self) -> str:
        """How images are read: dequantized; points as they are."""
        return "dequantized" if len(self.data_shape) > 1 else "grey"

    # ---- argument checks ------------------------------------------------
    def _flat_checked(self, x: torch.Tensor, what: str = "x") -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise ValueError(f"{what} must be a batch tensor shaped (n, {', '.join(map(str, self.data_shape))})")
        if tuple(x.shape[1:]) not in (self.data_shape, (self.dim,)):
            raise ValueError(f"{what} has shape {tuple(x.shape)}, but this flow was built for points "
                             f"shaped {self.data_shape} (batch first: (n, {', '.join(map(str, self.data_shape))}))")
        return self.flat(x).to(device=self.device, dtype=self._device_probe.dtype)

    # ---- the change of variables -----------------------------------------
    def _run(self, h: torch.Tensor, direction: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Push h through every layer; the states h_0..h_L and the L per-layer log-dets."""
        layers = self.transforms if direction == "forward" else list(reversed(self.transforms))
        states, log_dets = [h], []
        for layer in layers:
            h, log_det = layer(h) if direction == "forward" else layer.inverse(h)
            states.append(h)
            log_dets.append(log_det)
        return states, log_dets

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) = log N(f(x); 0, I) + sum_l log|det d h_l / d h_{l-1}|: (n, *shape) -> (n,)."""
        states, log_dets = self._run(self._flat_checked(x), "forward")
        return standard_normal_log_prob(states[-1]) + sum(log_dets, torch.zeros_like(states[0][:, 0]))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = f^{-1}(z), z ~ N(0, I): (n, *shape). Differentiable (reverse-KL training of an IAF)."""
        if int(n) != n or n < 1:
            raise ValueError(f"the number of samples must be a whole number >= 1, got {n!r}")
        z = torch.randn(int(n), self.dim, generator=generator, dtype=self._device_probe.dtype).to(self.device)
        states, _ = self._run(z, "inverse")
        return self.unflat(states[-1])

    def loss(self, x: torch.Tensor) -> dict:
        """Maximum likelihood: minimise -E[log q(x)] (the negative log-likelihood in nats; on
        images of y, the batch dequantized afresh)."""
        states, log_dets = self._run(view_pixels(self._flat_checked(x), self.pixels), "forward")
        log_det = sum(log_dets, torch.zeros_like(states[0][:, 0]))  # (n,)
        log_q = standard_normal_log_prob(states[-1]) + log_det
        nll = -log_q.mean()
        return {"loss": nll, "nll": nll.detach(), "log_det": log_det.mean().detach()}

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Let each layer (ActNorm) initialise itself from the batch as it arrives there."""
        h = view_pixels(self._flat_checked(x), self.pixels)
        for layer in self.transforms:
            layer.initialize(h)
            h, _ = layer(h)

    # ---- per-layer views -------------------------------------------------
    def layer_states(self, x: torch.Tensor, direction: str = "forward") -> list[torch.Tensor]:
        """The L+1 flat states (n, D) of a pass through the stack, starting state included.

        direction "forward": x is data, pulled layer by layer to the base;
        direction "inverse": x is base points, pushed layer by layer to the data.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        return self._run(self._flat_checked(x), direction)[0]

    def passes(self, direction: str) -> int:
        """Sequential network passes through the whole stack in one direction."""
        return sum(layer.passes(direction, self.dim) for layer in self.transforms)

    def layer_log_dets(self, x: torch.Tensor) -> torch.Tensor:
        """(L, n): log|det d h_l / d h_{l-1}| of each layer on data x."""
        _, log_dets = self._run(self._flat_checked(x), "forward")
        return torch.stack(log_dets)

    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """forward_states (L+1, n, D), inverse_states (L+1, n, D), log_dets (L,) and,
        for 2D data with a square grid (G*G, 2): log_density (G*G,) and grid_states
        (L+1, S*S, 2), the S x S sub-grid (S = min(G, GRID_LINES), first and last
        lines kept) taken as base points and pushed to the data layer by layer.

        A direction of many sequential passes (an autoregressive one on digits) is traced on
        fewer points, at most TRACE_WORK / passes of them. Non-finite values (a diverging
        layer) come back as nan, never as an error.
        """
        h = self._flat_checked(x)
        h = h[: self._trace_points(h.shape[0], "forward")]
        forward_states, log_dets = self._run(h, "forward")
        g = torch.Generator().manual_seed(_TRACE_SEED)
        z = torch.randn(x.shape[0], self.dim, generator=g, dtype=h.dtype).to(h.device)
        z = z[: self._trace_points(x.shape[0], "inverse")]
        out = {
            "forward_states": torch.stack(forward_states),
            "inverse_states": torch.stack(self._run(z, "inverse")[0]),
            "log_dets": torch.stack(log_dets).mean(1) if log_dets else h.new_zeros(0),
        }
        if grid is not None and self.dim == 2:
            grid = grid.reshape(-1, 2).to(device=h.device, dtype=h.dtype)
            out["grid_states"] = torch.stack(self._run(sub_grid(grid, GRID_LINES), "inverse")[0])
            out["log_density"] = self.log_prob(grid)
        return {k: _finite_or_nan(to_numpy(v)) for k, v in out.items()}


    def _trace_points(self, n: int, direction: str) -> int:
        return max(1, min(n, TRACE_WORK // max(1, self.passes(direction))))


def sub_grid(grid: torch.Tensor, lines: int) -> torch.Tensor:
    """The S x S sub-grid of a row-major G x G grid (G*G, 2), S = min(G, lines), first and last lines kept."""
    g = math.isqrt(grid.shape[0])
    if g * g != grid.shape[0]:
        raise ValueError(f"expected a square grid of G*G points, got {grid.shape[0]}")
    keep = torch.linspace(0, g - 1, min(g, lines)).round().long().unique()
    return grid.reshape(g, g, -1)[keep][:, keep].reshape(-1, grid.shape[-1])


def _finite_or_nan(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan).astype(np.float32)
