"""SDEs, their reverses and samplers, checked against Gaussian data where all is closed form.

For data N(m, s^2 I) the marginal of either SDE is p_t = N(alpha_t m, v_t I) with
v_t = alpha_t^2 s^2 + sigma_t^2, so the exact score along the path is
grad log p_t(x) = -(x - alpha_t m) / v_t: plugged into a sampler it must give back
N(m, s^2 I), and into the probability-flow ODE the exact log-density.
"""

import math

import pytest
import torch

from core.dynamics.sde import (VESDE, VPSDE, EulerMaruyama, PredictorCorrector, ProbabilityFlow, ReverseSDE,
                               pf_log_likelihood)
from core.errors import ConfigError

F64 = torch.float64
M, S = torch.tensor([1.0, -0.5], dtype=F64), 0.5
SDES = {"vp": lambda: VPSDE(0.1, 20.0), "ve": lambda: VESDE(0.01, 10.0)}


def tt(t):
    return torch.as_tensor(t, dtype=F64)


def exact_score(sde, m=M, s=S):
    def score(x, t):
        a, sig = sde.alpha(t.to(F64)).to(x), sde.sigma(t.to(F64)).to(x)
        return -(x - a * m) / (a**2 * s**2 + sig**2)
    return score


def gaussian_log_prob(x, mean, var):
    var = torch.as_tensor(var, dtype=x.dtype)
    return (-0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(1)


def p_t(sde, t, m=M, s=S):
    """Mean and variance of the marginal of data N(m, s^2 I) at time t."""
    a, sig = sde.alpha(tt(t)), sde.sigma(tt(t))
    return a * m, a**2 * s**2 + sig**2


# ---- the forward SDE and its closed-form marginals ---------------------------

@pytest.mark.parametrize("kind", SDES)
def test_forward_euler_maruyama_from_a_point_matches_the_marginal(kind):
    """Simulating dx = f dt + g dw from x_0 gives N(alpha_t x_0, sigma_t^2 I) at t = 0.3 and 1
    (up to Euler-Maruyama's bias, below 1% in the std at 400 steps)."""
    sde = SDES[kind]()
    n, steps = 10_000, 400
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([1.5, -2.0], dtype=F64)
    x, t, dt = x0.expand(n, 2).clone(), 0.0, 1.0 / steps
    for k in range(steps):
        x = x + sde.drift(x, tt([t])) * dt + float(sde.diffusion(t)) * math.sqrt(dt) * torch.randn(n, 2, generator=g, dtype=F64)
        t = (k + 1) * dt
        if k + 1 in (120, 400):
            mean, std = sde.marginal(x0[None], t)
            assert torch.allclose(x.mean(0), mean[0], atol=5 * float(std) / math.sqrt(n) + 2e-3), (k, x.mean(0), mean)
            assert torch.allclose(x.std(0), std[0].expand(2), rtol=5 / math.sqrt(2 * n) + 1e-2), (k, x.std(0), std)


@pytest.mark.parametrize("kind", SDES)
def test_marginals_solve_the_moment_equations_of_the_sde(kind):
    """For f = k(t) x: d alpha/dt = k alpha and d sigma^2/dt = 2 k sigma^2 + g^2, with alpha_0 = 1, sigma_0 = 0."""
    sde = SDES[kind]()
    t = torch.linspace(0.01, 1.0, 23, dtype=F64).requires_grad_(True)
    alpha, sigma = sde.alpha(t) + 0 * t, sde.sigma(t)  # + 0 t: the VE SDE's alpha_t = 1 is a constant
    d_alpha = torch.autograd.grad(alpha.sum(), t, retain_graph=True)[0]
    d_sigma = torch.autograd.grad(sigma.sum(), t)[0]
    t, alpha, sigma = t.detach(), alpha.detach(), sigma.detach()
    k = torch.stack([sde.drift(torch.ones(1, 1, dtype=F64), tt([ti]))[0, 0] for ti in t.tolist()])  # f(1, t)
    g2 = torch.stack([sde.diffusion(ti) ** 2 for ti in t.tolist()])
    assert torch.allclose(d_alpha, k * alpha, rtol=1e-10, atol=1e-12)
    assert torch.allclose(2 * sigma * d_sigma, 2 * k * sigma**2 + g2, rtol=1e-10, atol=1e-12)
    assert torch.allclose(sde.d_alpha(t), d_alpha, rtol=1e-10, atol=1e-12)
    assert torch.allclose(sde.d_sigma(t), d_sigma, rtol=1e-10)
    zero = tt([0.0])
    assert float(sde.alpha(zero)) == 1.0 and float(sde.sigma(zero)) == 0.0


def test_closed_forms_of_the_two_sdes():
    vp, ve = VPSDE(0.1, 20.0), VESDE(0.01, 10.0)
    t = tt([0.25, 1.0])
    B = 0.1 * t + 0.5 * 19.9 * t**2
    assert torch.allclose(vp.alpha(t), torch.exp(-B / 2)) and torch.allclose(vp.sigma(t) ** 2, 1 - torch.exp(-B))
    assert torch.allclose(ve.sigma(t) ** 2, (0.01 * 1000.0**t) ** 2 - 0.01**2)  # sigma(t)^2 - sigma_min^2
    assert math.isclose(ve.prior_std(), math.sqrt(10.0**2 - 0.01**2))
    assert float(vp.alpha(tt([1.0]))) < 0.01 and vp.prior_std() == 1.0  # p_1 is N(0, I) up to alpha_1 ~ 0.0066


@pytest.mark.parametrize("kind", SDES)
def test_transition_kernels_compose_into_the_marginal(kind):
    """x_t = a x_s + G z over (s, t): alpha_t = a alpha_s, sigma_t^2 = a^2 sigma_s^2 + G^2, and two
    consecutive kernels make the kernel over the union."""
    sde = SDES[kind]()
    for s, u, t in [(0.0, 0.4, 0.9), (0.01, 0.02, 0.5)]:
        a, G = sde.transition(s, t)
        assert math.isclose(float(sde.alpha(tt(t))), a * float(sde.alpha(tt(s))), rel_tol=1e-12)
        assert math.isclose(float(sde.sigma(tt(t))) ** 2, a**2 * float(sde.sigma(tt(s))) ** 2 + G**2, rel_tol=1e-10)
        (a1, G1), (a2, G2) = sde.transition(s, u), sde.transition(u, t)
        assert math.isclose(a1 * a2, a, rel_tol=1e-12) and math.isclose(a2**2 * G1**2 + G2**2, G**2, rel_tol=1e-10)


@pytest.mark.parametrize("kind", SDES)
def test_time_at_inverts_the_path(kind):
    sde = SDES[kind]()
    t = tt([0.001, 0.05, 0.2, 0.5, 1.0])
    for ti, a, s in zip(t.tolist(), sde.alpha(t).tolist(), sde.sigma(t).tolist()):
        assert math.isclose(sde.time_at(a, s), ti, rel_tol=1e-9)


def test_prior_sample_and_log_prob_agree():
    sde = VESDE(0.01, 4.0)
    z = sde.prior_sample((50_000, 2), torch.Generator().manual_seed(0), dtype=F64)
    assert abs(z.std() / sde.prior_std() - 1) < 0.01
    x = torch.randn(5, 2, dtype=F64)
    assert torch.allclose(sde.prior_log_prob(x), gaussian_log_prob(x, 0.0, sde.prior_std() ** 2))


# ---- the reverse SDE and the samplers with the exact score -------------------

SAMPLERS = {"em": lambda: EulerMaruyama(100), "pc": lambda: PredictorCorrector(100, snr=0.16),
            "pc-em": lambda: PredictorCorrector(100, predictor="euler_maruyama", snr=0.16),
            "ode": lambda: ProbabilityFlow(100)}


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("kind", SDES)
def test_samplers_with_the_exact_score_recover_gaussian_data(kind, sampler):
    """From p_1 to p_{t_min} in 100 steps: mean within 0.02 (standard error 0.005), std within 3% (0.7%)."""
    sde, smp = SDES[kind](), SAMPLERS[sampler]()
    g = torch.Generator().manual_seed(0)
    mean, var = p_t(sde, 1.0)
    x_1 = mean + var.sqrt() * torch.randn(10_000, 2, generator=g, dtype=F64)
    x = smp(sde, exact_score(sde), x_1, generator=g)
    assert torch.allclose(x.mean(0), M, atol=0.02), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), S, dtype=F64), rtol=0.03), x.std(0)


