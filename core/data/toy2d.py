"""2D toy datasets with exact densities.

Three kinds, each with an exact log-density so a model can be scored by
KL(p_data || q):

- Mixtures of isotropic Gaussians (core.data.mixtures; eight_gaussians as in
  FFJORD, Grathwohl et al. 2019; twenty_five_gaussians as in the GAN
  mode-collapse literature):

      p(x) = (1/K) sum_k N(x; mu_k, s^2 I).

- "Curve plus noise" datasets (two_moons, swiss_roll, spirals, rings,
  pinwheel): pick an arm k ~ pi, a curve parameter s ~ w(s), a point on the
  curve c_k(s), and add isotropic Gaussian noise,

      x = c_k(s) + sigma * eps,    eps ~ N(0, I),
      p(x) = sum_k pi_k * integral w(s) N(x; c_k(s), sigma^2 I) ds.       (1)

  The integral in (1) is a quadrature along the curve (core.data.curves).

- checkerboard: uniform on the 8 dark unit squares of a 4x4 board over
  [-2, 2]^2, a piecewise-constant density (log 1/8 inside, -inf outside).

Every dataset samples deterministically given a torch.Generator; labels are
the component, moon, arm, ring or square an example came from.
"""

from __future__ import annotations

import math

import torch

from ..registry import register_dataset
from .base import Dataset
from .curves import CurvePlusNoise, Pinwheel, Rings, Spirals, SwissRoll, TwoMoons
from .mixtures import GaussianMixture, check_n, check_points, eight_gaussians, mixture_log_prob, twenty_five_gaussians

__all__ = ["plane_grid", "mixture_log_prob", "GaussianMixture", "eight_gaussians", "twenty_five_gaussians",
           "CurvePlusNoise", "TwoMoons", "SwissRoll", "Spirals", "Rings", "Pinwheel", "Checkerboard"]


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


# ---- checkerboard -------------------------------------------------------------
class Checkerboard(Dataset):
    """Uniform on the 8 squares [i-2, i-1] x [j-2, j-1] with i + j even, i, j in 0..3.

    p(x) = 1/8 on those squares and 0 elsewhere (log p = -inf). Blurred by N(0, sigma^2 I),
    each square is a product of two blurred unit intervals, so

        p_sigma(x) = 1/8 sum_squares prod_d [Phi((x_d - a_d) / sigma) - Phi((x_d - a_d - 1) / sigma)],

    with a the square's lower-left corner: a smooth density with an exact score for sigma > 0.
    At sigma = 0 the score is 0 on the squares and undefined (NaN) off them.
    """

    name = "checkerboard"
    has_density = True
    has_score = True
    labels_name = "square"
    bounds = ((-2.5, 2.5), (-2.5, 2.5))

    def __init__(self):
        ij = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
        self.corners = torch.tensor(ij, dtype=torch.float64) - 2.0  # (8, 2) lower-left corners

    def sample_with_labels(self, n, generator=None):
        n = check_n(n)
        k = torch.randint(0, 8, (n,), generator=generator)
        x = self.corners[k] + torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return x.to(torch.get_default_dtype()), k

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x):
        check_points(x)
        x64 = x.detach().to("cpu", torch.float64)
        cell = torch.floor(x64 + 2.0)  # (n, 2) integer cell indices
        inside = ((cell >= 0) & (cell <= 3)).all(dim=1) & ((cell.sum(dim=1) % 2) == 0)
        out = torch.full((x64.shape[0],), -math.inf, dtype=torch.float64)
        out[inside] = -math.log(8.0)
        return out.to(x.dtype)

    def noised_log_prob(self, x, sigma):
        if sigma == 0:
            return self.log_prob(x.detach().to(torch.float64))
        check_points(x)
        x64 = x.to("cpu", torch.float64)
        u = (x64[:, None, :] - self.corners[None]) / sigma  # (n, 8, 2)
        log_box = _log_ndtr_diff(u - 1 / sigma, u).sum(-1)  # (n, 8): log prod_d [Phi(u_d) - Phi(u_d - 1/sigma)]
        return torch.logsumexp(log_box, dim=1) - math.log(8.0)


def _log_ndtr_diff(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(Phi(hi) - Phi(lo)) for lo < hi, accurate in both tails: above 0 it is written as
    Phi(-lo) - Phi(-hi), so neither term rounds to 1."""
    flip = lo > 0
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)  # log(Phi(b) - Phi(a)), a < b, a <= 0
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return log_b + torch.log1p(-torch.exp(log_a - log_b))


register_dataset("eight_gaussians", eight_gaussians, "8 Gaussians on a circle (radius 2.83, std 0.35)")
register_dataset("twenty_five_gaussians", twenty_five_gaussians, "5x5 grid of narrow Gaussians (std 0.1)")
register_dataset("two_moons", TwoMoons, "two interleaved half circles with Gaussian noise")
register_dataset("swiss_roll", SwissRoll, "a 2D swiss roll with Gaussian noise")
register_dataset("spirals", Spirals, "two interleaved spiral arms with Gaussian noise")
register_dataset("rings", Rings, "four concentric rings (exact Rician density)")
register_dataset("pinwheel", Pinwheel, "five curved arms (Johnson et al. 2016)")
register_dataset("checkerboard", Checkerboard, "uniform on 8 squares of a 4x4 board")
