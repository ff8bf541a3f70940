"""The GAN objectives, as a table of small functions on the critic's outputs.

Notation: r = D(x) on a data batch x ~ P, f = D(G(z)) on a generated batch
G(z) ~ Q. Each objective gives the discriminator's loss (minimised, so the
negative of what D maximises) with two summary numbers d_real and d_fake, and
the generator's loss. Gradient penalty and weight clipping need the network
itself and live in gan.py.

- gan (Goodfellow et al. 2014, eq. 1): D maximises E_P log D(x) + E_Q log(1 - D(x))
  with D = sigmoid(r); G minimises E_Q log(1 - D(G(z))) (the saturating minimax).
- nsgan (same paper, Sec. 3): same D; G maximises E_Q log D(G(z)).
- lsgan (Mao et al. 2017, eq. 2 with a=0, b=1, c=1): D minimises
  1/2 E_P (r - b)^2 + 1/2 E_Q (f - a)^2; G minimises 1/2 E_Q (f - c)^2.
- wgan (Arjovsky et al. 2017, eq. 3): the critic maximises E_P r - E_Q f (an
  estimate of W_1 once D is 1-Lipschitz); G minimises -E_Q f.
- fgan (Nowozin et al. 2016, eq. 6): with T = g_f(V) (the output activation of
  their Table 2) D maximises F = E_P T(x) - E_Q f*(T(x)), a lower bound on
  D_f(P || Q) tight at T* = f'(p/q). For the generator we use the paper's
  alternative update (Sec. 3.2, the one used in their experiments): G maximises
  E_Q T(G(z)) (for "js" this is the nsgan update), rather than minimising F.
  "kl" and "pearson" have unbounded conjugates (f* grows like e^t or t^2) and
  are the touchiest on toy data: lower the learning rate if they diverge.
- mmdgan (Li et al. 2017, eq. 5): D (a feature map phi) maximises MMD^2 between P
  and Q under the kernel k(x, y) = sum_sigma exp(-|u - v|^2 / (2 sigma^2)),
  u = [x, phi(x)]; G minimises it. We use the biased (V-statistic) estimate,
  which is never negative, as Li et al.'s code does.

Summaries: for gan/nsgan d_real, d_fake are the mean probabilities D(x); for
lsgan, wgan and wgan_gp the mean raw outputs; for fgan E_P T and E_Q f*(T) (their
difference is the divergence bound); for mmdgan the mean witness on each batch
(their difference is MMD^2).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
_LOG2 = math.log(2.0)


# ---- f-GAN: output activation g_f and conjugate f*, Nowozin et al. Table 2 ------
@dataclasses.dataclass(frozen=True)
class FDivergence:
    """T = g_f(v) and f*(g_f(v)) written directly in v, stably; D_f(P||Q) is `formula`.

    The bound is tight at T* = f'(p/q).
    """

    g_f: Callable[[Tensor], Tensor]
    fstar_g_f: Callable[[Tensor], Tensor]
    formula: str


F_DIVERGENCES = {
    # f(u) = u log u; g_f(v) = v; f*(t) = exp(t - 1)
    "kl": FDivergence(lambda v: v, lambda v: torch.exp(v - 1.0), "KL(P||Q)"),
    # f(u) = -log u; g_f(v) = -exp(-v); f*(t) = -1 - log(-t)
    "reverse_kl": FDivergence(lambda v: -torch.exp(-v), lambda v: v - 1.0, "KL(Q||P)"),
    # f(u) = -(u + 1) log((1 + u) / 2) + u log u; g_f(v) = log 2 - log(1 + e^-v); f*(t) = -log(2 - e^t)
    "js": FDivergence(lambda v: _LOG2 - F.softplus(-v), lambda v: F.softplus(v) - _LOG2, "2 JS(P, Q)"),
    # f(u) = (u - 1)^2; g_f(v) = v; f*(t) = t^2 / 4 + t
    "pearson": FDivergence(lambda v: v, lambda v: 0.25 * v**2 + v, "Pearson chi^2(P||Q)"),
    # f(u) = (sqrt(u) - 1)^2; g_f(v) = 1 - e^-v; f*(t) = t / (1 - t)
    "hellinger": FDivergence(lambda v: 1.0 - torch.exp(-v), lambda v: torch.expm1(v), "squared Hellinger H^2(P, Q)"),
}


# ---- MMD with a mixture of RBF kernels (Li et al. 2017) ---------------------------
def rbf_mixture(a: Tensor, b: Tensor, sigmas: tuple) -> Tensor:
    """k(a_i, b_j) = sum_s exp(-|a_i - b_j|^2 / (2 sigma_s^2)); (n, d), (m, d) -> (n, m)."""
    d2 = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T).clamp_min(0.0)  # (n, m)
    return sum(torch.exp(-d2 / (2.0 * s * s)) for s in sigmas)


def mmd2_biased(a: Tensor, b: Tensor, sigmas: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """Biased MMD^2 = E k(a, a') - 2 E k(a, b) + E k(b, b') and the mean witness on a and on b."""
    k_aa, k_ab, k_bb = rbf_mixture(a, a, sigmas).mean(), rbf_mixture(a, b, sigmas).mean(), rbf_mixture(b, b, sigmas).mean()
    witness_a, witness_b = k_aa - k_ab, k_ab - k_bb
    return witness_a - witness_b, witness_a, witness_b


# ---- the table --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Objective:
    """d(r, f) -> (d_loss, d_real, d_fake); g(f, r) -> g_loss (r is None unless g_needs_real)."""

    d: Callable
    g: Callable
    g_needs_real: bool = False


def _gan_d(r, f):
    # -[log sigmoid(r) + log(1 - sigmoid(f))] = softplus(-r) + softplus(f)
    return F.softplus(-r).mean() + F.softplus(f).mean(), torch.sigmoid(r).mean(), torch.sigmoid(f).mean()


def _lsgan_d(r, f, a=0.0, b=1.0):
    return 0.5 * ((r - b) ** 2).mean() + 0.5 * ((f - a) ** 2).mean(), r.mean(), f.mean()


def _wgan_d(r, f):
    return f.mean() - r.mean(), r.mean(), f.mean()


def _fgan_d(div: FDivergence):
    def d(r, f):
        e_p, e_q = div.g_f(r).mean(), div.fstar_g_f(f).mean()
        return -(e_p - e_q), e_p, e_q
    return d


def _mmd_d(sigmas):
    def d(r, f):
        mmd2, w_real, w_fake = mmd2_biased(r, f, sigmas)
        return -mmd2, w_real, w_fake
    return d


def objective(loss: str, divergence: str = "js", sigmas: tuple = ()) -> Objective:
    """The objective named `loss` (for fgan, of `divergence`; for mmdgan, with bandwidths `sigmas`)."""
    if loss == "gan":
        return Objective(_gan_d, lambda f, r: -F.softplus(f).mean())  # E log(1 - sigmoid(f))
    if loss == "nsgan":
        return Objective(_gan_d, lambda f, r: F.softplus(-f).mean())  # -E log sigmoid(f)
    if loss == "lsgan":
        return Objective(_lsgan_d, lambda f, r, c=1.0: 0.5 * ((f - c) ** 2).mean())
    if loss in ("wgan", "wgan_gp"):
        return Objective(_wgan_d, lambda f, r: -f.mean())
    if loss == "fgan":
        div = F_DIVERGENCES[divergence]
        return Objective(_fgan_d(div), lambda f, r: -div.g_f(f).mean())
    if loss == "mmdgan":
        return Objective(_mmd_d(sigmas), lambda f, r: mmd2_biased(r, f, sigmas)[0], g_needs_real=True)
    raise KeyError(loss)
