"""Points a person drew, smoothed into a density: a Gaussian kernel density estimate.

Given m drawn points p_1..p_m and a bandwidth h, the data are

    p(x) = (1/m) sum_j N(x; p_j, h^2 I),                                   (1)

an equal-weight mixture with one narrow Gaussian per point (Parzen 1962), so
the log-density is exact and sampling is exact: pick j uniformly, then
x = p_j + h * eps. Blurring X ~ p by N(0, sigma^2 I) only widens every kernel,

    p_sigma(x) = (1/m) sum_j N(x; p_j, (h^2 + sigma^2) I),                 (2)

whose gradient is the exact score the score-based models are compared with.
The label of a sample is the stroke its point belongs to.

A drawing travels in a link as text (`encode` / `decode`): the bandwidth in
thousandths, the strokes' lengths, and the points quantised to 0.01, stored
as differences between successive points (small numbers that zlib packs
well), then URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
import zlib

import numpy as np
import torch

from ..errors import DataError
from .base import Dataset
from .mixtures import check_n, check_points, mixture_log_prob

MIN_POINTS, MAX_POINTS = 2, 2000
MIN_BANDWIDTH, MAX_BANDWIDTH = 0.02, 1.0
MAX_COORD = 100.0  # |x|, |y| of a drawn point; the page draws in [-4, 4]^2
QUANTUM = 0.01  # the grid a drawing's points are stored on
MAX_CODE = 20_000  # characters of an encoded drawing
_VERSION = 1
_MAX_RAW = 7 + 2 * MAX_POINTS + 4 * MAX_POINTS  # header, stroke lengths, point steps


class DrawnPoints(Dataset):
    """The kernel density estimate (1) of m drawn points with bandwidth h."""

    has_density = True
    has_score = True
    labels_name = "stroke"

    def __init__(self, points, bandwidth: float, strokes=None, name: str = "drawn"):
        points = np.asarray(torch.as_tensor(points).detach().cpu(), dtype=np.float64)
        _check_points(points)
        _check_bandwidth(bandwidth)
        m = points.shape[0]
        strokes = np.zeros(m, dtype=np.int64) if strokes is None else np.asarray(strokes)
        if strokes.shape != (m,) or strokes.dtype.kind not in "iu" or (m and strokes.min() < 0):
            raise DataError(f"strokes must be one non-negative integer per point ({m}), got shape {strokes.shape}")
        self.name = name
        self.points = torch.from_numpy(points)  # (m, 2) float64
        self.strokes = torch.from_numpy(strokes.astype(np.int64))  # (m,)
        self.h = float(bandwidth)
        lo, hi = self.points.min(0).values, self.points.max(0).values
        margin = max(3 * self.h, 0.5)  # (1) keeps all but e^-4.5 of its mass within 3h of the points
        self.bounds = tuple((float(a) - margin, float(b) + margin) for a, b in zip(lo, hi))

    def __len__(self) -> int:
        return self.points.shape[0]

    def sample_with_labels(self, n, generator=None):
        n = check_n(n)
        j = torch.randint(0, len(self), (n,), generator=generator)  # (n,)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = self.points[j] + self.h * eps  # (n, 2)
        return x.to(torch.get_default_dtype()), self.strokes[j]

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def log_prob(self, x):
        return self.noised_log_prob(x.detach(), 0.0).to(x.dtype)

    def noised_log_prob(self, x, sigma):
        """log p_sigma(x) of (2), float64 (n, 2) -> (n,)."""
        check_points(x)
        if sigma < 0:
            raise ValueError(f"sigma must be at least 0, got {sigma}")
        log_w = torch.full((len(self),), -math.log(len(self)), dtype=torch.float64)
        return mixture_log_prob(x, self.points, log_w, math.sqrt(self.h**2 + sigma**2))

    # ---- the drawing as text ------------------------------------------------
    def encode(self) -> str:
        """The drawing as URL-safe text: decode(encode()) has the points rounded to 0.01."""
        q = np.rint(self.points.numpy() / QUANTUM).astype(np.int64)  # (m, 2)
        order = np.argsort(self.strokes.numpy(), kind="stable")
        q, strokes = q[order], self.strokes.numpy()[order]
        lengths = np.bincount(strokes)
        lengths = lengths[lengths > 0]
        steps = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))  # (m, 2), first is the point itself
        head = struct.pack("<BHHH", _VERSION, round(self.h * 1000), len(self), len(lengths))
        body = lengths.astype("<u2").tobytes() + steps.astype("<i2").tobytes()
        return base64.urlsafe_b64encode(zlib.compress(head + body, 9)).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, code: str, name: str = "drawn") -> DrawnPoints:
        """The drawing `encode` wrote; a damaged or foreign string is refused with the reason."""
        if not isinstance(code, str) or not code.strip():
            raise DataError("the drawing is empty; draw some points, or copy the whole link again")
        code = code.strip()
        if len(code) > MAX_CODE:
            raise DataError(f"the drawing's text is {len(code)} characters long; at most {MAX_CODE} are allowed")
        try:
            inflate = zlib.decompressobj()
            raw = inflate.decompress(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)), _MAX_RAW + 1)
        except (binascii.Error, ValueError, zlib.error):
            raise DataError("the drawing in the link is damaged (it is not text this page wrote); "
                            "copy the whole link again, or draw anew") from None
        if len(raw) > _MAX_RAW:
            raise DataError(f"the drawing in the link holds more than {MAX_POINTS} points; at most {MAX_POINTS} are allowed")
        if len(raw) < 7 or raw[0] != _VERSION:
            raise DataError(f"the drawing in the link has an unknown format (version {raw[0] if raw else '?'}); "
                            f"this page reads version {_VERSION}")
        _, h_milli, m, n_strokes = struct.unpack_from("<BHHH", raw)
        if len(raw) != 7 + 2 * n_strokes + 4 * m:
            raise DataError(f"the drawing in the link is cut short: it announces {m} points in {n_strokes} strokes "
                            f"but holds {len(raw)} bytes; copy the whole link again")
        lengths = np.frombuffer(raw, "<u2", n_strokes, 7).astype(np.int64)
        if lengths.sum() != m or (lengths == 0).any():
            raise DataError(f"the drawing in the link is inconsistent: its strokes hold {int(lengths.sum())} points, "
                            f"not {m}; copy the whole link again")
        steps = np.frombuffer(raw, "<i2", 2 * m, 7 + 2 * n_strokes).reshape(m, 2).astype(np.int64)
        points = np.cumsum(steps, axis=0) * QUANTUM
        return cls(points, h_milli / 1000, np.repeat(np.arange(n_strokes), lengths), name=name)


def _check_points(points: np.ndarray) -> None:
    if points.ndim != 2 or points.shape[1] != 2:
        raise DataError(f"drawn points must have shape m x 2 (one x, y per row), got {points.shape}")
    m = points.shape[0]
    if not MIN_POINTS <= m <= MAX_POINTS:
        raise DataError(f"a drawing needs between {MIN_POINTS} and {MAX_POINTS} points, got {m}"
                        + ("; draw a little more" if m < MIN_POINTS else "; draw less, or thinner strokes"))
    if not np.isfinite(points).all():
        raise DataError("drawn points must be finite numbers; some are NaN or inf")
    if np.abs(points).max() > MAX_COORD:
        raise DataError(f"drawn points must lie within [-{MAX_COORD:g}, {MAX_COORD:g}]^2; "
                        f"one is at {np.abs(points).max():g}")


def _check_bandwidth(h) -> None:
    try:
        ok = math.isfinite(float(h)) and MIN_BANDWIDTH <= float(h) <= MAX_BANDWIDTH
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"the bandwidth must be a number between {MIN_BANDWIDTH} and {MAX_BANDWIDTH}, got {h!r}")
