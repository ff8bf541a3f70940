"""Logistic regression and Gaussian naive Bayes: their fits against their definitions, their limits, the
exact error of a linear rule, and Ng & Jordan's crossing of the learning curves."""

import math

import numpy as np
import pytest
import torch

from core.concepts import classifiers as C
from core.errors import ConfigError


def test_naive_bayes_is_the_maximum_likelihood_fit_and_its_log_odds_are_bayes_rule():
    rng = np.random.default_rng(0)
    x, y = C.GaussianClasses(rho=0.5).sample(7, rng)
    w, b, (pi1, mu, var) = C.naive_bayes(x, y)
    assert pi1 == 0.5
    assert np.allclose(mu, [x[:7].mean(0), x[7:].mean(0)])
    assert np.allclose(var, (7 * np.var(x[:7], axis=0) + 7 * np.var(x[7:], axis=0)) / 14)
    # the log-odds of the fitted generative model, from its densities, at any point
    z = torch.from_numpy(rng.normal(size=(50, 2)) * 3)
    log_joint = [math.log(p) + torch.distributions.Normal(torch.from_numpy(mu[k]), torch.from_numpy(var).sqrt())
                 .log_prob(z).sum(1) for k, p in ((0, 1 - pi1), (1, pi1))]
    assert np.allclose((log_joint[1] - log_joint[0]).numpy(), z.numpy() @ w + b, atol=1e-10)


def test_logistic_gradient_is_autograds_and_newton_reaches_its_zero():
    rng = np.random.default_rng(1)
    x, y = C.GaussianClasses(rho=0.3).sample(12, rng, lead=(5,))  # five training sets at once
    w, b = C.logistic_regression(x, y)
    for i in range(5):
        theta = torch.tensor([*w[i], b[i]], dtype=torch.float64, requires_grad=True)
        xt = torch.from_numpy(x[i])
        a = xt @ theta[:2] + theta[2]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a, torch.from_numpy(y), reduction="sum") \
            + 0.5 * C.RIDGE * (theta[:2]**2).sum()
        (grad,) = torch.autograd.grad(loss, theta)
        assert np.allclose(C.logistic_gradient(w[i], b[i], x[i], y), grad.numpy(), atol=1e-10)
        assert np.abs(grad.numpy()).max() < 1e-6  # a stationary point of a strictly convex loss: the optimum


def test_separable_data_keeps_a_finite_fit():
    x = np.array([[-2.0, 0.0], [-1.0, 0.5], [1.0, -0.5], [2.0, 0.0]])
    w, b = C.logistic_regression(x, np.array([0.0, 0.0, 1.0, 1.0]))
    assert np.isfinite(w).all() and w[0] > 0 and np.abs(C.logistic_gradient(w, b, x, np.array([0, 0, 1.0, 1]))).max() < 1e-6


def test_large_samples_reach_each_methods_limit():
    """Logistic regression tends to Bayes' w* = Sigma^-1 (mu_1 - mu_0); naive Bayes to (mu_1 - mu_0) / diag Sigma."""
    data = C.GaussianClasses(rho=0.5)
    x, y = data.sample(20000, np.random.default_rng(2))
    w, b = C.logistic_regression(x, y)
    w_star, b_star = data.bayes_rule()
    assert np.allclose(w_star, np.linalg.solve(data.sigma, [data.delta, 0.0])) and b_star == 0.0
    # within five standard errors of the maximum-likelihood estimate (the inverse Fisher information)
    xt = np.concatenate([x, np.ones((len(y), 1))], 1)
    p = 1 / (1 + np.exp(-(xt @ [*w, b])))
    se = np.sqrt(np.diag(np.linalg.inv(xt.T @ (xt * (p * (1 - p))[:, None]))))
    assert np.all(np.abs(np.array([*w, b]) - [*w_star, b_star]) < 5 * se), (w, b, se)
    w_nb, b_nb, _ = C.naive_bayes(x, y)
    assert np.allclose(w_nb, [data.delta, 0.0], atol=0.06) and abs(b_nb) < 0.05
    assert data.error(w, b) < data.error(w_nb, b_nb)


def test_exact_error_of_a_linear_rule_matches_a_large_test_set_and_bayes_is_best():
    data = C.GaussianClasses(rho=0.4, delta=2.0)
    x, y = data.sample(100000, np.random.default_rng(3))
    rules = [(np.array([1.0, 0.0]), 0.0), (np.array([0.5, -1.0]), 0.3), data.bayes_rule()]
    for w, b in rules:
        mc = ((x @ w + b > 0) != (y == 1)).mean()
        exact = float(data.error(w, b))
        assert abs(mc - exact) < 5 * math.sqrt(exact * (1 - exact) / len(y))
        assert exact >= data.bayes_error() - 1e-12
    assert float(data.error(*data.bayes_rule())) == pytest.approx(data.bayes_error())
    delta2 = 4.0 * np.linalg.inv(data.sigma)[0, 0]
    assert data.bayes_error() == pytest.approx(0.5 * math.erfc(math.sqrt(delta2) / 2 / math.sqrt(2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_naive_bayes_wins_with_few_examples_and_logistic_regression_with_many(seed):
    few = C.classifier_curves(sizes=(6,), repeats=1000, seed=seed)
    many = C.classifier_curves(sizes=(250,), repeats=200, seed=seed)
    assert few.err_nb[0] + 3 * few.se_diff[0] < few.err_lr[0]  # six points a class: the generative model is ahead
    assert many.err_lr[0] + 3 * many.se_diff[0] < many.err_nb[0]  # 250 a class: the discriminative one
    assert many.bayes_error <= many.err_lr[0] < many.bayes_error + 0.005  # near the best possible error
    assert many.err_nb[0] > many.bayes_error + 0.005  # naive Bayes stays above it: its model of the data is wrong


def test_two_moons_classes_are_its_labelled_moons():
    moons = C.classes("two_moons")
    x, y = moons.sample(50, np.random.default_rng(0), lead=(3,))
    assert x.shape == (3, 100, 2) and np.array_equal(y, np.repeat([0.0, 1.0], 50))
    # moon 0 is the upper arc (mean y > 0), moon 1 the lower one, in core's two_moons
    assert (x[:, :50, 1].mean() > 0.3) and (x[:, 50:, 1].mean() < -0.3)
    test, _ = moons.sample(1000, np.random.default_rng(1), held_out=True)
    train, _ = moons.sample(18000 // 3, np.random.default_rng(2), lead=(3,))
    assert not set(map(tuple, test.reshape(-1, 2))) & set(map(tuple, train.reshape(-1, 2)))  # no test point trained on
    r = C.decision_rules("two_moons", per_class=200, test=2000)
    assert r.rule_bayes is None and max(r.err_lr, r.err_nb) < 0.2


def test_bad_settings_are_refused_with_a_message():
    with pytest.raises(ConfigError, match="between -0.95 and 0.95"):
        C.classifier_curves(rho=1.0)
    with pytest.raises(ConfigError, match="choose one of"):
        C.decision_rules("iris")
    with pytest.raises(ConfigError, match="at least 2"):
        C.decision_rules(per_class=1)
