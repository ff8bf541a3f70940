"""Score-based models: learn grad_x log p of the (blurred) data, sample by Langevin dynamics.

    base.py    the shared part: score_at any level, chains from the data's spread, traces
    dsm.py     denoising score matching at one noise level (Vincent 2011)
    ssm.py     sliced score matching, plain and variance-reduced (Song et al. 2019)
    ncsn.py    a noise-conditional score network over a ladder of levels, annealed Langevin
               (Song & Ermon 2019)

The networks are core.nets's and the samplers core.dynamics.langevin's.
"""

from ...registry import Quality, register_family, register_model
from .base import ScoreModel
from .dsm import DSM, DSMConfig
from .ncsn import NCSN, NCSNConfig
from .ssm import SSM, SSMConfig, explicit_score_matching, sliced_score_matching

register_family("score", "Score-based models", order=45)

register_model(
    "dsm", DSM, DSMConfig,
    summary="Denoising score matching (Vincent 2011): learn the score of the data blurred by one noise level, sample by Langevin dynamics",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
    quality=Quality("mmd", 2.0, scale="floor"),
)
register_model(
    "ssm", SSM, SSMConfig,
    summary="Sliced score matching (Song et al. 2019): score matching with random projections, sample by Langevin dynamics",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
    quality=Quality("mmd", 2.0, scale="floor"),
)
register_model(
    "ncsn", NCSN, NCSNConfig,
    summary="Noise-conditional score network (Song & Ermon 2019): one score network over a ladder of noise levels, annealed Langevin sampling",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
    train_images={"lr": 5e-4, "batch_size": 32, "steps": 6000},
    quality=Quality("mmd", 2.0, scale="floor"),
)

__all__ = ["DSM", "DSMConfig", "NCSN", "NCSNConfig", "SSM", "SSMConfig", "ScoreModel",
           "explicit_score_matching", "sliced_score_matching"]
