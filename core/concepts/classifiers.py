"""Discriminative against generative classifiers: logistic regression and naive Bayes (Ng & Jordan 2002).

Both end in a linear rule, predict y = 1 when w . x + b > 0, and differ in what they fit.

Logistic regression (discriminative) fits p(y | x) = sigmoid(w . x + b) directly, minimising

    L(w, b) = - sum_i [ y_i log sigmoid(a_i) + (1 - y_i) log(1 - sigmoid(a_i)) ] + (lambda / 2) |w|^2,
    a_i = w . x_i + b,

by Newton's method (iteratively reweighted least squares) with step halving; the small ridge lambda keeps the
optimum finite when the training points are separable, as they often are when there are a handful.

Gaussian naive Bayes (generative) fits p(x, y) = pi_y prod_j N(x_j; mu_yj, sigma_j^2) by maximum likelihood
(class frequencies, class means, within-class variances pooled over the classes) and classifies by Bayes'
rule, whose log-odds are linear:

    w_j = (mu_1j - mu_0j) / sigma_j^2,   b = - sum_j (mu_1j^2 - mu_0j^2) / (2 sigma_j^2) + log(pi_1 / pi_0).

Ng & Jordan's point: the generative model reaches its (higher) asymptotic error with far fewer examples,
the discriminative one reaches a lower asymptote when the generative assumptions are wrong. Here they are
wrong on purpose: the classes are N(mu_y, Sigma) with correlated features, Sigma = [[1, rho], [rho, 1]], so
naive Bayes' diagonal covariance misses the correlation while the true log-odds are still linear,
w* = Sigma^-1 (mu_1 - mu_0), which logistic regression can represent. For such Gaussians the error of any
linear rule is exact, with Phi the standard normal CDF:

    err(w, b) = 1/2 Phi(-(w . mu_1 + b) / sqrt(w' Sigma w)) + 1/2 Phi((w . mu_0 + b) / sqrt(w' Sigma w)),

and the Bayes error is Phi(-Delta / 2), Delta^2 = (mu_1 - mu_0)' Sigma^-1 (mu_1 - mu_0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import registry
from ..errors import ConfigError

SOURCES = {"correlated Gaussians": "two Gaussian classes sharing a correlated covariance",
           "two_moons": "the two moons of the two_moons dataset"}
SIZES = (3, 4, 6, 8, 12, 16, 25, 40, 60, 100, 160, 250)  # training points per class
RIDGE = 1e-2
NEWTON_STEPS = 30


# ---- the data -----------------------------------------------------------------------
@dataclass
class GaussianClasses:
    """x | y ~ N(mu_y, Sigma), y ~ Bernoulli(1/2), mu_1 = -mu_0 = (delta / 2, 0), Sigma = [[1, rho], [rho, 1]]."""

    rho: float = 0.3
    delta: float = 3.0

    @property
    def mu(self) -> np.ndarray:
        return np.array([[-self.delta / 2, 0.0], [self.delta / 2, 0.0]])  # (2 classes, 2)

    @property
    def sigma(self) -> np.ndarray:
        return np.array([[1.0, self.rho], [self.rho, 1.0]])

    def sample(self, per_class: int, rng: np.random.Generator, lead: tuple = (),
               held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(*lead, 2 per_class, 2) points, the first half of class 0, and their (2 per_class,) labels.

        held_out changes nothing here: every draw is fresh, so a test set never meets a training set.
        """
        chol = np.linalg.cholesky(self.sigma)
        eps = rng.standard_normal((*lead, 2, per_class, 2))
        x = self.mu[:, None, :] + eps @ chol.T  # (*lead, 2, per_class, 2)
        return x.reshape(*lead, 2 * per_class, 2), np.repeat([0.0, 1.0], per_class)

    def bayes_rule(self) -> tuple[np.ndarray, float]:
        w = np.linalg.solve(self.sigma, self.mu[1] - self.mu[0])
        return w, float(-0.5 * (self.mu[1] + self.mu[0]) @ w)

    def bayes_error(self) -> float:
        d = self.mu[1] - self.mu[0]
        return float(_Phi(-0.5 * math.sqrt(d @ np.linalg.solve(self.sigma, d))))

    def error(self, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact error of the rules w . x + b > 0: (..., 2), (...,) -> (...,)."""
        scale = np.sqrt(((w @ self.sigma) * w).sum(-1))
        scale = np.where(scale > 0, scale, np.inf)  # w = 0 predicts one class everywhere: error 1/2
        return 0.5 * _Phi(-(w @ self.mu[1] + b) / scale) + 0.5 * _Phi((w @ self.mu[0] + b) / scale)


class MoonClasses:
    """The two moons of core's two_moons dataset, a moon per class.

    Training and test sets are drawn without replacement from a fixed pool of labelled points of the dataset
    (POOL per moon), so that a knob's change redraws nothing slow; test sets come from a held-out part of it
    (HELD per moon) that no training set draws from.
    """

    POOL, HELD = 20000, 2000

    def __init__(self):
        dataset = registry.load_dataset("two_moons")
        self.bounds = tuple(tuple(float(v) for v in pair) for pair in dataset.bounds)
        x, k = dataset.sample_with_labels(3 * self.POOL, torch.Generator().manual_seed(0))
        x, k = x.to(torch.float64).numpy(), k.numpy()
        self.pool = [x[k == c][:self.POOL] for c in (0, 1)]  # (POOL, 2) each, the last HELD held out

    def sample(self, per_class: int, rng: np.random.Generator, lead: tuple = (),
               held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        count = int(np.prod(lead, dtype=np.int64)) * per_class
        lo, hi = (self.POOL - self.HELD, self.POOL) if held_out else (0, self.POOL - self.HELD)
        if count > hi - lo:
            raise ConfigError(f"asked for {count} points of each moon; at most {hi - lo} are drawn at once")
        by_class = [pool[lo + rng.permutation(hi - lo)[:count]].reshape(*lead, per_class, 2) for pool in self.pool]
        return np.concatenate(by_class, axis=-2), np.repeat([0.0, 1.0], per_class)


def _Phi(z):
    """The standard normal CDF, elementwise (float64)."""
    return torch.special.ndtr(torch.as_tensor(z, dtype=torch.float64)).numpy()


# ---- the two classifiers --------------------------------------------------------------
def naive_bayes(x: np.ndarray, y: np.ndarray):
    """Gaussian naive Bayes with pooled variances: (..., m, 2), (m,) -> w (..., 2), b (...,), and its fit.

    The fit is (pi_1, mu (..., 2, 2), var (..., 2)): maximum likelihood, so plain means and 1/m variances.
    """
    one = y == 1
    pi1 = one.mean()
    mu = np.stack([x[..., ~one, :].mean(-2), x[..., one, :].mean(-2)], axis=-2)  # (..., 2, 2)
    resid = x - np.where(one[:, None], mu[..., 1:2, :], mu[..., 0:1, :])  # (..., m, 2)
    var = np.maximum((resid**2).mean(-2), 1e-12)  # (..., 2)
    w = (mu[..., 1, :] - mu[..., 0, :]) / var
    b = -((mu[..., 1, :]**2 - mu[..., 0, :]**2) / (2 * var)).sum(-1) + math.log(pi1 / (1 - pi1))
    return w, b, (pi1, mu, var)


def _logistic_loss(theta: np.ndarray, xt: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    a = (xt @ theta[..., None])[..., 0]  # (..., m)
    return (np.logaddexp(0, a) - y * a).sum(-1) + 0.5 * ridge * (theta[..., :2]**2).sum(-1)


def logistic_regression(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE, steps: int = NEWTON_STEPS):
    """Newton's method on L(w, b) for each leading index at once: (..., m, 2), (m,) -> w (..., 2), b (...,)."""
    xt = np.concatenate([x, np.ones((*x.shape[:-1], 1))], -1)  # (..., m, 3)
    penalty = ridge * np.diag([1.0, 1.0, 0.0]) + 1e-9 * np.eye(3)
    theta = np.zeros((*x.shape[:-2], 3))
    loss = _logistic_loss(theta, xt, y, ridge)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xt @ theta[..., None])[..., 0]))  # (..., m)
        grad = ((p - y)[..., None, :] @ xt)[..., 0, :] + theta @ penalty  # (..., 3)
        hess = np.swapaxes(xt * (p * (1 - p))[..., None], -1, -2) @ xt + penalty  # (..., 3, 3)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]  # (..., 3)
        t = np.ones(theta.shape[:-1])
        for _ in range(20):  # halve each fit's step until its loss does not rise
            new = theta - t[..., None] * step
            new_loss = _logistic_loss(new, xt, y, ridge)
            worse = new_loss > loss + 1e-12
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        theta, loss = np.where(worse[..., None], theta, new), np.where(worse, loss, new_loss)
        if np.abs(t[..., None] * step).max() < 1e-10:
            break
    return theta[..., :2], theta[..., 2]


