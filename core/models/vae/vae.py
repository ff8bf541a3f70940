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
- "bernoulli": p(x|z) = prod_i m_i^x_i (1 - m_i)^(1 - x_i) for data in [0, 1];

"auto" (the default) picks bernoulli for images, data shaped with more than one
axis such as (1, 28, 28), and gaussian for points, such as (2,).

On images with the bernoulli likelihood the model reads binarized digits (pixels
"binary", core.data.pixels): every batch draws b ~ Bernoulli(x) afresh, the
dynamically binarized MNIST, so recon, kl and log p are in nats of a binary digit,
the unit of the literature. The encoder and decoder are then small convolutional
networks (core.nets.conv; net = "auto" picks them for images, MLPs for points).
At the MNIST defaults (batch 64, lr 2e-3) a 2D latent reaches about 150 nats of -ELBO
on held-out digits in 3000 steps, its samples blurry but mostly legible; latent = 16
reaches about 101 nats (an IWAE NLL near 96) in 2000, against Burda et al.'s 86.76 for
a 50-dimensional latent trained far longer.

log_prob(x) is the importance-weighted bound of Burda et al. 2016 (IWAE, eq. 8),

    log p(x) ~ log (1/K) sum_k p(x, z_k) / q(z_k | x),   z_k ~ q(z|x),

an ESTIMATE: a lower bound on log p(x) in expectation that tightens as K grows
(K = 1 gives the ELBO); exp of it is an unbiased estimate of p(x). Its cost is
K decoder passes per x: the K samples are taken in chunks of bounded memory and
combined by a running log-sum-exp, and K is capped by the config.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from ...config import param
from ...data import pixels as P
from ...errors import ConfigError, DataError
from ...model import GenerativeModel, to_numpy
from ...nets import ACTIVATIONS, MLP
from ...nets.conv import ConvDecoder, ConvEncoder

LIKELIHOODS = ("auto", "gaussian", "bernoulli")
NETS = ("auto", "mlp", "conv")
# K importance samples are K decoder passes per point: the live NLL of 200 digits at K = 5000 (Burda et al.'s
# evaluation) held a metrics thread for minutes; 256 keep one evaluation to seconds.
MAX_IW_SAMPLES = 256
_LOG_2PI = math.log(2 * math.pi)
_CHUNK_ELEMENTS = 2_000_000  # bounds the widest activation of log_prob's decoder passes


@dataclasses.dataclass
class VAEConfig:
    latent: int = param(2, lo=1, hi=512, help="latent dimension (2 lets the live view show the whole latent "
                                              "space; 16 or more gives sharper digits)")
    hidden: int = param(128, lo=2, hi=4096, help="width of the encoder and decoder MLPs, and of the conv nets' "
                                                 "dense layer")
    layers: int = param(2, lo=1, hi=8, help="hidden layers of the encoder and decoder MLPs")
    activation: str = param("silu", choices=tuple(ACTIVATIONS), help="nonlinearity of both networks")
    beta: float = param(1.0, lo=0.0, hi=100.0, help="weight of the KL term (1: the ELBO; >1: beta-VAE)", live=True)
    likelihood: str = param("auto", choices=LIKELIHOODS,
                            help="decoder likelihood: gaussian for points, bernoulli for images in [0, 1]; "
                                 "auto picks by the data's shape")
    iw_samples: int = param(64, lo=1, hi=MAX_IW_SAMPLES, help="importance samples K of the IWAE estimate of log p(x)")
    net: str = param("auto", choices=NETS, help="encoder and decoder: MLPs, or convolutional nets for images "
                                                "(C, H, W); auto picks conv for images and mlp for points")
    channels: int = param(16, lo=2, hi=64, help="channels of the conv nets' first layer (doubled in the second)",
                          when=("net", ("auto", "conv")))


def likelihood_for(data_shape: tuple) -> str:
    """What likelihood=auto means: bernoulli for images (more than one axis), gaussian for points."""
    return "bernoulli" if len(tuple(data_shape)) > 1 else "gaussian"


def net_for(data_shape: tuple) -> str:
    """What net=auto means: conv for images shaped (C, H, W), mlp otherwise."""
    return "conv" if len(tuple(data_shape)) == 3 else "mlp"


