"""Noise schedules, and the conversions between what a network can predict.

One time convention for every continuous-time model of the playground:
t runs over [0, 1], t = 0 is the data and t = 1 is (nearly) pure noise, and
a schedule is a Gaussian path (Kingma et al. 2021; Lipman et al. 2023)

    x_t = alpha_t x_0 + sigma_t eps,   eps ~ N(0, I),   alpha_0 = 1, sigma_0 = 0.

(The flow_matching library runs time the other way; score_sde_pytorch runs it this way.)
A network may predict the noise eps, the data x_0, the score grad log p_t(x_t)
or the velocity v = dx_t/dt; given x_t and t each determines the others:

    x_0   = (x_t - sigma_t eps) / alpha_t
    score = -eps / sigma_t               (Tweedie: the score of p_t is -E[eps | x_t] / sigma_t)
    v     = d_alpha_t x_0 + d_sigma_t eps

For the variance-preserving schedule of DDPM the velocity v of the exact eps
is the probability-flow ODE of Song et al. (2021), dx/dt = f - g^2/2 score;
for the straight path alpha_t = 1 - t, sigma_t = t it is rectified flow's
v = eps - x_0. Every method takes t as a float or a tensor of shape (n,) or
(1,) and broadcasts it over x of shape (n, *shape).

NoiseSchedule, the discrete DDPM schedule, indexes the chain by i = 0..T
with t = i / T, alpha_t^2 = alpha_bar_i; its own docstring gives the chain.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def _col(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Coefficients (n,) or (1,) shaped to broadcast over x (n, *shape), in x's dtype and device."""
    c = torch.as_tensor(c).to(x.device, x.dtype)
    return c.reshape(-1, *([1] * (x.dim() - 1)))


