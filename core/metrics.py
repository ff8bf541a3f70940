"""How close a model's samples are to the data, for every family.

- kl_exact: KL(p_data || q) = E_{x ~ p_data}[log p(x) - log q(x)], a Monte Carlo
  average over data samples; needs the data's exact density and the model's
  log_prob.
- mmd: squared maximum mean discrepancy (Gretton et al. 2012) with a mixture of
  RBF kernels, biased (V-statistic) estimator.
- energy_distance: 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely and Rizzo 2004).
- histogram_divergences: KL and Jensen-Shannon divergences between 2D
  histograms on a grid (what GAN Lab shows).
- mode_stats: modes covered and fraction of high-quality samples for mixtures
  of Gaussians (as in Srivastava et al. 2017, VEEGAN).
- score_error: for a model that learns a score, its relative Fisher divergence
  from the data's exact score at the noise levels it learns.

Torch tensors in, python floats out. Sample metrics of a set holding NaN or inf
are reported as nan rather than raised: a diverging model is something to show.
"""

from __future__ import annotations

import math

import torch

from .errors import DataError, LogProbUnavailable

# RBF bandwidths for 2D data that lives in about [-4, 4]^2: from the width of the
# narrowest modes (0.1) to the scale of the whole picture.
BANDWIDTHS_2D = (0.1, 0.2, 0.5, 1.0, 2.0)
# For other data (flattened images): multiples of the median pairwise distance.
MEDIAN_MULTIPLES = (0.5, 1.0, 2.0)
HIST_EPS = 1e-6  # probability added to every histogram bin before renormalising
SCORE_ERROR_POINTS = 1000  # points per noise level for score_error in evaluate()
COVERAGE_FRACTION = 0.2  # a mode is covered by >= 20% of the n/K samples uniform coverage gives it


def _flat64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(x.shape[0], math.prod(x.shape[1:])).to("cpu", torch.float64)


def _finite(*xs: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in xs)


@torch.no_grad()
def kl_exact(dataset, model, n: int, generator: torch.Generator | None = None) -> float:
    """KL(p_data || q) in nats, by Monte Carlo over n data samples x ~ p_data:

        KL ~ (1/n) sum_i [log p(x_i) - log q(x_i)].

    Unbiased; its standard error is std(log p - log q) / sqrt(n).
    """
    if not dataset.has_density:
        raise DataError(f"dataset {dataset.name!r} has no known density, so KL cannot be computed; "
                        f"use the sample metrics (mmd, energy) instead")
    if not getattr(model, "has_log_prob", False):
        raise LogProbUnavailable(f"{type(model).__name__} defines no density, so KL cannot be computed; "
                                 f"use the sample metrics (mmd, energy) instead")
    if int(n) < 1:
        raise ValueError(f"kl_exact needs at least one sample, got n={n}")
    x = dataset.sample(int(n), generator)  # (n, *shape)
    log_p = dataset.log_prob(x.to(torch.float64))  # the same points, density in float64
    device = getattr(model, "device", torch.device("cpu"))
    log_q = torch.cat([model.log_prob(chunk.to(device)).detach().to("cpu", torch.float64)
                       for chunk in x.split(1024)])
    return float((log_p - log_q).mean())


