"""Two Monte Carlo estimators of d/dmu E_q[f(z)] for q = N(mu, s^2), and their variances in closed form.

Score function (REINFORCE, Williams 1992), with an optional constant baseline b:

    g_sf = (1/n) sum_i (f(z_i) - b) d/dmu log q(z_i) = (1/n) sum_i (f(z_i) - b) (z_i - mu) / s^2,   z_i ~ q

Pathwise (reparameterisation, Kingma & Welling 2014), z = mu + s eps with eps ~ N(0, 1):

    g_rp = (1/n) sum_i f'(mu + s eps_i)

Both are unbiased. Writing z = mu + s eps, a single score-function term is (f(z) - b) eps / s, so

    Var[g_sf] = ( E[f(z)^2 eps^2] - 2 b E[f(z) eps^2] + b^2 ) / (n s^2) - grad^2 / n
    Var[g_rp] = ( E[f'(z)^2] - grad^2 ) / n,        grad = d/dmu E_q[f] = E_q[f'].

For f(z) = z^2 the Gaussian moments E eps^2 = 1, E eps^4 = 3, E eps^6 = 15 give
E[f^2 eps^2] = mu^4 + 18 mu^2 s^2 + 15 s^4 and E[f eps^2] = mu^2 + 3 s^2, hence

    Var[g_rp] = 4 s^2 / n,     Var[g_sf] (b = 0) = (mu^4 / s^2 + 14 mu^2 + 15 s^2) / n,

and with the baseline b = E_q[f] = mu^2 + s^2, Var[g_sf] = (8 mu^2 + 10 s^2) / n: smaller, still above the
pathwise one. For f(z) = sin z the characteristic function E exp(i t eps) = exp(-t^2/2) and
E[eps^2 exp(i t eps)] = (1 - t^2) exp(-t^2/2) give the same quantities (see `_moments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

FUNCTIONS = {"z^2": "f(z) = z²", "sin z": "f(z) = sin z"}
SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass
class GradientVariance:
    """Variances of both estimators at each sample size n, by Monte Carlo and in closed form."""

    f: str
    mu: float
    s: float
    baseline: float  # the b used by the score-function estimator (0 when off)
    grad: float  # the true gradient d/dmu E_q[f]
    n: np.ndarray  # (K,) sample sizes
    var_sf: np.ndarray  # (K,) Monte Carlo variance of g_sf over `repeats` estimates
    var_rp: np.ndarray  # (K,)
    exact_sf: np.ndarray  # (K,) closed form
    exact_rp: np.ndarray  # (K,)
    single_sf: np.ndarray  # (R,) single-sample (n = 1) estimates, for their spread
    single_rp: np.ndarray  # (R,)
    repeats: int


def f_and_df(f: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if f == "z^2":
        return z**2, 2 * z
    if f == "sin z":
        return np.sin(z), np.cos(z)
    raise ConfigError(f"unknown objective f={f!r}; choose one of {', '.join(FUNCTIONS)}")


def _moments(f: str, mu: float, s: float) -> tuple[float, float, float, float, float]:
    """E_q f, grad = E_q f', E[f'^2], E[f^2 eps^2], E[f eps^2] for z = mu + s eps."""
    if f == "z^2":
        return (mu**2 + s**2, 2 * mu, 4 * (mu**2 + s**2),
                mu**4 + 18 * mu**2 * s**2 + 15 * s**4, mu**2 + 3 * s**2)
    if f == "sin z":
        e1, e4 = math.exp(-s**2 / 2), math.exp(-2 * s**2)
        return (math.sin(mu) * e1, math.cos(mu) * e1, (1 + math.cos(2 * mu) * e4) / 2,
                (1 - math.cos(2 * mu) * (1 - 4 * s**2) * e4) / 2, math.sin(mu) * (1 - s**2) * e1)
    raise ConfigError(f"unknown objective f={f!r}; choose one of {', '.join(FUNCTIONS)}")


def expected_f(f: str, mu: float, s: float) -> float:
    """E_q[f(z)], the baseline that a running average of f would approach."""
    return _moments(f, mu, s)[0]


def exact_variances(f: str, mu: float, s: float, baseline: float = 0.0) -> tuple[float, float]:
    """Per-sample (n = 1) variances (Var g_sf, Var g_rp); divide by n for n samples."""
    _, grad, df2, f2e2, fe2 = _moments(f, mu, s)
    b = baseline
    return (f2e2 - 2 * b * fe2 + b**2) / s**2 - grad**2, df2 - grad**2


def estimates(f: str, mu: float, s: float, eps: np.ndarray, baseline: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Both estimators from the same noise eps (..., n) -> (...,): the average over the last axis."""
    z = mu + s * eps
    fz, dfz = f_and_df(f, z)
    g_sf = (fz - baseline) * (z - mu) / s**2
    return g_sf.mean(-1), dfz.mean(-1)


def gradient_variance(f: str = "z^2", mu: float = 1.0, s: float = 1.0, baseline: bool = False,
                      sizes=SIZES, repeats: int = 300, seed: int = 0) -> GradientVariance:
    """Var of g_sf and g_rp over `repeats` independent estimates at each n in `sizes`."""
    if f not in FUNCTIONS:
        raise ConfigError(f"unknown objective f={f!r}; choose one of {', '.join(FUNCTIONS)}")
    if not (math.isfinite(mu) and math.isfinite(s)) or s <= 0:
        raise ConfigError(f"q = N(mu, s^2) needs a finite mu and s > 0, got mu={mu}, s={s}")
    if int(repeats) < 2 or not sizes or min(sizes) < 1:
        raise ConfigError(f"need at least 2 repeats and sample sizes n >= 1, got repeats={repeats}, sizes={sizes}")
    b = expected_f(f, mu, s) if baseline else 0.0
    rng = np.random.default_rng(seed)
    n = np.asarray(sizes, dtype=np.int64)
    var_sf, var_rp = np.empty(len(n)), np.empty(len(n))
    for k, m in enumerate(n):
        g_sf, g_rp = estimates(f, mu, s, rng.standard_normal((repeats, int(m))), b)  # (R,), (R,)
        var_sf[k], var_rp[k] = g_sf.var(ddof=1), g_rp.var(ddof=1)
    one_sf, one_rp = estimates(f, mu, s, rng.standard_normal((repeats, 1)), b)
    v_sf, v_rp = exact_variances(f, mu, s, b)
    return GradientVariance(f=f, mu=float(mu), s=float(s), baseline=float(b), grad=_moments(f, mu, s)[1], n=n,
                            var_sf=var_sf, var_rp=var_rp, exact_sf=v_sf / n, exact_rp=v_rp / n,
                            single_sf=one_sf, single_rp=one_rp, repeats=int(repeats))
