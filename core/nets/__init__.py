"""The networks, kept apart from the methods that use them.

A method takes a network (or builds its default one from these): an MLP
serves flows' conditioners, VAE encoders and decoders and GAN players; a
time-conditioned MLP serves DDPM's noise predictor (and later NCSN, flow
matching, EBMs); masked layers give MADE, the conditioner of autoregressive
flows and densities.
"""

from .masked import MADE, MaskedLinear
from .mlp import ACTIVATIONS, MLP
from .time import TimeMLP, sinusoidal_embedding

__all__ = ["ACTIVATIONS", "MLP", "MADE", "MaskedLinear", "TimeMLP", "sinusoidal_embedding"]
