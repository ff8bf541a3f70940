"""Variational autoencoders: an encoder, a decoder and the evidence lower bound."""

from ...registry import register_family, register_model
from .vae import LIKELIHOODS, VAE, VAEConfig, likelihood_for

register_family("vae", "Variational autoencoders", order=20)

register_model(
    "vae", VAE, VAEConfig,
    "Variational autoencoder (Kingma & Welling 2014): Gaussian encoder, decoder trained on the ELBO; log p(x) by the IWAE bound",
    train={"lr": 1e-3, "batch_size": 256, "steps": 5000},
)

__all__ = ["LIKELIHOODS", "VAE", "VAEConfig", "likelihood_for"]
