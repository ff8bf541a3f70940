"""Dynamics shared by every continuous-time model: schedules, ODEs, Langevin, SDEs.

    schedules   Gaussian paths x_t = alpha_t x_0 + sigma_t eps with t = 0 the data and
                t = 1 the noise, and the conversions eps <-> x_0 <-> score <-> velocity
    ode         fixed-step solvers that can return every state, divergences (exact and
                Hutchinson) and the likelihood by the instantaneous change of variables
    langevin    unadjusted and annealed Langevin samplers that can return their chains
    sde         VP and VE SDEs, the reverse-time SDE and probability-flow ODE, their samplers
                (Euler-Maruyama, predictor-corrector, ODE) and the ODE's likelihood
"""

from .langevin import annealed_langevin, langevin
from .ode import divergence, log_likelihood, odeint, rademacher
from .schedules import GaussianPath, LinearPath, NoiseSchedule
from .sde import SDE, VESDE, VPSDE, EulerMaruyama, PredictorCorrector, ProbabilityFlow, ReverseSDE, pf_log_likelihood

__all__ = ["GaussianPath", "LinearPath", "NoiseSchedule", "annealed_langevin", "divergence", "langevin",
           "log_likelihood", "odeint", "rademacher", "SDE", "VESDE", "VPSDE", "EulerMaruyama", "PredictorCorrector",
           "ProbabilityFlow", "ReverseSDE", "pf_log_likelihood"]
