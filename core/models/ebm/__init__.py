"""Energy-based models: an energy E_theta(x), p(x) proportional to exp(-E), learned by
contrastive divergence with Langevin negatives from a replay buffer.

    ebm.py      the model: the energy, its Langevin chain and buffer, the CD loss, the grid normaliser

The energy network is core.nets's (an MLP for points, core.nets.conv_energy for images);
Langevin dynamics is core.dynamics's, shared with the score-based models.
"""

from ...registry import Quality, register_family, register_model
from .ebm import EBM, EBMConfig

register_family("ebm", "Energy-based models", order=50)

register_model(
    "ebm", EBM, EBMConfig,
    summary="EBM (Du & Mordatch 2019): an energy E(x), p ~ exp(-E), trained by contrastive divergence with "
            "Langevin negatives from a replay buffer; density by grid normalisation on points, none on images",
    train={"lr": 1e-3, "batch_size": 256, "steps": 6000, "lr_schedule": "cosine"},
    train_images={"lr": 3e-4, "batch_size": 32, "steps": 3000},
    quality=Quality("kl", 0.1),
)

__all__ = ["EBM", "EBMConfig"]
