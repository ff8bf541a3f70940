"""An energy-based model trained by contrastive divergence with a replay buffer.

Du & Mordatch 2019, "Implicit Generation and Modeling with Energy-Based Models"
(https://arxiv.org/abs/1903.08689). An energy E_theta(x) (a smooth MLP for
points, a small convolutional network for images) defines

    p_theta(x) = exp(-E_theta(x)) / Z_theta,

whose log-likelihood gradient is a difference of two expectations,

    -grad_theta log p_theta(x) = grad_theta E_theta(x) - E_{x- ~ p_theta}[grad_theta E_theta(x-)],

so the loss minimised is the contrastive divergence with their small energy regulariser,

    L = E_data[E(x+)] - E[E(x-)] + alpha (E_data[E(x+)^2] + E[E(x-)^2]),

where the negatives x- are drawn from p_theta by K steps of Langevin dynamics
(core.dynamics.langevin with grad log p = -grad E), each chain started from a
replay buffer of past negatives with probability 1 - reinit and from fresh
uniform noise over the data box otherwise (Du & Mordatch take 5%). The
negatives are then written back into the buffer, a persistent tensor, so
checkpoints keep it.

Points. The chain is x_{k+1} = x_k - (eps / 2) grad E(x_k) + s sqrt(eps) z_k:
s = noise_scale = 1 is Langevin for p_theta itself, s < 1 a cooler chain (the
shared sampler runs it as Langevin for exp(-E / s^2) with step s^2 eps). The
energy is read at points clipped to the box and each chain's end is clipped to
it. The normaliser is a midpoint rule on a grid of cells over the box (the
first batch's extent, padded by `pad` times its width on each side):

    log Z ~ logsumexp_j(-E(c_j)) + log |cell|,   log p(x) = -E(x) - log Z.

Points outside the box get the same formula, since the energy is defined
everywhere; the mass outside the box is left out of Z, so log_prob is an
estimate ("grid normalisation"), not exact. sample() draws from that same grid
density: a cell by its weight, then a point uniformly inside it, which unlike a
long Langevin run from noise gives every mode its weight (Langevin chains
rarely cross between modes); sampler = langevin runs the chain instead.

Images (C, H, W) in [0, 1]. The short-run chain of Du & Mordatch and of Nijkamp
et al. 2019 ("Learning Non-Convergent Non-Persistent Short-Run MCMC Toward
Energy-Based Model"), with a gradient step lambda and a noise sigma set apart,

    x_{k+1} = clip(x_k - lambda grad E(x_k) + sigma z_k, 0, 1),

which is Langevin for exp(-E / T) at the temperature T = sigma^2 / (2 lambda)
(the shared sampler's step sigma^2 with score -(2 lambda / sigma^2) grad E),
clipped to the pixels' range after every step; fresh chains start from
uniform noise U[0, 1]^D. There is no grid over 784 pixels, so Z is unknown
and the model has no log_prob on images (has_log_prob is False there).
sample() on images takes n replay-buffer entries and runs K more steps of the
training chain from them (the buffer itself is left as it was): the buffer is
where the model's samples live, and a fresh chain of K steps from noise is
still noise early in training.

Defaults on points: alpha = 0.01. On eight_gaussians, alpha = 0.1 kept the
negatives' energy about 1.3 above the data's (cd near -1.3 at 1200 steps,
against -0.1 with 0.01), and alpha = 1 had a KL of 1.4 at 400 steps where 0.01
had 0.7. The default grid of 64 x 64 cells costs a quarter of 128 x 128 in
every live picture; for a density as smooth as a trained one on the 2D toys it
integrates to 1 within 1%.

Defaults on images (MNIST, on a CPU): the conv energy with 16 channels, K = 20
steps of lambda = 1 and sigma = 0.01, a buffer of 2048 digits, batches of 32, Adam
at 3e-4 without momentum, and the same alpha = 0.01. A step then costs about 0.2 s
of one core (21 passes of the energy, 20 of them with grad_x), so about 5 steps a
second on one core. Digits (ones, sevens, nines, twos) filled most of the
buffer after 450 steps; with alpha = 0.1 they took about 750, and with
lambda = 0.3 the buffer was still mostly speckled noise at 350 steps.

A known limit on points: Langevin chains rarely cross between modes, so the
negatives' share of each mode changes only through the fresh-noise restarts,
and the modes' weights are learnt slowly. On eight_gaussians after 3000 steps
the modes held 6% to 21% of the mass (1/8 each in the data), 0.08 of the 0.11
nats of KL that remained, and the KL moved between 0.075 and 0.13 over the
last 1000 steps; at a constant learning rate it fell below 0.1 at 5750 steps,
so the default run is 6000 steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ...config import param
from ...data import pixels
from ...dynamics import langevin
from ...errors import ConfigError
from ...model import GenerativeModel, Phase, to_numpy
from ...nets import MLP
from ...nets.conv_energy import ConvEnergy

ACTIVATIONS = ("silu", "elu", "tanh")  # smooth, so that grad_x E is continuous for Langevin
SAMPLERS = ("grid", "langevin")
NETS = ("auto", "mlp", "conv")


@dataclasses.dataclass
class EBMConfig:
    net: str = param("auto", choices=NETS, help="energy network: an MLP, or a conv net for images (C, H, W); "
                                                "auto picks conv for images and mlp for points")
    hidden: int = param(128, lo=8, hi=2048, help="width of the energy network E_theta (mlp)")
    layers: int = param(3, lo=1, hi=12, help="hidden layers of the energy network (mlp)")
    channels: int = param(16, lo=2, hi=64, help="channels of the conv energy's first layer, doubled at each next one",
                          when=("net", ("auto", "conv")))
    spectral_norm: bool = param(False, help="spectral norm on every layer of the conv energy (Du & Mordatch's option)",
                                when=("net", ("auto", "conv")))
    activation: str = param("silu", choices=ACTIVATIONS, help="a smooth activation, so Langevin's grad E is continuous")
    langevin_steps: int = param(20, lo=1, hi=200, help="Langevin steps K per negative batch", live=True)
    step_size: float = param(0.01, lo=1e-6, hi=1.0, help="points: Langevin step eps in x - (eps/2) grad E + s sqrt(eps) z",
                             live=True)
    noise_scale: float = param(1.0, lo=0.01, hi=1.0, help="points: Langevin noise s (1: the chain of exp(-E); below 1 cooler)",
                               live=True)
    image_step: float = param(1.0, lo=1e-4, hi=100.0, help="images: gradient step lambda in x - lambda grad E + sigma z",
                              live=True)
    image_noise: float = param(0.01, lo=1e-3, hi=1.0, help="images: Langevin noise sigma per step, on pixels in [0, 1]",
                               live=True)
    buffer_size: int = param(8192, lo=64, hi=65536, help="points: negatives kept in the replay buffer")
    image_buffer: int = param(2048, lo=64, hi=16384, help="images: negatives kept in the replay buffer")
    reinit: float = param(0.05, lo=0.0, hi=1.0, help="chance a chain starts from fresh uniform noise, not the buffer", live=True)
    alpha: float = param(0.01, lo=0.0, hi=10.0, help="energy regulariser alpha (E_data^2 + E_model^2)", live=True)
    pad: float = param(0.25, lo=0.0, hi=2.0, help="box padding on each side, as a fraction of the first batch's extent")
    grid_size: int = param(64, lo=16, hi=512, help="cells per side of the grid that normalises the density", live=True)
    sampler: str = param("grid", choices=SAMPLERS, help="points: sample() from the grid density, or Langevin from "
                                                        "uniform noise (images: the buffer plus K steps)", live=True)
    sample_steps: int = param(500, lo=1, hi=10_000, help="Langevin steps of sample() from uniform noise", live=True,
                              when=("sampler", "langevin"))


def net_for(data_shape: tuple) -> str:
    """What net=auto means: conv for images shaped (C, H, W), mlp otherwise."""
    return "conv" if len(tuple(data_shape)) == 3 else "mlp"


class EBM(GenerativeModel):
    family = "ebm"
    log_prob_is_exact = False  # the normaliser is a quadrature over a box
    data_kinds = ("points", "images")  # a density on points (grid normalisation), none on images

    TRACE_PARTICLES = 100
    TRACE_STEPS = 100   # at most this many Langevin frames in traces()
    TRACE_BUFFER = 1000  # buffer points sent to the view
    TRACE_IMAGES = 64   # buffer images sent to the view, and data images whose energy it shows
    TRACE_CHAINS = 4    # image chains from noise in the film strip (the view shows 4)
    TRACE_NOISE_STEPS = 60  # their Langevin steps (Du & Mordatch's K on images)
    TRACE_FRAMES = 7    # frames of them sent

    POINT_TRACES = {"chains": ("K+1", "m", "D"), "buffer": ("B", "D"), "box": (2, "D"), "log_z": (1,)}
    IMAGE_TRACES = {"buffer": ("B", "x"), "noise_chains": ("F", "m", "x"), "noise_steps": ("F",),
                    "energy_data": ("Nd",), "energy_buffer": ("B",)}
    # Each model declares the traces of its kind of data (see __init__); the class, every key a view may read.
    TRACES = {**POINT_TRACES, **IMAGE_TRACES}
    GRID_TRACES = {"energy": ("G",), "log_density": ("G",)}

    def __init__(self, data_shape: tuple, config: EBMConfig, net: torch.nn.Module | None = None):
        """net: E_theta, x (n, *data_shape) -> (n, 1); by default an MLP or a conv net of the config's size."""
        super().__init__(data_shape, config)
        shape = self.data_shape
        self.on_images = len(shape) == 3
        if not self.on_images and shape != (2,):
            raise ConfigError(f"ebm is built for 2D points (a density normalised on a plane grid) or images shaped "
                              f"(C, H, W); got data of shape {shape}")
        kind = net_for(shape) if config.net == "auto" else config.net
        if kind == "conv" and not self.on_images:
            raise ConfigError(f"net=conv needs images shaped (C, H, W), got data shaped {shape}; use net=mlp or net=auto")
        self._flat_input = net is None and kind == "mlp"  # the MLP reads images as flat vectors
        if net is None:
            net = (ConvEnergy(shape, config.channels, activation=config.activation, spectral_norm=config.spectral_norm)
                   if kind == "conv" else MLP(self.dim, 1, config.hidden, config.layers, config.activation))
        self.energy_net = net
        if self.on_images:
            self.TRACES, self.GRID_TRACES = self.IMAGE_TRACES, {}
        else:
            self.TRACES = self.POINT_TRACES
        # the box (lo, hi) of the chains and of fresh noise (the grid's, for points; [0, 1] for pixels); the buffer
        box = [[0.0] * self.dim, [1.0] * self.dim] if self.on_images else [[-4.0] * self.dim, [4.0] * self.dim]
        self.register_buffer("box", torch.tensor(box))
        self.register_buffer("replay", self._uniform(config.image_buffer if self.on_images else config.buffer_size))

    # ---- what the model has, by kind of data ----------------------------------
    @property
    def has_log_prob(self) -> bool:
        return not self.on_images

    @property
    def live_kl(self) -> bool:
        return not self.on_images

    @property
    def density_note(self) -> str:
        return ("no density on images: Z has no grid over the pixels" if self.on_images
                else "estimate by grid normalisation")

    # ---- the energy ----------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E_theta(x): (n, *data_shape) -> (n,)."""
        return self.energy_net(self.flat(x) if self._flat_input else x).squeeze(-1)

    def grad_log_p(self, x: torch.Tensor) -> torch.Tensor:
        """-grad_x E_theta(x): (n, *data_shape) -> the same, with no gradient reaching the weights."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(x).sum(), x)
        return -g

    def score_levels(self) -> list[tuple[float, float]]:
        return [(1.0, 0.0)]  # the energy models the data themselves

    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        if (alpha, sigma) != (1.0, 0.0):
            raise ValueError(f"an EBM learns the score of the data only (alpha 1, sigma 0), not ({alpha}, {sigma})")
        return self.grad_log_p(x)

    # ---- Langevin --------------------------------------------------------------
    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The box's lo and hi, shaped like one datum."""
        return self.box[0].view(self.data_shape), self.box[1].view(self.data_shape)

    def _uniform(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points uniform over the box, (n, *data_shape)."""
        lo, hi = self._bounds()
        u = torch.rand(n, *self.data_shape, generator=generator, dtype=lo.dtype,
                       device=generator.device if generator is not None else lo.device)
        return lo + (hi - lo) * u.to(lo.device)

    def run_langevin(self, x: torch.Tensor, n_steps: int, generator: torch.Generator | None = None,
                     return_intermediates: bool = False) -> torch.Tensor:
        """The configured chain from x (n, *data_shape), inside the box; the last state, or all n_steps + 1."""
        lo, hi = self._bounds()
        if self.on_images:  # x - lambda grad E + sigma z = Langevin with step sigma^2 and score -(2 lambda / sigma^2) grad E
            lam, sigma = self.config.image_step, self.config.image_noise
            step = sigma ** 2
            states = [x]
            for _ in range(int(n_steps)):
                x = langevin(lambda y: (2 * lam / step) * self.grad_log_p(y), x, step, 1, generator).clamp(lo, hi)
                if return_intermediates:
                    states.append(x)
            return torch.stack(states) if return_intermediates else x
        s2 = self.config.noise_scale ** 2

        def score(y):  # Langevin for exp(-E / s^2), run with step s^2 eps
            return self.grad_log_p(y.clamp(lo, hi)) / s2

        out = langevin(score, x, s2 * self.config.step_size, n_steps, generator, return_intermediates)
        return out.clamp(lo, hi)

    def negatives(self, n: int) -> torch.Tensor:
        """n negatives x- by Langevin from the replay buffer (fresh noise with chance reinit); they
        replace the buffer entries they started from."""
        idx = torch.randint(0, self.replay.shape[0], (n,), device=self.replay.device)
        fresh = torch.rand(n, *[1] * len(self.data_shape), device=self.replay.device) < self.config.reinit
        x0 = torch.where(fresh, self._uniform(n), self.replay[idx])
        x_neg = self.run_langevin(x0, self.config.langevin_steps).detach()
        with torch.no_grad():
            self.replay[idx] = x_neg
        return x_neg

    # ---- training ----------------------------------------------------------------
    def phases(self, lr: float) -> list[Phase]:
        """One phase; on images Adam without momentum (beta1 = 0), a usual choice for energies trained
        against short-run Langevin negatives, which change at every step."""
        betas = (0.0, 0.999) if self.on_images else (0.9, 0.999)
        return [Phase("model", self.loss, list(self.parameters()), lr, betas=betas)]

    def init_from_data(self, x: torch.Tensor) -> None:
        """Points: the box is the batch's extent padded by `pad` times its width on each side, with a
        fresh buffer in it. Images keep the box [0, 1] and their buffer of uniform noise."""
        if self.on_images:
            return
        x = self.flat(x).detach().to(self.box)
        lo, hi = x.min(0).values, x.max(0).values
        width = (hi - lo).clamp_min(1e-3)
        with torch.no_grad():
            self.box.copy_(torch.stack([lo - self.config.pad * width, hi + self.config.pad * width]))
            self.replay.copy_(self._uniform(self.replay.shape[0]))

    def loss(self, x: torch.Tensor) -> dict:
        x_pos = pixels.view(x, self.pixels) if self.on_images else x  # (n, *shape)
        x_neg = self.negatives(x_pos.shape[0])                       # (n, *shape)
        e_pos, e_neg = self.energy(x_pos), self.energy(x_neg)        # (n,) each
        cd = e_pos.mean() - e_neg.mean()
        reg = self.config.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        return {"loss": cd + reg, "cd": cd.detach(), "E_data": e_pos.mean().detach(),
                "E_model": e_neg.mean().detach()}

    # ---- density -------------------------------------------------------------------
    def cells(self, grid_size: int | None = None) -> tuple[torch.Tensor, float]:
        """Centres (g*g, 2) of the g x g cells over the box and log of one cell's area."""
        g = int(grid_size or self.config.grid_size)
        lo, hi = self.box.double()
        h = (hi - lo) / g                                                  # (2,) cell sides
        axes = [lo[d] + h[d] * (torch.arange(g, dtype=torch.float64, device=lo.device) + 0.5) for d in range(2)]
        yy, xx = torch.meshgrid(axes[1], axes[0], indexing="ij")
        centres = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)  # (g*g, 2)
        return centres, float(torch.log(h).sum())

    def log_z(self) -> torch.Tensor:
        """log Z ~ logsumexp(-E(cells)) + log |cell| (float64 scalar)."""
        centres, log_cell = self.cells()
        with torch.no_grad():
            neg_e = -self.energy(centres.to(self.box)).double()
        return torch.logsumexp(neg_e, 0) + log_cell

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = -E(x) - log Z by grid normalisation, (n, 2) -> (n,) float64; the same
        formula outside the box. None on images."""
        if self.on_images:
            return super().log_prob(x)
        if x.dim() != 2 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
        with torch.no_grad():
            neg_e = -self.energy(x.to(self.box)).double()
        return neg_e - self.log_z()

    # ---- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n}")
        if self.on_images:  # n buffer entries, K more steps of the training chain; the buffer is left as it was
            idx = torch.randint(0, self.replay.shape[0], (int(n),), device=self.replay.device)
            return self.run_langevin(self.replay[idx], self.config.langevin_steps)
        if self.config.sampler == "langevin":
            return self.run_langevin(self._uniform(int(n)), self.config.sample_steps)
        centres, _ = self.cells()
        weights = torch.softmax(-self.energy(centres.to(self.box)).double(), 0)
        pick = torch.multinomial(weights, int(n), replacement=True)
        lo, hi = self.box
        h = (hi - lo) / self.config.grid_size
        jitter = torch.rand(int(n), 2, device=self.box.device, dtype=self.box.dtype) - 0.5
        return centres[pick].to(self.box) + jitter * h

    # ---- live views ---------------------------------------------------------------------
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """What the EBM view draws.

        Points: "chains" (K+1, m, 2): m = 100 particles, from the first buffer entries (and fresh
        uniform noise for a `reinit` share of them), over min(K, TRACE_STEPS) Langevin steps of the
        training chain, with fixed noise so that frames stay put between calls.
        "buffer" (B, 2): up to 1000 replay-buffer points; "box" (2, 2): the grid's box;
        "log_z" (1,): its log Z. With a plane grid (G*G, 2): "energy" E(grid) and "log_density"
        -E - log Z (G*G,).

        Images: "buffer" (B, C, H, W): the first 64 buffer entries (the live negatives) and
        "energy_buffer" (B,) their energies; "energy_data" (Nd,): the energies of up to 64 of
        the images x; "noise_chains" (F, 4, C, H, W): 4 chains from uniform noise over
        TRACE_NOISE_STEPS steps, F = 7 of their frames, taken at the steps "noise_steps" (F,),
        with fixed noise. 60 Langevin steps on 4 digits and two energy batches: about 0.3 s of one core.
        """
        g = torch.Generator().manual_seed(0)
        if self.on_images:
            return self._image_traces(x, g)
        m = min(self.TRACE_PARTICLES, self.replay.shape[0])
        k_fresh = int(round(self.config.reinit * m))
        x0 = torch.cat([self._uniform(k_fresh, g), self.replay[k_fresh:m]])
        chains = self.run_langevin(x0, min(self.config.langevin_steps, self.TRACE_STEPS), g, return_intermediates=True)
        log_z = self.log_z()
        out = {"chains": to_numpy(chains), "buffer": to_numpy(self.replay[: self.TRACE_BUFFER]),
               "box": to_numpy(self.box), "log_z": np.array([float(log_z)], dtype=np.float32)}
        if grid is not None:
            grid = grid.to(self.box)
            with torch.no_grad():
                e = self.energy(grid)
            out.update({"energy": to_numpy(e), "log_density": to_numpy(-e.double() - log_z)})
        return out

    def _image_traces(self, x: torch.Tensor, g: torch.Generator) -> dict[str, np.ndarray]:
        buffer = self.replay[: self.TRACE_IMAGES]
        chains = self.run_langevin(self._uniform(self.TRACE_CHAINS, g), self.TRACE_NOISE_STEPS, g,
                                   return_intermediates=True)                       # (T+1, m, *shape)
        steps = np.unique(np.linspace(0, self.TRACE_NOISE_STEPS, self.TRACE_FRAMES).round().astype(np.int64))
        with torch.no_grad():
            e_data = self.energy(x[: self.TRACE_IMAGES].to(self.box))
            e_buffer = self.energy(buffer)
        return {"buffer": to_numpy(buffer), "noise_chains": to_numpy(chains[torch.from_numpy(steps)]),
                "noise_steps": steps.astype(np.float32), "energy_data": to_numpy(e_data),
                "energy_buffer": to_numpy(e_buffer)}