def score_error(dataset, model, n: int, generator: torch.Generator | None = None) -> float:
    """The learned score against the exact one, a relative Fisher divergence averaged over the
    model's score_levels (alpha, sigma):

        E_{x ~ p} |s_theta(x) - grad log p(x)|^2 / E_{x ~ p} |grad log p(x)|^2,   p = law(alpha X + sigma eps),

    by Monte Carlo over n points x = alpha x_0 + sigma eps, x_0 from the data. 0 is the exact
    score, 1 as far off as the zero field. Points where the exact score is undefined are left out.
    """
    levels = model.score_levels()
    if not levels:
        raise ValueError(f"{type(model).__name__} declares no score levels")
    if not getattr(dataset, "has_score", False):
        raise DataError(f"dataset {dataset.name!r} has no known score, so the score error cannot be computed")
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    errors = []
    for alpha, sigma in levels:
        x0 = dataset.sample(int(n), generator).to(torch.float64)
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        x = alpha * x0 + sigma * eps
        exact = dataset.path_score(x, alpha, sigma).reshape(x.shape[0], -1)
        learned = model.score_at(x.to(model.device, dtype), alpha, sigma).detach().to("cpu", torch.float64)
        learned = learned.reshape(x.shape[0], -1)
        ok = torch.isfinite(exact).all(1)
        if not bool(ok.any()):
            continue
        num = ((learned[ok] - exact[ok]) ** 2).sum(1).mean()
        errors.append(float(num / (exact[ok] ** 2).sum(1).mean().clamp_min(1e-12)))
    return sum(errors) / len(errors) if errors else math.nan


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 (n, m), in float64 for points and float32 for images (where the
    matmul dominates the cost and distances dwarf float32 rounding)."""
    if a.shape[1] > 16:
        a, b = a.float(), b.float()
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return d2.clamp_min(0.0)  # rounding can leave tiny negatives


# exp(-80) ~ 2e-35: below it a kernel value adds nothing a float64 sum of a few million
# entries can see, and exp of a float32 that underflows takes several times longer.
_EXP_FLOOR = -80.0


def _kernel_mean(d2: torch.Tensor, bandwidths) -> torch.Tensor:
    """mean over entries and bandwidths h of exp(-d^2 / (2 h^2)), summed in float64."""
    d2 = d2.float()
    k = torch.empty_like(d2)  # one buffer for every bandwidth
    total = 0.0
    for h in bandwidths:
        torch.mul(d2, -0.5 / h**2, out=k)
        total = total + k.clamp_(min=_EXP_FLOOR).exp_().sum(dtype=torch.float64)
    return total / (len(bandwidths) * d2.numel())


def median_distance(y: torch.Tensor, max_points: int = 1000) -> float:
    """Median pairwise distance among the first max_points rows of y (the median heuristic)."""
    y = _flat64(y)[:max_points]
    d = _sq_dists(y, y).sqrt()
    off_diagonal = d[~torch.eye(y.shape[0], dtype=torch.bool)]
    return float(off_diagonal.median()) if off_diagonal.numel() else 1.0


def bandwidths_for(reference: torch.Tensor) -> tuple:
    """BANDWIDTHS_2D for points; multiples of the reference's median distance otherwise.

    The bandwidths depend on the reference only, so MMDs against one reference
    are comparable across models.
    """
    if reference[0].numel() == 2:
        return BANDWIDTHS_2D
    scale = median_distance(reference)
    return tuple(m * scale for m in MEDIAN_MULTIPLES) if scale > 0 else BANDWIDTHS_2D


def _pairwise(x, y):
    return _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)


def _mmd(d2_xx, d2_yy, d2_xy, bandwidths) -> float:
    value = _kernel_mean(d2_xx, bandwidths) + _kernel_mean(d2_yy, bandwidths) - 2 * _kernel_mean(d2_xy, bandwidths)
    return max(float(value), 0.0)


def _energy(d2_xx, d2_yy, d2_xy) -> float:
    e_xx, e_yy, e_xy = (d2.sqrt().mean(dtype=torch.float64) for d2 in (d2_xx, d2_yy, d2_xy))
    return max(float(2 * e_xy - e_xx - e_yy), 0.0)


def reference_terms(reference: torch.Tensor) -> dict:
    """The parts of MMD and energy distance that depend on the reference alone.

    They are two thirds of the work for a reference twice the size of the
    sample set, and the same at every evaluation of a run: compute them once
    and pass them to `evaluate`.
    """
    y = _flat64(reference)
    bandwidths = bandwidths_for(y)
    d2_yy = _sq_dists(y, y)
    return {"n": y.shape[0], "bandwidths": bandwidths, "k_yy": float(_kernel_mean(d2_yy, bandwidths)),
            "e_yy": float(d2_yy.sqrt().mean(dtype=torch.float64))}


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=BANDWIDTHS_2D) -> float:
    """Squared MMD between samples x (n, ...) and y (m, ...), kernel k = mean of RBFs.

        MMD^2 = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j).

    The biased (V-statistic) estimator keeps the diagonal terms: it is the exact
    squared RKHS distance between the two empirical mean embeddings, so it is
    never negative. It is biased upwards by O(1/n), so a model is judged
    against the MMD between two independent sets of true samples of the same
    sizes, which carries the same bias.
    """
    x, y = _flat64(x), _flat64(y)
    if not _finite(x, y):
        return math.nan
    return _mmd(*_pairwise(x, y), bandwidths)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic, >= 0).

    Zero iff the two distributions agree; in 1D it equals 2 * integral (F - G)^2.
    """
    x, y = _flat64(x), _flat64(y)
    if not _finite(x, y):
        return math.nan
    return _energy(*_pairwise(x, y))


