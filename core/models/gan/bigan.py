"""BiGAN (Donahue et al. 2017, "Adversarial Feature Learning"), the same model as ALI
(Dumoulin et al. 2017) with a deterministic encoder.

A generator G maps z ~ p(z) = N(0, I) to data and an encoder E maps data to z. The
discriminator sees joint pairs: real (x, E(x)), x ~ p_data, against fake (G(z), z):

    min_{G,E} max_D  V(D, E, G) = E_x log D(x, E(x)) + E_z log(1 - D(G(z), z)).      (eq. 3)

For the optimal D (Prop. 1), D*(x, z) = dP_EX / d(P_EX + P_GZ) and
V(D*, E, G) = 2 JS(P_EX || P_GZ) - log 4, whose minimum needs the two joint laws to be
equal, which holds only when E = G^{-1} on the data (Thm. 2): matching the data's marginal
alone is not enough.

The objective's table (objectives.py) gives D's loss with D = sigmoid(output). The
generator and encoder play the other side: since 1 - D = sigmoid(-output), the encoder's
pairs enter the generator's term with the sign of the output flipped. "minimax" is eq. 3;
"non_saturating" (the default, as in the paper's experiments) minimises
-E log(1 - D(x, E(x))) - E log D(G(z), z), the labels swapped. sample(n) = G(z); no density.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.func import functional_call

from ...config import param
from ...errors import DataError
from ...model import GenerativeModel, Phase, to_numpy
from ...nets import MLP
from . import objectives
from .gan import BETAS

GENERATOR_LOSSES = {"non_saturating": "nsgan", "minimax": "gan"}  # -> the objective's name in objectives.py
NOISE_GRID = 20  # the noise grid's points per side


@dataclasses.dataclass
class BiGANConfig:
    generator_loss: str = param("non_saturating", choices=tuple(GENERATOR_LOSSES),
                                help="the generator's and encoder's side of the game")
    latent: int = param(2, lo=1, hi=512, help="dimension of the latent code z")
    hidden: int = param(128, lo=2, hi=4096, help="width of the three networks")
    layers: int = param(3, lo=1, hi=8, help="hidden layers of the three networks")
    lr_g: float = param(0.0, lo=0.0, hi=1.0, help="learning rate of G and E (0: the trainer's lr)", live=True)
    lr_d: float = param(0.0, lo=0.0, hi=1.0, help="discriminator learning rate (0: the trainer's lr)", live=True)
    betas: str = param("0.5,0.9", choices=BETAS, help="Adam's (beta1, beta2) for every network")


class BiGAN(GenerativeModel):
    """Generator G(z), encoder E(x), and a discriminator D(x, z) on joint pairs."""

    family = "gan"
    TRACES = {"samples": ("n", "D"), "codes": ("n", "L"), "prior": ("n", "L"), "reconstructions": ("n", "D"),
              "noise_grid": ("M", "K"), "warped_grid": ("M", "D"), "critic_grad": ("n", "D")}
    GRID_TRACES = {"critic": ("G",), "critic_prob": ("G",)}

    def __init__(self, data_shape: tuple, config: BiGANConfig, G: torch.nn.Module | None = None,
                 E: torch.nn.Module | None = None, D: torch.nn.Module | None = None):
        """G: (n, latent) -> (n, D); E: (n, D) -> (n, latent); D: (n, D + latent) -> (n, 1)."""
        super().__init__(data_shape, config)
        c = config
        self.G = G or MLP(c.latent, self.dim, c.hidden, c.layers, "relu")
        self.E = E or MLP(self.dim, c.latent, c.hidden, c.layers, "leaky_relu")
        self.D = D or MLP(self.dim + c.latent, 1, c.hidden, c.layers, "leaky_relu")

    @property
    def objective(self) -> objectives.Objective:
        return objectives.objective(GENERATOR_LOSSES[self.config.generator_loss])

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.D.parameters()).dtype

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent, dtype=self._dtype, device=self.device)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise DataError(f"expected a batch shaped (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        return self.flat(x).to(self._dtype)

    def joint(self, x: torch.Tensor, z: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """D's logit on pairs: flat x (n, D) and z (n, latent) -> (n,); frozen: D's weights as constants."""
        xz = torch.cat([x, z], 1)  # (n, D + latent)
        if frozen:
            return functional_call(self.D, {k: v.detach() for k, v in self.D.named_parameters()}, (xz,)).squeeze(1)
        return self.D(xz).squeeze(1)

    # ---- training -------------------------------------------------------------
    def phases(self, lr: float) -> list[Phase]:
        c = self.config
        betas = tuple(float(b) for b in c.betas.split(","))
        return [
            Phase("D", self.d_loss, list(self.D.parameters()), c.lr_d or lr, betas=betas),
            Phase("GE", self.g_loss, list(self.G.parameters()) + list(self.E.parameters()), c.lr_g or lr, betas=betas),
        ]

    def loss(self, x: torch.Tensor) -> dict:
        """Both sides' terms on one batch, for monitoring ("loss" is D's); training uses phases()."""
        return {**self.d_loss(x), "g_loss": self.g_loss(x)["loss"]}

    def d_loss(self, x: torch.Tensor) -> dict:
        """-V: real pairs (x, E(x)) against fake pairs (G(z), z), E and G held fixed."""
        x = self._check(x)
        with torch.no_grad():
            z = self._noise(len(x))
            e_x, g_z = self.E(x), self.G(z)
        d_loss, d_real, d_fake = self.objective.d(self.joint(x, e_x), self.joint(g_z, z))
        return {"loss": d_loss, "d_real": d_real, "d_fake": d_fake}

    def g_loss(self, x: torch.Tensor) -> dict:
        """G's and E's side: fake pairs should pass as real, real pairs as fake (sign of the logit flipped)."""
        x = self._check(x)
        z = self._noise(len(x))
        g_term = self.objective.g(self.joint(self.G(z), z, frozen=True), None)
        e_term = self.objective.g(-self.joint(x, self.E(x), frozen=True), None)
        return {"loss": g_term + e_term, "g_term": g_term, "e_term": e_term}

    def init_from_data(self, x: torch.Tensor) -> None:
        """Start the generator's output at the data mean."""
        x = self._check(x)
        if isinstance(self.G, MLP):
            with torch.no_grad():
                self.G[-1].bias.copy_(x.mean(0))

    # ---- sampling, encoding -----------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """x = G(z), z ~ N(0, I): (n, *data_shape)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self.unflat(self.G(self._noise(n)))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = E(x): (n, *data_shape) -> (n, latent)."""
        return self.E(self._check(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(E(x)): (n, *data_shape) -> (n, *data_shape)."""
        return self.unflat(self.G(self.E(self._check(x))))

    def _noise_grid(self) -> torch.Tensor:
        """NOISE_GRID^2 points over [-2.5, 2.5]^2 of the first two latent dims (others 0), row-major."""
        axis = torch.linspace(-2.5, 2.5, NOISE_GRID, dtype=self._dtype, device=self.device)
        if self.config.latent == 1:
            return axis[:, None]
        zy, zx = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([zx.reshape(-1), zy.reshape(-1)], 1)

    # ---- live views ---------------------------------------------------------------
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """samples (n, D) = G(z); codes (n, latent) = E(x) of the data x; prior (n, latent) = z;
        reconstructions (n, D) = G(E(x)); noise_grid (M, k) and warped_grid (M, D) = G on it;
        critic_grad (n, D) = grad_x D(x, z) at the fake pairs (the generator's pull); with a 2D
        grid, critic (G*G,) = D's logit at (x, E(x)) and critic_prob its sigmoid."""
        x = self._check(x)
        z = self._noise(len(x))
        z_grid = self._noise_grid()
        with torch.no_grad():
            g_z, e_x = self.G(z), self.E(x)
            recon = self.G(e_x)
            z_full = torch.cat([z_grid, z_grid.new_zeros(len(z_grid), self.config.latent - z_grid.shape[1])], 1)
            warped = self.G(z_full)
        with torch.enable_grad():
            at = g_z.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.joint(at, z).sum(), at)
        out = {"samples": to_numpy(g_z), "codes": to_numpy(e_x), "prior": to_numpy(z),
               "reconstructions": to_numpy(recon), "noise_grid": to_numpy(z_grid), "warped_grid": to_numpy(warped),
               "critic_grad": to_numpy(grad)}
        if grid is not None and self.dim == 2:
            grid = grid.to(self._dtype)
            with torch.no_grad():
                logit = self.joint(grid, self.E(grid))
            out["critic"], out["critic_prob"] = to_numpy(logit), to_numpy(torch.sigmoid(logit))
        return out
