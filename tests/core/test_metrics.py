"""Metrics against closed forms: MMD and energy distance of Gaussians, histogram
divergences, mode coverage, and KL of a model with a known density."""

import math

import pytest
import torch

from core import metrics as M
from core.data import toy2d as T
from core.data.base import Dataset
from core.data.files import PointsFile
from core.errors import DataError, LogProbUnavailable
from core.model import GenerativeModel


class Gaussian(Dataset):
    """N(mu, s^2 I) in 2D."""

    has_density = True

    def __init__(self, mu=(0.0, 0.0), s=1.0):
        self.mu, self.s, self.name = torch.tensor(mu, dtype=torch.float64), s, "gaussian"

    def sample(self, n, generator=None):
        return (self.mu + self.s * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()

    def log_prob(self, x):
        z = (x.double() - self.mu) / self.s
        return (-0.5 * (z**2).sum(1) - 2 * math.log(self.s) - math.log(2 * math.pi)).to(x.dtype)


class Stub(GenerativeModel):
    """A 'model' that is a dataset: its sampler and, optionally, its density."""

    def __init__(self, dataset, density=True, shape=(2,)):
        super().__init__(shape, None)
        self.dataset = dataset
        self.has_log_prob = density

    def sample(self, n):
        return self.dataset.sample(n)

    def log_prob(self, x):
        if not self.has_log_prob:
            return super().log_prob(x)
        return self.dataset.log_prob(x)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---- MMD and energy distance ---------------------------------------------------
def test_mmd_of_a_set_with_itself_is_zero_and_never_negative():
    x = torch.randn(300, 2, generator=gen(0))
    assert M.mmd(x, x) == 0.0
    for seed in range(5):
        a, b = torch.randn(20, 2, generator=gen(seed)), torch.randn(30, 2, generator=gen(seed + 10))
        assert M.mmd(a, b) >= 0.0


def test_kernel_mean_matches_float64_where_kernels_underflow():
    # points 0 to 40 apart: at h = 0.1 most kernel values are far below float32's range
    a = torch.rand(200, 2, generator=gen(1), dtype=torch.float64) * 40
    b = torch.rand(300, 2, generator=gen(2), dtype=torch.float64) * 40
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    for bandwidths in ((0.1,), (0.1, 0.2, 0.5, 1.0, 2.0), (5.0, 50.0)):
        exact = sum(torch.exp(-d2 / (2 * h**2)).mean() for h in bandwidths) / len(bandwidths)
        assert float(M._kernel_mean(d2, bandwidths)) == pytest.approx(float(exact), rel=1e-5)


def gaussian_grid(m):
    """m^2 points whose empirical distribution is close to N(0, I) in 2D (a product of normal quantiles)."""
    q = torch.special.ndtri((torch.arange(m, dtype=torch.float64) + 0.5) / m)
    gx, gy = torch.meshgrid(q, q, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def test_mmd_matches_the_closed_form_for_two_gaussians():
    # N(0, I) vs N(mu, I) in 2D, RBF of bandwidth h: E k(x, x') = h^2 / (h^2 + 2) = A and
    # E k(x, y) = A exp(-|mu|^2 / (2 (h^2 + 2))), so MMD^2 = 2 A (1 - exp(-|mu|^2 / (2 (h^2 + 2)))).
    x = gaussian_grid(32)
    for mu in ([1.0, -0.5], [2.0, 1.0]):
        mu = torch.tensor(mu, dtype=torch.float64)
        exact = sum(2 * h**2 / (h**2 + 2) * (1 - math.exp(-float(mu @ mu) / (2 * (h**2 + 2))))
                    for h in M.BANDWIDTHS_2D) / len(M.BANDWIDTHS_2D)
        assert M.mmd(x, x + mu) == pytest.approx(exact, rel=0.015)


def test_mmd_grows_with_the_shift():
    x, y = torch.randn(300, 2, generator=gen(3)), torch.randn(300, 2, generator=gen(4))
    values = [M.mmd(x, y + torch.tensor([d, 0.0])) for d in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_energy_distance_known_values():
    x = torch.randn(200, 3, generator=gen(5))
    assert M.energy_distance(x, x) == 0.0
    # {0, 1} vs {2}: 2 * (2 + 1)/2 - (0 + 1 + 1 + 0)/4 - 0 = 2.5
    assert M.energy_distance(torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0]])) == pytest.approx(2.5, abs=1e-12)
    # N(0, 1) vs N(m, 1): 2 E|N(m, 2)| - 2 E|N(0, 2)|, from 1000 quantile points of each.
    n, m = 1000, 1.0
    q = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)[:, None]
    s = math.sqrt(2)
    e_abs = s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * (1 - 2 * 0.5 * math.erfc(m / (s * math.sqrt(2))))
    assert M.energy_distance(q, q + m) == pytest.approx(2 * e_abs - 2 * s * math.sqrt(2 / math.pi), abs=1e-3)


