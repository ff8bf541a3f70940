"""What a phase's parameters are updated with: its optimiser, the learning rate over a run,
and an exponential moving average of the weights.

    make_optimizer(phase)        Adam, RMSprop or SGD, as the phase asks
    lr_multiplier(step, cfg)     a plain function of the step (as in nanoGPT): linear warm-up
                                 over cfg.warmup steps, then constant, or cosine or linear decay
                                 to a tenth of the rate at cfg.steps
    EMA                          theta_ema <- d theta_ema + (1 - d) theta after every step, with
                                 d_k = min(decay, (1 + k) / (10 + k)) so that the average of a
                                 young run is not dominated by its random start
"""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig
from ..model import Phase

FINAL_FRACTION = 0.1  # where the cosine and linear schedules end, as a fraction of the learning rate


def make_optimizer(phase: Phase) -> torch.optim.Optimizer:
    if phase.optimizer == "adam":
        return torch.optim.Adam(phase.params, lr=phase.lr, betas=phase.betas)
    if phase.optimizer == "rmsprop":
        return torch.optim.RMSprop(phase.params, lr=phase.lr, alpha=phase.betas[1], momentum=phase.momentum)
    return torch.optim.SGD(phase.params, lr=phase.lr, momentum=phase.momentum)


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """The factor on every phase's learning rate at optimisation step `step` (0-based)."""
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return warm
    progress = min(1.0, step / max(cfg.steps, 1))
    if cfg.lr_schedule == "cosine":
        decay = FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    else:  # linear
        decay = 1.0 - (1 - FINAL_FRACTION) * progress
    return warm * decay


def scheduled(cfg: TrainConfig) -> bool:
    """Whether the learning rate changes over the run at all (else nothing is set per step)."""
    return cfg.lr_schedule != "constant" or cfg.warmup > 0


class EMA:
    """An exponential moving average of a model's floating-point parameters, by name."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimisation step `step` (1-based): shadow <- d shadow + (1 - d) param."""
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    def state(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        for name, s in zip(self.names, self.shadow):
            s.copy_(state[name])