def test_from_the_prior_the_reverse_sde_forgets_where_it_started():
    """Started from N(0, sigma_max^2) instead of p_1 (whose mean is m), the VE reverse SDE still ends
    at N(m, s^2); the deterministic ODE keeps the offset's share s / sqrt(s^2 + sigma_1^2) ~ 5%."""
    sde = VESDE(0.01, 10.0)
    g = torch.Generator().manual_seed(1)
    x_1 = sde.prior_sample((10_000, 2), g, dtype=F64)
    x = EulerMaruyama(100)(sde, exact_score(sde), x_1, generator=g)
    assert torch.allclose(x.mean(0), M, atol=0.02)
    x = ProbabilityFlow(100)(sde, exact_score(sde), x_1)
    share = S / math.sqrt(S**2 + sde.prior_std() ** 2)
    assert torch.allclose(x.mean(0), M * (1 - share), atol=0.02)


def test_reverse_drifts():
    sde = VPSDE()
    score = exact_score(sde)
    x, t = torch.randn(6, 2, dtype=F64), 0.3
    g2 = float(sde.diffusion(t)) ** 2
    f = sde.drift(x, tt([t]))
    assert torch.allclose(f, -0.5 * (0.1 + 0.3 * 19.9) * x)
    assert torch.allclose(ReverseSDE(sde, score).drift(x, t), f - g2 * score(x, tt([t])))
    flow = ReverseSDE(sde, score, probability_flow=True)
    assert torch.allclose(flow.drift(x, t), f - 0.5 * g2 * score(x, tt([t]))) and flow.diffusion(t) == 0.0


