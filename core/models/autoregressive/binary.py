"""The shared part of the autoregressive models of binary images: Bernoulli conditionals in
raster order, their exact log-likelihood and the pixel-by-pixel sampler (written once here,
as pytorch-generative writes it once for every model).

A binary image x in {0, 1}^D (D = C H W, raster order i = 0 .. D-1) has the chain rule

    p(x) = prod_i p(x_i | x_<i),    p(x_i = 1 | x_<i) = sigmoid(s_i(x_<i)),

with s_i the logit of pixel i, a function of the pixels before it only. Then

    log p(x) = sum_i [x_i log sigmoid(s_i) + (1 - x_i) log sigmoid(-s_i)]
             = -sum_i BCE(s_i, x_i),

exactly, in one pass of the network. Training minimises the negative log-likelihood in
nats of dynamically binarized digits, a fresh b ~ Bernoulli(grey level) for every batch
(core.data.pixels); bits/dim = nats / (D ln 2).

Sampling draws pixel after pixel: x_0 ~ Bernoulli(sigmoid(s_0)), then x_1 given x_0, and so
on, D steps. A model supplies `logits(x)` (all D logits of a batch in one pass) and may give
a cheaper `conditional_logit(x, i, cache)` for one pixel (a running sum, a window).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...data.pixels import view as view_pixels
from ...model import GenerativeModel, to_numpy

LOGIT_CLAMP = 6.9  # |start logit| <= logit(0.999): a pixel that is never on still costs a little


def frame_counts(D: int, frames: int) -> list[int]:
    """Pixels drawn when each of `frames` canvases is kept: round(k D / frames), at least 1."""
    return [max(1, round(k * D / frames)) for k in range(1, frames + 1)]


class BinaryAutoregressive(GenerativeModel):
    family = "autoregressive"
    has_log_prob = True
    log_prob_is_exact = True
    data_kinds = ("images",)
    pixels = "binary"

    TRACE_DIGITS = 8  # digits drawn per live picture: D network steps each pass
    FRAMES = 8  # canvases kept along the drawing: after 1/8, 2/8, ... 8/8 of the pixels
    TRACES = {"samples": ("m", "x"), "frames": ("F", "m", "x"), "frame_pixels": ("F",),
              "digit": ("x",), "p_digit": ("x",)}

    # ---- what a model supplies ---------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """s (n, D): the logit of every pixel of x (n, *data_shape), s_i reading x_<i only."""
        raise NotImplementedError

    def conditional_logit(self, x: torch.Tensor, i: int, cache: dict) -> torch.Tensor:
        """s_i (n,) at flat x (n, D) whose pixels < i are drawn; `cache` is the sampler's, one per
        pass, for a model that carries a running state. By default: all logits, keep one."""
        return self.logits(self.unflat(x))[:, i]

    def start_logits(self, s: torch.Tensor) -> None:
        """Set the model's output so that every s_i starts at s (D,) (the data's pixel
        log-odds), where its output layer allows it; by default leave it."""

    # ---- density and training ---------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x must have shape (n, {', '.join(map(str, self.data_shape))}), got {tuple(x.shape)}")
        return x.to(self.device, self._dtype())

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = -sum_i BCE(s_i, x_i) for binary images x (n, *data_shape) -> (n,)."""
        x = self._check(x)
        s = self.logits(x)  # (n, D)
        return -F.binary_cross_entropy_with_logits(s, self.flat(x), reduction="none").sum(1)

    def loss(self, x: torch.Tensor) -> dict:
        b = view_pixels(self._check(x), self.pixels)  # a fresh binarization of every batch
        nll = -self.log_prob(b).mean()
        return {"loss": nll, "nll": nll.detach()}

    def init_from_data(self, x: torch.Tensor) -> None:
        p = self.flat(x).detach().to("cpu", torch.float32).mean(0)  # E[b_i] = mean grey level
        self.start_logits(torch.logit(p, eps=1e-3).clamp(-LOGIT_CLAMP, LOGIT_CLAMP))

    # ---- sampling -----------------------------------------------------------------
    def draw(self, n: int, frames: int = 0, generator: torch.Generator | None = None):
        """x (n, *data_shape) in {0, 1} drawn pixel by pixel, and (frames, n, *data_shape) canvases:
        the k-th after frame_counts(D, frames)[k] pixels (none for frames = 0)."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a whole number of at least 1, got {n}")
        n, D = int(n), self.dim
        counts = frame_counts(D, frames)
        with torch.inference_mode():  # D small steps: no autograd bookkeeping on any of them
            x = torch.zeros(n, D, device=self.device, dtype=self._dtype())
            canvases, cache = [None] * frames, {}
            for i in range(D):
                p = torch.sigmoid(self.conditional_logit(x, i, cache))  # (n,)
                u = torch.rand(n, generator=generator, device=self.device if generator is None else generator.device)
                x[:, i] = (u.to(self.device) < p).to(x.dtype)  # x_i ~ Bernoulli(p)
                for f in (f for f, count in enumerate(counts) if count == i + 1):
                    canvases[f] = x.clone()
            shots = torch.stack(canvases) if frames else x.new_zeros(0, n, D)  # (frames, n, D)
        # cloned outside inference mode: ordinary tensors, which callers may change in place
        return self.unflat(x.clone()), shots.clone().reshape(frames, n, *self.data_shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.draw(n, generator=generator)[0]

    # ---- live views ---------------------------------------------------------------
    @torch.no_grad()
    def traces(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """One sampling pass of m = min(len(x), TRACE_DIGITS) digits: "samples" (m, *x), the drawn
        digits; "frames" (F, m, *x), the canvases after "frame_pixels" (F,) pixels of that pass.
        "digit" (*x,): x[0] binarized; "p_digit" (*x,): p(x_i = 1 | x_<i) at that digit, every
        conditional the model gives it, read in one pass."""
        m = max(1, min(int(x.shape[0]), self.TRACE_DIGITS))
        drawn, shots = self.draw(m, frames=self.FRAMES)
        digit = view_pixels(self._check(x[:1]), self.pixels)  # (1, *x)
        p_digit = torch.sigmoid(self.logits(digit))  # (1, D)
        counts = frame_counts(self.dim, self.FRAMES)
        return {"samples": to_numpy(drawn), "frames": to_numpy(shots), "frame_pixels": np.array(counts, np.float32),
                "digit": to_numpy(digit[0]), "p_digit": to_numpy(self.unflat(p_digit)[0])}
