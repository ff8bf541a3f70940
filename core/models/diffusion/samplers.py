"""Reverse-process samplers: from x_T ~ N(0, I) to x_0, given a noise predictor.

Every sampler is a small object called the same way,

    sampler(eps_fn, schedule, x_T, generator=None, trajectory=False)

where eps_fn(x_t, t) -> eps_theta(x_t, t) takes flat points x_t (n, D) and
continuous times t = i/T (n,). It returns x_0 (n, D), or with trajectory=True
every state (S+1, n, D) from x_T to x_0; `sampler.times(T)` gives the S+1 chain
indices visited, 0 last. Passing the network or an exact ("oracle")
noise predictor is the caller's choice, which is how the tests check the samplers.

Both samplers walk a decreasing subsequence tau = (tau_S > ... > tau_1 = 1 > 0)
(see `timesteps`) and write one step t -> s (s < t) in terms of alpha_bar_t and
alpha_bar_s. With all T steps, tau = (T, T-1, ..., 0) and Ancestral is exactly
Ho et al.'s Algorithm 2; with fewer steps it is the respaced DDPM of Nichol & Dhariwal (2021, sec. 4), the chain whose
steps have alpha = alpha_bar_t / alpha_bar_s. DDIM (Song, Meng & Ermon 2021,
"Denoising Diffusion Implicit Models", eq. 12 and 16) with eta = 1 draws the same
steps; eta = 0 is deterministic.

Clipping. Data that live in a box (images in [-1, 1]) let a sampler clip the prediction
x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) to the box and step with the
eps that clipped x0_hat implies, eps' = (x_t - sqrt(alpha_bar_t) x0_hat) / sqrt(1 - alpha_bar_t):
the ancestral mean is then the posterior mean of q(x_s | x_t, x0_hat) with x0_hat in the box,
as Ho et al.'s own sampler does. Near t = T, where alpha_bar_t is tiny (2e-7 for the cosine
schedule at T = 100), it keeps the network's small errors from being magnified into samples
far outside the data's range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from ...errors import ConfigError
from ...dynamics.schedules import NoiseSchedule

# eps_fn(x (n, D), t) -> (n, D), with t (n,), or (1,) for one time shared by every point: the samplers
# and the ODE pass (1,), so a network embeds the time once per step, not once per point.
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def timesteps(T: int, steps: int | None) -> torch.Tensor:
    """The S+1 chain indices tau_S > ... > tau_1 = 1 > tau_0 = 0 that a sampler visits.

    tau_i = 1 + floor((i - 1) T / S) for i = 1..S (S = steps, at most T): Song et
    al.'s evenly spaced subsequence, all of 1..T when S = T. For S < T the start
    tau_S < T keeps the first step away from alpha_bar_T, which is tiny (2e-7 for
    the cosine schedule at T = 100) and would multiply eps_theta's errors by
    sqrt(alpha_bar_s / alpha_bar_T) in one large jump; x_T ~ N(0, I) stands in for
    x_{tau_S}, whose alpha_bar is still small unless S is only a handful of steps.
    """
    S = T if steps is None else min(int(steps), T)
    if S < 1:
        raise ConfigError(f"steps={steps} is not allowed; a sampler needs at least 1 step")
    tau = 1 + torch.div(torch.arange(S) * T, S, rounding_mode="floor")  # increasing, distinct as T/S >= 1
    return torch.cat([tau.flip(0), torch.zeros(1, dtype=torch.long)])


@dataclasses.dataclass
class Sampler:
    """The loop shared by the samplers; a subclass writes one step t -> s."""

    steps: int | None = None  # S; None walks all T steps
    clip: tuple | None = None  # (lo, hi): the box the predicted x_0 is clipped to, or None
    name = ""

    def times(self, T: int) -> torch.Tensor:
        return timesteps(T, self.steps)

    def __call__(self, eps_fn: EpsFn, schedule: NoiseSchedule, x_T: torch.Tensor,
                 generator: torch.Generator | None = None, trajectory: bool = False) -> torch.Tensor:
        if x_T.dim() != 2:
            raise ValueError(f"x_T must be flat points of shape (n, D), got {tuple(x_T.shape)}")
        tau = self.times(schedule.T).tolist()
        x, xs = x_T, [x_T]
        for t, s in zip(tau[:-1], tau[1:]):
            t_cont = torch.full((1,), t / schedule.T, dtype=x.dtype, device=x.device)  # one time for every point
            eps = eps_fn(x, t_cont)
            if self.clip is not None:
                eps = _clipped_eps(schedule, x, eps, t, self.clip)
            z = _randn_like(x, generator)  # drawn at every step, so samplers share one noise stream
            x = self._step(schedule, x, eps, t, s, z)
            if trajectory:
                xs.append(x)
        return torch.stack(xs) if trajectory else x

    def _step(self, schedule, x_t, eps, t, s, z):
        raise NotImplementedError


@dataclasses.dataclass
class Ancestral(Sampler):
    """Ho et al. 2020, Algorithm 2.

    variance: sigma_t^2 = beta_tilde_t (eq. 7, exact when x_0 is a point) or
    beta_t (exact when x_0 ~ N(0, I)); Ho et al. sec. 3.2 found both work alike.
    """

    variance: str = "beta_tilde"
    name = "ancestral"

    def _step(self, schedule, x_t, eps, t, s, z):
        ab_t, ab_s = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[s])
        alpha_t = ab_t / ab_s                                   # = alpha_t when s = t - 1
        beta_t = 1 - alpha_t
        beta_tilde_t = (1 - ab_s) / (1 - ab_t) * beta_t
        # line 3: z ~ N(0, I) if t > 1, else z = 0
        sigma_t = 0.0 if s == 0 else math.sqrt(beta_tilde_t if self.variance == "beta_tilde" else beta_t)
        # line 4: x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t/sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z
        mean = (x_t - beta_t / math.sqrt(1 - ab_t) * eps) / math.sqrt(alpha_t)
        return mean + sigma_t * z


@dataclasses.dataclass
class DDIM(Sampler):
    """Song et al. 2021, eq. 12, with sigma_t(eta) from eq. 16."""

    eta: float = 0.0
    name = "ddim"

    def _step(self, schedule, x_t, eps, t, s, z):
        ab_t, ab_s = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[s])
        # eq. 16: eta = 1 gives the DDPM posterior std, eta = 0 a deterministic map
        sigma = self.eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        # eq. 12, three terms: "predicted x_0", "direction pointing to x_t", random noise
        x0_pred = (x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        dir_xt = math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
        return math.sqrt(ab_s) * x0_pred + dir_xt + sigma * z


def _clipped_eps(schedule, x_t, eps, t, box):
    """eps' = (x_t - sqrt(alpha_bar_t) clip(x0_hat)) / sqrt(1 - alpha_bar_t), x0_hat from eps."""
    ab_t = float(schedule.alpha_bar[t])
    x0_hat = ((x_t - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)).clamp(*box)
    return (x_t - math.sqrt(ab_t) * x0_hat) / math.sqrt(1 - ab_t)


SAMPLERS = {"ancestral": Ancestral, "ddim": DDIM}


def make_sampler(name: str, steps: int | None = None, eta: float = 0.0, variance: str = "beta_tilde",
                 clip: tuple | None = None) -> Sampler:
    """A sampler by name: "ancestral" (steps: None for all T; variance) or "ddim" (steps, eta);
    clip: the box (lo, hi) of the data, to clip the predicted x_0 to, or None."""
    if name not in SAMPLERS:
        raise ConfigError(f"sampler={name!r} is not allowed; choose one of: {', '.join(SAMPLERS)}")
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"eta={eta} is out of range; it must be between 0 and 1")
    if variance not in ("beta_tilde", "beta"):
        raise ConfigError(f"variance={variance!r} is not allowed; choose one of: beta_tilde, beta")
    if clip is not None and not clip[0] < clip[1]:
        raise ConfigError(f"clip={clip} must be a box (lo, hi) with lo < hi")
    return Ancestral(steps, clip, variance=variance) if name == "ancestral" else DDIM(steps, clip, eta=eta)
