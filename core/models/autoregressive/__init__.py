"""Autoregressive densities: the chain rule p(x) = prod_i p(x_i | x_<i), one conditional at a time.

    made_mog.py   RNADE-style: a MADE gives each conditional a mixture of Gaussians (Uria et al. 2013)
    binary.py     the shared part of the models of binary images: Bernoulli conditionals in raster
                  order, their exact log-likelihood, the pixel-by-pixel sampler
    fvsbn.py      a logistic regression on the pixels before each one (Frey 1998)
    nade.py       one hidden layer shared by every conditional, a running sum (Larochelle & Murray 2011)
    made.py       a masked autoencoder, every conditional in one pass (Germain et al. 2015)
    pixelcnn.py   causally masked convolutions (van den Oord et al. 2016)
"""

from ...registry import Literature, Quality, register_family, register_model
from .binary import BinaryAutoregressive
from .fvsbn import FVSBN, FVSBNConfig
from .made import MADE, MADEConfig
from .made_mog import MADEMoG, MADEMoGConfig
from .nade import NADE, NADEConfig
from .pixelcnn import PixelCNN, PixelCNNConfig

register_family("autoregressive", "Autoregressive models", order=55)

register_model(
    "made_mog", MADEMoG, MADEMoGConfig,
    summary="MADE with a mixture of K Gaussians per conditional p(x_i | x_<i) (RNADE, Uria et al. 2013): "
            "exact density in one pass, sampling in D",
    train={"lr": 2e-3, "batch_size": 512, "steps": 2000},
    train_images={"lr": 1e-3, "batch_size": 64, "steps": 2000},  # 784 conditionals per digit: smaller batches
    quality=Quality("kl", 0.1),
)

# Image-only models: their train= defaults are their defaults on binarized MNIST.
register_model(
    "fvsbn", FVSBN, FVSBNConfig,
    summary="fully visible sigmoid belief net (Frey 1998): p(x_i = 1 | x_<i) = sigmoid(b_i + W_i . x_<i), "
            "W strictly lower-triangular; binarized digits, exact likelihood",
    train={"lr": 3e-3, "batch_size": 64, "steps": 3000},
    literature=Literature(97.45, "nats", "Larochelle & Murray 2011, FVSBN"),
)
register_model(
    "nade", NADE, NADEConfig,
    summary="NADE (Larochelle & Murray 2011): one hidden layer shared by every conditional through a "
            "running sum; binarized digits, exact likelihood",
    train={"lr": 3e-3, "batch_size": 32, "steps": 3000},
    literature=Literature(88.33, "nats", "Uria et al. 2016, NADE (fixed order)"),
)
register_model(
    "made", MADE, MADEConfig,
    summary="MADE (Germain et al. 2015): a masked autoencoder gives all 784 Bernoulli conditionals "
            "in one pass; binarized digits, exact likelihood",
    train={"lr": 1e-3, "batch_size": 64, "steps": 3000},
    literature=Literature(88.04, "nats", "Germain et al. 2015, MADE"),
)
register_model(
    "pixelcnn", PixelCNN, PixelCNNConfig,
    summary="PixelCNN (van den Oord et al. 2016): a 7x7 mask-A and 3x3 mask-B convolutions give "
            "every pixel's conditional at once; binarized digits, exact likelihood, drawn pixel by pixel",
    train={"lr": 3e-3, "batch_size": 16, "steps": 6000},
    literature=Literature(81.30, "nats", "van den Oord et al. 2016, PixelCNN"),
)

__all__ = ["BinaryAutoregressive", "FVSBN", "FVSBNConfig", "MADE", "MADEConfig", "MADEMoG", "MADEMoGConfig",
           "NADE", "NADEConfig", "PixelCNN", "PixelCNNConfig"]
