"""2D toy datasets with exact densities.

Three kinds, each with an exact log-density so a model can be scored by
KL(p_data || q):

- Mixtures of isotropic Gaussians (eight_gaussians as in FFJORD, Grathwohl et
  al. 2019; twenty_five_gaussians as in the GAN mode-collapse literature):

      p(x) = (1/K) sum_k N(x; mu_k, s^2 I).

- "Curve plus noise" datasets (two_moons, swiss_roll, spirals, rings,
  pinwheel): pick an arm k ~ pi, a curve parameter s ~ w(s), a point on the
  curve c_k(s), and add isotropic Gaussian noise,

      x = c_k(s) + sigma * eps,    eps ~ N(0, I),
      p(x) = sum_k pi_k * integral w(s) N(x; c_k(s), sigma^2 I) ds.       (1)

  The integral in (1) is a 1D quadrature along the curve (`CurvePlusNoise`):
  composite Gauss-Legendre on cells of 2 sigma of arc length (5 nodes each,
  cells refined towards the ends of each arm), summed as a log-sum-exp. Its
  error in log p is below 1e-4 wherever a point could plausibly fall (tests
  compare it with a brute-force quadrature far finer than sigma). Sampling
  draws k, s and eps from exactly the distributions the quadrature integrates
  (tests compare histograms of samples with the density integrated over bins).
  Rings have a closed form (a circle blurred by isotropic noise is a Rician
  density, with the Bessel function I0) and use it.

- checkerboard: uniform on the 8 dark unit squares of a 4x4 board over
  [-2, 2]^2, a piecewise-constant density (log 1/8 inside, -inf outside).

Every dataset samples deterministically given a torch.Generator; labels are
the component, moon, arm, ring or square an example came from.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DataError
from ..registry import register_dataset
from .base import Dataset

CELL = 2.0  # quadrature cell length along the curve, in units of sigma
GAUSS_POINTS = 5  # Gauss-Legendre nodes per cell
GRADING = 8  # cells halved this many times towards each end of an arm
PROBE = 20001  # curve points used to measure arc length when placing cells
_CHUNK = 2**22  # (points x nodes) entries per block, bounds memory to ~32 MB


def plane_grid(bounds, resolution: int, dtype: torch.dtype = torch.float32):
    """A G x G grid over the box `bounds` = ((xmin, xmax), (ymin, ymax)).

    Returns (grid (G*G, 2), xs (G,), ys (G,)) in row-major order: row i holds
    y = ys[i] and column j holds x = xs[j], so values computed on the grid and
    reshaped to (G, G) form an image with y along the rows (the layout a
    heatmap expects, z[i][j] at (xs[j], ys[i])).
    """
    resolution = int(resolution)
    if resolution < 2:
        raise ValueError(f"plane_grid needs a resolution of at least 2, got {resolution}")
    (x0, x1), (y0, y1) = bounds
    xs = torch.linspace(float(x0), float(x1), resolution, dtype=dtype)
    ys = torch.linspace(float(y0), float(y1), resolution, dtype=dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (G*G, 2)
    return grid, xs, ys


def mixture_log_prob(x: torch.Tensor, centres: torch.Tensor, log_weights: torch.Tensor,
                     sigma: float) -> torch.Tensor:
    """log sum_j a_j N(x; c_j, sigma^2 I) for 2D x (n, 2), centres (M, 2), log a (M,).

    Computed in float64, in blocks of points so memory stays bounded.
    """
    x64 = x.detach().to("cpu", torch.float64)
    centres, log_weights = centres.to(torch.float64), log_weights.to(torch.float64)
    out = torch.empty(x64.shape[0], dtype=torch.float64)
    block = max(1, _CHUNK // centres.shape[0])
    for i in range(0, x64.shape[0], block):
        d2 = torch.cdist(x64[i:i + block], centres, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        out[i:i + block] = torch.logsumexp(log_weights - d2 / (2 * sigma**2), dim=1)
    return out - math.log(2 * math.pi * sigma**2)


def _check_points(x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got {tuple(x.shape)}")


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    return int(n)


# ---- mixtures of Gaussians ------------------------------------------------
class GaussianMixture(Dataset):
    """Equal-weight mixture of isotropic Gaussians N(mu_k, std^2 I)."""

    has_density = True
    labels_name = "component"

    def __init__(self, name: str, modes: torch.Tensor, std: float, bounds: tuple):
        self.name = name
        self.modes = modes.to(torch.float64)  # (K, 2)
        self.mode_std = float(std)
        self.bounds = bounds

    def sample_with_labels(self, n, generator=None):
        n = _check_n(n)
        k = torch.randint(0, self.modes.shape[0], (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = self.modes[k] + self.mode_std * eps
        return x.to(torch.get_default_dtype()), k

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x):
        _check_points(x)
        K = self.modes.shape[0]
        log_w = torch.full((K,), -math.log(K), dtype=torch.float64)
        return mixture_log_prob(x, self.modes, log_w, self.mode_std).to(x.dtype)


def eight_gaussians() -> GaussianMixture:
    """8 Gaussians on a circle of radius 2*sqrt(2), std 0.5/sqrt(2) (FFJORD's '8gaussians')."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    modes = 2 * math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture("eight_gaussians", modes, 0.5 / math.sqrt(2), ((-4.5, 4.5), (-4.5, 4.5)))


def twenty_five_gaussians() -> GaussianMixture:
    """A 5x5 grid of Gaussians at {-3, -1.5, 0, 1.5, 3}^2 with std 0.1."""
    c = torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0], dtype=torch.float64)
    gx, gy = torch.meshgrid(c, c, indexing="ij")
    modes = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    return GaussianMixture("twenty_five_gaussians", modes, 0.1, ((-4.0, 4.0), (-4.0, 4.0)))


