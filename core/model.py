"""The one protocol every generative model speaks.

A model is an `nn.Module` built for a data shape (`(2,)` for points, `(1, 28, 28)`
for digits) and a config dataclass. The trainer knows nothing else about it:

- `phases()` lists the optimisation phases of one training step. Most families
  have one phase ("model"); a GAN has two ("D" repeated n_critic times, then
  "G"), so the alternating update lives in the trainer, once.
- a phase's loss maps a data batch to a dict of named scalar terms; the term
  "loss" is the one minimised, the others are shown (the ELBO's reconstruction
  and KL, a GAN's D and G losses).
- `sample(n)` draws n samples shaped like the data.
- `log_prob(x)` where the family has a density (exact for flows; documented
  estimates for the VAE and DDPM); otherwise it raises LogProbUnavailable.
- `traces(x, grid)` returns, as numpy arrays, what the family's live view draws.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .errors import LogProbUnavailable

LossFn = Callable[[torch.Tensor], dict]


@dataclasses.dataclass
class Phase:
    """One optimiser and the loss it minimises.

    repeats: how many batches this phase takes per training step (a GAN's
    discriminator steps per generator step); lr: its learning rate;
    betas: Adam's betas (GANs commonly use (0.5, 0.9)).
    """

    name: str
    loss: LossFn
    params: list
    lr: float
    repeats: int = 1
    betas: tuple = (0.9, 0.999)


class GenerativeModel(nn.Module):
    """Base class: shape bookkeeping, device and the default single phase."""

    family: ClassVar[str] = ""
    has_log_prob: ClassVar[bool] = False
    log_prob_is_exact: ClassVar[bool] = False
    # Models whose training loss needs per-batch post-processing (weight clipping)
    # override after_phase.

    def __init__(self, data_shape: tuple, config):
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.config = config
        self.register_buffer("_device_probe", torch.zeros(()), persistent=False)

    @property
    def dim(self) -> int:
        return math.prod(self.data_shape)

    @property
    def device(self) -> torch.device:
        return self._device_probe.device

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.dim)

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.data_shape)

    # ---- training -------------------------------------------------------
    def phases(self, lr: float) -> list[Phase]:
        return [Phase("model", self.loss, list(self.parameters()), lr)]

    def loss(self, x: torch.Tensor) -> dict:
        raise NotImplementedError

    def after_phase(self, name: str) -> None:
        """Called after each optimiser step of phase `name` (e.g. WGAN clipping)."""

    def init_from_data(self, x: torch.Tensor) -> None:
        """Called once with a first batch before training (e.g. ActNorm init)."""

    # ---- sampling and density ------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise LogProbUnavailable(f"{type(self).__name__} defines no density, so log_prob is unavailable")

    # ---- live views -----------------------------------------------------
    def traces(self, x: torch.Tensor, grid: torch.Tensor) -> dict[str, np.ndarray]:
        """What the family's live view draws, for a data batch x and plane grid.

        grid is (G*G, 2) points of the plane for 2D data (None otherwise).
        """
        return {}


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()
