"""A Gaussian mixture with full covariances, fitted by expectation-maximisation.

Dempster, Laird & Rubin 1977, "Maximum likelihood from incomplete data via the EM
algorithm". The model is

    p(x) = sum_k w_k N(x; mu_k, Sigma_k),      sum_k w_k = 1,

and it is the one model here not trained by gradient descent: its training step is a
Phase with an `update`, one EM step on a fixed set X = {x_1..x_N} (the first batch the
trainer shows it, init_from_data):

    E step:  r_nk = w_k N(x_n; mu_k, Sigma_k) / sum_j w_j N(x_n; mu_j, Sigma_j)
    M step:  N_k = sum_n r_nk,  w_k = N_k / N,  mu_k = (1/N_k) sum_n r_nk x_n,
             Sigma_k = (S_k + lambda I) / N_k,  S_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T.

lambda = reg N / K keeps every covariance invertible (reg is a variance: about what a
component holding N/K points gets added). The M step then maximises exactly the
expected complete-data log-likelihood plus the penalty -(lambda/2) sum_k tr(Sigma_k^-1),
so EM never lowers the penalised objective

    J = (1/N) sum_n log p(x_n) - (reg / 2K) sum_k tr(Sigma_k^-1),

a fixed function of the parameters on a fixed set (on fresh batches the log-likelihood
would move with the batch). Each step reports the log-likelihood per point after it,
`log_likelihood`, and loss = -J. The E and M steps run in float64.
Initialisation: k-means++ centres (Arthur & Vassilvitskii 2007) or K random data
points, then one M step with every point given wholly to its nearest centre.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from ...config import param
from ...errors import ConfigError
from ...model import GenerativeModel, Phase, to_numpy

F64 = torch.float64
INITS = ("kmeans++", "random")


@dataclasses.dataclass
class GMMConfig:
    K: int = param(8, lo=1, hi=256, help="mixture components K")
    init: str = param("kmeans++", choices=INITS, help="starting means: k-means++ centres or K random data points")
    reg: float = param(1e-4, lo=1e-10, hi=10.0,
                       help="covariance regulariser: a variance added, in effect, to each component's covariance")


class GMM(GenerativeModel):
    family = "mixture"
    has_log_prob = True
    log_prob_is_exact = True
    live_kl = True
    data_kinds = ("points",)

    HISTORY = 500  # EM steps whose log-likelihood the model keeps for its chart

    TRACES = {"weights": ("K",), "means": ("K", "D"), "covariances": ("K", "D", "D"),
              "responsibilities": ("n", "K"), "samples": ("n", "x"), "ll_history": ("H",), "ll_steps": ("H",)}
    GRID_TRACES = {"log_density": ("G",)}

    def __init__(self, data_shape: tuple, config: GMMConfig):
        if len(tuple(data_shape)) != 1:
            raise ConfigError(f"gmm fits points, data of shape (D,); this data has shape {tuple(data_shape)} (images). "
                              f"A full covariance per component over every pixel is not a sensible model of digits: "
                              f"choose a model that takes images (a flow, the VAE, DDPM, made_mog)")
        super().__init__(data_shape, config)
        K, D = config.K, self.dim
        angle = torch.arange(K, dtype=F64) * (2 * math.pi / K)  # until init_from_data: means on a circle
        start = torch.zeros(K, D, dtype=F64)
        start[:, 0] = torch.cos(angle) if K > 1 else 0.0
        if D > 1:
            start[:, 1] = torch.sin(angle) if K > 1 else 0.0
        self.register_buffer("weights", torch.full((K,), 1.0 / K, dtype=F64))
        self.register_buffer("means", start)
        self.register_buffer("covariances", torch.eye(D, dtype=F64).expand(K, D, D).clone())
        self.register_buffer("em_steps", torch.zeros((), dtype=torch.long))
        # the last min(em_steps, HISTORY) entries hold the log-likelihood after each of the last steps
        self.register_buffer("ll_history", torch.zeros(self.HISTORY, dtype=F64))
        self.register_buffer("em_data", torch.zeros(0, D, dtype=F64), persistent=False)

    # ---- the density ---------------------------------------------------------
    def _log_components(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x_n; mu_k, Sigma_k): (n, D) float64 -> (n, K)."""
        L = torch.linalg.cholesky(self.covariances)  # (K, D, D)
        eye = torch.eye(self.dim, dtype=F64, device=x.device).expand_as(L)
        L_inv = torch.linalg.solve_triangular(L, eye, upper=False)  # (K, D, D), once rather than per point
        z = torch.einsum("kij,nkj->nki", L_inv, x[:, None, :] - self.means[None])  # L^-1 (x - mu): (n, K, D)
        log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        log_normal = -0.5 * (z**2).sum(-1) - 0.5 * log_det - 0.5 * self.dim * math.log(2 * math.pi)
        return torch.log(self.weights) + log_normal

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_k w_k N(x; mu_k, Sigma_k): (n, D) -> (n,), computed in float64."""
        self._check(x)
        return torch.logsumexp(self._log_components(x.to(self.device, F64)), 1).to(x.dtype)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """The E step, r_nk = p(component k | x_n): (n, D) -> (n, K), rows summing to 1."""
        self._check(x)
        return torch.softmax(self._log_components(x.to(self.device, F64)), 1)

    def penalty(self) -> torch.Tensor:
        """(reg / 2K) sum_k tr(Sigma_k^-1), what J subtracts from the mean log-likelihood."""
        inv = torch.cholesky_inverse(torch.linalg.cholesky(self.covariances))
        return self.config.reg / (2 * self.config.K) * torch.diagonal(inv, dim1=-2, dim2=-1).sum()

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")

    # ---- EM ----------------------------------------------------------------
    def _m_step(self, x: torch.Tensor, r: torch.Tensor) -> None:
        """w, mu, Sigma from responsibilities r (N, K) on x (N, D), as in the docstring."""
        N, D = x.shape
        lam = self.config.reg * N / self.config.K
        N_k = r.sum(0).clamp_min(1e-300)  # (K,); an empty component keeps finite, tiny weight
        mu = (r.T @ x) / N_k[:, None]  # (K, D)
        diff = (x[:, None, :] - mu[None]).transpose(0, 1)  # (K, N, D)
        S = (diff * r.T[..., None]).transpose(1, 2) @ diff  # sum_n r_nk diff diff^T: (K, D, D)
        eye = torch.eye(D, dtype=F64, device=x.device)
        self.weights.copy_(N_k / N_k.sum())
        self.means.copy_(mu)
        self.covariances.copy_((S + lam * eye) / N_k[:, None, None])

    def init_from_data(self, x: torch.Tensor) -> None:
        """Keep x as the EM set; start from k-means++ (or random) centres, each point given to
        its nearest one."""
        x = self.flat(x).detach().to(self.device, F64)
        self.em_data = x
        K = self.config.K
        if self.config.init == "random" or K == 1:
            centres = x[torch.randperm(x.shape[0], device=x.device)[:K]]
        else:
            centres = kmeans_plus_plus(x, K)
        nearest = torch.cdist(x, centres).argmin(1)
        r = torch.nn.functional.one_hot(nearest, K).to(F64)  # (N, K); fewer points than K leave some empty
        self._m_step(x, r)
        self.em_steps.zero_()
        self.ll_history.zero_()

    def em_step(self) -> dict:
        """One E step and one M step on the EM set; the log-likelihood per point and J after it."""
        x = self.em_data
        self._m_step(x, torch.softmax(self._log_components(x), 1))
        ll = torch.logsumexp(self._log_components(x), 1).mean()
        objective = ll - self.penalty()
        self.em_steps += 1
        self.ll_history.copy_(torch.cat([self.ll_history[1:], ll.reshape(1)]))
        return {"loss": -objective, "log_likelihood": ll, "objective": objective}

    def update(self, batch) -> dict:
        """The training step: one EM step on the fixed set. The batch is not used, so that the steps
        climb one fixed objective, unless there is no set yet (weights loaded from a checkpoint,
        which keeps no data): then it becomes the set, and EM goes on from the loaded parameters."""
        if self.em_data.shape[0] == 0:
            self.em_data = self.flat(batch).detach().to(self.device, F64)
        return self.em_step()

    def phases(self, lr: float) -> list[Phase]:
        return [Phase("em", update=self.update)]

    # ---- sampling ------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """k ~ Categorical(w), x = mu_k + L_k eps with Sigma_k = L_k L_k^T and eps ~ N(0, I)."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n}")
        at = self.device if generator is None else generator.device
        k = torch.multinomial(self.weights.to(at), int(n), replacement=True, generator=generator).to(self.device)
        eps = torch.randn(int(n), self.dim, generator=generator, device=at, dtype=F64).to(self.device)
        L = torch.linalg.cholesky(self.covariances)
        x = self.means[k] + (L[k] @ eps[..., None])[..., 0]
        return self.unflat(x.to(self._device_probe.dtype))

    # ---- live views ------------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """The components ("weights" (K,), "means" (K, D), "covariances" (K, D, D)), the E step's
        "responsibilities" (n, K) of the points x, n "samples", and the log-likelihood per point
        after each of the last EM steps, "ll_history" (H,) at EM steps "ll_steps" (H,)
        (H <= HISTORY, none before the first step); for 2D data with a grid, "log_density" (G*G,)."""
        done = int(self.em_steps)
        h = min(done, self.HISTORY)
        steps = torch.arange(done - h + 1, done + 1, dtype=F64)
        out = {"weights": to_numpy(self.weights), "means": to_numpy(self.means),
               "covariances": to_numpy(self.covariances),
               "responsibilities": to_numpy(self.responsibilities(self.flat(x))),
               "samples": to_numpy(self.sample(max(x.shape[0], 1))),
               "ll_history": self.ll_history[self.HISTORY - h:].cpu().numpy(), "ll_steps": steps.numpy()}
        if grid is not None and self.data_shape == (2,):
            out["log_density"] = to_numpy(self.log_prob(grid.to(self.device, F64)))
        return out


def kmeans_plus_plus(x: torch.Tensor, K: int) -> torch.Tensor:
    """K centres from x (N, D): the first uniformly, each next with probability proportional to
    its squared distance from the nearest centre chosen so far."""
    centres = [x[torch.randint(x.shape[0], (1,), device=x.device)][0]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, K):
        weights = d2 if bool((d2 > 0).any()) else torch.ones_like(d2)
        centres.append(x[torch.multinomial(weights, 1)][0])
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    return torch.stack(centres)
