"""Gaussian mixtures fitted by expectation-maximisation: the shallow baseline.

    gmm.py   K full-covariance components, E and M steps on a fixed set (Dempster et al. 1977)
"""

from ...registry import Quality, register_family, register_model
from .gmm import GMM, INITS, GMMConfig, kmeans_plus_plus

register_family("mixture", "Gaussian mixtures (EM)", order=60)

register_model(
    "gmm", GMM, GMMConfig,
    summary="Gaussian mixture with full covariances fitted by EM (Dempster et al. 1977): "
            "no gradients, one E and M step per training step",
    train={"batch_size": 4096, "steps": 100},
    quality=Quality("kl", 0.1),
)

__all__ = ["GMM", "GMMConfig", "INITS", "kmeans_plus_plus"]
