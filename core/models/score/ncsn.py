"""Noise-conditional score network, sampled by annealed Langevin dynamics.

Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data Distribution"
(https://arxiv.org/abs/1907.05600). One network s_theta(x, sigma) learns the scores of the data
blurred at every level of a geometric ladder sigma_1 > ... > sigma_L,

    sigma_i = sigma_max (sigma_min / sigma_max)^((i - 1) / (L - 1)),

by denoising score matching at each level, weighted by lambda(sigma) = sigma^2 so that every
level counts alike (eq. 5 and 6, with a level drawn uniformly per point):

    loss = (1 / D) E_{i, x, eps} | sigma_i s_theta(x + sigma_i eps, sigma_i) + eps |^2.

As in Song & Ermon 2020 ("Improved Techniques", technique 3) the network is
s_theta(x, sigma) = f_theta(x, sigma) / sigma, so an untrained f ~ 0 scores about 1; f is
core.nets.TimeMLP with its time t the log-noise mapped to [0, 1],
t = (log sigma - log SIGMA_LO) / (log SIGMA_HI - log SIGMA_LO).
Samples come from annealed Langevin (Algorithm 1, core.dynamics.annealed_langevin): T steps
at each level with step alpha_i = eps sigma_i^2 / sigma_L^2, from x_0 spread like the data
widened by sigma_1.

Images. With net = "auto", f_theta is the small U-Net of core.nets.unet (Song & Ermon use a
RefineNet; the noise level enters here through the same embedding as DDPM's time), on digits
rescaled to [-1, 1], so the ladder's sigmas are in those units (Song & Ermon's sigma_1 = 1 on
[0, 1] is 2 here); samples are mapped back to [0, 1] and clipped. An exponential moving average
of the weights (decay 0.999) draws the samples. The live picture runs every level with
TRACE_IMAGE_STEPS steps each for 8 digits (sample() runs steps_per_level).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ...config import param
from ...dynamics import annealed_langevin
from ...errors import ConfigError
from ...nets import TimeMLP
from ...nets.auto import NETS, Rescale, auto_ema, is_image, pick_net
from ...nets.unet import UNet
from .base import ScoreModel

SIGMA_LO, SIGMA_HI = 1e-3, 1e2  # the log-noise range that the network's time [0, 1] spans


@dataclasses.dataclass
class NCSNConfig:
    sigma_max: float = param(3.0, lo=1e-3, hi=100.0, help="largest noise sigma_1: about the largest distance between data points")
    sigma_min: float = param(0.05, lo=1e-3, hi=100.0, help="smallest noise sigma_L: the samples are the data blurred by it")
    L: int = param(10, lo=2, hi=250, help="noise levels L of the geometric ladder")
    hidden: int = param(128, lo=8, hi=2048, help="width of the score network")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the score network")
    steps_per_level: int = param(20, lo=1, hi=500, live=True, help="annealed Langevin steps T at each level")
    eps: float = param(1e-3, lo=1e-8, hi=1.0, live=True,
                       help="step size at the last level; level i steps alpha_i = eps sigma_i^2 / sigma_L^2")
    score_levels: int = param(3, lo=1, hi=250, help="levels of the ladder, evenly picked, at which the score error is measured")
    net: str = param("auto", choices=NETS, help="score network: auto (the U-Net for images, the MLP for points), mlp or unet")
    channels: int = param(16, lo=4, hi=64, help="U-Net width at full resolution (doubled at 1/2 and 1/4)",
                          when=("net", ("auto", "unet")))
    ema: float = param(-1.0, lo=-1.0, hi=0.9999,
                       help="decay of the weight average that samples and pictures use (0: none; -1: auto, 0.999 for images, none for points)")


class NCSN(ScoreModel):
    TRACE_IMAGES = 8          # chains traced for images
    # digits the metrics draw: a sample of 64 runs the whole chain (100 to 200 U-Net passes), about 10 s
    # on two CPU cores for ddpm and flow matching, 20 s for ncsn
    metric_samples = 64
    TRACE_IMAGE_STEPS = 2     # Langevin steps per level of the traced chains on images

    def __init__(self, data_shape: tuple, config: NCSNConfig):
        if config.sigma_min >= config.sigma_max:
            raise ConfigError(f"sigma_min={config.sigma_min} must be smaller than sigma_max={config.sigma_max}")
        super().__init__(data_shape, config)
        if pick_net(config.net, self.data_shape) == "unet":
            self.net = UNet(self.data_shape, config.channels)  # f_theta(x, t(sigma)) ~ -eps; starts at 0
        else:
            self.net = TimeMLP(self.dim, config.hidden, config.layers)  # f_theta(x, t(sigma)) ~ -eps
            with torch.no_grad():
                self.net.out.weight.mul_(0.1)
                self.net.out.bias.zero_()
        self._ladder_cache: tuple = (None, None)

    def make_rescale(self) -> Rescale:
        return Rescale.for_data(self.data_shape)  # images to [-1, 1]

    def ema_decay(self) -> float:
        return auto_ema(self.config.ema, self.data_shape)

    # ---- the ladder --------------------------------------------------------
    def sigmas(self) -> torch.Tensor:
        """(L,) sigma_1 > ... > sigma_L, geometric, float64."""
        c = self.config
        return torch.logspace(math.log10(c.sigma_max), math.log10(c.sigma_min), c.L, dtype=torch.float64)

    def _ladder(self, like: torch.Tensor) -> torch.Tensor:
        """(2, L): sigma_i and their network times t_i on like's device and dtype, kept there."""
        c = self.config
        key = (c.sigma_max, c.sigma_min, c.L, like.device, like.dtype)
        if self._ladder_cache[0] != key:
            s = self.sigmas()
            self._ladder_cache = (key, torch.stack([s, _time(s)]).to(like.device, like.dtype))
        return self._ladder_cache[1]

    # ---- the score -----------------------------------------------------------
    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """s_theta(x, sigma) = f_theta(x, t(sigma)) / sigma; x: (n, D), sigma > 0 -> (n, D)."""
        sigma = float(sigma)
        if sigma <= 0:
            raise ValueError(f"ncsn's score needs a noise level sigma > 0, got {sigma}")
        t = torch.full((1,), _time(sigma), dtype=x.dtype, device=x.device)  # one time for every point
        return self.net(x, t) / sigma

    def own_sigma(self, sigma: float | None) -> float:
        """The view's sigma (the ladder's last level when none is given)."""
        return float(self.config.sigma_min if sigma is None else sigma)

    def score_levels(self) -> list[tuple[float, float]]:
        s = self.sigmas()
        idx = torch.linspace(0, len(s) - 1, min(self.config.score_levels, len(s))).round().long().unique()
        return [(1.0, float(s[i])) for i in idx]

    # ---- training ------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict:
        x = self.flat(self.rescale.encode(x))                              # (n, D), images in [-1, 1]
        sig, t = self._ladder(x)                                           # (L,) each
        i = torch.randint(0, sig.shape[0], (x.shape[0],), device=x.device)  # a level per point
        sigma = sig[i][:, None]                                            # (n, 1)
        eps = torch.randn_like(x)
        x_tilde = x + sigma * eps                                          # x~ ~ N(x, sigma_i^2 I)
        mse = ((self.net(x_tilde, t[i]) + eps) ** 2).mean()                # (1/D) E|sigma_i s_theta + eps|^2
        return {"loss": mse, "dsm": mse.detach()}

    # ---- sampling --------------------------------------------------------------
    def x0(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_0 ~ N(m, diag(v) + sigma_1^2 I): the data's spread blurred by the first level."""
        z = super().x0(n, generator) - self.x0_mean
        widen = torch.sqrt(1 + self.config.sigma_max**2 / self.x0_std**2)  # (D,)
        return self.x0_mean + widen * z

    def chain(self, x_0, generator=None, trajectory=False, steps_per_level: int | None = None):
        """Annealed Langevin from x_0 with the config's steps_per_level T (or `steps_per_level`)."""
        c = self.config
        T = c.steps_per_level if steps_per_level is None else int(steps_per_level)
        sig = self.sigmas()
        out = annealed_langevin(self.score, x_0, sig.tolist(), T, c.eps, generator,
                                return_intermediates=trajectory)
        levels = torch.cat([sig[:1], sig.repeat_interleave(T)])  # (L*T + 1,)
        return out, levels

    def trace_chain(self, x_0, generator):
        """On images: every level, TRACE_IMAGE_STEPS steps each (a bounded live picture)."""
        if is_image(self.data_shape):
            T = min(self.config.steps_per_level, self.TRACE_IMAGE_STEPS)
            return self.chain(x_0, generator, trajectory=True, steps_per_level=T)
        return super().trace_chain(x_0, generator)


def _time(sigma):
    """The network's time of a noise level (a float or a tensor): log sigma mapped from
    [SIGMA_LO, SIGMA_HI] to [0, 1]."""
    log = torch.log(sigma) if isinstance(sigma, torch.Tensor) else math.log(sigma)
    return (log - math.log(SIGMA_LO)) / (math.log(SIGMA_HI) - math.log(SIGMA_LO))
