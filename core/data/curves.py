"""2D datasets made of curves plus Gaussian noise, with densities by quadrature.

Pick an arm k ~ pi, a curve parameter s ~ w(s), a point on the curve c_k(s),
and add isotropic Gaussian noise,

    x = c_k(s) + sigma * eps,    eps ~ N(0, I),
    p(x) = sum_k pi_k * integral w(s) N(x; c_k(s), sigma^2 I) ds.       (1)

The integral in (1) is a 1D quadrature along the curve (`CurvePlusNoise`):
composite Gauss-Legendre on cells of 2 sigma of arc length (5 nodes each,
cells refined towards the ends of each arm), summed as a log-sum-exp. Its
error in log p is below 1e-4 wherever a point could plausibly fall (tests
compare it with a brute-force quadrature far finer than sigma). Sampling
draws k, s and eps from exactly the distributions the quadrature integrates.
Rings have a closed form (a circle blurred by isotropic noise is a Rician
density, with the Bessel function I0) and use it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError
from .base import Dataset
from .mixtures import check_n, check_points, mixture_log_prob

CELL = 2.0  # quadrature cell length along the curve, in units of sigma
GAUSS_POINTS = 5  # Gauss-Legendre nodes per cell
GRADING = 8  # cells halved this many times towards each end of an arm
PROBE = 20001  # curve points used to measure arc length when placing cells


class CurvePlusNoise(Dataset):
    """x = c_k(s) + sigma * eps with k ~ pi, s ~ w(s) on [s_lo, s_hi]; density (1).

    A subclass defines the arms `curve(s, k)`, the parameter's log-density
    `log_w(s)` (up to a constant) and its sampler `sample_s(n, generator)`, and
    the quadrature then integrates exactly what the sampler draws.
    """

    has_density = True
    has_score = True
    arm_weights: tuple = (1.0,)
    s_range: tuple = (0.0, 1.0)

    def __init__(self, sigma: float):
        sigma = float(sigma)
        if not 0.02 <= sigma <= 1.0:
            raise DataError(f"noise sigma={sigma} is out of range; it must be between 0.02 and 1.0")
        self.sigma = sigma
        self._nodes = None

    # what a subclass defines
    def curve(self, s: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Points on arm k at parameter s (float64): (n,), (n,) -> (n, 2)."""
        raise NotImplementedError

    def log_w(self, s: torch.Tensor) -> torch.Tensor:
        """log w(s) up to an additive constant (uniform by default)."""
        return torch.zeros_like(s)

    def sample_s(self, n: int, generator) -> torch.Tensor:
        """s ~ w(s), float64 (uniform on s_range by default)."""
        lo, hi = self.s_range
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    # sampling
    def sample_with_labels(self, n, generator=None):
        n = check_n(n)
        pi = torch.tensor(self.arm_weights, dtype=torch.float64)
        k = torch.multinomial(pi / pi.sum(), n, replacement=True, generator=generator)
        s = self.sample_s(n, generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = self.curve(s, k) + self.sigma * eps
        return x.to(torch.get_default_dtype()), k

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    # density
    def quadrature_nodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Curve points c_k(s_j) (M, 2) and log weights log(pi_k w(s_j) ds_j) (M,).

        Per arm, the curve is cut into cells of equal arc length CELL * sigma,
        halved GRADING times towards both ends (where w may jump to zero and the
        integrand of a point beyond the end decays faster than sigma), and each
        cell is integrated in s by GAUSS_POINTS-point Gauss-Legendre. Each arm's
        weights are normalised to sum to one, so the quadrature integrates a
        proper density.
        """
        if self._nodes is None:
            pi = torch.tensor(self.arm_weights, dtype=torch.float64)
            log_pi = torch.log(pi / pi.sum())
            centres, log_a = [], []
            for k in range(len(self.arm_weights)):
                s_j, log_ds = self._gauss_legendre_nodes(k)
                a = self.log_w(s_j) + log_ds
                log_a.append(a - torch.logsumexp(a, 0) + log_pi[k])
                centres.append(self.curve(s_j, torch.full_like(s_j, k, dtype=torch.long)))
            self._nodes = torch.cat(centres), torch.cat(log_a)
        return self._nodes

    def _gauss_legendre_nodes(self, k: int):
        lo, hi = self.s_range
        s = torch.linspace(lo, hi, PROBE, dtype=torch.float64)
        c = self.curve(s, torch.full((PROBE,), k, dtype=torch.long))
        ell = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum((c[1:] - c[:-1]).norm(dim=1), 0)])
        L = float(ell[-1])  # arc length of arm k
        cells = max(4, math.ceil(L / (CELL * self.sigma)))
        h = L / cells
        ends = h * 0.5 ** np.arange(1, GRADING + 1)
        ell_edges = np.unique(np.concatenate([np.linspace(0.0, L, cells + 1), ends, L - ends]))
        edges = torch.from_numpy(np.interp(ell_edges, ell.numpy(), s.numpy()))  # cell edges in s
        t, w = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(GAUSS_POINTS))
        mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * (edges[1:] - edges[:-1])
        s_j = (mid[:, None] + half[:, None] * t).reshape(-1)
        return s_j, torch.log((half[:, None] * w).reshape(-1))

    def log_prob_quadrature(self, x: torch.Tensor) -> torch.Tensor:
        """(1) by quadrature along the curve: (n, 2) -> (n,)."""
        check_points(x)
        centres, log_a = self.quadrature_nodes()
        return mixture_log_prob(x.detach(), centres, log_a, self.sigma).to(x.dtype)

    def log_prob(self, x):
        return self.log_prob_quadrature(x)

    def noised_log_prob(self, x, sigma):
        """(1) with the noise widened to sigma_data^2 + sigma^2, by the same quadrature (whose
        cells, sized for the data's own noise, only get finer relative to the wider kernel)."""
        check_points(x)
        centres, log_a = self.quadrature_nodes()
        return mixture_log_prob(x, centres, log_a, math.sqrt(self.sigma**2 + sigma**2))


class TwoMoons(CurvePlusNoise):
    """Two interleaved half circles (scikit-learn's make_moons), scaled by 2 and centred.

    c_0(t) = 2 (cos t - 1/2, sin t - 1/4),  c_1(t) = 2 (1/2 - cos t, 1/4 - sin t),
    t ~ U[0, pi], equal arm weights.
    """

    name = "two_moons"
    labels_name = "moon"
    arm_weights = (1.0, 1.0)
    s_range = (0.0, math.pi)
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def __init__(self, sigma: float = 0.15):
        super().__init__(sigma)

    def curve(self, s, k):
        sign = torch.where(k == 0, 1.0, -1.0).to(torch.float64)
        return 2 * sign[:, None] * torch.stack([torch.cos(s) - 0.5, torch.sin(s) - 0.25], dim=1)


class SwissRoll(CurvePlusNoise):
    """scikit-learn's swiss roll in the plane, scaled by 1/4.5 (outer radius pi).

    c(t) = (t cos t, t sin t) / 4.5,  t ~ U[1.5 pi, 4.5 pi].
    """

    name = "swiss_roll"
    labels_name = None
    s_range = (1.5 * math.pi, 4.5 * math.pi)
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def __init__(self, sigma: float = 0.15):
        super().__init__(sigma)

    def curve(self, s, k):
        return torch.stack([s * torch.cos(s), s * torch.sin(s)], dim=1) / 4.5

    def sample_with_labels(self, n, generator=None):
        x, _ = super().sample_with_labels(n, generator)
        return x, torch.full((x.shape[0],), -1, dtype=torch.long)


class Spirals(CurvePlusNoise):
    """Two interleaved spiral arms (FFJORD's '2spirals' with Gaussian noise).

    c_k(t) = (-1)^k (t / 3) (-cos t, sin t),  t = 3 pi sqrt(u), u ~ U[0, 1],
    so w(t) = 2 t / (3 pi)^2 on [0, 3 pi]: points spread roughly evenly along the arm.
    """

    name = "spirals"
    labels_name = "arm"
    arm_weights = (1.0, 1.0)
    s_range = (0.0, 3 * math.pi)
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def __init__(self, sigma: float = 0.1):
        super().__init__(sigma)

    def curve(self, s, k):
        sign = torch.where(k == 0, 1.0, -1.0).to(torch.float64)
        return sign[:, None] * (s / 3)[:, None] * torch.stack([-torch.cos(s), torch.sin(s)], dim=1)

    def log_w(self, s):
        return torch.log(s)

    def sample_s(self, n, generator):
        return 3 * math.pi * torch.sqrt(torch.rand(n, generator=generator, dtype=torch.float64))


class Rings(CurvePlusNoise):
    """Concentric circles of radii r_k blurred by N(0, sigma^2 I).

    c_k(theta) = r_k (cos theta, sin theta), theta ~ U[0, 2 pi), pi_k proportional
    to r_k (the same density of points along every ring). Averaging the Gaussian
    over the circle gives the Rician density in closed form,

        p_k(x) = 1/(2 pi sigma^2) exp(-(|x|^2 + r_k^2) / (2 sigma^2)) I0(|x| r_k / sigma^2),

    evaluated with the scaled Bessel function i0e(z) = exp(-z) I0(z) as
        log p_k(x) = -log(2 pi sigma^2) - (|x| - r_k)^2 / (2 sigma^2) + log i0e(|x| r_k / sigma^2).
    """

    name = "rings"
    labels_name = "ring"
    s_range = (0.0, 2 * math.pi)
    bounds = ((-4.0, 4.0), (-4.0, 4.0))

    def __init__(self, radii: tuple = (0.75, 1.5, 2.25, 3.0), sigma: float = 0.08):
        super().__init__(sigma)
        self.radii = tuple(float(r) for r in radii)
        if not self.radii or min(self.radii) <= 0:
            raise DataError(f"ring radii must be positive numbers, got {radii}")
        self.arm_weights = self.radii

    def curve(self, s, k):
        r = torch.tensor(self.radii, dtype=torch.float64)[k]
        return r[:, None] * torch.stack([torch.cos(s), torch.sin(s)], dim=1)

    def log_prob(self, x):
        return self.noised_log_prob(x.detach(), 0.0).to(x.dtype)

    def noised_log_prob(self, x, sigma):
        """The Rician mixture with sigma_data^2 + sigma^2 in place of sigma_data^2."""
        check_points(x)
        rho = x.to("cpu", torch.float64).norm(dim=1, keepdim=True)  # (n, 1)
        r = torch.tensor(self.radii, dtype=torch.float64)  # (K,)
        s2 = self.sigma**2 + sigma**2
        log_pk = (-math.log(2 * math.pi * s2) - (rho - r) ** 2 / (2 * s2)
                  + torch.log(torch.special.i0e(rho * r / s2)))  # (n, K)
        log_pi = torch.log(r / r.sum())
        return torch.logsumexp(log_pk + log_pi, dim=1)


class Pinwheel(CurvePlusNoise):
    """Pinwheel arms (Johnson et al. 2016, "Composing graphical models with neural
    networks"), in a curve-plus-noise variant.

    Johnson et al. draw (u, v) ~ N((1, 0), diag(radial_std^2, tangential_std^2)) and
    rotate by theta_k + rate * exp(u). Here the tangential noise is replaced by
    isotropic noise added after the rotation, so the density has form (1):

        c_k(u) = scale * R(theta_k + rate * exp(u)) (u, 0),   theta_k = 2 pi k / K,
        u ~ N(1, radial_std^2) truncated to 1 +- 5.5 radial_std (mass lost: 4e-8).

    The truncation is drawn exactly (inverse CDF), so sampler and density agree.
    """

    name = "pinwheel"
    labels_name = "arm"
    bounds = ((-4.0, 4.0), (-4.0, 4.0))
    TRUNCATE = 5.5

    def __init__(self, arms: int = 5, radial_std: float = 0.3, rate: float = 0.25, scale: float = 1.5,
                 sigma: float = 0.1):
        super().__init__(sigma)
        if int(arms) < 1 or radial_std <= 0:
            raise DataError(f"pinwheel needs at least one arm and radial_std > 0, got arms={arms}, radial_std={radial_std}")
        self.arms, self.radial_std, self.rate, self.scale = int(arms), float(radial_std), float(rate), float(scale)
        self.arm_weights = (1.0,) * self.arms
        self.s_range = (1 - self.TRUNCATE * self.radial_std, 1 + self.TRUNCATE * self.radial_std)

    def curve(self, s, k):
        angle = 2 * math.pi * k.to(torch.float64) / self.arms + self.rate * torch.exp(s)
        return self.scale * s[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)

    def log_w(self, s):
        return -0.5 * ((s - 1) / self.radial_std) ** 2

    def sample_s(self, n, generator):
        lo = torch.special.ndtr(torch.tensor(-self.TRUNCATE, dtype=torch.float64))
        u = lo + (1 - 2 * lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        return 1 + self.radial_std * torch.special.ndtri(u)
