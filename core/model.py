"""The one protocol every generative model speaks.

A model is an `nn.Module` built for a data shape (`(2,)` for points, `(1, 28, 28)`
for digits) and a config dataclass. The trainer knows nothing else about it:

- `phases(lr)` lists what one training step does, in order. Most families
  have one gradient phase ("model"); a GAN has two ("D" repeated n_critic
  times, then "G"). A phase picks its optimiser and betas, and a phase may
  be an `update` instead of a loss: a step that is not a gradient step (an
  EM update, refreshing a replay buffer).
- a phase's loss maps a batch to a dict of named scalar terms; the term
  "loss" is the one minimised, the others are shown (the ELBO's
  reconstruction and KL, a GAN's D and G losses). A batch is the data tensor
  (n, *shape), or a `core.data.Batch` of several tensors when the model asks
  for more fields than "x" (labels; two unpaired domains).
- `sample(n)` draws n samples shaped like the data.
- `log_prob(x)` where the family has a density (exact for flows; documented
  estimates for the VAE and DDPM); otherwise it raises LogProbUnavailable.
- `traces(x, grid, **options)` returns, as numpy arrays, what the family's
  live view draws; `TRACES` declares their shapes (checked by `check_traces`),
  and `options` are the view's controls (a time t for a field).

What the trainer used to infer from a family's name, a model declares:
`live_kl` (its log_prob is cheap enough to score KL while it trains),
`density_note` (how its log_prob is computed, shown beside its KL),
`ema_decay()` (an exponential moving average of the weights that pictures
and samples use), `view_state()` (a small piece of state beside the weights
that the pictures need) and `batch_fields` (what a batch carries), with
`own_data(n, seed)` for fields it draws itself (a CycleGAN's source domain),
`data_kinds` (points, images or both) and `pixels`, how it reads images
(core.data.pixels: grey levels, binarized, dequantized). On images sample(n)
returns grey levels in [0, 1], whatever range the network works in.
A model that learns a score declares `score_levels()`, the noise levels it
learns it at, and `score_at(x, alpha, sigma)`; its score is then compared
with the data's exact score while it trains (core.metrics.score_error).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .errors import LogProbUnavailable

LossFn = Callable[[object], dict]
OPTIMIZERS = ("adam", "rmsprop", "sgd")
VIEW_STATE_MAX_ELEMENTS = 1 << 18  # what view_state() may hold: it travels with every picture's weights


@dataclasses.dataclass
class Phase:
    """One part of a training step: an optimiser and the loss it minimises, or an update.

    repeats: batches this phase takes per training step (a GAN's discriminator
    steps per generator step); lr: its learning rate; optimizer: adam, rmsprop
    or sgd; betas: Adam's (beta1, beta2), or RMSprop's smoothing constant as
    betas[1]; momentum: SGD's and RMSprop's; update: instead of loss and
    params, a function batch -> terms that changes the model itself (no
    gradient, no optimiser).
    """

    name: str
    loss: LossFn | None = None
    params: list = dataclasses.field(default_factory=list)
    lr: float = 1e-3
    repeats: int = 1
    betas: tuple = (0.9, 0.999)
    optimizer: str = "adam"
    momentum: float = 0.0
    update: Callable[[object], dict] | None = None

    def __post_init__(self):
        if (self.loss is None) == (self.update is None):
            raise ValueError(f"phase {self.name!r} needs either a loss or an update, not both")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"phase {self.name!r}: optimizer must be one of {', '.join(OPTIMIZERS)}")

    @property
    def is_gradient(self) -> bool:
        return self.loss is not None


class GenerativeModel(nn.Module):
    """Base class: shape bookkeeping, device, the default single phase and declarations."""

    family: ClassVar[str] = ""
    has_log_prob: ClassVar[bool] = False
    log_prob_is_exact: ClassVar[bool] = False
    live_kl: ClassVar[bool] = False  # score KL(p_data || q) in the live metrics
    density_note: ClassVar[str] = ""  # e.g. "IWAE estimate": how log_prob is computed, if not exactly
    batch_fields: ClassVar[tuple] = ("x",)  # what a training batch carries (core.data.base.TrainingData)
    data_kinds: ClassVar[tuple] = ("points", "images")  # which data the model is built for
    # How it reads images in [0, 1] (core.data.pixels): "grey", "binary" (redrawn every batch),
    # "threshold" or "dequantized"; its loss applies pixels.view itself, its log_prob on images
    # takes that view, and its NLL is reported in nats (bits/dim) of the discrete digit.
    pixels: ClassVar[str] = "grey"
    # Samples the metrics draw on images (a classifier's histogram, a Fréchet distance): fewer
    # for a model whose sampling takes a network pass per pixel.
    metric_samples: ClassVar[int] = 256
    # Trace key -> dims, checked by check_traces. A dim is a number, "D" (the flat data
    # dimension), "x" (the data shape, *data_shape), "n" (the points given to traces), "G"
    # (the grid's points), or another name, optionally with "+1" or "-1": every use of one
    # name must agree. GRID_TRACES come only for 2D data with a grid, TRACES always.
    TRACES: ClassVar[dict[str, tuple]] = {}
    GRID_TRACES: ClassVar[dict[str, tuple]] = {}

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

    def loss(self, x) -> dict:
        raise NotImplementedError

    def after_phase(self, name: str) -> None:
        """Called after each optimiser step of phase `name` (e.g. WGAN's weight clipping)."""

    def init_from_data(self, x: torch.Tensor) -> None:
        """Called once with a first batch before training (e.g. ActNorm init)."""

    def ema_decay(self) -> float:
        """Decay of an exponential moving average of the weights (0: none); pictures and samples
        then use the average. Read from a config field `ema` where the model has one."""
        return float(getattr(self.config, "ema", 0.0) or 0.0)

    def view_state(self) -> dict[str, torch.Tensor]:
        """A small, bounded piece of state beside the weights that the pictures need (at most
        VIEW_STATE_MAX_ELEMENTS numbers); it travels with the weights to the process that draws."""
        return {}

    def load_view_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take a view_state() from the model that trains."""

    def own_data(self, n: int, seed: int) -> dict[str, torch.Tensor]:
        """Fields of batch_fields the model draws itself, n rows each, as one group of the
        training data beside the dataset's (a CycleGAN's source domain); {} for none."""
        return {}

    # ---- scores ---------------------------------------------------------
    def score_levels(self) -> list[tuple[float, float]]:
        """(alpha, sigma) of each noised law alpha X + sigma eps (X ~ data) whose score
        grad log p the model learns, where its score_at is compared with the exact one; [] for none."""
        return []

    def score_at(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The model's estimate of the score of alpha X + sigma eps at x: (n, *shape) -> (n, *shape)."""
        raise NotImplementedError(f"{type(self).__name__} learns no score")

    # ---- sampling and density ------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise LogProbUnavailable(f"{type(self).__name__} defines no density, so log_prob is unavailable")

    # ---- live views -----------------------------------------------------
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """What the family's live view draws, for a data batch x and plane grid.

        grid is (G*G, 2) points of the plane for 2D data (None otherwise).
        """
        return {}


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


