"""Diffusion models: DDPM, its reverse samplers and the probability-flow ODE likelihood.

    ddpm.py         the model: forward noising, the eps-prediction loss, sampling, fields, traces
    samplers.py     reverse samplers (ancestral, DDIM) over respaced chains
    likelihood.py   log p(x) by the probability-flow ODE, integrated in the log-SNR

The noise schedule and the ODE solver are core.dynamics's, shared with every
continuous-time model.
"""

from ...dynamics.schedules import NoiseSchedule
from ...registry import Quality, register_family, register_model
from .ddpm import DDPM, DDPMConfig
from .samplers import DDIM, SAMPLERS, Ancestral, make_sampler

register_family("diffusion", "Diffusion models", order=40)

register_model(
    "ddpm", DDPM, DDPMConfig,
    summary="DDPM (Ho et al. 2020): learn to predict the noise added to data, then denoise step by step from pure noise",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
    train_images={"lr": 5e-4, "batch_size": 32, "steps": 6000},
    quality=Quality("mmd", 2.0, scale="floor"),
)

__all__ = ["DDPM", "DDPMConfig", "NoiseSchedule", "Ancestral", "DDIM", "SAMPLERS", "make_sampler"]
