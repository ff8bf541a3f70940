"""Score SDEs (Song et al. 2021): a score network for the VP or VE SDE, reverse-SDE and ODE samplers.

    sde.py        the model: denoising score matching along the SDE's marginals, sampling,
                  the probability-flow ODE's density, score fields and traces
    samplers.py   the samplers by name: em, pc (predictor-corrector), ode (probability flow)

The SDEs, their reverses, the samplers and the likelihood are core.dynamics.sde's.
"""

from ...registry import Quality, register_family, register_model
from .samplers import SAMPLERS, make_sampler
from .sde import ScoreSDE, ScoreSDEConfig

register_family("sde", "Score SDEs", order=47)

register_model(
    "sde", ScoreSDE, ScoreSDEConfig,
    summary="Score SDE (Song et al. 2021): learn the score of data noised by a VP or VE SDE, then run the reverse-time SDE or the probability-flow ODE from noise",
    train={"lr": 1e-3, "batch_size": 512, "steps": 5000},
    quality=Quality("kl", 0.1),
)

__all__ = ["SAMPLERS", "ScoreSDE", "ScoreSDEConfig", "make_sampler"]