class VAE(GenerativeModel):
    """Gaussian encoder, Gaussian or Bernoulli decoder, trained on the (beta-)ELBO."""

    family = "vae"
    has_log_prob = True
    log_prob_is_exact = False  # the IWAE bound: an estimate, below log p(x) in expectation
    live_kl = True
    density_note = "IWAE estimate"  # so KL(p_data || q) from it is an estimate too, biased upwards
    # r, s, e: the reconstructions, samples and ELBO terms drawn; all n for points, fewer for images
    TRACES = {"z_mean": ("n", "L"), "z_var": ("n", "L"), "recon": ("r", "D"), "latent_grid": ("M", "K"),
              "decoded_grid": ("M", "D"), "samples": ("s", "D"), "sample_means": ("s", "D"),
              "elbo_recon": ("e",), "elbo_kl": ("e",)}

    def __init__(self, data_shape: tuple, config: VAEConfig, encoder: torch.nn.Module | None = None,
                 decoder: torch.nn.Module | None = None):
        """encoder: (n, D) or (n, *shape) -> (n, 2 * latent) [mu, log var]; decoder: (..., latent) ->
        (..., D) or (..., *shape); by default MLPs or conv nets of the config's size."""
        auto = config.likelihood == "auto"
        chosen = {}  # the config records the choices made, so a saved model reloads with them
        if auto:
            chosen["likelihood"] = likelihood_for(data_shape)
        if config.net == "auto":
            chosen["net"] = net_for(data_shape)
        elif config.net == "conv" and len(tuple(data_shape)) != 3:
            raise ConfigError(f"net=conv needs images shaped (C, H, W), got data shaped {tuple(data_shape)}; "
                              "use net=mlp or net=auto")
        config = dataclasses.replace(config, **chosen)
        super().__init__(data_shape, config)
        self.auto_likelihood = auto
        c = config
        if c.net == "conv":
            self.encoder = encoder or ConvEncoder(self.data_shape, 2 * c.latent, c.channels, c.hidden, c.activation)
            self.decoder = decoder or ConvDecoder(c.latent, self.data_shape, c.channels, c.hidden, c.activation)
        else:
            self.encoder = encoder or MLP(self.dim, 2 * c.latent, c.hidden, c.layers, c.activation)  # -> [mu, log var]
            self.decoder = decoder or MLP(c.latent, self.dim, c.hidden, c.layers, c.activation)  # -> mean or logits
        # The decoder's per-dimension log sigma^2: trained with the gaussian likelihood, unused (and
        # frozen) with the bernoulli one, but kept so that every VAE saves the same tensors.
        self.log_var_x = torch.nn.Parameter(torch.zeros(self.dim), requires_grad=config.likelihood == "gaussian")

    @property
    def pixels(self) -> str:
        """Binarized digits for a bernoulli decoder on images; the data as they are otherwise."""
        return "binary" if self.config.likelihood == "bernoulli" and len(self.data_shape) > 1 else "grey"

    # ---- the model --------------------------------------------------------
    def _encode(self, x: torch.Tensor):
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # (n, L) each
        return mu, log_var.exp()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output, flat: (..., L) -> (..., D)."""
        return self.decoder(z).reshape(*z.shape[:-1], self.dim)

    def _log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) for x: (..., D), z: (..., L) -> (...)."""
        out = self._decode(z)  # (..., D)
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)
        log_var = self.log_var_x
        return -0.5 * (((x - out) ** 2) / log_var.exp() + log_var + _LOG_2PI).sum(-1)

    def _decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        out = self._decode(z)
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
        A conv decoder's last layer has one bias per channel: it takes the channel's mean.
        """
        x = self._check(x)
        if self.config.likelihood == "gaussian" and len(x) > 1:
            with torch.no_grad():
                last = [m for m in self.decoder.modules() if getattr(m, "bias", None) is not None][-1]
                mean = x.mean(0)  # (D,)
                if last.bias.numel() != self.dim:  # per channel
                    mean = mean.reshape(self.data_shape[0], -1).mean(1)
                last.bias.copy_(mean)
                self.log_var_x.copy_((0.1 * x.var(0)).clamp_min(1e-6).log())

    def loss(self, x: torch.Tensor) -> dict:
        """recon + beta * kl, per-example means, on the model's view of x (binarized afresh for
        binary pixels); "elbo" is the beta = 1 bound."""
        x = P.view(self._check(x, values=False), self.pixels)  # the run's data were checked in init_from_data
        t = self._terms(x)
        recon, kl = t["recon"].mean(), t["kl"].mean()
        beta = float(self.config.beta)  # read every call: beta is a live knob
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    # ---- sampling and density --------------------------------------------
    def _sample_with_means(self, n: int):
        ref = self.log_var_x
        z = torch.randn(n, self.config.latent, dtype=ref.dtype, device=ref.device)
        m = self._decode_mean(z)  # (n, D)
        if self.config.likelihood == "gaussian":
            return m + (0.5 * self.log_var_x).exp() * torch.randn_like(m), m
        if self.pixels == "binary":
            return torch.bernoulli(m), m
        return m, m  # bernoulli on points in [0, 1]: the decoder means, as before

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), then x ~ p(x|z): a true sample of the model, binary digits for binary
        pixels; for a bernoulli decoder on points, the decoder means."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        return self.unflat(self._sample_with_means(n)[0])

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, K: int | None = None) -> torch.Tensor:
        """IWAE estimate of log p(x) with K importance samples (config iw_samples); (n,).
        For binary pixels x are binarized digits: log p is their log-pmf."""
        K = int(self.config.iw_samples if K is None else K)
        if K < 1:
            raise ConfigError(f"K (importance samples) must be at least 1, got {K}")
        x = self._check(x)
        rows = self._rows_per_pass()
        return torch.cat([self._iwae(xc, K, max(1, rows // len(xc))) for xc in x.split(rows)]) if len(x) \
            else x.new_zeros(0)

    def _rows_per_pass(self) -> int:
        """Decoder rows (x, z pairs) per pass that keep its widest activation under _CHUNK_ELEMENTS."""
        widths = [getattr(self.decoder, "width", 0), getattr(self.encoder, "width", 0), self.dim, 2 * self.config.latent]
        if self.config.net == "mlp":
            widths.append(self.config.hidden)
        return max(1, _CHUNK_ELEMENTS // max(widths))

    def _iwae(self, x: torch.Tensor, K: int, per: int) -> torch.Tensor:
        """log (1/K) sum_k w_k, w_k = p(x, z_k) / q(z_k|x), with z drawn `per` samples at a time."""
        mu, var = self._encode(x)  # (n, L)
        parts = []
        for k in range(0, K, per):
            z = mu + var.sqrt() * torch.randn(min(per, K - k), *mu.shape, dtype=mu.dtype, device=mu.device)  # (k, n, L)
            log_pz = -0.5 * (z**2 + _LOG_2PI).sum(-1)  # (k, n)
            log_qz = -0.5 * ((z - mu) ** 2 / var + var.log() + _LOG_2PI).sum(-1)  # (k, n)
            log_w = self._log_likelihood(x, z) + log_pz - log_qz  # (k, n)
            parts.append(torch.logsumexp(log_w, 0))  # (n,)
        return torch.logsumexp(torch.stack(parts), 0) - math.log(K)

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
        """z_mean, z_var (n, latent); recon (r, D) the decoder mean at E[z|x] of the first r;
        latent_grid (M*M, 2); decoded_grid (M*M, D); samples, sample_means (s, D): x ~ p(x|z) and
        E[x|z] at the same z ~ N(0, I); elbo_recon, elbo_kl (e,): the -ELBO terms of the first e
        examples, one z ~ q(z|x) each.

        All of them read x in the model's view (binarized digits for binary pixels). For vector
        data r = s = e = n and M = 15; for images r = 16, s = 64 (what the tiles show), e = 200
        (about 20 of each digit), which bounds the decoder's passes, and M = 8. With latent = 1 the latent grid is a line: latent_grid (M, 1),
        decoded_grid (M, D).
        """
        x = P.view(self._check(x), self.pixels)
        image = len(self.data_shape) > 1
        mu, var = self._encode(x)  # (n, L)
        e = min(len(x), 200) if image else len(x)
        z = mu[:e] + var[:e].sqrt() * torch.randn_like(mu[:e])  # (e, L)
        m = 8 if image else 15
        z_grid = self._latent_grid(m)
        s, s_mean = self._sample_with_means(min(len(x), 64) if image else len(x))
        return {
            "z_mean": to_numpy(mu),
            "z_var": to_numpy(var),
            "recon": to_numpy(self._decode_mean(mu[:16] if image else mu)),
            "latent_grid": to_numpy(z_grid[:, :2]),
            "decoded_grid": to_numpy(self._decode_mean(z_grid)),
            "samples": to_numpy(s),
            "sample_means": to_numpy(s_mean),
            "elbo_recon": to_numpy(-self._log_likelihood(x[:e], z)),
            "elbo_kl": to_numpy(self._kl(mu[:e], var[:e])),
        }