def test_sample_metrics_of_nonfinite_sets_are_nan():
    x = torch.randn(50, 2, generator=gen(6))
    y = x.clone()
    y[3, 1] = float("nan")
    assert math.isnan(M.mmd(x, y)) and math.isnan(M.energy_distance(x, y))
    assert all(math.isnan(v) for v in M.histogram_divergences(x, y, ((-4, 4), (-4, 4))).values())


# ---- histogram divergences ------------------------------------------------------
BOX = ((-4.0, 4.0), (-4.0, 4.0))


def test_histogram_divergences_of_a_set_with_itself_are_zero():
    x = torch.randn(1000, 2, generator=gen(7))
    assert M.histogram_divergences(x, x, BOX) == {"hist_kl": 0.0, "hist_js": 0.0}


def test_histogram_divergences_known_value():
    # all of x in one bin; y half there, half in another: KL = log 2, JS = (3/4) log(4/3) ... in closed form below
    x = torch.full((100, 2), 0.01)
    y = torch.cat([torch.full((50, 2), 0.01), torch.full((50, 2), 2.01)])
    out = M.histogram_divergences(x, y, BOX)
    js = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert out["hist_kl"] == pytest.approx(math.log(2), abs=5e-3)  # eps smoothing moves it by ~2.5e-3
    assert out["hist_js"] == pytest.approx(js, abs=5e-3)


def test_every_sample_is_counted_even_far_outside_the_box():
    x = torch.rand(2000, 2, generator=gen(8)) * 8 - 4  # uniform on the box
    y = x.clone()
    edge = y[:, 0] > 3.9  # points in the right-most column of bins, moved far out to the right
    y[edge, 0] = 1e6
    assert edge.sum() > 10
    assert M.histogram_divergences(x, y, BOX)["hist_kl"] == pytest.approx(0.0, abs=1e-12)
    far, corner = x.clone(), x.clone()
    far[:1000] = torch.tensor([50.0, 50.0])  # half the samples, far beyond the top-right corner ...
    corner[:1000] = torch.tensor([3.99, 3.99])  # ... count as if they were in the corner bin
    assert M.histogram_divergences(x, far, BOX) == M.histogram_divergences(x, corner, BOX)
    assert M.histogram_divergences(x, far, BOX)["hist_js"] > 0.15  # dropping them would give ~0.02