def _histogram(x: torch.Tensor, bounds, bins: int) -> torch.Tensor:
    """Normalised bins x bins histogram; points outside the box count in the edge bins."""
    idx = []
    for d, (lo, hi) in enumerate(bounds):
        i = torch.floor((x[:, d] - lo) / (hi - lo) * bins).clamp(0, bins - 1).long()
        idx.append(i)
    counts = torch.bincount(idx[1] * bins + idx[0], minlength=bins * bins).to(torch.float64)
    p = counts / counts.sum() + HIST_EPS
    return p / p.sum()  # (bins * bins,)


def histogram_divergences(x: torch.Tensor, y: torch.Tensor, bounds, bins: int = 20) -> dict:
    """KL(H_x || H_y) and JS(H_x, H_y) in nats between 2D histograms of x and y.

    Every sample is counted: points outside `bounds` fall into the edge bins.
    Each bin gets HIST_EPS of probability before renormalising, so a bin one set
    never visits costs a large but finite log-ratio instead of an infinite one.
    JS is at most log 2. Both are biased upwards by sampling noise: for two
    sets of n and m samples of one distribution over B occupied bins, to
    second order

        E[KL] ~ (B - 1) (1/n + 1/m) / 2,    E[JS] ~ (B - 1) (1/n + 1/m) / 8,

    (each bin's two frequencies differ by a variance p (1 - p) (1/n + 1/m)),
    and bins that one set leaves empty add more through HIST_EPS. So compare
    with the value between two independent sets of true samples of the same
    sizes (`noise_floor`), never with zero.
    """
    if x.shape[-1] != 2 or y.shape[-1] != 2:
        raise ValueError(f"histogram divergences need 2D points, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = _flat64(x), _flat64(y)
    if not _finite(x, y):
        return {"hist_kl": math.nan, "hist_js": math.nan}
    p, q = _histogram(x, bounds, bins), _histogram(y, bounds, bins)
    m = 0.5 * (p + q)
    kl = (p * (p / q).log()).sum()
    js = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    return {"hist_kl": float(kl), "hist_js": float(js)}


def mode_stats(samples: torch.Tensor, modes: torch.Tensor, std: float, threshold: float = COVERAGE_FRACTION) -> dict:
    """Modes covered and high-quality fraction for a mixture of K Gaussians of std `std`.

    A sample is high quality if it lies within 3 std of its nearest mode (in 2D,
    98.9% of a true mode's samples do). A mode is covered if at least
    max(1, threshold * n / K) high-quality samples are nearest to it, i.e. 20%
    of what uniform coverage would give it. Non-finite samples are low quality.
    """
    x, mu = _flat64(samples), _flat64(modes)
    n, K = x.shape[0], mu.shape[0]
    finite = torch.isfinite(x).all(dim=1)
    d = torch.cdist(torch.where(finite[:, None], x, torch.zeros_like(x)), mu)  # (n, K)
    d_min, nearest = d.min(dim=1)
    good = finite & (d_min <= 3 * std)
    counts = torch.bincount(nearest[good], minlength=K)
    needed = max(1.0, threshold * n / K)
    return {"modes_covered": int((counts >= needed).sum()), "n_modes": K,
            "high_quality": float(good.double().mean()) if n else math.nan}


@torch.no_grad()
def evaluate(model, dataset, reference: torch.Tensor, n: int = 2000, with_kl: bool = True,
             generator: torch.Generator | None = None, ref_terms: dict | None = None) -> dict:
    """Every metric that applies to `model` on `dataset`, as a dict of floats.

    reference: (m, *shape) true samples, drawn once by the caller so that values
    are comparable across calls. Keys:
      kl                         if with_kl and both data and model have densities
      mmd, energy                always (on flattened samples)
      hist_kl, hist_js           2D data: KL(H_data || H_model) and JS over dataset.bounds
      modes_covered, n_modes, high_quality   datasets with modes
      score_error                models that declare score_levels, on data with a known score
      nonfinite                  fraction of model samples that are NaN or inf
    Sample metrics are nan when any model sample is non-finite. The model is put
    in eval mode for the duration and restored after. ref_terms: reference_terms(reference),
    to skip recomputing them.
    """
    was_training = model.training
    model.eval()
    try:
        samples = model.sample(int(n)).detach().to("cpu", torch.float64)  # (n, *shape)
        out = {}
        if with_kl and dataset.has_density and getattr(model, "has_log_prob", False):
            out["kl"] = kl_exact(dataset, model, n, generator)
        if getattr(dataset, "has_score", False) and hasattr(model, "score_levels") and model.score_levels():
            out["score_error"] = score_error(dataset, model, min(int(n), SCORE_ERROR_POINTS), generator)
    finally:
        model.train(was_training)
    out.update(sample_metrics(samples, dataset, reference, ref_terms))
    return out


@torch.no_grad()
def sample_metrics(samples: torch.Tensor, dataset, reference: torch.Tensor, ref_terms: dict | None = None) -> dict:
    """The metrics of evaluate() that need only samples (n, *shape): all but kl."""
    x, ref = samples.reshape(samples.shape[0], -1), reference.detach().reshape(reference.shape[0], -1)
    out = {"nonfinite": float((~torch.isfinite(x).all(dim=1)).double().mean())}
    if _finite(x):
        x, y = _flat64(x), _flat64(ref)
        if ref_terms is None or ref_terms["n"] != y.shape[0]:
            ref_terms = reference_terms(y)
        d2_xx, d2_xy = _sq_dists(x, x), _sq_dists(x, y)  # shared by MMD and energy distance
        bw = ref_terms["bandwidths"]
        out["mmd"] = max(float(_kernel_mean(d2_xx, bw) + ref_terms["k_yy"] - 2 * _kernel_mean(d2_xy, bw)), 0.0)
        e_xx, e_xy = (d2.sqrt().mean(dtype=torch.float64) for d2 in (d2_xx, d2_xy))
        out["energy"] = max(float(2 * e_xy - e_xx) - ref_terms["e_yy"], 0.0)
    else:
        out["mmd"] = out["energy"] = math.nan
    if x.shape[1] == 2 and dataset.bounds is not None:
        out.update(histogram_divergences(ref, x, dataset.bounds))
    if dataset.modes is not None:
        out.update(mode_stats(x, dataset.modes, dataset.mode_std))
    return out


FLOOR_METRICS = ("mmd", "energy", "hist_kl", "hist_js")


@torch.no_grad()
def noise_floor(dataset, reference: torch.Tensor, n: int, seed: int, ref_terms: dict | None = None,
                repeats: int = 3) -> dict:
    """What a perfect model scores: each sample metric between `reference` and n fresh true
    samples (the mean of `repeats` independent draws). MMD, energy distance and the histogram
    divergences are all biased upwards at finite sizes; a model is as good as the data allow
    when it reaches this floor, not zero."""
    runs = [sample_metrics(dataset.sample(int(n), torch.Generator().manual_seed(seed + r)), dataset, reference,
                           ref_terms) for r in range(repeats)]
    return {k: sum(r[k] for r in runs) / repeats for k in FLOOR_METRICS if k in runs[0]}


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the rows of a (n, d) and b (m, d):

        |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}),

    the 2-Wasserstein distance between N(mu_a, S_a) and N(mu_b, S_b) (Dowson and Landau 1982),
    squared. The matrix square roots come from symmetric eigendecompositions in float64. Like
    every estimate from samples it is biased upwards at finite n: compare with its value
    between two sets of real digits of the same sizes."""
    a, b = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    if not _finite(a, b):
        return math.nan
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))  # (d, d)
    w, v = torch.linalg.eigh(s_a)
    root_a = (v * w.clamp_min(0).sqrt()) @ v.T  # S_a^{1/2}
    inner = torch.linalg.eigvalsh(root_a @ s_b @ root_a)  # eigenvalues of S_a^{1/2} S_b S_a^{1/2}
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * inner.clamp_min(0).sqrt().sum()
    return max(float(value), 0.0)


@torch.no_grad()
def digit_quality(samples: torch.Tensor, classifier, reference_features: torch.Tensor) -> dict:
    """What the project's digit classifier (core.classifier) makes of generated digits:
    classes, the fraction of samples given to each digit 0-9 (all of them covered in equal
    parts for MNIST; a few holding everything is mode collapse); confidence, the mean of
    max_k p(k | x); fd, the Fréchet distance of their classifier features to the reference
    digits' (reference_features (m, 128))."""
    x = samples.detach().to("cpu", torch.float32)
    if not _finite(x):
        return {"classes": [math.nan] * 10, "confidence": math.nan, "fd": math.nan}
    probs, feats = classifier.judge(x)
    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    return {"classes": [float(c) for c in counts / counts.sum()],
            "confidence": float(probs.max(1).values.double().mean()),
            "fd": frechet_distance(feats, reference_features)}
