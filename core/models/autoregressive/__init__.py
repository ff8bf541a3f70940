"""Autoregressive densities: the chain rule p(x) = prod_i p(x_i | x_<i), one conditional at a time.

    made_mog.py   RNADE-style: a MADE gives each conditional a mixture of Gaussians (Uria et al. 2013)
"""

from ...registry import Quality, register_family, register_model
from .made_mog import MADEMoG, MADEMoGConfig

register_family("autoregressive", "Autoregressive models", order=55)

register_model(
    "made_mog", MADEMoG, MADEMoGConfig,
    summary="MADE with a mixture of K Gaussians per conditional p(x_i | x_<i) (RNADE, Uria et al. 2013): "
            "exact density in one pass, sampling in D",
    train={"lr": 2e-3, "batch_size": 512, "steps": 2000},
    quality=Quality("kl", 0.1),
)

__all__ = ["MADEMoG", "MADEMoGConfig"]