def logistic_gradient(w, b, x, y, ridge: float = RIDGE) -> np.ndarray:
    """dL/d(w, b) at one fit: (2,), (), (m, 2), (m,) -> (3,); zero at the optimum."""
    p = 1 / (1 + np.exp(-(x @ w + b)))
    return np.concatenate([x.T @ (p - y) + ridge * w, [np.sum(p - y)]])


# ---- learning curves and one fit ---------------------------------------------------------
@dataclass
class ClassifierCurves:
    source: str
    sizes: np.ndarray  # (K,) training points per class
    err_lr: np.ndarray  # (K,) test error of logistic regression, averaged over repeats
    err_nb: np.ndarray  # (K,) of naive Bayes
    se_lr: np.ndarray  # (K,) standard errors of those averages
    se_nb: np.ndarray
    se_diff: np.ndarray  # (K,) standard error of the mean of err_lr - err_nb, paired by training set
    bayes_error: float | None  # the best possible error (known for the Gaussians)
    repeats: int


@dataclass
class DecisionRules:
    """Both classifiers fitted on one training set, and the best rule where it is known."""

    source: str
    x_train: np.ndarray  # (2 per_class, 2)
    y_train: np.ndarray  # (2 per_class,)
    x_test: np.ndarray  # (t, 2) test points, for the background
    y_test: np.ndarray  # (t,)
    rule_lr: tuple  # (w (2,), b) of logistic regression
    rule_nb: tuple
    rule_bayes: tuple | None
    err_lr: float  # test error of each rule (exact for the Gaussians)
    err_nb: float
    bounds: tuple


