"""Conditional flow matching on the straight path, with independent or minibatch-OT couplings, and reflow.

Lipman et al. 2023, "Flow Matching for Generative Modeling" (https://arxiv.org/abs/2210.02747);
the straight path is also Liu et al. 2023's rectified flow (https://arxiv.org/abs/2209.03003).
Time runs the house way (core.dynamics): t = 0 is the data, t = 1 the base N(0, I),
the reverse of Lipman et al.'s. A pair (x_0, x_1) of a data point and a base point,
drawn from a coupling pi(x_0, x_1), is joined by the straight line

    x_t = (1 - t) x_0 + t x_1,        u_t = dx_t/dt = x_1 - x_0,

and v_theta regresses the conditional velocity (Lipman et al., eq. 9 with their sigma_min = 0):

    L_CFM = E_{t ~ U[0, 1], (x_0, x_1) ~ pi} || v_theta(x_t, t) - (x_1 - x_0) ||^2 / D,

whose minimiser is v*(x, t) = E[x_1 - x_0 | x_t = x]; the ODE dx/dt = v* then carries
the base at t = 1 to the data at t = 0 (sampling integrates t from 1 down to 0).

Couplings:
- "independent": x_0 ~ data and x_1 ~ N(0, I) drawn apart.
- "ot": minibatch optimal transport (Tong et al. 2023, https://arxiv.org/abs/2302.00482):
  the batch's base points are permuted by the exact assignment minimising
  sum_i |x_0^i - x_1^sigma(i)|^2 (assignment.py). Pairs no longer cross, so the
  learned paths are straighter. The assignment runs on the host, so each step
  reads the batch back from the device.
- reflow (Liu et al. 2023, sec. 2.3): with `reflow` = N > 0, every N training steps
  REFLOW_PAIRS fresh base points x_1 are carried by the model's own ODE to
  x_0 = ODE(x_1), and training uses these pairs (x_0, x_1) instead of the data.
  Liu et al. freeze a trained flow and fit a new one to its pairs; here the pairs are
  renewed from the current model as it trains, which keeps it usable live: switch it
  on once the samples look right, and the paths straighten while the law stays put.

Sampling and the density are the shared ODE's (base.py); log_prob is the density of
the learned ODE, exact divergence in 2D, accurate up to the solver's error.

Images. With net = "auto" the velocity is the small U-Net of core.nets.unet, on digits
rescaled to [-1, 1] (so x_0 and x_1 ~ N(0, I) have comparable scales); samples are mapped
back to [0, 1] and log_prob adds the Jacobian D log 2 of the rescaling, with Hutchinson's
divergence. An exponential moving average of the weights (decay 0.999) draws the samples.
The live picture solves the ODE by TRACE_IMAGE_STEPS Euler steps for 8 digits (sample()
keeps the configured solver and steps).

A score. With independent pairs x_t is the law of alpha X + sigma eps with alpha = 1 - t,
sigma = t, and since x_1 = x_t + (1 - t)(x_1 - x_0), Tweedie's formula gives its score
from the velocity:

    grad log p_t(x) = -E[x_1 | x_t = x] / t = -(x + (1 - t) v*(x, t)) / t,

which score_at returns with v_theta for v*, at SCORE_TIMES (score_levels). OT pairs and
reflow change the law of x_t between the ends, so the model then declares no levels.
"""

from __future__ import annotations

import dataclasses

import torch

from ...config import param
from ...dynamics.ode import METHODS, odeint
from ...dynamics.schedules import LinearPath
from ...nets.auto import NETS, Rescale, auto_ema, is_image, pick_net
from ...nets.unet import UNet
from .assignment import linear_sum_assignment
from .base import TIME_SCALE, ContinuousFlow

COUPLINGS = ("independent", "ot")


@dataclasses.dataclass
class FlowMatchingConfig:
    hidden: int = param(128, lo=8, hi=2048, help="width of the velocity network v_theta")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the velocity network")
    coupling: str = param("independent", choices=COUPLINGS,
                          help="how data and noise are paired: independent, or exact minibatch optimal transport (ot)", live=True)
    reflow: int = param(0, lo=0, hi=100_000, live=True,
                        help="reflow: every N steps, train on pairs (ODE(x_1), x_1) of the model's own flow (0: off, train on the data)")
    solver: str = param("rk4", choices=METHODS, help="ODE solver of sampling and log_prob", live=True)
    steps: int = param(20, lo=1, hi=500, help="solver steps of sampling (and of the reflow pairs)", live=True)
    log_prob_steps: int = param(40, lo=1, hi=500, help="solver steps of log_prob", live=True)
    net: str = param("auto", choices=NETS, help="velocity network: auto (the U-Net for images, the MLP for points), mlp or unet")
    channels: int = param(16, lo=4, hi=64, help="U-Net width at full resolution (doubled at 1/2 and 1/4)",
                          when=("net", ("auto", "unet")))
    ema: float = param(-1.0, lo=-1.0, hi=0.9999,
                       help="decay of the weight average that samples and pictures use (0: none; -1: auto, 0.999 for images, none for points)")


