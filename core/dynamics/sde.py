"""Stochastic differential equations of score-based models, their reverses and samplers.

Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-Based Generative
Modeling through Stochastic Differential Equations" (https://arxiv.org/abs/2011.13456).
A forward SDE on t in [0, 1] (t = 0 the data, the house convention of schedules.py)

    dx = f(x, t) dt + g(t) dw                                                  (eq. 5)

with an affine drift has Gaussian transitions p_t(x | x_0) = N(alpha_t x_0, sigma_t^2 I),
so every SDE here is also a GaussianPath. Its time reversal, run from t = 1 to 0 with
a backward Brownian motion w-bar, is

    dx = [f(x, t) - g(t)^2 grad log p_t(x)] dt + g(t) dw-bar                    (eq. 6)

and the probability-flow ODE with the same marginals p_t is

    dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x)                               (eq. 13)

    VPSDE   f = -1/2 beta(t) x, g = sqrt(beta(t)), beta(t) = beta_min + t (beta_max - beta_min)
            alpha_t = exp(-1/2 B(t)), sigma_t^2 = 1 - exp(-B(t)), B(t) = int_0^t beta   (sec. 3.4, app. B)
    VESDE   f = 0, g = sqrt(d sigma^2/dt), sigma(t) = sigma_min (sigma_max / sigma_min)^t
            alpha_t = 1, sigma_t^2 = sigma(t)^2 - sigma_min^2                         (sec. 3.4, app. C)

(For the VE SDE Song et al. take sigma(t) itself as the std of p_t(x | x_0), which is off by
sigma_min; the std written here is the SDE's own, 0 at t = 0.)

Samplers follow score_sde_pytorch's structure: small named objects called as
sampler(sde, score_fn, x_1) that walk S steps on the grid t_0 = 1 > ... > t_S = t_min
and can return every state (S+1, n, D):

    EulerMaruyama        x <- x + [f - g^2 s] dt + g sqrt(|dt|) z,  dt < 0       (the reverse SDE, eq. 6)
    PredictorCorrector   Langevin corrector steps with a signal-to-noise ratio r, then a
                         reverse-diffusion or Euler-Maruyama predictor step        (Alg. 1; app. G)
    ProbabilityFlow      eq. 13 by core.dynamics.ode.odeint (RK4)

and `pf_log_likelihood` gives log p(x) of the probability-flow ODE by the
instantaneous change of variables (sec. 4.3, app. D.2). A score_fn(x (n, D), t (1,))
-> (n, D) is a learned network or an exact score; which is the caller's choice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch

from ..errors import ConfigError
from .ode import log_likelihood, odeint
from .schedules import GaussianPath, _col

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (n, D), t (1,)) -> grad log p_t(x) (n, D)


def _t(t, like: torch.Tensor | None = None) -> torch.Tensor:
    """t as a float64 tensor (on like's device)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return t if like is None else t.to(like.device)


class SDE(GaussianPath):
    """dx = f(x, t) dt + g(t) dw with p_t(x | x_0) = N(alpha_t x_0, sigma_t^2 I).

    Subclasses give alpha, sigma (GaussianPath), drift f, diffusion g and prior_std.
    t_min: where sampling stops and training time starts (p_t is singular at t = 0).
    """

    t_min: float = 1e-3

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        raise NotImplementedError

    def diffusion(self, t) -> torch.Tensor:
        raise NotImplementedError

    def prior_std(self) -> float:
        """The std of the prior N(0, prior_std^2 I) that stands in for p_1."""
        raise NotImplementedError

    def time_at(self, alpha: float, sigma: float) -> float:
        """The t of the path where (alpha_t, sigma_t) = (alpha, sigma)."""
        raise NotImplementedError

    # ---- what every SDE derives from the above -----------------------------
    def marginal(self, x_0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean alpha_t x_0 and std sigma_t (broadcast over x_0) of p_t(x | x_0)."""
        t = self._times(t, x_0)
        return _col(self.alpha(t), x_0) * x_0, _col(self.sigma(t), x_0)

    def prior_sample(self, shape: tuple, generator: torch.Generator | None = None,
                     dtype=torch.float32, device="cpu") -> torch.Tensor:
        dev = "cpu" if generator is None else generator.device
        return (self.prior_std() * torch.randn(shape, generator=generator, dtype=dtype, device=dev)).to(device)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std^2 I), (n, D) -> (n,)."""
        s2, D = self.prior_std() ** 2, z.shape[1]
        return -0.5 * (z**2).sum(1) / s2 - 0.5 * D * math.log(2 * math.pi * s2)

    def transition(self, t_from, t_to) -> tuple[float, float]:
        """(a, G) of the exact forward kernel x_{t_to} = a x_{t_from} + G z for t_from < t_to:
        a = alpha_to / alpha_from, G^2 = sigma_to^2 - a^2 sigma_from^2. For the VE SDE this is
        the SMLD chain's step (G^2 = sigma_i^2 - sigma_{i-1}^2), for the VP SDE DDPM's chain
        with a^2 = 1 - beta_i (Song et al. sec. 3.4)."""
        s, t = _t(t_from).reshape(1), _t(t_to).reshape(1)
        a = float(self.alpha(t) / self.alpha(s))
        G2 = float(self.sigma(t) ** 2 - a**2 * self.sigma(s) ** 2)
        return a, math.sqrt(max(G2, 0.0))


class VPSDE(SDE):
    """Variance preserving: DDPM in continuous time (Song et al. sec. 3.4)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min <= beta_max:
            raise ConfigError(f"the VP SDE needs 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def B(self, t):
        """int_0^t beta(s) ds."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t):
        return torch.exp(-0.5 * self.B(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self.B(t)))

    def d_alpha(self, t):
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        return 0.5 * self.beta(t) * torch.exp(-self.B(t)) / self.sigma(t)

    def drift(self, x, t):
        return -0.5 * _col(self.beta(self._times(t, x)), x) * x

    def diffusion(self, t):
        return torch.sqrt(self.beta(_t(t)))

    def prior_std(self) -> float:
        return 1.0

    def time_at(self, alpha: float, sigma: float) -> float:
        # B(t) = -2 log alpha, a quadratic in t: 1/2 (b_max - b_min) t^2 + b_min t - B = 0
        B, d = -2.0 * math.log(alpha), self.beta_max - self.beta_min
        return B / self.beta_min if d == 0 else (-self.beta_min + math.sqrt(self.beta_min**2 + 2 * d * B)) / d

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


class VESDE(SDE):
    """Variance exploding: NCSN's noise levels in continuous time (Song et al. sec. 3.4)."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0):
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(f"the VE SDE needs 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        # sigma_min^2 ((sigma_max / sigma_min)^(2t) - 1), the variance the SDE adds from t = 0
        return self.sigma_min * torch.sqrt(torch.expm1(2 * self.log_ratio * t))

    def d_alpha(self, t):
        return torch.zeros_like(t)

    def d_sigma(self, t):
        return self.diffusion(t) ** 2 / (2 * self.sigma(t))

    def drift(self, x, t):
        return torch.zeros_like(x)

    def diffusion(self, t):
        # g(t)^2 = d sigma_t^2 / dt = 2 log(sigma_max / sigma_min) sigma_min^2 (sigma_max / sigma_min)^(2t)
        t = _t(t)
        return self.sigma_min * torch.sqrt(2 * self.log_ratio * torch.exp(2 * self.log_ratio * t))

    def prior_std(self) -> float:
        return float(self.sigma(_t(1.0)))  # sqrt(sigma_max^2 - sigma_min^2)

    def time_at(self, alpha: float, sigma: float) -> float:
        return math.log1p((sigma / self.sigma_min) ** 2) / (2 * self.log_ratio)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


class ReverseSDE:
    """The reverse-time SDE (eq. 6) of `sde` under score_fn, or its probability-flow ODE (eq. 13)."""

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        self.sde, self.score_fn, self.probability_flow = sde, score_fn, probability_flow

    def drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """f - g^2 s (reverse SDE) or f - 1/2 g^2 s (probability flow), at one time t for every point."""
        t_vec = torch.full((1,), float(t), dtype=x.dtype, device=x.device)
        g2 = float(self.sde.diffusion(t)) ** 2
        return self.sde.drift(x, t_vec) - (0.5 if self.probability_flow else 1.0) * g2 * self.score_fn(x, t_vec)

    def diffusion(self, t: float) -> float:
        return 0.0 if self.probability_flow else float(self.sde.diffusion(t))


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def _at(t: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((1,), t, dtype=x.dtype, device=x.device)  # one time shared by every point


@dataclasses.dataclass
class Sampler:
    """The loop shared by the samplers: S steps from x_1 at t = 1 down to t_min."""

    steps: int = 100
    name = ""

    def __post_init__(self):
        if int(self.steps) != self.steps or self.steps < 1:
            raise ConfigError(f"steps={self.steps} is not allowed; a sampler needs a whole number of at least 1 step")
        self.steps = int(self.steps)

    def times(self, sde: SDE) -> torch.Tensor:
        """(S+1,) the grid t_0 = 1 > ... > t_S = t_min, evenly spaced (float64)."""
        return torch.linspace(1.0, sde.t_min, self.steps + 1, dtype=torch.float64)

    def __call__(self, sde: SDE, score_fn: ScoreFn, x_1: torch.Tensor, generator: torch.Generator | None = None,
                 trajectory: bool = False) -> torch.Tensor:
        """x at t_min (n, D), or every state (S+1, n, D) from x_1 to it."""
        if x_1.dim() != 2:
            raise ValueError(f"x_1 must be flat points of shape (n, D), got {tuple(x_1.shape)}")
        grid = self.times(sde).tolist()
        x, xs = x_1, [x_1]
        for i, (t, s) in enumerate(zip(grid[:-1], grid[1:])):
            x = self._step(sde, score_fn, x, t, s, generator, last=i == len(grid) - 2)
            if trajectory:
                xs.append(x)
        return torch.stack(xs) if trajectory else x

    def _step(self, sde, score_fn, x, t, s, generator, last):
        raise NotImplementedError


def euler_maruyama_step(sde: SDE, score_fn: ScoreFn, x, t: float, s: float, z, last: bool):
    """x_s = x_t + [f - g^2 score] (s - t) + g(t) sqrt(t - s) z; the last step adds no noise."""
    rev = ReverseSDE(sde, score_fn)
    x_mean = x + rev.drift(x, t) * (s - t)
    return x_mean if last else x_mean + rev.diffusion(t) * math.sqrt(t - s) * z


def reverse_diffusion_step(sde: SDE, score_fn: ScoreFn, x, t: float, s: float, z, last: bool):
    """Reverse diffusion (Song et al. sec. 4.2, app. E): reverse the forward kernel x_t = a x_s + G z over (s, t),
    x_s = x_t - (a - 1) x_t + G^2 score(x_t, t) + G z; the last step adds no noise."""
    a, G = sde.transition(s, t)
    x_mean = x - (a - 1) * x + G**2 * score_fn(x, _at(t, x))
    return x_mean if last else x_mean + G * z


PREDICTORS = {"reverse_diffusion": reverse_diffusion_step, "euler_maruyama": euler_maruyama_step}


@dataclasses.dataclass
class EulerMaruyama(Sampler):
    """The reverse SDE (eq. 6) by Euler-Maruyama."""

    name = "em"

    def _step(self, sde, score_fn, x, t, s, generator, last):
        return euler_maruyama_step(sde, score_fn, x, t, s, _randn_like(x, generator), last)


@dataclasses.dataclass
class PredictorCorrector(Sampler):
    """Predictor-corrector sampling (Song et al. Alg. 1; its VE and VP forms and their Langevin
    correctors in app. G): at each t, `corrector_steps` Langevin steps at p_t, then one
    predictor step to the next time.

    Langevin corrector with signal-to-noise ratio r (snr): with z ~ N(0, I) and s = score(x, t),
    eps = 2 a (r ||z|| / ||s||)^2 (norms averaged over the points) and x <- x + eps s + sqrt(2 eps) z,
    where a = 1 for the VE SDE and a = alpha_i = 1 - beta_i of the discrete VP chain.
    """

    predictor: str = "reverse_diffusion"
    snr: float = 0.16
    corrector_steps: int = 1
    name = "pc"

    def __post_init__(self):
        super().__post_init__()
        if self.predictor not in PREDICTORS:
            raise ConfigError(f"predictor={self.predictor!r} is not allowed; choose one of: {', '.join(PREDICTORS)}")
        if not self.snr > 0 or self.corrector_steps < 0:
            raise ConfigError(f"the corrector needs snr > 0 and corrector_steps >= 0, got {self.snr}, {self.corrector_steps}")

    def _step(self, sde, score_fn, x, t, s, generator, last):
        a, _ = sde.transition(s, t)
        alpha_i = a**2  # 1 - beta_i for the VP SDE, 1 for the VE SDE
        for _ in range(self.corrector_steps):
            grad = score_fn(x, _at(t, x))
            z = _randn_like(x, generator)
            grad_norm = grad.flatten(1).norm(dim=1).mean()
            noise_norm = z.flatten(1).norm(dim=1).mean()
            eps = 2 * alpha_i * (self.snr * noise_norm / grad_norm) ** 2
            x = x + eps * grad + torch.sqrt(2 * eps) * z
        return PREDICTORS[self.predictor](sde, score_fn, x, t, s, _randn_like(x, generator), last)


@dataclasses.dataclass
class ProbabilityFlow(Sampler):
    """The probability-flow ODE (eq. 13) from t = 1 to t_min by RK4 (or Euler); deterministic."""

    method: str = "rk4"
    name = "ode"

    def __call__(self, sde, score_fn, x_1, generator=None, trajectory=False):
        if x_1.dim() != 2:
            raise ValueError(f"x_1 must be flat points of shape (n, D), got {tuple(x_1.shape)}")
        flow = ReverseSDE(sde, score_fn, probability_flow=True)
        return odeint(lambda t, x: flow.drift(x, t), x_1, self.times(sde), method=self.method,
                      return_intermediates=trajectory)


def pf_log_likelihood(sde: SDE, score_fn: ScoreFn, x: torch.Tensor, steps: int = 100, exact: bool = True,
                      generator: torch.Generator | None = None,
                      log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """log p_{t_min}(x) of the probability-flow ODE, (n, D) -> (n,): x carried from t_min to 1
    by `steps` RK4 steps with log p = log prior(x_1) + int div f-tilde dt (core.dynamics.ode).
    exact=False: Hutchinson's divergence; log_prior defaults to the SDE's N(0, prior_std^2 I)."""
    flow = ReverseSDE(sde, score_fn, probability_flow=True)
    times = torch.linspace(sde.t_min, 1.0, int(steps) + 1, dtype=torch.float64)
    return log_likelihood(lambda t, y: flow.drift(y, t), x, times, exact=exact, generator=generator,
                          log_prior=log_prior or sde.prior_log_prob)
