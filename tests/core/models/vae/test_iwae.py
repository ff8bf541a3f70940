"""The IWAE estimate of log p(x) on a VAE whose marginal is known in closed form.

A linear-Gaussian decoder, p(z) = N(0, I) and p(x|z) = N(W z + b, diag s), has the marginal
p(x) = N(b, W W^T + diag s) and the posterior p(z|x) = N(m, S) with S = (I + W^T diag(s)^-1 W)^-1
and m = S W^T diag(s)^-1 (x - b). The encoder is set to q(z|x) = N(m, 2 diag S): the right mean,
no correlations and twice the variance, so the ELBO is loose by KL(q || p(z|x)) and the
importance weights have finite variance. Then (Burda et al. 2016, Theorem 1)

    E[L_1] = ELBO = log p(x) - KL(q || p(z|x)),   E[L_K] <= E[L_K+1],   L_K -> log p(x).
"""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from core.config import make
from core.errors import ConfigError
from core.models.vae import VAE, VAEConfig
from core.models.vae import vae as vae_module

D, L = 3, 2


@pytest.fixture(scope="module")
def linear_gaussian():
    g = torch.Generator().manual_seed(0)
    W = 1.5 * torch.randn(D, L, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    s = torch.tensor([0.05, 0.1, 0.2], dtype=torch.float64)  # decoder variances
    S = torch.linalg.inv(torch.eye(L, dtype=torch.float64) + W.T @ torch.diag(1 / s) @ W)  # posterior covariance
    A = S @ W.T @ torch.diag(1 / s)  # posterior mean m = A (x - b)

    decoder = nn.Linear(L, D).double()
    encoder = nn.Linear(D, 2 * L).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
        encoder.weight.zero_()
        encoder.weight[:L] = A
        encoder.bias[:L] = -A @ b
        encoder.bias[L:] = torch.log(2 * torch.diagonal(S))
    model = VAE((D,), VAEConfig(latent=L, likelihood="gaussian"), encoder=encoder, decoder=decoder).double()
    with torch.no_grad():
        model.log_var_x.copy_(s.log())

    marginal = MultivariateNormal(b, W @ W.T + torch.diag(s))
    torch.manual_seed(0)
    x = marginal.sample((12,))  # (n, D), where the model puts its mass
    q_var = 2 * torch.diagonal(S)
    # KL(N(m, diag q_var) || N(m, S)): equal means, so only the covariances count
    S_inv = torch.linalg.inv(S)
    kl_q_post = 0.5 * ((S_inv.diagonal() * q_var).sum() - L + torch.logdet(S) - q_var.log().sum())
    return model, x, marginal.log_prob(x), kl_q_post


def _mean_estimate(model, x, K, reps, seed):
    """E[L_K] per point, by `reps` independent estimates: ((n,), standard error (n,))."""
    torch.manual_seed(seed)
    est = model.log_prob(x.repeat(reps, 1), K=K).reshape(reps, len(x))
    return est.mean(0), est.std(0) / math.sqrt(reps)


def test_the_closed_forms_agree_the_elbo_is_log_p_minus_the_posterior_kl(linear_gaussian):
    model, x, log_p, kl_q_post = linear_gaussian
    torch.manual_seed(1)
    elbo = model.elbo_terms(x, samples=20_000)["elbo"]  # Monte Carlo recon, exact KL to the prior
    assert kl_q_post > 0.1  # the ELBO is loose, so the tests below can tell it from log p
    assert torch.allclose(elbo, log_p - kl_q_post, atol=0.03), (elbo, log_p - kl_q_post)


def test_one_sample_is_the_elbo_in_expectation(linear_gaussian):
    model, x, log_p, kl_q_post = linear_gaussian
    mean, se = _mean_estimate(model, x, K=1, reps=4000, seed=2)
    assert torch.all((mean - (log_p - kl_q_post)).abs() < 4 * se + 1e-3), (mean, log_p - kl_q_post, se)


def test_the_bound_rises_with_k_and_converges_to_log_p(linear_gaussian):
    model, x, log_p, kl_q_post = linear_gaussian
    gaps = []
    for i, K in enumerate((1, 2, 8, 32, 256)):
        mean, _ = _mean_estimate(model, x, K=K, reps=max(4, 4096 // K), seed=3 + i)
        gaps.append((log_p - mean).mean().item())
    assert abs(gaps[0] - kl_q_post.item()) < 0.02, gaps  # K = 1: the ELBO's gap
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps  # nondecreasing in K (here strictly)
    assert gaps[-1] > -0.005, gaps  # a lower bound, up to Monte Carlo noise
    assert gaps[-1] < 0.01 * gaps[0], gaps  # and nearly tight at K = 256


def test_chunks_over_k_give_the_same_estimator(linear_gaussian, monkeypatch):
    """The K samples taken a few at a time and joined by log-sum-exp estimate the same bound."""
    model, x, log_p, _ = linear_gaussian
    whole, se_whole = _mean_estimate(model, x, K=64, reps=50, seed=9)
    # 12 decoder rows a pass (the width is the config's hidden, 128): 12 points, one z each
    monkeypatch.setattr(vae_module, "_CHUNK_ELEMENTS", 12 * 128)
    assert model._rows_per_pass() == 12
    chunked, se_chunked = _mean_estimate(model, x, K=64, reps=50, seed=10)
    assert torch.all((whole - chunked).abs() < 4 * torch.hypot(se_whole, se_chunked) + 1e-3)
    assert abs((log_p - chunked).mean()) < 0.015  # and both sit close under log p(x) at K = 64


def test_importance_samples_are_capped():
    top = vae_module.MAX_IW_SAMPLES
    assert make(VAEConfig, {"iw_samples": top}).iw_samples == top == 256
    with pytest.raises(ConfigError, match=f"iw_samples={top + 1} is out of range: too large; allowed up to {top}"):
        make(VAEConfig, {"iw_samples": top + 1})
