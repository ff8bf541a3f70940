"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"), on 2D point sets.

Two unpaired domains: A (the `source` dataset, drawn by the model itself) and B (the
dataset of the run, the target). Two maps G: A -> B and F: B -> A and two discriminators
D_B (B vs G(a)) and D_A (A vs F(b)) play the least-squares game of the paper (Sec. 4,
LSGAN's targets 0 and 1, objectives.py), tied by cycle consistency (eq. 2):

    L_cyc(G, F) = E_a |F(G(a)) - a|_1 + E_b |G(F(b)) - b|_1,
    L_idt(G, F) = E_b |G(b) - b|_1 + E_a |F(a) - a|_1                  (Sec. 5.2, optional)

    D_B minimises 1/2 E_b (D_B(b) - 1)^2 + 1/2 E_a D_B(G(a))^2        (D_A alike on a, F(b))
    G, F minimise E_a (D_B(G(a)) - 1)^2 + E_b (D_A(F(b)) - 1)^2 + lambda L_cyc + lambda_idt L_idt

(eq. 3 with the paper's least-squares losses; lambda = 10 in the paper, and the identity
weight is 0.5 lambda where it is used). G and F take one Adam step together, then each
discriminator one. The paper's buffer of 50 past generated images for D is left out: each
discriminator sees the current maps' outputs only.

sample(n) = G(a) for fresh a ~ A, so the run's sample metrics compare G(A) with B.
There is no density: log_prob raises LogProbUnavailable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ...config import param
from ...data.base import Batch
from ...errors import ConfigError, DataError
from ...model import GenerativeModel, Phase, to_numpy
from ...nets import MLP
from . import objectives
from .gan import BETAS

SOURCES = ("two_moons", "eight_gaussians", "twenty_five_gaussians", "swiss_roll", "spirals", "rings", "pinwheel",
           "checkerboard")  # the built-in 2D datasets
LINKS = 60  # lines drawn from a to G(a) in the live view
_VIEW_SEED = 7  # the source points the live view translates, the same in every picture


@dataclasses.dataclass
class CycleGANConfig:
    source: str = param("two_moons", choices=SOURCES, help="domain A, translated into the chosen dataset (domain B)")
    hidden: int = param(128, lo=2, hi=4096, help="width of the four networks")
    layers: int = param(3, lo=1, hi=8, help="hidden layers of the four networks")
    cycle_weight: float = param(10.0, lo=0.0, hi=1000.0, help="lambda: weight of the cycle-consistency loss",
                                live=True)
    identity_weight: float = param(0.0, lo=0.0, hi=1000.0, help="weight of the identity loss |G(b) - b| + "
                                   "|F(a) - a| (the paper's 0.5 lambda where used; 0: off)", live=True)
    lr_g: float = param(0.0, lo=0.0, hi=1.0, help="learning rate of G and F (0: the trainer's lr)", live=True)
    lr_d: float = param(0.0, lo=0.0, hi=1.0, help="learning rate of D_A and D_B (0: the trainer's lr)", live=True)
    betas: str = param("0.5,0.999", choices=BETAS, help="Adam's (beta1, beta2) for every network")


def _frozen(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """net(x) with its weights as constants: the generators' loss sends no gradient to a discriminator."""
    return functional_call(net, {k: v.detach() for k, v in net.named_parameters()}, (x,))


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E |x - y|_1, the sum over coordinates averaged over the batch: (n, D), (n, D) -> ()."""
    return (x - y).abs().sum(1).mean()


class CycleGAN(GenerativeModel):
    """Maps G: A -> B and F: B -> A, discriminators D_A and D_B; A is `config.source`."""

    family = "gan"
    batch_fields = ("x", "a")  # x: points of B (the run's dataset); a: points of A (own_data)
    data_kinds = ("points",)
    TRACES = {"samples": ("n", "D"), "critic_grad": ("n", "D"), "source": ("n", "D"), "back": ("n", "D"),
              "round_trip": ("n", "D"), "cycle_error": ()}
    GRID_TRACES = {"critic": ("G",)}

    def __init__(self, data_shape: tuple, config: CycleGANConfig, G: nn.Module | None = None,
                 F: nn.Module | None = None):
        """G: (n, 2) -> (n, 2) from A to B and F back (by default MLPs of the config's size)."""
        super().__init__(data_shape, config)
        if self.data_shape != (2,):
            raise ConfigError(f"cyclegan translates between 2D point sets; it cannot be built for data shaped "
                              f"{self.data_shape}: pick a 2D dataset")
        from ...registry import load_dataset

        c = config
        self.source = load_dataset(c.source)  # domain A
        self.G = G or MLP(2, 2, c.hidden, c.layers, "relu")
        self.F = F or MLP(2, 2, c.hidden, c.layers, "relu")
        self.D_A = MLP(2, 1, c.hidden, c.layers, "leaky_relu")
        self.D_B = MLP(2, 1, c.hidden, c.layers, "leaky_relu")

    @property
    def lsgan(self) -> objectives.Objective:
        return objectives.objective("lsgan")

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.D_B.parameters()).dtype

    def _draw_a(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.source.sample(n, generator).to(self.device, self._dtype)  # (n, 2)

    def own_data(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """Domain A: n points of the source dataset, drawn apart from the data's own seed."""
        return {"a": self.source.training_set(n, seed + 1)}

    def _domains(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) of a batch; a plain tensor is B alone, and A is then drawn afresh."""
        b = batch["x"] if isinstance(batch, Batch) else batch
        if b.ndim != 2 or b.shape[1] != 2:
            raise DataError(f"expected points of domain B shaped (n, 2), got {tuple(b.shape)}")
        a = batch["a"] if isinstance(batch, Batch) else self._draw_a(len(b))
        if a.shape != b.shape:
            raise DataError(f"a batch holds as many points of A as of B, shaped (n, 2): got {tuple(a.shape)} "
                            f"and {tuple(b.shape)}")
        return a.to(b.dtype), b

    # ---- training -------------------------------------------------------------
    def phases(self, lr: float) -> list[Phase]:
        c = self.config
        betas = tuple(float(v) for v in c.betas.split(","))
        generators = list(self.G.parameters()) + list(self.F.parameters())
        return [
            Phase("G", self.g_loss, generators, c.lr_g or lr, betas=betas),
            Phase("D_A", self.d_a_loss, list(self.D_A.parameters()), c.lr_d or lr, betas=betas),
            Phase("D_B", self.d_b_loss, list(self.D_B.parameters()), c.lr_d or lr, betas=betas),
        ]

    def loss(self, batch) -> dict:
        """Every player's terms on one batch, for monitoring ("loss" is the generators'); training uses phases()."""
        return {**self.g_loss(batch), "d_a": self.d_a_loss(batch)["loss"], "d_b": self.d_b_loss(batch)["loss"]}

    def cycle_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """L_cyc = E |F(G(a)) - a|_1 + E |G(F(b)) - b|_1 (eq. 2)."""
        return l1(self.F(self.G(a)), a) + l1(self.G(self.F(b)), b)

    def g_loss(self, batch) -> dict:
        a, b = self._domains(batch)
        c = self.config
        g_a, f_b = self.G(a), self.F(b)  # (n, 2) each
        # objectives' lsgan generator term is 1/2 E (D - 1)^2; the paper's is twice that
        adv_b = 2 * self.lsgan.g(_frozen(self.D_B, g_a).squeeze(1), None)
        adv_a = 2 * self.lsgan.g(_frozen(self.D_A, f_b).squeeze(1), None)
        cycle = l1(self.F(g_a), a) + l1(self.G(f_b), b)
        loss = adv_b + adv_a + c.cycle_weight * cycle
        out = {"g_adv": adv_b, "f_adv": adv_a, "cycle": cycle}
        if c.identity_weight > 0:
            out["identity"] = l1(self.G(b), b) + l1(self.F(a), a)
            loss = loss + c.identity_weight * out["identity"]
        return {"loss": loss, **out}

    def _d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, side: str) -> dict:
        d_loss, d_real, d_fake = self.lsgan.d(D(real).squeeze(1), D(fake.detach()).squeeze(1))
        return {"loss": d_loss, f"d{side}_real": d_real, f"d{side}_fake": d_fake}  # mean outputs on each

    def d_a_loss(self, batch) -> dict:
        """D_A: points of A against F(b)."""
        a, b = self._domains(batch)
        with torch.no_grad():
            f_b = self.F(b)
        return self._d_loss(self.D_A, a, f_b, "a")

    def d_b_loss(self, batch) -> dict:
        """D_B: points of B against G(a)."""
        a, b = self._domains(batch)
        with torch.no_grad():
            g_a = self.G(a)
        return self._d_loss(self.D_B, b, g_a, "b")

    def init_from_data(self, batch) -> None:
        """Start G's output at B's mean and F's at A's."""
        a, b = self._domains(batch)
        with torch.no_grad():
            for net, mean in ((self.G, b.mean(0)), (self.F, a.mean(0))):
                if isinstance(net, MLP):
                    net[-1].bias.copy_(mean)

    # ---- sampling -----------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """G(a) for a fresh a ~ A: (n, 2)."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self.G(self._draw_a(n))

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str = "A->B") -> torch.Tensor:
        """G(x) for direction "A->B", F(x) for "B->A": (n, 2) -> (n, 2)."""
        if direction not in ("A->B", "B->A"):
            raise ValueError(f"direction must be 'A->B' or 'B->A', got {direction!r}")
        return (self.G if direction == "A->B" else self.F)(x.to(self._dtype))

    # ---- live views ---------------------------------------------------------------
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """source (n, 2) fixed points a of A; samples (n, 2) = G(a); back (n, 2) = F(b) for the data b = x;
        round_trip (n, 2) = F(G(a)); cycle_error () = E |F(G(a)) - a|_1; critic_grad (n, 2) = grad D_B
        at G(a) (the pull on the translated points); with a grid, critic (G*G,) = D_B on it."""
        b = x.reshape(len(x), -1).to(self._dtype)
        if b.shape[1] != 2:
            raise DataError(f"expected points shaped (n, 2), got {tuple(x.shape)}")
        a = self._draw_a(len(b), torch.Generator().manual_seed(_VIEW_SEED))
        with torch.no_grad():
            g_a = self.G(a)
            round_trip, f_b = self.F(g_a), self.F(b)
        with torch.enable_grad():
            at = g_a.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.D_B(at).sum(), at)
        out = {"source": to_numpy(a), "samples": to_numpy(g_a), "back": to_numpy(f_b),
               "round_trip": to_numpy(round_trip), "cycle_error": to_numpy(l1(round_trip, a)),
               "critic_grad": to_numpy(grad)}
        if grid is not None:
            with torch.no_grad():
                out["critic"] = to_numpy(self.D_B(grid.to(self._dtype)).squeeze(1))
        return out
