"""Generative adversarial networks: one class, the objective picked by config.

A generator G maps noise z ~ N(0, I) to data; a discriminator (critic) D maps
data to a score. Training alternates: n_critic steps of D on its loss, then one
step of G (Goodfellow et al. 2014, Algorithm 1):

    min_G max_D  V(D, G) = E_x~P [a(D(x))] - E_z [b(D(G(z)))],

with the pair (a, b) and the generator's update taken from the table in
objectives.py: gan, nsgan, lsgan, wgan, wgan_gp, fgan, mmdgan.

What needs the networks lives here:
- wgan (Arjovsky et al. 2017, Algorithm 1): after every D step each critic weight
  is clipped to [-clip, clip]. The paper used RMSprop (lr 5e-5); by default we
  use Adam with betas (0, 0.99), which is RMSprop (decay 0.99) plus bias
  correction, and optimizer=rmsprop gives the paper's.
- wgan_gp (Gulrajani et al. 2017, Algorithm 1): the D loss adds
  gp_weight * E (|grad D(x_hat)| - 1)^2 on x_hat = eps x + (1 - eps) G(z),
  eps ~ U[0, 1], with n_critic 5 as in the paper. The paper's Algorithm 1 uses
  Adam with lr 1e-4 and betas (0, 0.9); the authors' code for the 2D toys
  (gan_toy.py) uses betas (0.5, 0.9), which we take. Our lr, 5e-4, was picked
  on the same toys.
- mmdgan (Li et al. 2017): D is a feature map phi into `features` dimensions
  and the kernel acts on u = [x, phi(x)], so the raw input keeps the kernel
  from degenerating when phi collapses. The critic is weight-clipped as in the
  paper (not the gradient penalty of Binkowski et al. 2018); the paper's
  RMSprop is again Adam with betas (0, 0.99). The live view's critic is the
  witness function w(x) = mean_i k(x, x_i) - mean_j k(x, G(z_j)).

The other objectives use Adam with betas (0.5, 0.9) by default: on the 2D toys
it kept every mode where DCGAN's (0.5, 0.999) often collapsed to a few.
GANs define no density: log_prob raises LogProbUnavailable.

On images (data shaped (C, H, W)) net="auto" picks DCGAN's networks (core.nets.dcgan,
Radford et al. 2016) and the noise z gets 64 dimensions unless `latent` says otherwise.
The critic's norm follows the objective: batch norm, as in DCGAN, where D classifies
(gan, nsgan, lsgan, fgan); layer norm for wgan_gp, whose penalty is on each sample's own
gradient (Gulrajani et al. 2017, Sec. 4); none under weight clipping (wgan, mmdgan), which
constrains the critic by itself. On images the live view is fed from a fixed set of noise
vectors, so the same z can be watched turning into a digit as training goes on.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.func import functional_call

from ...config import param
from ...errors import ConfigError, DataError
from ...model import GenerativeModel, Phase, to_numpy
from ...nets import MLP
from ...nets.dcgan import DCGANDiscriminator, DCGANGenerator
from . import objectives

LOSSES = ("gan", "nsgan", "lsgan", "wgan", "wgan_gp", "fgan", "mmdgan")
BETAS = ("0.5,0.999", "0.5,0.9", "0.0,0.9", "0.0,0.99", "0.9,0.999")
OPTIMIZERS = ("adam", "rmsprop")
MMD_SIGMAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # RBF bandwidths: from within a mode to across the data
_WITNESS_REF = 128  # points of each batch kept as the mmd witness's reference sets (cost of the view)
NETS = ("auto", "mlp", "conv")
IMAGE_LATENT = 64  # z's dimension on images when latent is 0 (DCGAN used 100)
CRITIC_NORMS = {"gan": "batch", "nsgan": "batch", "lsgan": "batch", "fgan": "batch",
                "wgan_gp": "layer", "wgan": "none", "mmdgan": "none"}
FIXED_Z = 64  # the noise vectors the live view follows on images (an 8 x 8 tile)
IMAGE_GRID = 10  # the noise grid's side on images: 100 digits


@dataclasses.dataclass
class GANConfig:
    loss: str = param("nsgan", choices=LOSSES, help="the adversarial objective", variant=True)
    divergence: str = param("js", choices=tuple(objectives.F_DIVERGENCES), help="the f-divergence of loss=fgan",
                            when=("loss", "fgan"))
    latent: int = param(0, lo=0, hi=512, help=f"dimension of the generator's noise z (0: {IMAGE_LATENT} on images, "
                                                  "2 on points)")
    net: str = param("auto", choices=NETS, help="both players' networks: mlp, or DCGAN's conv nets (images only); "
                                                "auto picks conv for images and mlp for points")
    hidden: int = param(128, lo=2, hi=4096, help="width of both MLPs")
    layers: int = param(3, lo=1, hi=8, help="hidden layers of both MLPs")
    channels: int = param(32, lo=2, hi=128, help="base channels of the DCGAN networks (c, then 2c)")
    features: int = param(16, lo=1, hi=1024, help="output dimension of the mmdgan feature map", when=("loss", "mmdgan"))
    n_critic: int = param(1, lo=1, hi=20, help="discriminator steps per generator step")
    lr_g: float = param(0.0, lo=0.0, hi=1.0, help="generator learning rate (0: the trainer's lr)", live=True)
    lr_d: float = param(0.0, lo=0.0, hi=1.0, help="discriminator learning rate (0: the trainer's lr)", live=True)
    optimizer: str = param("adam", choices=OPTIMIZERS, help="both players' optimiser (rmsprop takes betas' second "
                                                              "value as its smoothing constant)")
    betas: str = param("0.5,0.9", choices=BETAS, help="Adam's (beta1, beta2) for both players")
    clip: float = param(0.01, lo=1e-6, hi=10.0, help="weight clipping bound of the critic", live=True,
                        when=("loss", ("wgan", "mmdgan")))
    gp_weight: float = param(10.0, lo=0.0, hi=1000.0, help="gradient penalty weight lambda", live=True,
                             when=("loss", "wgan_gp"))


class GAN(GenerativeModel):
    """Generator and discriminator (MLPs, or DCGAN's conv nets on images); the objective is `config.loss`."""

    family = "gan"
    TRACES = {"samples": ("n", "D"), "noise_grid": ("M", "K"), "warped_grid": ("M", "D"), "critic_grad": ("n", "D")}
    GRID_TRACES = {"critic": ("G",), "critic_prob": ("G",)}
    # On images: the digits of the fixed noise and D's scores on them and on as many data digits.
    IMAGE_TRACES = {"samples": ("m", "D"), "noise_grid": ("M", "K"), "warped_grid": ("M", "D"),
                    "critic_real": ("m",), "critic_fake": ("m",)}

    def __init__(self, data_shape: tuple, config: GANConfig, generator: torch.nn.Module | None = None,
                 discriminator: torch.nn.Module | None = None):
        """generator: (n, latent) -> (n, D); discriminator: (n, D) -> (n, 1), or (n, features) for mmdgan;
        by default the networks `config.net` names, of the config's size."""
        super().__init__(data_shape, config)
        c = config
        self.net = self._pick_net()
        self.latent = c.latent or (IMAGE_LATENT if len(self.data_shape) == 3 else 2)
        d_out = c.features if c.loss == "mmdgan" else 1
        if self.net == "conv":
            self.G = generator or DCGANGenerator(self.latent, self.data_shape, c.channels)
            self.D = discriminator or DCGANDiscriminator(self.data_shape, d_out, c.channels, CRITIC_NORMS[c.loss])
            self.TRACES = self.IMAGE_TRACES
        else:
            self.G = generator or MLP(self.latent, self.dim, c.hidden, c.layers, "relu")
            self.D = discriminator or MLP(self.dim, d_out, c.hidden, c.layers, "leaky_relu")
        if discriminator is None and c.loss in ("wgan", "wgan_gp", "mmdgan"):
            # These objectives see the critic only through differences, D(x) - D(y) (a kernel of
            # u - v for mmdgan), so its output bias cancels and gets no gradient: fix it at zero.
            last = [m for m in self.D.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.bias.zero_()
            last.bias.requires_grad_(False)
        if c.loss not in ("gan", "nsgan"):  # only their D is a probability
            self.GRID_TRACES = {"critic": ("G",)}
        self._witness_real: torch.Tensor | None = None  # (m, D) last D step's data, for the mmd witness
        self._witness_fake: torch.Tensor | None = None  # (m, D) and its generated batch

    def _pick_net(self) -> str:
        is_image = len(self.data_shape) == 3
        if self.config.net == "auto":
            return "conv" if is_image else "mlp"
        if self.config.net == "conv" and not is_image:
            raise ConfigError(f"net=conv needs image data shaped (C, H, W); this data is shaped {self.data_shape}: "
                              "use net=mlp or auto")
        return self.config.net

    # ---- the players ----------------------------------------------------------
    @property
    def objective(self) -> objectives.Objective:
        return objectives.objective(self.config.loss, self.config.divergence, MMD_SIGMAS)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.G.parameters()).dtype

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent, dtype=self._dtype, device=self.device)

    def _critic_out(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """D's output on flat x: (n,) scores, or (n, D + features) kernel inputs [x, phi(x)] for mmdgan.

        frozen: D's weights enter as constants, so a G loss sends no gradient to D
        (and no parameter is changed, which keeps it thread-safe; a batch-norm critic in train
        mode still moves its running statistics, as DCGAN's generator step does).
        """
        if frozen:
            out = functional_call(self.D, {k: v.detach() for k, v in self.D.named_parameters()}, (x,))
        else:
            out = self.D(x)
        return torch.cat([x, out], 1) if self.config.loss == "mmdgan" else out.squeeze(1)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise DataError(f"expected a batch shaped (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        return self.flat(x)

    # ---- training -------------------------------------------------------------
    def phases(self, lr: float) -> list[Phase]:
        c = self.config
        betas = tuple(float(b) for b in c.betas.split(","))
        return [
            Phase("D", self.d_loss, list(self.D.parameters()), c.lr_d or lr, repeats=c.n_critic, betas=betas,
                  optimizer=c.optimizer),
            Phase("G", self.g_loss, list(self.G.parameters()), c.lr_g or lr, betas=betas, optimizer=c.optimizer),
        ]

    def loss(self, x: torch.Tensor) -> dict:
        """Both players' terms on one batch, for monitoring ("loss" is D's); training uses phases()."""
        return {**self.d_loss(x), "g_loss": self.g_loss(x)["g_loss"]}

    def d_loss(self, x: torch.Tensor) -> dict:
        """The discriminator's loss on data x and a fresh generated batch of the same size."""
        x = self._check(x)
        with torch.no_grad():
            fake = self.G(self._noise(len(x)))  # (n, D), a constant for D's step
        d_loss, d_real, d_fake = self.objective.d(self._critic_out(x), self._critic_out(fake))
        out = {"loss": d_loss, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake}
        if self.config.loss == "wgan_gp":
            out["gp"] = self.config.gp_weight * self._gradient_penalty(x, fake)
            out["loss"] = d_loss + out["gp"]
        if self.config.loss == "mmdgan":
            self._witness_real, self._witness_fake = x[:_WITNESS_REF].detach(), fake[:_WITNESS_REF].detach()
        return out

    def _gradient_penalty(self, x: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """E (|grad_x D(x_hat)| - 1)^2 on random interpolates (Gulrajani et al. 2017, eq. 3)."""
        eps = torch.rand(len(x), 1, dtype=x.dtype, device=x.device)
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)  # (n, D)
        (grad,) = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)  # (n, D)
        return ((grad.norm(dim=1) - 1.0) ** 2).mean()

    def g_loss(self, x: torch.Tensor) -> dict:
        """The generator's loss; x (data) is used only by mmdgan, whose loss is MMD^2(P, Q)."""
        x = self._check(x)
        obj = self.objective
        fake = self.G(self._noise(len(x)))  # (n, D)
        real = self._critic_out(x, frozen=True) if obj.g_needs_real else None
        g_loss = obj.g(self._critic_out(fake, frozen=True), real)
        return {"loss": g_loss, "g_loss": g_loss}

    @torch.no_grad()
    def after_phase(self, name: str) -> None:
        """WGAN and MMD GAN: clip every critic weight to [-clip, clip] after a D step."""
        if name == "D" and self.config.loss in ("wgan", "mmdgan"):
            c = float(self.config.clip)
            for p in self.D.parameters():
                p.clamp_(-c, c)

    def init_from_data(self, x: torch.Tensor) -> None:
        """Start the generator's output at the data mean (on DCGAN's, at each channel's mean grey level)."""
        x = self._check(x)
        if isinstance(self.G, DCGANGenerator):
            self.G.start_at(x.mean(0))
            return
        last = [m for m in self.G.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.bias.copy_(x.mean(0))

    # ---- sampling ---------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """x = G(z), z ~ N(0, I): (n, *data_shape)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self.unflat(self.G(self._noise(n)))

    # ---- live views ---------------------------------------------------------------
    @torch.no_grad()
    def critic(self, x: torch.Tensor, real: torch.Tensor | None = None, fake: torch.Tensor | None = None) -> torch.Tensor:
        """D's raw output at x: (n, *shape) -> (n,).

        For mmdgan, the witness mean_i k(u, u_i) - mean_j k(u, v_j) between the
        reference sets real and fake (default: the batches of the last D step).
        """
        return self._critic(*self._check_refs(x, real, fake))

    def _check_refs(self, x, real, fake):
        return self._check(x), None if real is None else self._check(real), None if fake is None else self._check(fake)

    def _critic(self, x: torch.Tensor, real=None, fake=None) -> torch.Tensor:
        if self.config.loss != "mmdgan":
            return self._critic_out(x)
        real = self._witness_real if real is None else real
        fake = self._witness_fake if fake is None else fake
        if real is None or fake is None:
            raise ConfigError("the mmd witness needs reference batches: pass real= and fake=, or run a D step first")
        u, u_real, u_fake = self._critic_out(x), self._critic_out(real), self._critic_out(fake)
        k = objectives.rbf_mixture
        return k(u, u_real, MMD_SIGMAS).mean(1) - k(u, u_fake, MMD_SIGMAS).mean(1)

    @torch.no_grad()
    def critic_prob(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) = sigmoid(output), the probability that x is data (loss gan or nsgan): (n,)."""
        if self.config.loss not in ("gan", "nsgan"):
            raise ConfigError(f"critic_prob is defined for loss gan or nsgan, whose D is a probability; this model uses {self.config.loss}")
        return torch.sigmoid(self._critic_out(self._check(x)))

    def critic_grad(self, x: torch.Tensor, real=None, fake=None) -> torch.Tensor:
        """grad_x of critic(x), the direction D pushes generated points: (n, *shape)."""
        return self.unflat(self._critic_grad(*self._check_refs(x, real, fake)))

    def _critic_grad(self, x: torch.Tensor, real=None, fake=None) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._critic(x, real, fake).sum(), x)
        return grad

    @torch.no_grad()
    def generator_on_grid(self, z_grid: torch.Tensor) -> torch.Tensor:
        """G on noise points given in the first k latent dims (others 0): (m, k) -> (m, *shape)."""
        L = self.latent
        if z_grid.ndim != 2 or not 1 <= z_grid.shape[1] <= L:
            raise ValueError(f"z_grid must be shaped (m, k) with 1 <= k <= latent = {L}, got {tuple(z_grid.shape)}")
        z = torch.cat([z_grid, z_grid.new_zeros(len(z_grid), L - z_grid.shape[1])], 1)
        return self.unflat(self.G(z.to(self._dtype)))

    def _noise_grid(self, m: int = 20) -> torch.Tensor:
        """m*m points over [-2.5, 2.5]^2 of the first two latent dims, row-major ((m, 1) if latent is 1)."""
        axis = torch.linspace(-2.5, 2.5, m, dtype=self._dtype, device=self.device)
        if self.latent == 1:
            return axis[:, None]
        zy, zx = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([zx.reshape(-1), zy.reshape(-1)], 1)

    def view_state(self) -> dict[str, torch.Tensor]:
        """mmdgan: the last D step's data and generated batches, the witness's reference sets."""
        if self._witness_real is None:
            return {}
        return {"witness_real": self._witness_real, "witness_fake": self._witness_fake}

    def load_view_state(self, state: dict[str, torch.Tensor]) -> None:
        if "witness_real" in state:
            self._witness_real, self._witness_fake = state["witness_real"], state["witness_fake"]

    def fixed_noise(self, m: int = FIXED_Z) -> torch.Tensor:
        """The first m of FIXED_Z noise vectors that are the same for every model of this latent size:
        (m, latent), drawn from a generator of its own, so the training RNG is left alone."""
        g = torch.Generator().manual_seed(FIXED_Z)
        z = torch.randn(FIXED_Z, self.latent, generator=g, dtype=self._dtype)
        return z[:m].to(self.device)

    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """samples (n, D); noise_grid (400, 2) and warped_grid (400, D) = G on it; critic_grad (n, D)
        at the samples; for 2D data with a grid, critic (G*G,) and, for gan/nsgan, critic_prob (G*G,).

        For mmdgan the critic is the witness between x and the samples. On DCGAN's networks
        (images) see _image_traces.
        """
        x = self._check(x)
        if self.net == "conv":
            return self._image_traces(x)
        fake = self.flat(self.sample(len(x)))  # (n, D)
        real_ref, fake_ref = (x[:_WITNESS_REF], fake[:_WITNESS_REF]) if self.config.loss == "mmdgan" else (None, None)
        z_grid = self._noise_grid()
        out = {
            "samples": to_numpy(fake),
            "noise_grid": to_numpy(z_grid),
            "warped_grid": to_numpy(self.flat(self.generator_on_grid(z_grid))),
            "critic_grad": to_numpy(self._critic_grad(fake, real_ref, fake_ref)),
        }
        if grid is not None and self.dim == 2:
            grid = grid.to(fake.dtype)
            with torch.no_grad():
                out["critic"] = to_numpy(self._critic(grid, real_ref, fake_ref))
                if self.config.loss in ("gan", "nsgan"):
                    out["critic_prob"] = to_numpy(torch.sigmoid(self._critic_out(grid)))
        return out

    @torch.no_grad()
    def _image_traces(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """samples (m, D) = G(z) on the first m = min(n, 64) fixed noise vectors; noise_grid (100, 2) and
        warped_grid (100, D) = G on it; critic_real (m,) and critic_fake (m,): D on x[:m] and on the
        samples, a probability for gan/nsgan, else the raw critic (the mmd witness for mmdgan)."""
        m = min(len(x), FIXED_Z)
        fake = self.G(self.fixed_noise(m))  # (m, D)
        real_ref, fake_ref = (x[:_WITNESS_REF], fake) if self.config.loss == "mmdgan" else (None, None)
        score = torch.sigmoid if self.config.loss in ("gan", "nsgan") else (lambda v: v)
        z_grid = self._noise_grid(IMAGE_GRID)
        return {
            "samples": to_numpy(fake),
            "noise_grid": to_numpy(z_grid),
            "warped_grid": to_numpy(self.flat(self.generator_on_grid(z_grid))),
            "critic_real": to_numpy(score(self._critic(x[:m], real_ref, fake_ref))),
            "critic_fake": to_numpy(score(self._critic(fake, real_ref, fake_ref))),
        }