def test_trajectories_run_from_one_to_t_min():
    sde, score = VPSDE(), exact_score(VPSDE())
    x_1 = torch.randn(7, 2, dtype=F64)
    for smp in (EulerMaruyama(20), PredictorCorrector(20), ProbabilityFlow(20)):
        xs = smp(sde, score, x_1, generator=torch.Generator().manual_seed(2), trajectory=True)
        assert xs.shape == (21, 7, 2) and torch.equal(xs[0], x_1)
        last = smp(sde, score, x_1, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(xs[-1], last)  # the same noise stream, with or without the path
        t = smp.times(sde)
        assert t.shape == (21,) and t[0] == 1.0 and math.isclose(float(t[-1]), sde.t_min)
    a = ProbabilityFlow(20)(sde, score, x_1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, ProbabilityFlow(20)(sde, score, x_1, generator=torch.Generator().manual_seed(4)))


# ---- the probability-flow ODE's likelihood ------------------------------------

@pytest.mark.parametrize("kind", SDES)
def test_pf_ode_log_likelihood_of_the_exact_score_is_the_gaussian_density(kind):
    sde = SDES[kind]()
    torch.manual_seed(0)
    x = M + S * torch.randn(64, 2, dtype=F64)
    mean_1, var_1 = p_t(sde, 1.0)
    mean_0, var_0 = p_t(sde, sde.t_min)
    lp = pf_log_likelihood(sde, exact_score(sde), x, steps=100, log_prior=lambda y: gaussian_log_prob(y, mean_1, var_1))
    assert (lp - gaussian_log_prob(x, mean_0, var_0)).abs().max() < 1e-4
    # with the SDE's own prior N(0, prior_std^2 I), against the data's density at t = 0: the prior
    # misses p_1's mean alpha_1 m (VP: 0.007 m), so the VE SDE, with alpha_1 = 1, gets centred data
    m = M if kind == "vp" else torch.zeros(2, dtype=F64)
    x = m + S * torch.randn(64, 2, dtype=F64)
    lp = pf_log_likelihood(sde, exact_score(sde, m), x, steps=100)
    assert (lp - gaussian_log_prob(x, m, S**2)).abs().max() < 0.05


# ---- refusals ------------------------------------------------------------------

@pytest.mark.parametrize("make,needle", [
    (lambda: VPSDE(0.0, 20.0), "0 < beta_min <= beta_max"), (lambda: VPSDE(5.0, 1.0), "0 < beta_min <= beta_max"),
    (lambda: VESDE(1.0, 1.0), "0 < sigma_min < sigma_max"), (lambda: EulerMaruyama(0), "steps=0"),
    (lambda: PredictorCorrector(10, predictor="ancestral"), "predictor='ancestral' is not allowed"),
    (lambda: PredictorCorrector(10, snr=0.0), "snr > 0")])
def test_bad_settings_are_refused(make, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        make()
