"""Continuous-time flows: flow matching and a maximum-likelihood CNF, one ODE between noise and data.

    base.py            the velocity field v_theta(x, t), sampling, log p(x) by the ODE, traces
    flow_matching.py   conditional flow matching (Lipman et al. 2023): straight paths,
                       independent or minibatch-OT couplings (Tong et al. 2023), reflow (Liu et al. 2023)
    cnf.py             FFJORD (Grathwohl et al. 2019): maximum likelihood through the solver,
                       Hutchinson's trace estimate, an optional kinetic-energy penalty
    assignment.py      the exact linear assignment behind the minibatch OT coupling

Time runs the house way, t = 0 data and t = 1 noise; the ODE solvers and divergences
are core.dynamics.ode's.
"""

from ...registry import Quality, register_family, register_model
from .assignment import linear_sum_assignment
from .base import ContinuousFlow, straightness
from .cnf import CNF, CNFConfig, differentiable_log_prob
from .flow_matching import COUPLINGS, FlowMatching, FlowMatchingConfig, ot_pairing

register_family("continuous", "Flow matching and continuous flows", order=35)

register_model(
    "flow_matching", FlowMatching, FlowMatchingConfig,
    summary="Flow matching (Lipman et al. 2023): regress the velocity x_1 - x_0 of straight noise-data paths, then integrate the ODE",
    train={"lr": 1e-3, "batch_size": 256, "steps": 3000},
    train_images={"lr": 5e-4, "batch_size": 32, "steps": 6000},
    quality=Quality("kl", 0.1),
)

register_model(
    "cnf", CNF, CNFConfig,
    summary="CNF / FFJORD (Grathwohl et al. 2019): maximum likelihood through an ODE, with Hutchinson's trace estimate",
    train={"lr": 2e-3, "batch_size": 256, "steps": 1000},
    train_images={"lr": 1e-3, "batch_size": 64, "steps": 1000},  # an MLP on 784 dims: smaller batches
    quality=Quality("kl", 0.1),
)

__all__ = ["CNF", "CNFConfig", "COUPLINGS", "ContinuousFlow", "FlowMatching", "FlowMatchingConfig",
           "differentiable_log_prob", "linear_sum_assignment", "ot_pairing", "straightness"]