_MOONS: list = []


def classes(source: str, rho: float = 0.3):
    """The data of `source`: GaussianClasses(rho) or the two moons."""
    if source == "correlated Gaussians":
        if not -0.95 <= rho <= 0.95:
            raise ConfigError(f"the correlation rho must be between -0.95 and 0.95, got {rho}")
        return GaussianClasses(rho=float(rho))
    if source == "two_moons":
        if not _MOONS:
            _MOONS.append(MoonClasses())
        return _MOONS[0]
    raise ConfigError(f"unknown data {source!r}; choose one of {', '.join(SOURCES)}")


def _error_of(data, x_test, y_test):
    if isinstance(data, GaussianClasses):
        return data.error
    return lambda w, b: ((w @ x_test.T + np.asarray(b)[..., None] > 0) != (y_test == 1)).mean(-1)


def classifier_curves(source: str = "correlated Gaussians", rho: float = 0.3, sizes=SIZES, repeats: int = 40,
                      test: int = 2000, seed: int = 0) -> ClassifierCurves:
    """Test error of both classifiers against the training set's size, averaged over `repeats` draws."""
    data = classes(source, rho)
    if int(repeats) < 2 or not len(sizes) or min(sizes) < 2:
        raise ConfigError("need at least 2 repeats and at least 2 training points per class "
                          f"(got repeats={repeats}, sizes={tuple(sizes)})")
    rng = np.random.default_rng(seed)
    error = _error_of(data, *data.sample(test // 2, rng, held_out=True))
    sizes = np.asarray(sizes, dtype=np.int64)
    errors = np.empty((2, len(sizes), int(repeats)))
    for k, m in enumerate(sizes):
        x, y = data.sample(int(m), rng, lead=(int(repeats),))  # (R, 2m, 2), (2m,)
        errors[0, k] = error(*logistic_regression(x, y))
        errors[1, k] = error(*naive_bayes(x, y)[:2])
    mean, se = errors.mean(-1), errors.std(-1, ddof=1) / math.sqrt(repeats)
    se_diff = (errors[0] - errors[1]).std(-1, ddof=1) / math.sqrt(repeats)
    bayes = data.bayes_error() if isinstance(data, GaussianClasses) else None
    return ClassifierCurves(source=source, sizes=sizes, err_lr=mean[0], err_nb=mean[1], se_lr=se[0], se_nb=se[1],
                            se_diff=se_diff, bayes_error=bayes, repeats=int(repeats))


def decision_rules(source: str = "correlated Gaussians", rho: float = 0.3, per_class: int = 10, test: int = 400,
                   seed: int = 0) -> DecisionRules:
    """Both classifiers fitted on one training set of `per_class` points of each class."""
    data = classes(source, rho)
    if int(per_class) < 2:
        raise ConfigError(f"need at least 2 training points per class, got {per_class}")
    rng = np.random.default_rng(seed)
    x_test, y_test = data.sample(test // 2, rng, held_out=True)
    x, y = data.sample(int(per_class), rng)
    w_lr, b_lr = logistic_regression(x, y)
    w_nb, b_nb, _ = naive_bayes(x, y)
    error = _error_of(data, x_test, y_test)
    gaussian = isinstance(data, GaussianClasses)
    return DecisionRules(source=source, x_train=x, y_train=y, x_test=x_test, y_test=y_test,
                         rule_lr=(w_lr, float(b_lr)), rule_nb=(w_nb, float(b_nb)),
                         rule_bayes=data.bayes_rule() if gaussian else None,
                         err_lr=float(error(w_lr, b_lr)), err_nb=float(error(w_nb, b_nb)),
                         bounds=((-4.5, 4.5), (-4.5, 4.5)) if gaussian else data.bounds)