_NAMED = re.compile(r"^([A-Za-z_]\w*)([+-]\d+)?$")


def check_traces(model: GenerativeModel, traces: dict, n: int, grid_points: int | None) -> list[str]:
    """Problems of `traces` against the model's TRACES and GRID_TRACES (empty when they match).

    n: the points given to traces(); grid_points: G, or None without a grid.
    Every declared key must be present (GRID_TRACES only with a grid), no
    undeclared key may appear, and the shapes must fit the declared dims.
    """
    problems, bound = [], {"D": model.dim, "n": n}
    expected = dict(model.TRACES)
    if grid_points is not None:
        bound["G"] = grid_points
        expected.update(model.GRID_TRACES)
    for key in traces:
        if key not in expected:
            problems.append(f"{key!r} is not declared in {type(model).__name__}.TRACES"
                            + ("" if grid_points is not None else " (GRID_TRACES come only with a grid)"))
    for key, dims in expected.items():
        if key not in traces:
            problems.append(f"{key!r} is missing")
            continue
        value = np.asarray(traces[key])
        want = [d for dim in dims for d in (model.data_shape if dim == "x" else (dim,))]
        if value.ndim != len(want):
            problems.append(f"{key!r} has shape {value.shape}, expected {len(want)} dims {tuple(dims)}")
            continue
        for size, d in zip(value.shape, want):
            if isinstance(d, int):
                ok = size == d
            else:
                name, offset = _NAMED.match(d).groups()
                value_of_name = size - int(offset or 0)
                ok = bound.setdefault(name, value_of_name) == value_of_name
            if not ok:
                problems.append(f"{key!r} has shape {value.shape}, which does not fit {tuple(dims)} with {bound}")
                break
        if not np.issubdtype(value.dtype, np.number):
            problems.append(f"{key!r} is not numeric")
    return problems
