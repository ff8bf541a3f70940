"""Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

A latent z ~ p(z) = N(0, I) is decoded into a likelihood p(x|z); an encoder
q(z|x) = N(mu(x), diag var(x)) approximates the posterior. Training maximises
the evidence lower bound (Kingma & Welling, eq. 3)

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))
                        = -(recon + kl),

with z = mu + sqrt(var) * eps, eps ~ N(0, I) (the reparameterisation trick) and
the KL in closed form (their Appendix B):

    KL(N(mu, diag var) || N(0, I)) = 1/2 sum_j (var_j + mu_j^2 - 1 - log var_j).

The loss is recon + beta * kl (beta = 1 is the ELBO; beta != 1 is the beta-VAE
of Higgins et al. 2017). The likelihood is either

- "gaussian": p(x|z) = N(x; m(z), diag sigma^2) with m from the decoder and one
  learned log-variance per data dimension (for points), or
- "bernoulli": p(x|z) = prod_i m_i^x_i (1 - m_i)^(1 - x_i) for data in [0, 1]
  (images; grey levels are used as soft targets, as is customary);

"auto" (the default) picks bernoulli for images, data shaped with more than one
axis such as (1, 28, 28), and gaussian for points, such as (2,).

log_prob(x) is the importance-weighted bound of Burda et al. 2016 (IWAE, eq. 8),

    log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z|x),

an ESTIMATE: a lower bound on log p(x) in expectation that tightens as K grows
(K = 1 gives the ELBO); exp of it is an unbiased estimate of p(x).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...config import param
from ...errors import ConfigError, DataError
from ...model import GenerativeModel, to_numpy
from ...nets import ACTIVATIONS, MLP

LIKELIHOODS = ("auto", "gaussian", "bernoulli")
_LOG_2PI = math.log(2 * math.pi)
_CHUNK_ELEMENTS = 2_000_000  # bounds the (K, chunk, width) tensors of log_prob


@dataclasses.dataclass
class VAEConfig:
    latent: int = param(2, lo=1, hi=512, help="latent dimension (2 lets the live view show the whole latent space)")
    hidden: int = param(128, lo=2, hi=4096, help="width of the encoder and decoder MLPs")
    layers: int = param(2, lo=1, hi=8, help="hidden layers of the encoder and decoder")
    activation: str = param("silu", choices=tuple(ACTIVATIONS), help="nonlinearity of both MLPs")
    beta: float = param(1.0, lo=0.0, hi=100.0, help="weight of the KL term (1: the ELBO; >1: beta-VAE)", live=True)
    likelihood: str = param("auto", choices=LIKELIHOODS,
                            help="decoder likelihood: gaussian for points, bernoulli for images in [0, 1]; "
                                 "auto picks by the data's shape")
    iw_samples: int = param(64, lo=1, hi=100_000, help="importance samples K of the IWAE estimate of log p(x)")


def likelihood_for(data_shape: tuple) -> str:
    """What likelihood=auto means: bernoulli for images (more than one axis), gaussian for points."""
    return "bernoulli" if len(tuple(data_shape)) > 1 else "gaussian"


class VAE(GenerativeModel):
    """Gaussian encoder, Gaussian or Bernoulli decoder, trained on the (beta-)ELBO."""

    family = "vae"
    has_log_prob = True
    log_prob_is_exact = False  # the IWAE bound: an estimate, below log p(x) in expectation
    live_kl = True
    density_note = "IWAE estimate"  # so KL(p_data || q) from it is an estimate too, biased upwards
    TRACES = {"z_mean": ("n", "L"), "z_var": ("n", "L"), "recon": ("n", "D"), "latent_grid": ("M", "K"),
              "decoded_grid": ("M", "D"), "samples": ("n", "D")}

    def __init__(self, data_shape: tuple, config: VAEConfig, encoder: torch.nn.Module | None = None,
                 decoder: torch.nn.Module | None = None):
        """encoder: (n, D) -> (n, 2 * latent) [mu, log var]; decoder: (..., latent) -> (..., D);
        by default MLPs of the config's size."""
        auto = config.likelihood == "auto"
        if auto:  # the config records the choice made, so a saved model reloads with it
            config = dataclasses.replace(config, likelihood=likelihood_for(data_shape))
        super().__init__(data_shape, config)
        self.auto_likelihood = auto
        c = config
        self.encoder = encoder or MLP(self.dim, 2 * c.latent, c.hidden, c.layers, c.activation)  # -> [mu, log var]
        self.decoder = decoder or MLP(c.latent, self.dim, c.hidden, c.layers, c.activation)  # -> mean or logits
        # The decoder's per-dimension log sigma^2: trained with the gaussian likelihood, unused (and
        # frozen) with the bernoulli one, but kept so that every VAE saves the same tensors.
        self.log_var_x = torch.nn.Parameter(torch.zeros(self.dim), requires_grad=config.likelihood == "gaussian")

    # ---- the model --------------------------------------------------------
    def _encode(self, x: torch.Tensor):
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # (n, L) each
        return mu, log_var.exp()

    def _log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) for x: (..., D), z: (..., L) -> (...)."""
        out = self.decoder(z)  # (..., D)
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
        log_var = self.log_var_x
        return -0.5 * (((x - out) ** 2) / log_var.exp() + log_var + _LOG_2PI).sum(-1)

    def _decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    @staticmethod
    def _kl(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, diag var) || N(0, I)) in closed form: (n, L) -> (n,)."""
        return 0.5 * (var + mu**2 - 1.0 - var.log()).sum(-1)

    def _terms(self, x: torch.Tensor, samples: int = 1) -> dict:
        """Per-example recon = E_q[-log p(x|z)] (Monte Carlo) and kl (exact); x: (n, D)."""
        mu, var = self._encode(x)
        eps = torch.randn(samples, *mu.shape, dtype=mu.dtype, device=mu.device)  # (S, n, L)
        z = mu + var.sqrt() * eps  # reparameterised: gradients flow to mu and var
        recon = -self._log_likelihood(x, z).mean(0)  # (n,)
        kl = self._kl(mu, var)  # (n,)
        return {"recon": recon, "kl": kl, "elbo": -(recon + kl)}

    def _check(self, x: torch.Tensor, values: bool = True) -> torch.Tensor:
        """x flattened, after checking its shape and (values) that bernoulli targets are in [0, 1].

        The value check reads the data back from the device, so training checks its data once,
        in init_from_data, not at every step."""
        if x.ndim < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise DataError(f"expected a batch shaped (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        x = self.flat(x)
        if values and self.config.likelihood == "bernoulli" and x.numel() and (x.min() < 0 or x.max() > 1):
            why = " (likelihood=auto picks it for images)" if self.auto_likelihood else ""
            raise DataError(f"the bernoulli likelihood{why} needs data in [0, 1]; rescale the data or use "
                            "likelihood=gaussian")
        return x

    # ---- training -----------------------------------------------------------
    def init_from_data(self, x: torch.Tensor) -> None:
        """Centre the gaussian decoder on the data, with sigma^2 a tenth of its variance.

        sigma^2 equal to the data's variance would already explain the data without
        z, and the KL term then collapses the posterior onto the prior; a tenth
        makes reconstructions pay from the first step, whatever the data's scale.
        """
        x = self._check(x)
        if self.config.likelihood == "gaussian" and len(x) > 1:
            with torch.no_grad():
                last = [m for m in self.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
                last.bias.copy_(x.mean(0))
                self.log_var_x.copy_((0.1 * x.var(0)).clamp_min(1e-6).log())

    def loss(self, x: torch.Tensor) -> dict:
        """recon + beta * kl, per-example means; "elbo" is the beta = 1 bound."""
        t = self._terms(self._check(x, values=False))  # the run's data were checked in init_from_data
        recon, kl = t["recon"].mean(), t["kl"].mean()
        beta = float(self.config.beta)  # read every call: beta is a live knob
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    # ---- sampling and density --------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), then x ~ p(x|z) for gaussian (a true sample of the model);
        for bernoulli the decoder means (grey images), as VAE papers show them."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        ref = self.log_var_x
        z = torch.randn(n, self.config.latent, dtype=ref.dtype, device=ref.device)
        m = self._decode_mean(z)  # (n, D)
        if self.config.likelihood == "gaussian":
            m = m + (0.5 * self.log_var_x).exp() * torch.randn_like(m)
        return self.unflat(m)

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, K: int | None = None) -> torch.Tensor:
        """IWAE estimate of log p(x) with K importance samples (config iw_samples); (n,)."""
        K = int(self.config.iw_samples if K is None else K)
        if K < 1:
            raise ConfigError(f"K (importance samples) must be at least 1, got {K}")
        x = self._check(x)
        width = max(self.dim, self.config.hidden, 2 * self.config.latent)
        chunk = max(1, _CHUNK_ELEMENTS // (K * width))
        return torch.cat([self._iwae(xc, K) for xc in x.split(chunk)]) if len(x) else x.new_zeros(0)

    def _iwae(self, x: torch.Tensor, K: int) -> torch.Tensor:
        mu, var = self._encode(x)  # (n, L)
        z = mu + var.sqrt() * torch.randn(K, *mu.shape, dtype=mu.dtype, device=mu.device)  # (K, n, L)
        log_pz = -0.5 * (z**2 + _LOG_2PI).sum(-1)  # (K, n)
        log_qz = -0.5 * ((z - mu) ** 2 / var + var.log() + _LOG_2PI).sum(-1)  # (K, n)
        log_w = self._log_likelihood(x, z) + log_pz - log_qz  # (K, n)
        return torch.logsumexp(log_w, 0) - math.log(K)

    # ---- live views -------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor):
        """q(z|x) = N(mu, diag var): x (n, *shape) -> (mu, var), each (n, latent)."""
        return self._encode(self._check(x))

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean E[x|z] (Bernoulli probabilities for images): (m, latent) -> (m, *shape)."""
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"z must be shaped (m, {self.config.latent}), got {tuple(z.shape)}")
        return self.unflat(self._decode_mean(z))

    @torch.no_grad()
    def elbo_terms(self, x: torch.Tensor, samples: int = 1) -> dict:
        """Per-example recon, kl and elbo, each (n,); recon averages `samples` draws of z."""
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        return self._terms(self._check(x), samples)

    def _latent_grid(self, m: int) -> torch.Tensor:
        """m*m points over [-3, 3]^2 in the first two latent dims, row-major, others 0."""
        ref = self.log_var_x
        axis = torch.linspace(-3.0, 3.0, m, dtype=ref.dtype, device=ref.device)
        if self.config.latent == 1:
            return axis[:, None]  # (m, 1): a line, not a plane
        zy, zx = torch.meshgrid(axis, axis, indexing="ij")
        plane = torch.stack([zx.reshape(-1), zy.reshape(-1)], 1)  # (m*m, 2)
        return torch.cat([plane, plane.new_zeros(len(plane), self.config.latent - 2)], 1)

    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None, **options) -> dict[str, np.ndarray]:
        """z_mean, z_var (n, latent); recon (n, D); latent_grid (M*M, 2); decoded_grid (M*M, D); samples (n, D).

        M = 15 for vector data, 8 for images. With latent = 1 the latent grid is a
        line: latent_grid (M, 1), decoded_grid (M, D).
        """
        x = self._check(x)
        mu, var = self._encode(x)
        m = 15 if len(self.data_shape) == 1 else 8
        z_grid = self._latent_grid(m)
        return {
            "z_mean": to_numpy(mu),
            "z_var": to_numpy(var),
            "recon": to_numpy(self._decode_mean(mu)),
            "latent_grid": to_numpy(z_grid[:, :2]),
            "decoded_grid": to_numpy(self._decode_mean(z_grid)),
            "samples": to_numpy(self.flat(self.sample(len(x)))),
        }

