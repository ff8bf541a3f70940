"""Normalizing flows: exact densities by the change of variables, drawn layer by layer.

    base.py           Flow (a base N(0, I) and a stack of transforms) and the Transform protocol
    elementwise.py    the monotone maps a layer applies per coordinate: additive, affine
    spline.py         the rational-quadratic spline map (Durkan et al. 2019)
    coupling.py       coupling layers (NICE, RealNVP, NSF), optionally moving the kept half too
    autoregressive.py masked autoregressive layers (MAF, IAF), conditioned by core.nets.MADE
    glow.py           ActNorm and the invertible linear mixing of Glow
    recipes.py        the six registered flows and their configs
    image_layers.py   logit pre-processing, squeeze and channel couplings on images
    multiscale.py     RealNVP's multi-scale flow on dequantized digits, in bits/dim
"""

from ...registry import Literature, Quality, register_family, register_model
from .autoregressive import MaskedAutoregressive
from .base import Flow, Inverse, Transform, standard_normal_log_prob
from .coupling import Coupling, DiagonalScale, alternating_mask
from .elementwise import Additive, Affine, ElementwiseMap
from .glow import ActNorm, InvertibleLinear
from .image_layers import ChannelCoupling, Logit, Squeeze, channel_halves, checkerboard
from .multiscale import MultiScaleConfig, MultiScaleRealNVP
from .recipes import IAF, MAF, NICE, NSF, FlowConfig, Glow, RealNVP, SplineFlowConfig
from .spline import RationalQuadratic, rational_quadratic_spline

register_family("flow", "Normalizing flows", order=10)

# Training defaults checked on eight Gaussians (KL(p || q) in nats after the default steps,
# one CPU thread): realnvp 0.079-0.094 (two seeds), nsf 0.015-0.020 (two seeds). Affine flows
# need a larger batch and more steps than the spline flow, which bends each coordinate freely.
_AFFINE_TRAIN = {"lr": 2e-3, "batch_size": 512, "steps": 5000}
_SPLINE_TRAIN = {"lr": 1e-3, "batch_size": 256, "steps": 3000}
# On 784-dimensional digits an MLP conditioner costs hundreds of times more per point: smaller batches.
_FLAT_IMAGE_TRAIN = {"lr": 1e-3, "batch_size": 64, "steps": 3000}

register_model("nice", NICE, FlowConfig, "NICE: additive couplings, then a diagonal scaling (Dinh et al. 2014)",
               train=_AFFINE_TRAIN, layers=10)
register_model("realnvp", RealNVP, FlowConfig, "RealNVP: affine coupling layers (Dinh et al. 2016)",
               train=_AFFINE_TRAIN, quality=Quality("kl", 0.1), layers=10)
register_model("glow", Glow, FlowConfig, "Glow: ActNorm, invertible linear mixing, affine coupling per step",
               # Glow's ActNorm and 1x1 mixing over 784 dimensions blow up at 1e-3 (a loss of 1e14 by
               # step 4); 1e-4 falls steadily
               train=_AFFINE_TRAIN, train_images={**_FLAT_IMAGE_TRAIN, "lr": 1e-4}, layers=8)
register_model("maf", MAF, FlowConfig, "MAF: masked autoregressive layers; one-pass density, D-pass sampling",
               train=_AFFINE_TRAIN, layers=10)
register_model("iaf", IAF, FlowConfig, "IAF: inverse autoregressive layers; one-pass sampling, D-pass density",
               train=_AFFINE_TRAIN, layers=10)
# Three spline layers that move both halves (x_b given x_a, and x_a on its own) take half the
# step of the six plain couplings they replace and reach a lower KL; 12 bins rather than 8 bend
# more sharply for ~7% of a step. Against zuko's NSF: python -m core.bench_zuko.
register_model("nsf", NSF, SplineFlowConfig,
               "Neural spline flow: rational-quadratic spline couplings, both halves moved per layer",
               train=_SPLINE_TRAIN, train_images=_FLAT_IMAGE_TRAIN, quality=Quality("kl", 0.1), layers=3, bins=12)
# Images only. A step at batch 64 is 2.3 GFLOP: 0.22 s of CPU on one thread (4.6 steps a second
# per core); held-out bits/dim fell from 10.9 to about 2.6-3.0 in 950 steps (one thread, about
# 3.5 minutes of CPU), when samples are still blobs of ink rather than digits.
_MULTISCALE_TRAIN = {"lr": 1e-3, "batch_size": 64, "steps": 3000, "grad_clip": 50.0}
register_model("realnvp_ms", MultiScaleRealNVP, MultiScaleConfig,
               "RealNVP's multi-scale flow on dequantized digits: squeeze, checkerboard and channel couplings, "
               "half factored out per scale (Dinh et al. 2017)",
               train=_MULTISCALE_TRAIN, train_images=_MULTISCALE_TRAIN,
               literature=Literature(1.06, "bits/dim", "Grathwohl et al. 2019 (FFJORD), Table 2: RealNVP"))

__all__ = [
    "Flow", "Transform", "Inverse", "standard_normal_log_prob", "Coupling", "DiagonalScale", "alternating_mask",
    "Additive", "Affine", "ElementwiseMap", "RationalQuadratic", "rational_quadratic_spline", "ActNorm",
    "InvertibleLinear", "MaskedAutoregressive", "FlowConfig", "SplineFlowConfig",
    "NICE", "RealNVP", "Glow", "MAF", "IAF", "NSF",
    "Logit", "Squeeze", "ChannelCoupling", "checkerboard", "channel_halves", "MultiScaleConfig", "MultiScaleRealNVP",
]