def ot_pairing(x_0: torch.Tensor, x_1: torch.Tensor) -> torch.Tensor:
    """x_1 reordered so that (x_0[i], x_1[i]) is the exact minibatch OT coupling for cost |x_0 - x_1|^2."""
    cost = torch.cdist(x_0.double(), x_1.double()) ** 2  # (n, n)
    sigma = linear_sum_assignment(cost.cpu().numpy())
    return x_1[torch.from_numpy(sigma).to(x_1.device)]


class FlowMatching(ContinuousFlow):
    log_prob_is_exact = False
    DENSITY = "estimate by the learned ODE, exact divergence in 2D"
    # digits the metrics draw: a sample of 64 runs the whole chain (100 to 200 U-Net passes), about 10 s
    # on two CPU cores for ddpm and flow matching, 20 s for ncsn
    metric_samples = 64

    REFLOW_PAIRS = 4096
    SCORE_TIMES = (0.2, 0.5, 0.8)
    TRACE_MAX_IMAGES = 8      # digits traced for images
    TRACE_IMAGE_STEPS = 10    # Euler steps of the traced paths on images: 10 U-Net evaluations

    def __init__(self, data_shape: tuple, config: FlowMatchingConfig):
        super().__init__(data_shape, config)
        self.path = LinearPath()
        self._pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # reflow's (x_0, x_1)
        self._calls = 0

    def make_velocity(self) -> torch.nn.Module:
        if pick_net(self.config.net, self.data_shape) == "unet":
            return UNet(self.data_shape, self.config.channels, time_scale=TIME_SCALE)  # starts at v = 0
        return super().make_velocity()

    def make_rescale(self) -> Rescale:
        return Rescale.for_data(self.data_shape)  # images to [-1, 1]

    def ema_decay(self) -> float:
        return auto_ema(self.config.ema, self.data_shape)

    def trace_solver(self) -> tuple[int, str]:
        if is_image(self.data_shape):
            return self.TRACE_IMAGE_STEPS, "euler"
        return super().trace_solver()

    def couple(self, x_0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of pairs (x_0, x_1), (n, D) each, from the configured coupling (or reflow's pairs)."""
        n = x_0.shape[0]
        if self.config.reflow > 0:
            if self._pairs is None or self._calls % self.config.reflow == 0:
                self._pairs = self.reflow_pairs(self.REFLOW_PAIRS)
            pick = torch.randint(0, self.REFLOW_PAIRS, (n,), device=x_0.device)
            return self._pairs[0][pick].to(x_0.dtype), self._pairs[1][pick].to(x_0.dtype)
        x_1 = torch.randn_like(x_0)
        if self.config.coupling == "ot":
            x_1 = ot_pairing(x_0, x_1)
        return x_0, x_1

    @torch.no_grad()
    def reflow_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0, x_1): n base points x_1 and where the model's ODE takes them at t = 0."""
        x_1 = self._noise(n)
        x_0 = odeint(self.v, x_1, self._grid(self.config.steps, 1.0, 0.0), self.config.solver)
        return x_0, x_1

    def score_levels(self) -> list[tuple[float, float]]:
        """(alpha, sigma) = (1 - t, t) at SCORE_TIMES, with independent pairs only, and on data the
        network sees as they are (not on rescaled images)."""
        if self.config.coupling != "independent" or self.config.reflow > 0 or not self.rescale.identity:
            return []
        return [(1.0 - t, t) for t in self.SCORE_TIMES]

    @torch.no_grad()
    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """-(x + (1 - t) v_theta(x, t)) / t at t = sigma, for the straight path's levels (alpha = 1 - sigma)."""
        if not (0.0 < sigma <= 1.0 and abs(alpha + sigma - 1.0) < 1e-6):
            raise ValueError(f"the straight path has levels alpha = 1 - t, sigma = t with t in (0, 1]; got ({alpha}, {sigma})")
        t = float(sigma)
        x_flat = self.flat(x)
        return self.unflat(-(x_flat + (1.0 - t) * self.v(t, x_flat)) / t)

    def loss(self, x: torch.Tensor) -> dict:
        x_0, x_1 = self.couple(self.flat(self.rescale.encode(x)))  # (n, D) each, images in [-1, 1]
        self._calls += 1
        t = torch.rand(x_0.shape[0], device=x_0.device, dtype=x_0.dtype)  # t ~ U[0, 1]
        x_t = self.path.marginal_sample(x_0, t, x_1)  # (1 - t) x_0 + t x_1
        u = x_1 - x_0  # the conditional velocity dx_t/dt
        cfm = ((self.velocity(x_t, t) - u) ** 2).mean()
        return {"loss": cfm, "cfm": cfm.detach(), "pair_cost": (u.detach() ** 2).sum(1).mean()}