class GaussianPath:
    """x_t = alpha(t) x_0 + sigma(t) eps. Subclasses give alpha, sigma and their derivatives."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _times(t, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(t, dtype=torch.float64).reshape(-1).to(x.device)

    def marginal_sample(self, x_0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        t = self._times(t, x_0)
        return _col(self.alpha(t), x_0) * x_0 + _col(self.sigma(t), x_0) * eps

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        t = self._times(t, x_t)
        return (x_t - _col(self.sigma(t), x_t) * eps) / _col(self.alpha(t), x_t)

    def eps_from_x0(self, x_t: torch.Tensor, x_0: torch.Tensor, t) -> torch.Tensor:
        t = self._times(t, x_t)
        return (x_t - _col(self.alpha(t), x_t) * x_0) / _col(self.sigma(t), x_t)

    def score_from_eps(self, eps: torch.Tensor, t) -> torch.Tensor:
        return -eps / _col(self.sigma(self._times(t, eps)), eps)

    def eps_from_score(self, score: torch.Tensor, t) -> torch.Tensor:
        return -score * _col(self.sigma(self._times(t, score)), score)

    def velocity_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """v = d_alpha x_0 + d_sigma eps, with x_0 from eps."""
        t = self._times(t, x_t)
        x_0 = (x_t - _col(self.sigma(t), x_t) * eps) / _col(self.alpha(t), x_t)
        return _col(self.d_alpha(t), x_t) * x_0 + _col(self.d_sigma(t), x_t) * eps

    def eps_from_velocity(self, x_t: torch.Tensor, v: torch.Tensor, t) -> torch.Tensor:
        """Solve v = d_alpha (x_t - sigma eps) / alpha + d_sigma eps for eps."""
        t = self._times(t, x_t)
        a, s, da, ds = (_col(f(t), x_t) for f in (self.alpha, self.sigma, self.d_alpha, self.d_sigma))
        return (v - da / a * x_t) / (ds - da * s / a)


class LinearPath(GaussianPath):
    """The straight path of rectified flow and conditional flow matching: alpha_t = 1 - t, sigma_t = t."""

    def alpha(self, t):
        return 1.0 - t

    def sigma(self, t):
        return t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def d_sigma(self, t):
        return torch.ones_like(t)


KINDS = ("linear", "cosine")
BETA_MAX = 0.999


def _linear_betas(T: int) -> torch.Tensor:
    scale = 1000.0 / T
    return torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64)


def _cosine_betas(T: int, s: float = 0.008) -> torch.Tensor:
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return 1 - alpha_bar[1:] / alpha_bar[:-1]


class NoiseSchedule(GaussianPath):
    """The DDPM noise schedule: beta_1..beta_T and every coefficient derived from them,
    precomputed once (float64, length T+1).

    Forward process (Ho et al. 2020, "Denoising Diffusion Probabilistic Models",
    https://arxiv.org/abs/2006.11239):

        q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I),   alpha_t = 1 - beta_t     (eq. 2)
        q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
                           alpha_bar_t = prod_{s<=t} alpha_s                               (eq. 4)
        q(x_{t-1} | x_t, x_0) = N(mu_tilde_t(x_t, x_0), beta_tilde_t I)                    (eq. 6, 7)
            mu_tilde_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
                         + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
            beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t

    Arrays are indexed by the paper's t = 0..T: entry 0 is the clean data
    (beta_0 = 0, alpha_bar_0 = 1), so `alpha_bar[t - 1]` reads as in the paper.

    Kinds of schedule:
    - "linear": beta_t evenly spaced from 1e-4 * 1000/T to 0.02 * 1000/T, Ho et al.'s
      range for T = 1000 rescaled so that short chains still end near pure noise.
    - "cosine": alpha_bar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2), s = 0.008
      (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17).
    Both clip beta_t at 0.999 (so alpha_bar_t never reaches exactly 0), then take
    alpha_bar as the cumulative product of the clipped alphas.

    Continuous time, for the probability-flow ODE (Song et al. 2021): with t in [0, 1]
    and t_i = i/T, log alpha_bar(t) interpolates log alpha_bar_i linearly, and
    beta(t) = -d/dt log alpha_bar(t) (piecewise constant, = -T log alpha_i on
    (t_{i-1}, t_i]). The VP SDE with this beta(t) has exactly these marginals,
    alpha_bar(t) = exp(-int_0^t beta(s) ds), agreeing with the chain at every t_i.
    """

    def __init__(self, T: int, kind: str = "linear"):
        if int(T) != T or T < 2:
            raise ConfigError(f"T={T} is not allowed; the chain needs a whole number of at least 2 steps")
        if kind not in KINDS:
            raise ConfigError(f"schedule={kind!r} is not allowed; choose one of: {', '.join(KINDS)}")
        self.T, self.kind = int(T), kind
        betas = (_linear_betas if kind == "linear" else _cosine_betas)(self.T).clamp(max=BETA_MAX)

        zero = torch.zeros(1, dtype=torch.float64)
        self.betas = torch.cat([zero, betas])                        # (T+1,) beta_0 = 0
        self.alphas = 1 - self.betas                                 # eq. 2
        self.alpha_bar = torch.cumprod(self.alphas, 0)               # eq. 4; alpha_bar_0 = 1
        self.alpha_bar_prev = torch.cat([zero + 1, self.alpha_bar[:-1]])
        # q(x_t | x_0), eq. 4; also the reparametrisation x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1 - self.alpha_bar).sqrt()
        self.log_alpha_bar = self.alpha_bar.log()
        # q(x_{t-1} | x_t, x_0), eq. 7; undefined at t = 0, set to 0 there
        denom = (1 - self.alpha_bar).clamp(min=1e-300)
        self.beta_tilde = torch.where(self._t > 0, (1 - self.alpha_bar_prev) / denom * self.betas, zero)
        self.posterior_coef_x0 = torch.where(self._t > 0, self.alpha_bar_prev.sqrt() * self.betas / denom, zero)
        self.posterior_coef_xt = torch.where(self._t > 0, self.alphas.sqrt() * (1 - self.alpha_bar_prev) / denom, zero)

    @property
    def _t(self) -> torch.Tensor:
        return torch.arange(self.T + 1)

    def posterior(self, x_t: torch.Tensor, x_0: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
        """Mean and variance of q(x_{t-1} | x_t, x_0) (eq. 7) for one step t in 1..T."""
        mean = float(self.posterior_coef_x0[t]) * x_0 + float(self.posterior_coef_xt[t]) * x_t
        return mean, float(self.beta_tilde[t])

    # ---- continuous time, t in [0, 1] ------------------------------------
    def _interval(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Index i of the interval (t_{i-1}, t_i] holding t (i = 1 at t = 0), and u = tT."""
        u = t.detach().to("cpu", torch.float64).clamp(0.0, 1.0) * self.T  # the tables live on the CPU
        i = u.ceil().long().clamp(1, self.T)
        return i, u

    def log_alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """log alpha_bar(t), linear in t between the nodes t_i = i/T; t: (n,) in [0, 1]."""
        i, u = self._interval(t)
        w = u - (i - 1)  # position inside the interval, in [0, 1]
        lab = (1 - w) * self.log_alpha_bar[i - 1] + w * self.log_alpha_bar[i]
        return lab.to(t.device, t.dtype)

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        return self.log_alpha_bar_at(t).exp()

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        """sigma(t) = sqrt(1 - alpha_bar(t)), the std of the noise in x_t."""
        return (-torch.expm1(self.log_alpha_bar_at(t))).sqrt()

    def beta_at(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t) = -d/dt log alpha_bar(t) = -T log alpha_i on (t_{i-1}, t_i]."""
        i, _ = self._interval(t)
        return (-self.T * (self.log_alpha_bar[i] - self.log_alpha_bar[i - 1])).to(t.device, t.dtype)

    # ---- as a Gaussian path: alpha_t = sqrt(alpha_bar(t)), sigma_t = sqrt(1 - alpha_bar(t)) ----
    def alpha(self, t):
        return (0.5 * self.log_alpha_bar_at(t)).exp()

    def sigma(self, t):
        return self.sigma_at(t)

    def d_alpha(self, t):
        return -0.5 * self.beta_at(t) * self.alpha(t)

    def d_sigma(self, t):
        return 0.5 * self.beta_at(t) * self.alpha_bar_at(t) / self.sigma_at(t)

    def log_snr_at(self, t: torch.Tensor) -> torch.Tensor:
        """lambda(t) = log(alpha_bar / (1 - alpha_bar)), decreasing in t."""
        lab = self.log_alpha_bar_at(t)
        return lab - torch.log(-torch.expm1(lab))

    def t_at_log_alpha_bar(self, log_alpha_bar: torch.Tensor) -> torch.Tensor:
        """The t in [0, 1] where log alpha_bar(t) takes the given values (inverse of the interpolation)."""
        lab = log_alpha_bar.detach().to("cpu", torch.float64).clamp(float(self.log_alpha_bar[-1]), 0.0)
        # -log alpha_bar_i increases strictly with i (every beta_i > 0)
        i = torch.searchsorted(-self.log_alpha_bar, -lab).clamp(1, self.T)
        w = (lab - self.log_alpha_bar[i - 1]) / (self.log_alpha_bar[i] - self.log_alpha_bar[i - 1])
        return ((i - 1 + w) / self.T).to(log_alpha_bar.device, log_alpha_bar.dtype)

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.T}, kind={self.kind!r}, alpha_bar_T={float(self.alpha_bar[-1]):.3g})"
