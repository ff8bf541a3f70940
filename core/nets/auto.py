"""What the "auto" settings of the image-capable models mean, decided once for all of them.

- net="auto": the U-Net (core.nets.unet) for images (C, H, W), the MLP for points;
- ema < 0 ("auto"): a weight average of decay IMAGE_EMA on images, none on points, so that
  the 2D models keep training as they always have;
- pixels: a network works on images rescaled from [0, 1] to [-1, 1], y = 2 x - 1, the range
  Ho et al. 2020 use (sec. 3.3), which centres the data where N(0, I) is; points are left as
  they are. Densities of y convert to densities of x by the Jacobian,
  log p_x(x) = log p_y(2 x - 1) + D log 2.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..errors import ConfigError

NETS = ("auto", "mlp", "unet")
IMAGE_EMA = 0.999  # about the last thousand steps: a few minutes of a CPU run


def is_image(data_shape: tuple) -> bool:
    return len(tuple(data_shape)) == 3


def pick_net(choice: str, data_shape: tuple) -> str:
    """"mlp" or "unet" for a `net` setting: "auto" takes the U-Net for images and the MLP for points."""
    if choice not in NETS:
        raise ConfigError(f"net={choice!r} is not allowed; choose one of: {', '.join(NETS)}")
    if choice == "auto":
        return "unet" if is_image(data_shape) else "mlp"
    if choice == "unet" and not is_image(data_shape):
        raise ConfigError(f"net=unet needs images (C, H, W), but the data have shape {tuple(data_shape)}; "
                          f"use net=auto or net=mlp")
    return choice


def auto_ema(ema: float, data_shape: tuple) -> float:
    """The decay an `ema` setting stands for: itself when >= 0; IMAGE_EMA on images and 0 on points when < 0."""
    if ema >= 0:
        return float(ema)
    return IMAGE_EMA if is_image(data_shape) else 0.0


@dataclasses.dataclass(frozen=True)
class Rescale:
    """y = a x + b between the data x and the network's working range y."""

    a: float = 1.0
    b: float = 0.0
    clamp: tuple | None = None  # the data's range, which decode() clips to

    @classmethod
    def for_data(cls, data_shape: tuple) -> "Rescale":
        """[0, 1] -> [-1, 1] for images, the identity for points."""
        return cls(2.0, -1.0, (0.0, 1.0)) if is_image(data_shape) else cls()

    @property
    def identity(self) -> bool:
        return self.a == 1.0 and self.b == 0.0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else self.a * x + self.b

    def decode(self, y: torch.Tensor, clip: bool = True) -> torch.Tensor:
        x = y if self.identity else (y - self.b) / self.a
        return x.clamp(*self.clamp) if clip and self.clamp is not None else x

    def log_det(self, dim: int) -> float:
        """log |det dy/dx| = D log a, added to log p_y to give log p_x."""
        return dim * math.log(self.a)
