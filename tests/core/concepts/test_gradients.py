"""The score-function and pathwise estimators: their terms against autograd, their variances against
Gauss-Hermite quadrature and against Monte Carlo, and which is the larger."""

import math

import numpy as np
import pytest
import torch

from core.concepts import gradients as G
from core.errors import ConfigError

CASES = [("z^2", 1.0, 1.0), ("z^2", -0.7, 0.4), ("sin z", 0.7, 0.5), ("sin z", 2.0, 1.3)]


def quadrature_variances(f, mu, s, b):
    """Per-sample variances of both estimators by 80-point Gauss-Hermite quadrature over eps ~ N(0, 1)."""
    t, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()  # weights of E over N(0, 1)
    z = mu + s * t
    fz, dfz = G.f_and_df(f, z)
    g_sf, g_rp = (fz - b) * t / s, dfz
    mean = lambda g: (w * g).sum()  # noqa: E731
    return mean(g_sf**2) - mean(g_sf)**2, mean(g_rp**2) - mean(g_rp)**2, mean(g_sf), mean(g_rp)


@pytest.mark.parametrize("f,mu,s", CASES)
@pytest.mark.parametrize("baseline", [False, True])
def test_closed_form_variances_and_gradient_match_quadrature(f, mu, s, baseline):
    b = G.expected_f(f, mu, s) if baseline else 0.0
    v_sf, v_rp = G.exact_variances(f, mu, s, b)
    q_sf, q_rp, mean_sf, mean_rp = quadrature_variances(f, mu, s, b)
    grad = G._moments(f, mu, s)[1]
    assert v_sf == pytest.approx(q_sf, rel=1e-9) and v_rp == pytest.approx(q_rp, rel=1e-9, abs=1e-12)
    assert mean_sf == pytest.approx(grad, abs=1e-9) and mean_rp == pytest.approx(grad, abs=1e-9)  # both unbiased
    t, w = np.polynomial.hermite_e.hermegauss(80)
    assert G.expected_f(f, mu, s) == pytest.approx((w / w.sum() * G.f_and_df(f, mu + s * t)[0]).sum(), abs=1e-12)


def test_the_square_has_the_written_closed_forms():
    for mu, s in [(1.0, 1.0), (0.3, 2.0), (-1.5, 0.6)]:
        v_sf, v_rp = G.exact_variances("z^2", mu, s)
        assert v_rp == pytest.approx(4 * s**2)
        assert v_sf == pytest.approx(mu**4 / s**2 + 14 * mu**2 + 15 * s**2)
        v_cv, _ = G.exact_variances("z^2", mu, s, mu**2 + s**2)
        assert v_cv == pytest.approx(8 * mu**2 + 10 * s**2)
        assert v_rp < v_cv < v_sf


def test_estimator_terms_are_the_autograd_derivatives():
    """f'(mu + s eps) is d/dmu f(mu + s eps), and (z - mu) / s^2 is d/dmu log N(z; mu, s^2)."""
    eps = np.random.default_rng(0).standard_normal(7)
    for f, torch_f in (("z^2", lambda z: z**2), ("sin z", torch.sin)):
        mu = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
        z = mu + 0.6 * torch.from_numpy(eps)
        fz = torch_f(z)
        dfz = torch.stack([torch.autograd.grad(fz[i], mu, retain_graph=True)[0] for i in range(7)])
        zq = (0.8 + 0.6 * torch.from_numpy(eps)).detach()
        score = torch.stack([torch.autograd.grad(torch.distributions.Normal(mu, 0.6).log_prob(zq[i]), mu)[0]
                             for i in range(7)])
        g_sf, g_rp = G.estimates(f, 0.8, 0.6, eps[None, :, None], 0.25)  # seven estimates of one sample each
        assert np.allclose(g_rp[0], dfz.numpy(), atol=1e-12)
        assert np.allclose(g_sf[0], (fz.detach() - 0.25).numpy() * score.numpy(), atol=1e-12)


@pytest.mark.parametrize("f,mu,s", CASES[::2])
def test_monte_carlo_variance_matches_the_closed_form_within_its_standard_error(f, mu, s):
    rng = np.random.default_rng(1)
    for n in (1, 10, 100):
        g_sf, g_rp = G.estimates(f, mu, s, rng.standard_normal((20000, n)))
        for g, exact in zip((g_sf, g_rp), (v / n for v in G.exact_variances(f, mu, s))):
            var = g.var(ddof=1)
            se = math.sqrt(np.mean((g - g.mean())**4) - var**2) / math.sqrt(g.size)  # of the sample variance
            assert abs(var - exact) < 5 * se, (n, var, exact, se)
            assert abs(g.mean() - G._moments(f, mu, s)[1]) < 5 * math.sqrt(exact / g.size)


def test_reinforce_varies_more_than_the_pathwise_estimator_at_every_n():
    for baseline in (False, True):
        r = G.gradient_variance("z^2", 1.0, 1.0, baseline=baseline, repeats=2000, seed=3)
        assert (r.var_sf > r.var_rp).all() and (r.exact_sf > r.exact_rp).all()
        assert np.allclose(r.exact_rp, 4.0 / r.n) and np.allclose(r.exact_sf, (18.0 if baseline else 30.0) / r.n)
        assert np.all(np.abs(r.var_sf / r.exact_sf - 1) < 0.4) and np.all(np.abs(r.var_rp / r.exact_rp - 1) < 0.2)
        assert r.single_sf.shape == r.single_rp.shape == (2000,) and r.grad == 2.0
    plain, with_b = (G.gradient_variance("z^2", 1.0, 1.0, baseline=b, repeats=2000, seed=3) for b in (False, True))
    assert with_b.baseline == 2.0 and plain.baseline == 0.0
    assert (with_b.var_sf < plain.var_sf).mean() > 0.8  # the same noise, a smaller spread nearly everywhere


def test_bad_settings_are_refused_with_a_message():
    with pytest.raises(ConfigError, match="s > 0"):
        G.gradient_variance(s=0.0)
    with pytest.raises(ConfigError, match="choose one of"):
        G.gradient_variance(f="exp")
    with pytest.raises(ConfigError, match="repeats"):
        G.gradient_variance(repeats=1)