# ---- mode statistics ---------------------------------------------------------------------
def test_samples_from_three_of_eight_modes_cover_three():
    d = T.eight_gaussians()
    k = torch.randint(0, 3, (3000,), generator=gen(9))
    x = d.modes[k] + d.mode_std * torch.randn(3000, 2, generator=gen(10), dtype=torch.float64)
    out = M.mode_stats(x, d.modes, d.mode_std)
    assert out["modes_covered"] == 3 and out["n_modes"] == 8
    assert out["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(|z| < 3) for a 2D Gaussian


def test_a_mode_needs_a_fifth_of_its_fair_share_to_count_as_covered():
    d = T.eight_gaussians()
    n = 800  # fair share 100, threshold 20
    x = torch.cat([d.modes[0].repeat(n - 30, 1), d.modes[1].repeat(19, 1), d.modes[2].repeat(11, 1)])
    assert M.mode_stats(x, d.modes, d.mode_std)["modes_covered"] == 1
    x = torch.cat([d.modes[0].repeat(n - 20, 1), d.modes[1].repeat(20, 1)])
    assert M.mode_stats(x, d.modes, d.mode_std)["modes_covered"] == 2


def test_far_and_nonfinite_samples_are_low_quality():
    d = T.eight_gaussians()
    x = torch.cat([d.modes.repeat(50, 1), torch.full((300, 2), 100.0), torch.full((100, 2), float("nan"))])
    out = M.mode_stats(x, d.modes, d.mode_std)
    assert out["high_quality"] == pytest.approx(400 / 800) and out["modes_covered"] == 8


# ---- KL --------------------------------------------------------------------------------
def test_kl_of_a_model_with_the_exact_density_is_zero():
    for d in (T.eight_gaussians(), T.Rings()):
        assert abs(M.kl_exact(d, Stub(d), 2000, gen(11))) < 1e-5


def test_kl_of_gaussians_matches_the_closed_form():
    # KL(N(0, I) || N(mu, s^2 I)) in 2D = 2 log s + (2 + |mu|^2) / (2 s^2) - 1
    p = Gaussian()
    for mu, s in [((1.0, 0.5), 1.0), ((0.5, -1.0), 1.5)]:
        exact = 2 * math.log(s) + (2 + mu[0] ** 2 + mu[1] ** 2) / (2 * s**2) - 1
        assert M.kl_exact(p, Stub(Gaussian(mu, s)), 40_000, gen(12)) == pytest.approx(exact, abs=0.03)


def test_kl_refuses_without_densities():
    pts = PointsFile(torch.randn(50, 2, generator=gen(13)))
    with pytest.raises(DataError, match="no known density"):
        M.kl_exact(pts, Stub(Gaussian()), 10)
    with pytest.raises(LogProbUnavailable, match="no density"):
        M.kl_exact(Gaussian(), Stub(Gaussian(), density=False), 10)


# ---- evaluate ------------------------------------------------------------------------------
def test_evaluate_a_perfect_model_on_eight_gaussians():
    d = T.eight_gaussians()
    ref, other = d.sample(1000, gen(14)), d.sample(1000, gen(15))
    torch.manual_seed(0)
    model = Stub(d).train()
    out = M.evaluate(model, d, ref, n=1000, generator=gen(16))
    assert set(out) == {"kl", "mmd", "energy", "hist_kl", "hist_js", "modes_covered", "n_modes", "high_quality", "nonfinite"}
    assert model.training  # restored
    assert abs(out["kl"]) < 1e-5 and out["nonfinite"] == 0.0
    # a perfect model scores like a second set of true samples
    assert out["mmd"] < 2 * M.mmd(ref, other) and out["energy"] < 2 * M.energy_distance(ref, other)
    floor = M.histogram_divergences(ref, other, d.bounds)
    assert 0 < out["hist_kl"] < 2 * floor["hist_kl"] and 0 < out["hist_js"] < 2 * floor["hist_js"]
    assert out["modes_covered"] == 8 and out["high_quality"] > 0.97
    collapsed = M.evaluate(Stub(Gaussian((0.0, 0.0), 0.5)), d, ref, n=1000, generator=gen(16))
    assert collapsed["kl"] > 1.0 and collapsed["mmd"] > 10 * out["mmd"] and collapsed["hist_js"] > 10 * out["hist_js"]
    assert collapsed["modes_covered"] == 0 and collapsed["high_quality"] < 0.01


def test_evaluate_skips_what_does_not_apply():
    d = T.TwoMoons()
    out = M.evaluate(Stub(d, density=False), d, d.sample(500, gen(17)), n=500)
    assert set(out) == {"mmd", "energy", "hist_kl", "hist_js", "nonfinite"}
    out = M.evaluate(Stub(d), d, d.sample(500, gen(17)), n=500, with_kl=False)
    assert "kl" not in out


def test_evaluate_reports_nan_for_a_diverged_model():
    d = T.eight_gaussians()

    class Diverged(Stub):
        def sample(self, n):
            x = super().sample(n)
            x[::2] = float("nan")
            return x

    out = M.evaluate(Diverged(d, density=False), d, d.sample(500, gen(18)), n=500)
    assert math.isnan(out["mmd"]) and math.isnan(out["energy"]) and math.isnan(out["hist_kl"])
    assert out["nonfinite"] == 0.5 and out["high_quality"] <= 0.5


def test_evaluate_flattens_images():
    class Blobs(Dataset):
        shape, bounds, name = (1, 4, 4), None, "blobs"

        def __init__(self, level):
            self.level = level

        def sample(self, n, generator=None):
            return self.level + 0.1 * torch.rand(n, 1, 4, 4, generator=generator)

    data = Blobs(0.5)
    ref = data.sample(300, gen(19))
    same = M.evaluate(Stub(data, density=False, shape=(1, 4, 4)), data, ref, n=300)
    shifted = M.evaluate(Stub(Blobs(0.6), density=False, shape=(1, 4, 4)), data, ref, n=300)
    assert set(same) == {"mmd", "energy", "nonfinite"}
    assert shifted["mmd"] > 20 * same["mmd"] and shifted["energy"] > 20 * same["energy"]


def test_evaluate_with_cached_reference_terms_matches_the_full_estimators():
    # The reference's own kernel and distance means are computed once per run and reused;
    # the values must be those of mmd() and energy_distance() on the same two sets.
    class Fixed(Stub):
        def sample(self, n):
            return self.points[:n].clone()

    class Images(Dataset):
        shape, bounds, name = (1, 4, 4), None, "images"

    cases = [(T.eight_gaussians(), (2,), 1.2 * T.eight_gaussians().sample(300, gen(21)), T.eight_gaussians().sample(400, gen(20))),
             (Images(), (1, 4, 4), 0.9 * torch.rand(300, 1, 4, 4, generator=gen(21)), torch.rand(400, 1, 4, 4, generator=gen(20)))]
    for d, shape, pts, ref in cases:
        model = Fixed(d, density=False, shape=shape)
        model.points = pts
        terms = M.reference_terms(ref)
        for cached in (None, terms):
            out = M.evaluate(model, d, ref, n=300, ref_terms=cached)
            assert out["mmd"] == pytest.approx(M.mmd(pts, ref, M.bandwidths_for(ref)), rel=1e-6)
            assert out["energy"] == pytest.approx(M.energy_distance(pts, ref), rel=1e-6)
        # terms of a reference of another size are not used by mistake
        half = ref[:200]
        out = M.evaluate(model, d, half, n=300, ref_terms=terms)
        assert out["mmd"] == pytest.approx(M.mmd(pts, half, M.bandwidths_for(half)), rel=1e-6)


# ---- the noise floor of the sample metrics ----------------------------------------------------
class Uniform(Dataset):
    """Uniform on the box [-4, 4]^2: every bin of a 20 x 20 histogram holds 1/400 of the mass."""

    name, bounds = "uniform", ((-4.0, 4.0), (-4.0, 4.0))

    def sample(self, n, generator=None):
        return 8 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 4


@pytest.mark.parametrize("n,m", [(20_000, 20_000), (40_000, 10_000)])
def test_histogram_divergences_of_true_samples_follow_the_second_order_floor(n, m):
    # E[KL] ~ (B - 1)(1/n + 1/m)/2 and E[JS] ~ (B - 1)(1/n + 1/m)/8 between histograms of two sets
    # of one distribution (B occupied bins): the old "B / (2n)" was two to four times too small
    d, B = Uniform(), 400
    runs = [M.histogram_divergences(d.sample(n, gen(2 * r)), d.sample(m, gen(2 * r + 1)), d.bounds) for r in range(12)]
    kl = sum(r["hist_kl"] for r in runs) / len(runs)
    js = sum(r["hist_js"] for r in runs) / len(runs)
    assert kl == pytest.approx((B - 1) * (1 / n + 1 / m) / 2, rel=0.1)
    assert js == pytest.approx((B - 1) * (1 / n + 1 / m) / 8, rel=0.1)
    assert kl > 2 * B / (2 * max(n, m))


def test_the_noise_floor_is_what_a_perfect_model_scores():
    d = T.eight_gaussians()
    ref = d.sample(2000, gen(30))
    floor = M.noise_floor(d, ref, 1000, seed=40)
    assert set(floor) == {"mmd", "energy", "hist_kl", "hist_js"} and all(v > 0 for v in floor.values())
    by_hand = [M.sample_metrics(d.sample(1000, gen(40 + r)), d, ref) for r in range(3)]
    assert floor["hist_kl"] == pytest.approx(sum(r["hist_kl"] for r in by_hand) / 3)
    torch.manual_seed(1)
    perfect = M.evaluate(Stub(d), d, ref, n=1000, with_kl=False)
    for k in floor:  # a perfect model lands at its floor, not at zero
        assert 0.4 * floor[k] < perfect[k] < 2.5 * floor[k], k
    collapsed = M.evaluate(Stub(Gaussian((0.0, 0.0), 0.5)), d, ref, n=1000, with_kl=False)
    assert all(collapsed[k] > 5 * floor[k] for k in floor)