# ---- curve plus noise ---------------------------------------------------------
class CurvePlusNoise(Dataset):
    """x = c_k(s) + sigma * eps with k ~ pi, s ~ w(s) on [s_lo, s_hi]; density (1).

    A subclass defines the arms `curve(s, k)`, the parameter's log-density
    `log_w(s)` (up to a constant) and its sampler `sample_s(n, generator)`, and
    the quadrature then integrates exactly what the sampler draws.
    """

    has_density = True
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
        n = _check_n(n)
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
        _check_points(x)
        centres, log_a = self.quadrature_nodes()
        return mixture_log_prob(x, centres, log_a, self.sigma).to(x.dtype)

    def log_prob(self, x):
        return self.log_prob_quadrature(x)


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
        _check_points(x)
        rho = x.detach().to("cpu", torch.float64).norm(dim=1, keepdim=True)  # (n, 1)
        r = torch.tensor(self.radii, dtype=torch.float64)  # (K,)
        s2 = self.sigma**2
        log_pk = (-math.log(2 * math.pi * s2) - (rho - r) ** 2 / (2 * s2)
                  + torch.log(torch.special.i0e(rho * r / s2)))  # (n, K)
        log_pi = torch.log(r / r.sum())
        return torch.logsumexp(log_pk + log_pi, dim=1).to(x.dtype)


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


# ---- checkerboard -------------------------------------------------------------
class Checkerboard(Dataset):
    """Uniform on the 8 squares [i-2, i-1] x [j-2, j-1] with i + j even, i, j in 0..3.

    p(x) = 1/8 on those squares and 0 elsewhere (log p = -inf).
    """

    name = "checkerboard"
    has_density = True
    labels_name = "square"
    bounds = ((-2.5, 2.5), (-2.5, 2.5))

    def __init__(self):
        ij = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        self.corners = torch.tensor(ij, dtype=torch.float64) - 2.0  # (8, 2) lower-left corners

    def sample_with_labels(self, n, generator=None):
        n = _check_n(n)
        k = torch.randint(0, 8, (n,), generator=generator)
        x = self.corners[k] + torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return x.to(torch.get_default_dtype()), k

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x):
        _check_points(x)
        x64 = x.detach().to("cpu", torch.float64)
        cell = torch.floor(x64 + 2.0)  # (n, 2) integer cell indices
        inside = ((cell >= 0) & (cell <= 3)).all(dim=1) & ((cell.sum(dim=1) % 2) == 0)
        out = torch.full((x64.shape[0],), -math.inf, dtype=torch.float64)
        out[inside] = -math.log(8.0)
        return out.to(x.dtype)


register_dataset("eight_gaussians", eight_gaussians, "8 Gaussians on a circle (radius 2.83, std 0.35)")
register_dataset("twenty_five_gaussians", twenty_five_gaussians, "5x5 grid of narrow Gaussians (std 0.1)")
register_dataset("two_moons", TwoMoons, "two interleaved half circles with Gaussian noise")
register_dataset("swiss_roll", SwissRoll, "a 2D swiss roll with Gaussian noise")
register_dataset("spirals", Spirals, "two interleaved spiral arms with Gaussian noise")
register_dataset("rings", Rings, "four concentric rings (exact Rician density)")
register_dataset("pinwheel", Pinwheel, "five curved arms (Johnson et al. 2016)")
register_dataset("checkerboard", Checkerboard, "uniform on 8 squares of a 4x4 board")
