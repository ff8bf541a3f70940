"""A model with a near-perfect likelihood and mostly useless samples (Theis, van den Oord & Bethge 2016).

Mix the true density p with a noise density u, keeping a weight w of the truth:

    q(x) = w p(x) + (1 - w) u(x).

Since (1 - w) u(x) >= 0, log q(x) >= log w + log p(x) at every x, so the average log-likelihood of the data
under q is at most -log w below the truth's,

    0 <= KL(p || q) = E_p[log p(x) - log q(x)] <= -log w        (w = 0.01: log 100 ≈ 4.61 nats),

while a fraction 1 - w of q's samples (99% at w = 0.01) are pure noise. In high dimension the average
log-likelihood of a good model runs to hundreds or thousands of nats, so 4.61 nats hides in its digits: a good
likelihood does not imply good samples. Here u is uniform on the dataset's plotting box and p is a 2D dataset
with an exact density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .. import registry
from ..errors import ConfigError


@dataclass
class LikelihoodGap:
    dataset: str
    w: float  # weight of the truth in q
    bounds: tuple  # the box u is uniform on
    log_p: np.ndarray  # (n,) log p at test points x ~ p
    log_q: np.ndarray  # (n,) log q at the same points
    gap: float  # mean(log_p - log_q), a Monte Carlo estimate of KL(p || q)
    bound: float  # -log w
    samples: np.ndarray  # (m, 2) samples of q
    from_p: np.ndarray  # (m,) bool: which samples of q came from p (the rest are noise)
    curve_w: np.ndarray  # (K,) weights for the gap-against-w curve
    curve_gap: np.ndarray  # (K,) mean(log p - log q) at each


def log_uniform(x: np.ndarray, bounds) -> np.ndarray:
    """log u(x) of the uniform density on the box ((x0, x1), (y0, y1)): -log area inside, -inf outside."""
    (x0, x1), (y0, y1) = bounds
    inside = (x[:, 0] >= x0) & (x[:, 0] <= x1) & (x[:, 1] >= y0) & (x[:, 1] <= y1)
    return np.where(inside, -math.log((x1 - x0) * (y1 - y0)), -np.inf)


def log_mixture(log_p: np.ndarray, log_u: np.ndarray, w: float) -> np.ndarray:
    """log q = log(w p + (1 - w) u), stably: (n,), (n,) -> (n,)."""
    return np.logaddexp(math.log(w) + log_p, math.log1p(-w) + log_u) if w < 1 else log_p.copy()


def density_datasets() -> list[str]:
    """The registered 2D datasets with an exact density (a dataset class that says it has none is not built)."""
    registry.load_all()
    names = []
    for name, spec in registry.DATASETS.items():
        if getattr(spec.factory, "has_density", True) is False:
            continue
        try:
            ds = spec.factory()
        except Exception:  # noqa: BLE001 - one that needs arguments or files is not one of these
            continue
        if ds.has_density and tuple(ds.shape) == (2,):
            names.append(name)
    return names


@lru_cache(maxsize=8)
def _test_points(dataset: str, n: int, seed: int):
    """Points x ~ p, log p(x), and the dataset's box; the slow part (log p by quadrature) done once."""
    ds = registry.load_dataset(dataset)
    if not getattr(ds, "has_density", False) or tuple(ds.shape) != (2,):
        raise ConfigError(f"dataset {dataset!r} has no exact 2D density; choose one with a density, such as "
                          "eight_gaussians or two_moons")
    x = ds.sample(n, torch.Generator().manual_seed(seed)).to(torch.float64)
    log_p = ds.log_prob(x).to(torch.float64).numpy()
    bounds = tuple(tuple(float(v) for v in pair) for pair in ds.bounds)
    return x.numpy(), log_p, bounds


def likelihood_gap(dataset: str = "eight_gaussians", w: float = 0.01, n: int = 1000, m: int = 1000,
                   seed: int = 0) -> LikelihoodGap:
    """The gap E_p[log p - log q] and its bound -log w on n points of p, and m samples of q."""
    if not (0 < w <= 1):
        raise ConfigError(f"the weight w of the truth in q must be in (0, 1], got {w}")
    if int(n) < 1 or int(m) < 1:
        raise ConfigError(f"need at least one test point and one sample, got n={n}, m={m}")
    x, log_p, bounds = _test_points(dataset, int(n), int(seed))
    log_u = log_uniform(x, bounds)
    log_q = log_mixture(log_p, log_u, w)
    # q's samples: each from p with probability w, else uniform on the box
    rng = np.random.default_rng(seed + 1)
    from_p = rng.random(m) < w
    noise = np.stack([rng.uniform(*bounds[0], m), rng.uniform(*bounds[1], m)], 1)
    truth = x[rng.integers(0, x.shape[0], m)]  # points of p, reused: they are draws of p all the same
    samples = np.where(from_p[:, None], truth, noise)
    curve_w = np.geomspace(1e-4, 1.0, 41)
    curve_gap = np.array([np.mean(log_p - log_mixture(log_p, log_u, v)) for v in curve_w])
    return LikelihoodGap(dataset=dataset, w=float(w), bounds=bounds, log_p=log_p, log_q=log_q,
                         gap=float(np.mean(log_p - log_q)), bound=-math.log(w), samples=samples, from_p=from_p,
                         curve_w=curve_w, curve_gap=curve_gap)
