"""What flow matching and the CNF share: a velocity field v_theta(x, t) and its ODE.

Both models are the ODE dx/dt = v_theta(x, t) on t in [0, 1] with the house time
convention of core.dynamics: t = 0 is the data, t = 1 the base N(0, I). So

    sampling      x_1 ~ N(0, I), integrate from t = 1 down to t = 0;
    log p(x)      x_0 = x, integrate up to t = 1 (Chen et al. 2018, thm. 1):
                  log p(x) = log N(x_1; 0, I) + int_0^1 div v_theta(x_t, t) dt.

The solver is core.dynamics.ode's fixed-step RK4 or Euler; the divergence is
exact up to 16 dimensions, Hutchinson's with one Rademacher probe per point above.

What the view draws (`traces`): the velocity field on the plane at a time t,
~100 particles carried from fixed noise to data, and their straightness

    S = mean_i [ L_i / |x_0^i - x_1^i| ] - 1,   L_i = sum_k |x_{t_{k+1}}^i - x_{t_k}^i|,

the path length over the chord, less one: 0 for straight paths (one Euler
step then suffices), larger the more the particles wander.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...dynamics.ode import METHODS, log_likelihood, odeint
from ...errors import ConfigError
from ...model import GenerativeModel, to_numpy
from ...nets import TimeMLP
from ...nets.auto import Rescale

TIME_SCALE = 0.01  # time features at frequencies up to 10 rad per unit t, smooth enough for a coarse grid


class VelocityNet(nn.Module):
    """v_theta(x, t): a TimeMLP whose time features vary slowly over t in [0, 1].

    TimeMLP spreads t over frequencies up to 1000 rad per unit time (right for DDPM's
    100-step chain); an ODE solved in 8 to 40 steps needs a field that is smooth in t,
    so t is scaled by TIME_SCALE before the embedding.
    """

    def __init__(self, dim: int, hidden: int, layers: int):
        super().__init__()
        self.net = TimeMLP(dim, hidden, layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t * TIME_SCALE)


def straightness(paths: torch.Tensor) -> torch.Tensor:
    """mean_i L_i / |end_i - start_i| - 1 for paths (S+1, m, D); 0 for straight paths."""
    length = (paths[1:] - paths[:-1]).norm(dim=-1).sum(0)  # (m,)
    chord = (paths[-1] - paths[0]).norm(dim=-1).clamp(min=1e-12)
    return (length / chord).mean() - 1


class ContinuousFlow(GenerativeModel):
    """dx/dt = v_theta(x, t), t = 0 data, t = 1 noise. Subclasses give the loss."""

    family = "continuous"
    has_log_prob = True
    live_kl = True

    EXACT_DIV_MAX_DIM = 16
    LOG_PROB_CHUNK = 2048
    TRACE_MAX_POINTS = 100    # particles traced for points
    TRACE_MAX_IMAGES = 16     # particles traced for images
    TRACE_STEPS = 20          # RK4 steps of the traced paths: 80 evaluations of v_theta on 100 points
    FIELD_T = 0.5             # time of the field unless the view asks for another

    TRACES = {"paths": ("S+1", "m", "x"), "paths_t": ("S+1",), "straightness": (1,), "field_t": (1,)}
    GRID_TRACES = {"velocity_field": ("G", 2)}

    def __init__(self, data_shape: tuple, config):
        super().__init__(data_shape, config)
        self.rescale = self.make_rescale()
        self.velocity = self.make_velocity()

    def make_velocity(self) -> nn.Module:
        """v_theta(x (n, D), t (n,) or (1,)) -> (n, D): the MLP of the config's size."""
        return VelocityNet(self.dim, self.config.hidden, self.config.layers)

    def make_rescale(self) -> Rescale:
        """The map y = a x + b from the data to where the ODE runs: the identity here."""
        return Rescale()

    def trace_solver(self) -> tuple[int, str]:
        """(steps, method) of the paths traces() draws."""
        return self.TRACE_STEPS, self.config.solver

    DENSITY = ""  # how log_prob is computed, before the solver's name and steps

    @property
    def density_note(self) -> str:
        return f"{self.DENSITY} ({self.config.solver.upper()}, {self.config.log_prob_steps} steps)"

    @property
    def _dtype(self) -> torch.dtype:
        return self._device_probe.dtype

    def v(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """v_theta(x, t) for flat x (n, D) and one time t for every point: the ODE's right-hand side."""
        return self.velocity(x, torch.full((1,), float(t), dtype=x.dtype, device=x.device))

    @staticmethod
    def _grid(steps: int, start: float, end: float) -> list[float]:
        return [start + (end - start) * k / steps for k in range(steps + 1)]

    def _check_solver(self, method: str, steps: int) -> None:
        if method not in METHODS:
            raise ConfigError(f"solver={method!r} is not allowed; choose one of: {', '.join(METHODS)}")
        if int(steps) != steps or steps < 1:
            raise ConfigError(f"steps={steps} is not allowed; use a whole number of at least 1")

    # ---- sampling --------------------------------------------------------
    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n}")
        if generator is None:
            return torch.randn(n, self.dim, device=self.device, dtype=self._dtype)
        return torch.randn(n, self.dim, generator=generator, dtype=self._dtype).to(self.device)

    @torch.no_grad()
    def trajectory(self, x_1: torch.Tensor, steps: int | None = None, method: str | None = None) -> torch.Tensor:
        """(S+1, n, D): flat base points x_1 (n, D) carried from t = 1 to t = 0."""
        steps, method = steps or self.config.steps, method or self.config.solver
        self._check_solver(method, steps)
        return odeint(self.v, x_1, self._grid(steps, 1.0, 0.0), method, return_intermediates=True)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        self._check_solver(self.config.solver, self.config.steps)
        x_1 = self._noise(n)
        x_0 = odeint(self.v, x_1, self._grid(self.config.steps, 1.0, 0.0), self.config.solver)
        return self.unflat(self.rescale.decode(x_0))

    # ---- density ---------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x_1; 0, I) + int_0^1 div v_theta dt along the ODE from x_0 = x, (n, *shape) -> (n,)."""
        if x.dim() < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        method, steps = self.config.solver, self.config.log_prob_steps
        self._check_solver(method, steps)
        exact = self.dim <= self.EXACT_DIV_MAX_DIM
        x_flat = self.flat(self.rescale.encode(x.to(self.device, self._dtype)))
        grid = self._grid(steps, 0.0, 1.0)
        log_det = self.rescale.log_det(self.dim)  # log |dy/dx| of the map to where the ODE runs
        out = [log_det + log_likelihood(self.v, chunk, grid, method, exact=exact)
               for chunk in x_flat.split(self.LOG_PROB_CHUNK)]
        return torch.cat(out) if out else x_flat.new_zeros(0)

    # ---- live views ------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, t: float | None = None) -> dict[str, np.ndarray]:
        """"paths" (S+1, m, *shape) from fixed noise at t = 1 (first) to samples at t = 0 (last),
        S and the solver from trace_solver() (TRACE_STEPS of the configured solver unless a model
        shortens them), with "paths_t" (S+1,); "straightness" (1,) of those paths (measured where
        the ODE runs), "field_t" (1,) the time of the field; for 2D data with a grid,
        "velocity_field" (G*G, 2) = v_theta(grid, t). Paths are shown in the data's range."""
        m = min(x.shape[0], self.TRACE_MAX_POINTS if self.dim <= 16 else self.TRACE_MAX_IMAGES)
        g = torch.Generator().manual_seed(0)
        steps, method = self.trace_solver()
        paths = self.trajectory(self._noise(m, g), steps=steps, method=method)  # (S+1, m, D)
        field_t = self.FIELD_T if t is None else float(t)
        if not (0.0 <= field_t <= 1.0 and math.isfinite(field_t)):
            raise ValueError(f"t must be a time in [0, 1], got {field_t}")
        out = {"paths": to_numpy(self.rescale.decode(paths).reshape(paths.shape[0], m, *self.data_shape)),
               "paths_t": np.linspace(1.0, 0.0, paths.shape[0], dtype=np.float32),
               "straightness": np.array([float(straightness(paths))], dtype=np.float32),
               "field_t": np.array([field_t], dtype=np.float32)}
        if grid is not None and self.data_shape == (2,):
            out["velocity_field"] = to_numpy(self.v(field_t, grid.to(self.device, self._dtype)))
        return out
