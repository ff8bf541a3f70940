"""Score-based generative modelling through SDEs: a score network for the VP or VE SDE.

Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations" (https://arxiv.org/abs/2011.13456). The forward SDE dx = f dt + g dw
(core.dynamics.sde) noises data to p_t(x | x_0) = N(alpha_t x_0, sigma_t^2 I); a network
s_theta(x, t) learns the score grad log p_t by denoising score matching (eq. 7) with
the weighting lambda(t) = sigma_t^2,

    L = E_{t ~ U(t_min, 1), x_0, eps} [ sigma_t^2 || s_theta(x_t, t) + eps / sigma_t ||^2 ] / D,
        x_t = alpha_t x_0 + sigma_t eps,

which, with s_theta = -eps_theta / sigma_t, is the noise-prediction loss
|| eps_theta(x_t, t) - eps ||^2 / D (an untrained eps_theta ~ 0 scores about 1). The
network sees c_in x_t with c_in = 1 / sqrt(alpha_t^2 + sigma_t^2) (1 for the VP SDE),
which keeps the VE SDE's large-noise inputs near unit scale. Samples come from the
reverse-time SDE (Euler-Maruyama or predictor-corrector) or the probability-flow ODE
from x_1 ~ N(0, prior_std^2 I); log_prob is the density of the probability-flow ODE
under s_theta (sec. 4.3), a density of its own and an estimate of the SDE model's,
integrated by RK4 with the exact divergence up to 16 dimensions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ...config import param
from ...dynamics.sde import PREDICTORS, SDE, VESDE, VPSDE, pf_log_likelihood
from ...errors import ConfigError
from ...model import GenerativeModel, to_numpy
from ...nets import TimeMLP
from .samplers import SAMPLERS, make_sampler

KINDS = ("vp", "ve")


@dataclasses.dataclass
class ScoreSDEConfig:
    sde: str = param("vp", choices=KINDS, help="forward SDE: vp (variance preserving, DDPM's) or ve (variance exploding, NCSN's)")
    beta_min: float = param(0.1, lo=1e-3, hi=10.0, when=("sde", "vp"), help="VP SDE: beta(0) of the linear beta(t)")
    beta_max: float = param(20.0, lo=0.1, hi=100.0, when=("sde", "vp"), help="VP SDE: beta(1) of the linear beta(t)")
    sigma_min: float = param(0.01, lo=1e-4, hi=1.0, when=("sde", "ve"), help="VE SDE: smallest noise level sigma_min")
    sigma_max: float = param(6.0, lo=0.1, hi=100.0, when=("sde", "ve"),
                             help="VE SDE: largest noise level sigma_max (about the widest distance between data points)")
    hidden: int = param(128, lo=8, hi=2048, help="width of the score network")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the score network")
    sampler: str = param("em", choices=tuple(SAMPLERS), live=True,
                         help="reverse sampler: em (Euler-Maruyama on the reverse SDE), pc (predictor-corrector) or ode (probability flow)")
    sample_steps: int = param(100, lo=1, hi=1000, live=True, help="steps of the sampler from t = 1 to t_min")
    snr: float = param(0.16, lo=1e-3, hi=1.0, live=True, when=("sampler", "pc"),
                       help="signal-to-noise ratio r of the Langevin corrector's step")
    predictor: str = param("reverse_diffusion", choices=tuple(PREDICTORS), live=True, when=("sampler", "pc"),
                           help="predictor of pc: reverse_diffusion (the forward kernel reversed) or euler_maruyama")
    corrector_steps: int = param(1, lo=0, hi=10, live=True, when=("sampler", "pc"), help="Langevin corrector steps per time step")
    ode_steps: int = param(100, lo=4, hi=1000, live=True, help="RK4 steps of the probability-flow ODE in log_prob")


class ScoreSDE(GenerativeModel):
    family = "sde"
    has_log_prob = True
    log_prob_is_exact = False  # the probability-flow ODE's density
    density_note = "density of the probability-flow ODE"

    EXACT_DIV_MAX_DIM = 16    # above this, Hutchinson's divergence estimator
    LOG_PROB_CHUNK = 1024
    # noise stds where score_levels() compares the learned score with the exact one: the same for
    # both SDEs (the VP SDE reaches them at t = 0.06, 0.17, 0.32; the VE SDE at 0.47, 0.61, 0.69)
    SCORE_SIGMAS = (0.2, 0.5, 0.8)
    TRACE_STEPS = 100         # at most this many sampler steps in traces() ...
    TRACE_EVALS = 100         # ... and at most this many network evaluations (RK4 takes 4 a step)
    TRACE_MAX_POINTS = 100
    TRACE_MAX_IMAGES = 16
    FORWARD_FRAMES = 6
    FIELD_T = 0.1

    TRACES = {"trajectory": ("S+1", "m", "x"), "trajectory_t": ("S+1",), "forward": ("K", "m", "x"),
              "forward_t": ("K",), "field_t": (1,), "field_level": (2,)}
    GRID_TRACES = {"score_field": ("G", 2)}

    def __init__(self, data_shape: tuple, config: ScoreSDEConfig, net: torch.nn.Module | None = None):
        """net: eps_theta(c_in x (n, D), t (n,) or (1,)) -> (n, D); by default a TimeMLP of the config's size."""
        super().__init__(data_shape, config)
        self._sde: tuple = (None, None)
        self.sde  # refuse a bad SDE now, not at the first step
        if net is None:
            net = TimeMLP(self.dim, config.hidden, config.layers)
            with torch.no_grad():  # start near eps_theta = 0, where the loss is E||eps||^2 / D = 1
                net.out.weight.mul_(0.1)
                net.out.bias.zero_()
        self.eps_net = net

    @property
    def sde(self) -> SDE:
        c = self.config
        key = (c.sde, c.beta_min, c.beta_max) if c.sde == "vp" else (c.sde, c.sigma_min, c.sigma_max)
        if self._sde[0] != key:
            if c.sde not in KINDS:
                raise ConfigError(f"sde={c.sde!r} is not allowed; choose one of: {', '.join(KINDS)}")
            self._sde = (key, VPSDE(c.beta_min, c.beta_max) if c.sde == "vp" else VESDE(c.sigma_min, c.sigma_max))
        return self._sde[1]

    @property
    def _dtype(self) -> torch.dtype:
        return self._device_probe.dtype

    # ---- the score network -------------------------------------------------
    def eps_theta(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t) on flat x_t (n, D), t (n,) or (1,) in [t_min, 1]."""
        a, s = self.sde.alpha(t)[:, None], self.sde.sigma(t)[:, None]
        return self.eps_net(x_t / torch.sqrt(a**2 + s**2), t)

    def score(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_theta(x_t, t) = -eps_theta(x_t, t) / sigma_t, flat (n, D)."""
        return -self.eps_theta(x_t, t) / self.sde.sigma(t)[:, None]

    # ---- training ----------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict:
        x_0 = self.flat(x)  # (n, D)
        t_min = self.sde.t_min
        t = t_min + (1 - t_min) * torch.rand(x_0.shape[0], device=x_0.device, dtype=x_0.dtype)  # (n,)
        eps = torch.randn_like(x_0)
        x_t = self.sde.alpha(t)[:, None] * x_0 + self.sde.sigma(t)[:, None] * eps
        dsm = ((self.eps_theta(x_t, t) - eps) ** 2).mean()  # = sigma_t^2 ||s_theta + eps / sigma_t||^2 / D
        return {"loss": dsm, "dsm": dsm.detach()}

    # ---- sampling ----------------------------------------------------------
    def make_sampler(self, sampler: str | None = None, steps: int | None = None):
        c = self.config
        return make_sampler(sampler or c.sampler, steps or c.sample_steps, snr=c.snr, predictor=c.predictor,
                            corrector_steps=c.corrector_steps)

    def _prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_n(n)
        return self.sde.prior_sample((n, self.dim), generator, dtype=self._dtype, device=self.device)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.unflat(self.make_sampler()(self.sde, self.score, self._prior(n)))

    @torch.no_grad()
    def reverse_trajectory(self, n: int, sampler: str | None = None, steps: int | None = None,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(S+1, n, *data_shape) from x_1 ~ prior (first) to samples (last), and the S+1 times."""
        smp = self.make_sampler(sampler, steps)
        xs = smp(self.sde, self.score, self._prior(n, generator), generator=generator, trajectory=True)
        return xs.reshape(xs.shape[0], n, *self.data_shape), smp.times(self.sde)

    # ---- density -----------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of the probability-flow ODE, (n, *data_shape) -> (n,)."""
        if x.dim() < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        exact = self.dim <= self.EXACT_DIV_MAX_DIM
        flat = self.flat(x).to(self.device, self._dtype)
        out = [pf_log_likelihood(self.sde, self.score, chunk, steps=self.config.ode_steps, exact=exact)
               for chunk in flat.split(self.LOG_PROB_CHUNK)]
        return torch.cat(out) if out else flat.new_zeros(0)

    # ---- the learned score against the exact one ---------------------------
    def score_times(self) -> list[float]:
        """The times t where sigma_t takes the values SCORE_SIGMAS."""
        vp = self.config.sde == "vp"
        return [self.sde.time_at(math.sqrt(1 - s**2) if vp else 1.0, s) for s in self.SCORE_SIGMAS]

    def score_levels(self) -> list[tuple[float, float]]:
        """(alpha_t, sigma_t) at score_times()."""
        t = torch.tensor(self.score_times(), dtype=torch.float64)
        return list(zip(self.sde.alpha(t).tolist(), self.sde.sigma(t).tolist()))

    @torch.no_grad()
    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """s_theta at the time t whose (alpha_t, sigma_t) is (alpha, sigma); (n, *data_shape)."""
        t = self.sde.time_at(float(alpha), float(sigma))
        if not self.sde.t_min <= t <= 1.0 + 1e-9:
            raise ValueError(f"(alpha, sigma) = ({alpha:.3g}, {sigma:.3g}) is not a level of the {self.config.sde} SDE in [t_min, 1]")
        t_vec = torch.full((1,), t, dtype=self._dtype, device=self.device)
        return self.unflat(self.score(self.flat(x).to(self.device, self._dtype), t_vec))

    # ---- live views --------------------------------------------------------
    def trace_steps(self) -> int:
        """The sampler's steps in traces(): sample_steps, at most TRACE_STEPS, and at most
        TRACE_EVALS network evaluations (em: 1 a step, pc: 1 + corrector_steps, ode: 4)."""
        c = self.config
        per_step = {"em": 1, "pc": 1 + c.corrector_steps, "ode": 4}[c.sampler]
        return max(1, min(c.sample_steps, self.TRACE_STEPS, self.TRACE_EVALS // per_step))

    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, t: float | None = None) -> dict[str, np.ndarray]:
        """What the sde view draws (m particles: up to 100 of x for D <= 16, else 16).

        "trajectory" (S+1, m, *data_shape), "trajectory_t" (S+1,): m particles from fixed
        prior draws and noise to data by the configured sampler, S = trace_steps() <= 100.
        "forward" (K, m, *data_shape), "forward_t" (K,): x noised by p_t(x | x_0) at K = 6
        evenly spaced t from 0 to 1, with fixed noise. "field_t" (1,) the view's time t
        (default 0.1, clipped to [t_min, 1]), "field_level" (2,) its (alpha_t, sigma_t);
        for 2D data with a grid, "score_field" (G*G, 2) = s_theta(grid, t).
        """
        m = min(x.shape[0], self.TRACE_MAX_POINTS if self.dim <= 16 else self.TRACE_MAX_IMAGES)
        x_0 = self.flat(x[:m]).to(self.device, self._dtype)
        g = torch.Generator().manual_seed(0)
        traj, traj_t = self.reverse_trajectory(m, steps=self.trace_steps(), generator=g)
        forward_t = torch.linspace(0, 1, self.FORWARD_FRAMES, dtype=torch.float64)
        noise = torch.randn(x_0.shape, generator=g).to(x_0)
        forward = torch.stack([self.sde.alpha(s).item() * x_0 + self.sde.sigma(s).item() * noise for s in forward_t])
        field_t = min(max(self.FIELD_T if t is None else float(t), self.sde.t_min), 1.0)
        t64 = torch.tensor([field_t], dtype=torch.float64)
        out = {"trajectory": to_numpy(traj), "trajectory_t": to_numpy(traj_t),
               "forward": to_numpy(self.unflat(forward.reshape(-1, self.dim)).reshape(len(forward_t), m, *self.data_shape)),
               "forward_t": to_numpy(forward_t), "field_t": np.array([field_t], dtype=np.float32),
               "field_level": np.array([float(self.sde.alpha(t64)), float(self.sde.sigma(t64))], dtype=np.float32)}
        if grid is not None and self.data_shape == (2,):
            t_vec = torch.full((1,), field_t, dtype=self._dtype, device=self.device)
            out["score_field"] = to_numpy(self.score(grid.to(self.device, self._dtype), t_vec))
        return out


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number of at least 1, got {n}")
