"""Denoising diffusion probabilistic model with epsilon prediction.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"
(https://arxiv.org/abs/2006.11239). Data are noised in closed form,

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)   (eq. 4),

and a network eps_theta(x_t, t) learns to recover the noise with the simple loss

    L_simple = E_{t ~ U{1..T}, x_0, eps} || eps - eps_theta(x_t, t) ||^2       (eq. 14),

here averaged over dimensions, so an untrained predictor near 0 scores about 1.
The network eps_theta(x, t) takes flat data and continuous time t = i/T (the
time convention of core.dynamics): core.nets.TimeMLP on points, and on images the small
U-Net of core.nets.unet (Ho et al.'s architecture, smaller), which works on the digits
rescaled to [-1, 1] (x = 2 * pixel - 1, sec. 3.3); sample() maps back to [0, 1], and
log_prob adds the Jacobian D log 2 of that rescaling. On images the weights that sample
have an exponential moving average (decay 0.999, as Ho et al. use 0.9999 over far longer runs).
Sampling runs the reverse chain with a sampler from samplers.py (ancestral,
Algorithm 2, or DDIM); on images the predicted x_0 is clipped to [-1, 1] at every step. Since eps_theta = -sigma_t grad log p_t (Song et al. 2021),
the model also gives a score field and, through the probability-flow ODE
(likelihood.py), a density: log_prob is that ODE model's density, an estimate of the
DDPM's, not an exact likelihood.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...config import param
from ...errors import ConfigError
from ...model import GenerativeModel, to_numpy
from ...nets import TimeMLP
from ...nets.auto import NETS, Rescale, auto_ema, is_image, pick_net
from ...nets.unet import UNet
from ...dynamics.schedules import KINDS, NoiseSchedule
from .likelihood import pf_ode_log_prob
from .samplers import SAMPLERS, Sampler, make_sampler


@dataclasses.dataclass
class DDPMConfig:
    """Defaults: T = 100, the cosine schedule and sigma_t^2 = beta_t. With the exact noise
    predictor of Gaussian data N(m, s^2) this chain's samples have the data's spread within 4%
    for s from 0.08 to 1 (s = 0.15: 2.8% wide). The linear schedule with the posterior variance
    beta_tilde, the earlier default, gave 0.127 for s = 0.15 (15% narrow), and its 50-step
    respaced chain 0.114; few-step chains are narrower still, so the live view runs the whole
    chain."""

    T: int = param(100, lo=2, hi=1000, help="diffusion steps T of the chain")
    schedule: str = param("cosine", choices=KINDS, help="noise schedule: linear (Ho et al.) or cosine (Nichol & Dhariwal)")
    hidden: int = param(128, lo=8, hi=2048, help="width of the noise predictor eps_theta")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the noise predictor")
    sampler: str = param("ancestral", choices=tuple(SAMPLERS), help="reverse sampler: ancestral (Ho et al. Alg. 2) or ddim (Song et al.)", live=True)
    variance: str = param("beta", choices=("beta_tilde", "beta"), help="ancestral step variance sigma_t^2: beta_t or the posterior's beta_tilde_t",
                          live=True, when=("sampler", "ancestral"))
    ddim_steps: int = param(50, lo=1, hi=1000, live=True, when=("sampler", "ddim"),
                            help="DDIM steps S (at most T); with the cosine schedule keep S < T, as S = T starts where alpha_bar_T ~ 1e-7 magnifies eps_theta's errors")
    eta: float = param(0.0, lo=0.0, hi=1.0, help="DDIM noise: 0 deterministic, 1 the DDPM posterior", live=True,
                       when=("sampler", "ddim"))
    ode_steps: int = param(100, lo=4, hi=1000, help="RK4 steps of the probability-flow ODE in log_prob", live=True)
    net: str = param("auto", choices=NETS, help="noise predictor: auto (the U-Net for images, the MLP for points), mlp or unet")
    channels: int = param(16, lo=4, hi=64, help="U-Net width at full resolution (doubled at 1/2 and 1/4)",
                          when=("net", ("auto", "unet")))
    ema: float = param(-1.0, lo=-1.0, hi=0.9999,
                       help="decay of the weight average that samples and pictures use (0: none; -1: auto, 0.999 for images, none for points)")


class DDPM(GenerativeModel):
    family = "diffusion"
    has_log_prob = True
    log_prob_is_exact = False  # the probability-flow ODE's density, an estimate of the DDPM's
    density_note = "estimate by the probability-flow ODE"
    # digits the metrics draw: a sample of 64 runs the whole chain (100 to 200 U-Net passes), about 10 s
    # on two CPU cores for ddpm and flow matching, 20 s for ncsn
    metric_samples = 64

    ODE_T_EPS = 1e-3          # log_prob integrates from t = ODE_T_EPS (sigma -> 0 at t = 0)
    EXACT_DIV_MAX_DIM = 16    # above this, Hutchinson's divergence estimator
    LOG_PROB_CHUNK = 1024     # points per ODE solve
    TRACE_STEPS = 100         # at most this many reverse steps in traces(): the whole default chain
    TRACE_MAX_IMAGES = 16     # particles traced for data of more than 16 dimensions that are not images
    # On images a live picture runs the U-Net once per step for every digit: the configured sampler
    # shortened to TRACE_IMAGE_STEPS steps (ancestral: the respaced chain) for TRACE_IMAGES digits;
    # sample() still runs the configured chain. At 20 steps the respaced ancestral chain gave cleaner
    # digits than DDIM with eta = 0, whose backgrounds stayed speckled.
    TRACE_IMAGES = 8
    TRACE_IMAGE_STEPS = 20
    # particles traced for points: the whole 100-step chain for 150 costs ~15% more than 50 steps for
    # 300 did, where 300 over 100 steps cost 70% more (a CPU picture is the network's arithmetic)
    TRACE_MAX_POINTS = 150
    FORWARD_FRAMES = 6

    FIELD_T = 0.1             # time of the eps/score fields that traces() draws unless told otherwise

    TRACES = {"trajectory": ("S+1", "m", "x"), "trajectory_t": ("S+1",), "forward": ("K", "m", "x"),
              "forward_t": ("K",), "field_t": (1,)}
    GRID_TRACES = {"eps_field": ("G", 2), "score_field": ("G", 2)}

    def __init__(self, data_shape: tuple, config: DDPMConfig, net: torch.nn.Module | None = None):
        """net: eps_theta(x (n, D), t (n,) or (1,)) -> (n, D); by default the config's `net`: a TimeMLP of
        its size, or a U-Net of its channels on images."""
        super().__init__(data_shape, config)
        self.rescale = Rescale.for_data(self.data_shape)  # images to [-1, 1]; points as they are
        if net is None and pick_net(config.net, self.data_shape) == "unet":
            net = UNet(self.data_shape, config.channels)  # its last layer starts at 0: eps_theta = 0
        if net is None:
            net = TimeMLP(self.dim, config.hidden, config.layers)
            with torch.no_grad():  # start near eps_theta = 0, where L_simple = E||eps||^2 / D = 1
                net.out.weight.mul_(0.1)
                net.out.bias.zero_()
        self.eps_net = net
        self._schedule: NoiseSchedule | None = None
        self._coefficient_cache: tuple = (None, None)

    def ema_decay(self) -> float:
        return auto_ema(self.config.ema, self.data_shape)

    @property
    def schedule(self) -> NoiseSchedule:
        """The noise schedule of the current config (rebuilt if T or its kind changed)."""
        key = (self.config.T, self.config.schedule)
        if self._schedule is None or (self._schedule.T, self._schedule.kind) != key:
            self._schedule = NoiseSchedule(*key)
        return self._schedule

    @property
    def _dtype(self) -> torch.dtype:
        return self._device_probe.dtype

    # ---- the noise predictor ---------------------------------------------
    def eps_theta(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t) on flat points x_t (n, D) and times t (n,), or (1,) shared, in (0, 1]."""
        return self.eps_net(x_t, t)

    # ---- training --------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t_index, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I), eq. 4.

        x0: (n, *data_shape); t_index: an int or (n,) integers in 0..T (0 returns x0);
        noise: eps with the shape of x0 (drawn if None).
        """
        T = self.schedule.T
        t_index = torch.as_tensor(t_index, device=x0.device).long()
        if t_index.dim() == 0:
            t_index = t_index.expand(x0.shape[0])
        if t_index.shape != (x0.shape[0],) or t_index.min() < 0 or t_index.max() > T:
            raise ValueError(f"t_index must be one integer or one per point, each in 0..{T}")
        if noise is None:
            noise = torch.randn_like(x0)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        return self.unflat(self._q_sample(self.flat(x0), t_index, self.flat(noise)))

    def _q_sample(self, x0: torch.Tensor, t_index: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        sqrt_ab, sqrt_1m_ab = self._coefficients(x0)[:, t_index, None]  # (n, 1) each
        return sqrt_ab * x0 + sqrt_1m_ab * eps

    def _coefficients(self, like: torch.Tensor) -> torch.Tensor:
        """(2, T+1): sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) on like's device and in its dtype,
        kept there, so that a training step indexes them without a trip to the host."""
        s = self.schedule
        key = (s.T, s.kind, like.device, like.dtype)
        if self._coefficient_cache[0] != key:
            table = torch.stack([s.sqrt_alpha_bar, s.sqrt_one_minus_alpha_bar]).to(like.device, like.dtype)
            self._coefficient_cache = (key, table)
        return self._coefficient_cache[1]

    def loss(self, x: torch.Tensor) -> dict:
        x0 = self.flat(self.rescale.encode(x))  # (n, D), images in [-1, 1]
        T = self.schedule.T
        t_index = torch.randint(1, T + 1, (x0.shape[0],), device=x0.device)  # t ~ U{1..T}
        eps = torch.randn_like(x0)
        x_t = self._q_sample(x0, t_index, eps)
        mse = ((eps - self.eps_theta(x_t, t_index.to(x0.dtype) / T)) ** 2).mean()  # eq. 14, per dimension
        return {"loss": mse, "mse": mse.detach()}

    # ---- sampling --------------------------------------------------------
    def make_sampler(self, sampler: str | None = None, steps: int | None = None) -> Sampler:
        """The configured sampler, or `sampler` by name; steps: None for the configured count."""
        name = sampler or self.config.sampler
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ConfigError(f"steps={steps} is not allowed; use a whole number of at least 1")
        if name == "ddim":
            return make_sampler("ddim", steps or self.config.ddim_steps, self.config.eta, clip=self._box)
        return make_sampler(name, steps, variance=self.config.variance, clip=self._box)

    @property
    def _box(self) -> tuple | None:
        """Where x_0 lies for the network: [-1, 1] for images (the samplers clip x0_hat to it), else None."""
        return (-1.0, 1.0) if is_image(self.data_shape) else None

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        _check_n(n)
        x_T = torch.randn(n, self.dim, device=self.device, dtype=self._dtype)
        return self.unflat(self.rescale.decode(self.make_sampler()(self.eps_theta, self.schedule, x_T)))

    @torch.no_grad()
    def reverse_trajectory(self, n: int, sampler: str | None = None, steps: int | None = None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """(S+1, n, *data_shape): n particles from x_T ~ N(0, I) (first) to x_0 (last), in the
        network's range (images in [-1, 1])."""
        return self._reverse_trajectory(n, self.make_sampler(sampler, steps), generator)[0]

    def _reverse_trajectory(self, n: int, smp: Sampler, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_n(n)
        if generator is None:
            x_T = torch.randn(n, self.dim, device=self.device, dtype=self._dtype)
        else:
            x_T = torch.randn(n, self.dim, generator=generator, device=generator.device, dtype=self._dtype).to(self.device)
        xs = smp(self.eps_theta, self.schedule, x_T, generator=generator, trajectory=True)  # (S+1, n, D)
        t = smp.times(self.schedule.T).double() / self.schedule.T  # (S+1,) from 1 to 0
        return xs.reshape(xs.shape[0], n, *self.data_shape), t

    # ---- fields ----------------------------------------------------------
    @torch.no_grad()
    def noise_field(self, x: torch.Tensor, t) -> torch.Tensor:
        """eps_theta(x, t) at points x (n, *data_shape) and a time t in (0, 1] (float or (n,))."""
        return self.unflat(self.eps_theta(self.flat(x), self._times(x, t)))

    @torch.no_grad()
    def score_field(self, x: torch.Tensor, t) -> torch.Tensor:
        """grad_x log p_t(x) ~ -eps_theta(x, t) / sqrt(1 - alpha_bar(t))."""
        t_vec = self._times(x, t)
        sigma = self.schedule.sigma_at(t_vec)[:, None]  # (n, 1)
        return self.unflat(-self.eps_theta(self.flat(x), t_vec) / sigma)

    def fields(self, grid: torch.Tensor, t: float) -> dict[str, np.ndarray]:
        """{"eps_field", "score_field"}: (G*G, 2) each, at grid points (G*G, 2) and time t."""
        if self.data_shape != (2,) or grid.dim() != 2 or grid.shape[1] != 2:
            raise ValueError("fields need 2D data and a grid of shape (G*G, 2)")
        grid = grid.to(self.device, self._dtype)
        eps = self.noise_field(grid, t)
        sigma = self.schedule.sigma_at(self._times(grid, t))[:, None]
        return {"eps_field": to_numpy(eps), "score_field": to_numpy(-eps / sigma)}

    def _times(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],) or not bool(((t > 0) & (t <= 1)).all()):
            raise ValueError(f"t must be a time in (0, 1], one or one per point; got {t.flatten()[:4].tolist()}")
        return t

    # ---- density ---------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of the probability-flow ODE (see ode.py), (n, *data_shape) -> (n,).

        Exact divergence up to 16 dimensions; above, Hutchinson's estimator with
        one Rademacher probe per point (unbiased, but noisy point by point). Images are
        densities on [0, 1]^D: the ODE's density of y = 2 x - 1, plus D log 2.
        """
        if x.dim() < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        exact = self.dim <= self.EXACT_DIV_MAX_DIM
        x_flat = self.flat(self.rescale.encode(x.to(self.device, self._dtype)))
        out = [self.rescale.log_det(self.dim) + pf_ode_log_prob(self.eps_theta, self.schedule, chunk, steps=self.config.ode_steps,
                               t_eps=self.ODE_T_EPS, exact=exact)
               for chunk in x_flat.split(self.LOG_PROB_CHUNK)]
        return torch.cat(out) if out else x_flat.new_zeros(0)

    # ---- live views ------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, t: float | None = None) -> dict[str, np.ndarray]:
        """What the diffusion view draws (m particles: up to 150 of x for D <= 16, TRACE_IMAGES = 8
        digits for images, else 16).

        "trajectory" (S+1, m, *data_shape), "trajectory_t" (S+1,): m particles from
        fixed noise (so frames stay put between calls while the model trains) to
        data. On points and non-image data: by the configured sampler with at most
        TRACE_STEPS = 100 steps (ancestral with T > 100: the respaced chain of Nichol &
        Dhariwal), S+1 <= 101 frames; at the default T = 100, the very chain that sample()
        runs. On images: the configured sampler over S = min(TRACE_IMAGE_STEPS, T) steps (DDIM:
        or its ddim_steps if fewer; ancestral: the respaced chain), mapped back to [0, 1]: a
        short chain that keeps the picture's cost bounded while training runs.
        "forward" (K, m, *data_shape), "forward_t" (K,): x noised by q(x_t | x_0) at
        K = 6 evenly spaced t from 0 to 1, with fixed noise (images: noised in [-1, 1], shown in [0, 1]).
        "field_t" (1,): the time t of the fields (default FIELD_T = 0.1); for 2D data
        with a grid, "eps_field" and "score_field" (G*G, 2) at t, as fields(grid, t).
        """
        image = is_image(self.data_shape)
        m = min(x.shape[0], self.TRACE_MAX_POINTS if self.dim <= 16 else
                (self.TRACE_IMAGES if image else self.TRACE_MAX_IMAGES))
        x0 = self.rescale.encode(x[:m].to(self.device, self._dtype))
        T = self.schedule.T
        g = torch.Generator().manual_seed(0)
        steps = min(self.config.ddim_steps if self.config.sampler == "ddim" else T,
                    self.TRACE_IMAGE_STEPS if image else self.TRACE_STEPS)
        smp = self.make_sampler(steps=steps)
        traj, traj_t = self._reverse_trajectory(m, smp, generator=g)

        t_index = torch.linspace(0, T, self.FORWARD_FRAMES).round().long()  # (K,)
        noise = torch.randn(x0.shape, generator=g).to(x0)
        forward = torch.stack([self.q_sample(x0, int(i), noise) for i in t_index])
        out = {"trajectory": to_numpy(self.rescale.decode(traj)), "trajectory_t": to_numpy(traj_t),
               "forward": to_numpy(self.rescale.decode(forward)), "forward_t": to_numpy(t_index.double() / T)}
        field_t = self.FIELD_T if t is None else float(t)
        out["field_t"] = np.array([field_t], dtype=np.float32)
        if grid is not None and self.data_shape == (2,):
            out.update(self.fields(grid, field_t))
        return out


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number of at least 1, got {n}")
