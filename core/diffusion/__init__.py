"""Diffusion models: the noise schedule, reverse samplers, the probability-flow
ODE likelihood and DDPM, one concept per file."""

from ..registry import register_model
from .ddpm import DDPM, DDPMConfig
from .samplers import DDIM, SAMPLERS, Ancestral, make_sampler
from .schedule import NoiseSchedule

__all__ = ["DDPM", "DDPMConfig", "NoiseSchedule", "Ancestral", "DDIM", "SAMPLERS", "make_sampler"]

register_model(
    "ddpm", "diffusion", DDPM, DDPMConfig,
    summary="DDPM (Ho et al. 2020): learn to predict the noise added to data, then denoise step by step from pure noise",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
)
