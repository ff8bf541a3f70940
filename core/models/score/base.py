"""What the score-based models share: a learned score, Langevin chains that start from the data's spread,
and the traces their view draws.

A score model learns s_theta(x) ~ grad_x log p(x) of the data blurred by Gaussian noise,
p_sigma = p_data * N(0, sigma^2 I), and samples by Langevin dynamics with it
(core.dynamics.langevin). Each subclass writes its loss, `score(x, sigma)` and `chain(x_0)`;
here live the rest:

- `score_at(x, alpha, sigma)`: the estimate of grad log p at the law of alpha X + sigma eps.
  Since alpha X + sigma eps = alpha (X + (sigma / alpha) eps), that score is
  (1 / alpha) s(x / alpha, sigma / alpha).
- chains start from x_0 ~ N(m, diag(v)), the mean m and variance v of the first batch
  (init_from_data), so that they begin where the data is spread whatever its scale.
- a model may learn where its network works best, y = a x + b (NCSN rescales images from
  [0, 1] to [-1, 1]): `rescale` maps batches there, samples back, and score_at below converts.
- traces: the learned field on the plane grid at the level `field_sigma(sigma)` and that
  level (1, sigma) as "field_level" (the page draws the exact score there beside it), and
  up to TRACE_PARTICLES chains from fixed noise, so frames stay put while the model trains.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ConfigError
from ...model import GenerativeModel, to_numpy
from ...nets.auto import Rescale


class ScoreModel(GenerativeModel):
    family = "score"

    TRACE_PARTICLES = 100     # chains traced for points
    TRACE_IMAGES = 16         # chains traced for images
    TRACE_FRAMES = 101        # at most this many states of each traced chain are kept
    TRACE_SEED = 1234         # the chains' start and noise, fixed between pictures

    TRACES = {"chain": ("S+1", "m", "x"), "chain_sigma": ("S+1",), "field_level": (2,)}
    GRID_TRACES = {"score_field": ("G", 2)}

    def __init__(self, data_shape: tuple, config):
        super().__init__(data_shape, config)
        self.register_buffer("x0_mean", torch.zeros(self.dim))  # (D,) where the chains start
        self.register_buffer("x0_std", torch.ones(self.dim))    # (D,)
        self.rescale = self.make_rescale()

    def make_rescale(self) -> Rescale:
        """y = a x + b from the data to where the score is learned: the identity here."""
        return Rescale()

    @property
    def _dtype(self) -> torch.dtype:
        return self._device_probe.dtype

    def init_from_data(self, x: torch.Tensor) -> None:
        x = self.flat(self.rescale.encode(x.to(self.x0_mean.device, self.x0_mean.dtype)))
        with torch.no_grad():
            self.x0_mean.copy_(x.mean(0))
            self.x0_std.copy_(x.std(0).clamp_min(1e-3) if x.shape[0] > 1 else torch.ones_like(self.x0_std))

    # ---- the score ---------------------------------------------------------
    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """s_theta(x) ~ grad log p_sigma(x) on flat points x (n, D)."""
        raise NotImplementedError

    def own_sigma(self, sigma: float | None) -> float:
        """The level the model draws its field at when the view asks for `sigma`."""
        raise NotImplementedError

    def score_levels(self) -> list[tuple[float, float]]:
        raise NotImplementedError

    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The model's grad log p of alpha X + sigma eps at x (n, *data_shape) -> (n, *data_shape).

        With the network's y = a X + b: (a / alpha) z + b = Y + (a sigma / alpha) eps, so the
        score is (a / alpha) s((a / alpha) z + b, a sigma / alpha); a = 1, b = 0 without rescaling."""
        alpha, sigma = float(alpha), float(sigma)
        if alpha <= 0 or sigma < 0:
            raise ConfigError(f"a noise level needs alpha > 0 and sigma >= 0, got ({alpha}, {sigma})")
        x = self.flat(x).to(self.device, self._dtype)
        a, b = self.rescale.a, self.rescale.b
        return self.unflat(self.score(a / alpha * x + b, a * sigma / alpha) * (a / alpha))

    # ---- sampling ------------------------------------------------------------
    def x0(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, D) starting points x_0 ~ N(m, diag(v)) of the data's first batch."""
        if int(n) < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        if generator is None:
            z = torch.randn(int(n), self.dim, device=self.device, dtype=self._dtype)
        else:
            z = torch.randn(int(n), self.dim, generator=generator, dtype=self._dtype).to(self.device)
        return self.x0_mean + self.x0_std * z

    def chain(self, x_0: torch.Tensor, generator: torch.Generator | None = None,
              trajectory: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampler from flat x_0 (n, D): its last state, or every state (S+1, n, D); and the
        noise level of the score each state was drawn with (S+1,) (the first: the start's)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        x, _ = self.chain(self.x0(n))
        return self.unflat(self.rescale.decode(x))

    def trace_chain(self, x_0: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The chain traces() draws: the sampler's own, unless a model shortens it for a live picture."""
        return self.chain(x_0, generator=generator, trajectory=True)

    # ---- live views ------------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None,
               sigma: float | None = None) -> dict[str, np.ndarray]:
        """"chain" (S+1, m, *data_shape) and "chain_sigma" (S+1,): m chains of the sampler from
        fixed x_0 and noise, at most TRACE_FRAMES states evenly kept; "field_level" (2,): the
        level (1, sigma) of "score_field" (G*G, 2), the learned score on the grid (2D data only)."""
        m = min(max(x.shape[0], 1), self.TRACE_PARTICLES if self.dim <= 16 else self.TRACE_IMAGES)
        g = torch.Generator().manual_seed(self.TRACE_SEED)
        states, levels = self.trace_chain(self.x0(m, g), g)  # (S+1, m, D)
        keep = np.unique(np.linspace(0, states.shape[0] - 1, min(self.TRACE_FRAMES, states.shape[0])).round())
        keep = torch.as_tensor(keep, dtype=torch.long)
        level = self.own_sigma(sigma)
        out = {"chain": to_numpy(self.rescale.decode(states[keep]).reshape(len(keep), m, *self.data_shape)),
               "chain_sigma": to_numpy(levels[keep]),
               "field_level": np.array([1.0, level], dtype=np.float32)}
        if grid is not None and self.data_shape == (2,):
            out["score_field"] = to_numpy(self.score(grid.to(self.device, self._dtype), level))
        return out
