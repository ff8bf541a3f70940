"""Generative adversarial networks: a generator, a critic, and seven objectives.

    objectives.py   the objectives as a table of small functions of the critic's outputs
    gan.py          the players (MLPs, or DCGAN's conv nets on images), the alternating phases,
                    gradient penalty, clipping, the views' traces
    cyclegan.py     CycleGAN: two maps between two 2D datasets, tied by cycle consistency
    bigan.py        BiGAN / ALI: a generator, an encoder, and a discriminator on (x, z) pairs
"""

from ...registry import Quality, register_family, register_model
from .bigan import BiGAN, BiGANConfig
from .cyclegan import CycleGAN, CycleGANConfig
from .gan import BETAS, LOSSES, MMD_SIGMAS, GAN, GANConfig

register_family("gan", "Generative adversarial networks", order=30)


_SUMMARIES = {
    "gan": "GAN (Goodfellow et al. 2014), the original minimax game with the saturating generator loss",
    "nsgan": "GAN (Goodfellow et al. 2014) with the non-saturating generator loss -log D(G(z))",
    "lsgan": "Least-squares GAN (Mao et al. 2017), targets a=0, b=1, c=1",
    "wgan": "Wasserstein GAN (Arjovsky et al. 2017): critic with weight clipping",
    "wgan_gp": "Wasserstein GAN with gradient penalty (Gulrajani et al. 2017)",
    "fgan": "f-GAN (Nowozin et al. 2016): variational f-divergence minimisation (Jensen-Shannon by default)",
    "mmdgan": "MMD GAN (Li et al. 2017): adversarially learned kernel, mixture of RBF bandwidths",
}
_DEFAULTS = {
    "gan": dict(train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "nsgan": dict(train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "lsgan": dict(train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "wgan": dict(n_critic=5, clip=0.01, betas="0.0,0.99", train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "wgan_gp": dict(n_critic=5, gp_weight=10.0, betas="0.5,0.9", train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "fgan": dict(divergence="js", train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
    "mmdgan": dict(n_critic=5, clip=0.01, betas="0.0,0.99", train={"lr": 5e-4, "batch_size": 256, "steps": 5000}),
}
# On digits (DCGAN's networks): batch 64 as in DCGAN's MNIST runs; where the critic takes five steps per
# generator step, half the channels and batch 32, so that a step costs about what the others do on a CPU.
_IMAGES = {"lr": 5e-4, "batch_size": 64, "steps": 3000}
_IMAGE_DEFAULTS = {
    "wgan": dict(channels=16, train_images={**_IMAGES, "batch_size": 32, "steps": 2000}),
    "wgan_gp": dict(channels=16, train_images={**_IMAGES, "batch_size": 32, "steps": 2000}),
    "mmdgan": dict(channels=16, train_images={**_IMAGES, "batch_size": 32, "steps": 2000}),
}
_QUALITY = {"wgan_gp": Quality("modes_covered", 1.0, at_least=True, scale="n_modes")}  # every mode
for _name in LOSSES:
    _d = {**_DEFAULTS[_name], **_IMAGE_DEFAULTS.get(_name, {})}
    register_model(_name, GAN, GANConfig, _SUMMARIES[_name], train=_d.pop("train"), quality=_QUALITY.get(_name),
                   train_images=_d.pop("train_images", _IMAGES), loss=_name, **_d)

_SAMPLE_TARGET = Quality("mmd", 2.0, scale="floor")
register_model("cyclegan", CycleGAN, CycleGANConfig,
               "CycleGAN (Zhu et al. 2017): translates a source 2D dataset into the chosen one, cycle-consistently",
               train={"lr": 1e-3, "batch_size": 256, "steps": 8000}, quality=_SAMPLE_TARGET,
               cycle_weight=2.0)  # the paper's 10 holds G(A) back from B's modes on the 2D toys
register_model("bigan", BiGAN, BiGANConfig,
               "BiGAN (Donahue et al. 2017) / ALI: generator, encoder, and a discriminator on (x, z) pairs",
               train={"lr": 5e-4, "batch_size": 256, "steps": 5000}, quality=_SAMPLE_TARGET)

__all__ = ["BETAS", "LOSSES", "MMD_SIGMAS", "GAN", "GANConfig", "BiGAN", "BiGANConfig", "CycleGAN", "CycleGANConfig"]
