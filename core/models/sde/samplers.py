"""The reverse samplers of the score SDE model, picked by name (score_sde_pytorch's registry).

    em     Euler-Maruyama on the reverse-time SDE
    pc     predictor-corrector: Langevin corrector steps at signal-to-noise ratio snr, then a
           reverse-diffusion (or Euler-Maruyama) predictor step, Song et al. 2021 Alg. 1 and app. G
    ode    the probability-flow ODE by RK4, deterministic

The samplers themselves are core.dynamics.sde's, shared with any model that has a score.
"""

from __future__ import annotations

from ...dynamics.sde import PREDICTORS, EulerMaruyama, PredictorCorrector, ProbabilityFlow, Sampler
from ...errors import ConfigError

SAMPLERS = {"em": EulerMaruyama, "pc": PredictorCorrector, "ode": ProbabilityFlow}


def make_sampler(name: str, steps: int, snr: float = 0.16, predictor: str = "reverse_diffusion",
                 corrector_steps: int = 1) -> Sampler:
    """A sampler by name with `steps` steps from t = 1 to t_min (snr, predictor and
    corrector_steps matter for pc only)."""
    if name not in SAMPLERS:
        raise ConfigError(f"sampler={name!r} is not allowed; choose one of: {', '.join(SAMPLERS)}")
    if name == "pc":
        return PredictorCorrector(steps, predictor=predictor, snr=snr, corrector_steps=corrector_steps)
    return SAMPLERS[name](steps)


__all__ = ["PREDICTORS", "SAMPLERS", "make_sampler"]
