"""Variational autoencoders: an encoder, a decoder and the evidence lower bound."""

from ...registry import Literature, register_family, register_model
from .vae import LIKELIHOODS, NETS, VAE, VAEConfig, likelihood_for, net_for

register_family("vae", "Variational autoencoders", order=20)

register_model(
    "vae", VAE, VAEConfig,
    "Variational autoencoder (Kingma & Welling 2014): Gaussian encoder, decoder trained on the ELBO; log p(x) by the IWAE bound",
    train={"lr": 1e-3, "batch_size": 256, "steps": 5000},
    # conv nets on binarized digits: about 140 steps an epoch of 9,000 digits
    train_images={"lr": 2e-3, "batch_size": 64, "steps": 3000},
    # Table 1 of the IWAE paper: a VAE trained on the ELBO (k = 1), one stochastic layer of 50
    # units, its log p(x) estimated with 5000 importance samples on dynamically binarized MNIST
    literature=Literature(86.76, "nats", "Burda et al. 2016, IWAE (VAE, k = 1)"),
)

__all__ = ["LIKELIHOODS", "NETS", "VAE", "VAEConfig", "likelihood_for", "net_for"]
