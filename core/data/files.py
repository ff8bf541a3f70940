"""A dataset made of the user's own 2D points, read from a .csv/.txt or .npy file.

The file is the data: the training set is every stored point, and sampling
draws stored points uniformly with replacement (the empirical distribution).
There is no density to score against, so only sample-based metrics apply.

Files are checked before use and refused with a one-line reason: what was
wrong and what is allowed. What a file may cost is bounded before it is read:
its size on disk (MAX_FILE_BYTES), and its points (MAX_POINTS), which a .npy
declares in its header, so an array is measured before any of it is loaded.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat
import torch

from ..errors import DataError
from .base import Dataset

EXTENSIONS = (".csv", ".txt", ".npy")
MIN_POINTS = 16
# 200,000 points describe any 2D density in more detail than a plane view or a metric can tell
# (a 256 x 256 histogram holds three per cell), and they train and score in moments; millions
# only hold a request for a minute and grow the process by gigabytes.
MAX_POINTS = 200_000
# The size on disk, checked before reading: 200,000 lines of two numbers written with every digit
# (about 50 characters a line) and a header, with room to spare.
MAX_FILE_BYTES = 32 * 2**20
# A coordinate beyond this is refused: the points are stored as 32-bit floats (at most 3.4e38),
# and the metrics square distances between them.
MAX_ABS = 1e15
_ALLOWED = "a .csv/.txt file with two numbers (x, y) per line, or a .npy array of shape N x 2"
_SPLIT = re.compile(r"\s*[,;]\s*|\s+")
_SUBSAMPLE = ("keep a random subset, e.g. points[np.random.default_rng(0).choice(len(points), {n}, "
              "replace=False)] in numpy")


class PointsFile(Dataset):
    """The empirical distribution of N stored 2D points."""

    has_density = False

    def __init__(self, points, name: str = "points", min_points: int = MIN_POINTS, source: str | None = None,
                 max_points: int = MAX_POINTS):
        exact = torch.as_tensor(points).detach().cpu().to(torch.float64)
        _check_array(exact.numpy(), source or name, min_points, max_points)  # before rounding to float32
        self.points = exact.to(torch.get_default_dtype())  # (N, 2)
        self.name = name
        self.shape = (2,)
        lo, hi = self.points.min(0).values, self.points.max(0).values
        margin = torch.clamp(0.1 * (hi - lo), min=0.5)  # room around the data for the plane views
        self.bounds = tuple((float(a), float(b)) for a, b in zip(lo - margin, hi + margin))

    @classmethod
    def from_path(cls, path, min_points: int = MIN_POINTS, max_points: int = MAX_POINTS) -> "PointsFile":
        path = Path(path)
        if path.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; use {_ALLOWED}")
        check_file(path, _ALLOWED, max_bytes=max(MAX_FILE_BYTES, 64 * max_points))
        if path.suffix.lower() == ".npy":
            array = read_npy(path, max_values=2 * max_points, what=f"{max_points:,} points (N x 2)",
                             hint=_SUBSAMPLE.format(n=max_points))
        else:
            array = _read_text(path, max_points)
        return cls(torch.from_numpy(array), name=path.stem, min_points=min_points, source=path.name,
                   max_points=max_points)

    def sample(self, n, generator=None):
        if int(n) < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        idx = torch.randint(0, self.points.shape[0], (int(n),), generator=generator)
        return self.points[idx]

    def training_set(self, n, seed):
        """Every stored point (the file is the data; n and seed are ignored)."""
        return self.points.clone()


def check_file(path: Path, allowed: str, max_bytes: int = MAX_FILE_BYTES) -> None:
    """The path names a readable file no larger than max_bytes; DataError otherwise."""
    if not path.exists():
        raise DataError(f"no file at {path}; give the path of {allowed}")
    if not path.is_file():
        raise DataError(f"{path} is not a file; give the path of {allowed}")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path.name} is {size / 2**20:,.1f} MiB, more than the {max_bytes / 2**20:,.0f} MiB a file "
                        f"may hold; keep fewer points (a random subset describes the same density)")


def read_npy(path: Path, max_values: int, what: str, hint: str) -> np.ndarray:
    """A numeric .npy array of at most max_values numbers, as float64.

    The header is read first (numpy.lib.format): the shape it declares must fit
    max_values (`what` names the limit for the message, `hint` what to do) and
    the bytes after it must hold that many numbers, so nothing larger than the
    cap is ever allocated, and a truncated file is refused rather than loaded."""
    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":  # numpy would take anything else for a pickle
                raise DataError(f"{path.name} is not a readable .npy array (it lacks the .npy header); "
                                f"save one with np.save(path, array)")
            f.seek(0)
            shape, dtype = _npy_header(f, path)
            data_bytes = path.stat().st_size - f.tell()
    except OSError as e:
        raise DataError(f"{path.name} could not be read ({e.strerror}); save it again with np.save(path, array)") from None
    if dtype.hasobject:
        raise DataError(f"{path.name} holds Python objects (a pickled array), which are refused for safety; "
                        f"save a plain numeric array with np.save(path, array)")
    if dtype.kind not in "iuf":
        raise DataError(f"{path.name} holds values of type {dtype}, not numbers; save a float or integer array")
    found = " x ".join(str(n) for n in shape) or "a single number"
    values = math.prod(shape)
    if values > max_values:
        raise DataError(f"{path.name} holds an array of {found} numbers, more than the {what} a file may hold; {hint}")
    if data_bytes < values * dtype.itemsize:
        raise DataError(f"{path.name} is cut short: its header declares {found} numbers ({values * dtype.itemsize:,} "
                        f"bytes) but only {data_bytes:,} bytes follow it; save it again with np.save(path, array)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path.name} is not a readable .npy array ({e}); save one with np.save(path, array)") from None
    return np.asarray(array, dtype=np.float64)


def _npy_header(f, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of an open .npy file, left positioned at its data."""
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = npformat.read_array_header_2_0(f)
        else:  # (3, 0): a header in utf-8, which numpy writes only for unusual field names
            raise ValueError(f"format version {version[0]}.{version[1]} is not read here")
    except ValueError as e:
        raise DataError(f"{path.name} is not a readable .npy array ({e}); save one with np.save(path, array)") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _read_text(path: Path, max_points: int = MAX_POINTS) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not a text file; use {_ALLOWED}") from None
    rows, width, first = [], None, True
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if first:  # the first line may be a header such as "x,y"
                first = False
                continue
            bad = next(f for f in fields if not _is_number(f))
            raise DataError(f"{path.name}, line {number}: {bad!r} is not a number; "
                            f"every line after an optional header must hold two numbers x, y") from None
        first = False
        if len(rows) == max_points:
            raise DataError(f"{path.name} holds more than {max_points:,} points, the most a file may hold; "
                            + _SUBSAMPLE.format(n=max_points))
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise DataError(f"{path.name}, line {number}: found {len(values)} values but earlier lines have {width}; "
                            f"every line must hold two numbers x, y")
        rows.append(values)
    if not rows:
        raise DataError(f"{path.name} is empty (no lines of numbers); use {_ALLOWED}")
    return np.asarray(rows, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_array(array: np.ndarray, name: str, min_points: int, max_points: int = MAX_POINTS) -> None:
    if array.size == 0:
        raise DataError(f"{name} is empty (shape {tuple(array.shape)}); it needs N x 2 points with N >= {min_points}")
    if array.ndim != 2 or array.shape[1] != 2:
        found = " x ".join(str(s) for s in array.shape)
        hint = "; transpose it" if array.ndim == 2 and array.shape[0] == 2 else ""
        raise DataError(f"{name} has shape {found}, expected N x 2 (one x, y point per row){hint}")
    bad_rows = int((~np.isfinite(array)).any(axis=1).sum())
    if bad_rows:
        raise DataError(f"{name}: {bad_rows} of {array.shape[0]} rows contain NaN or inf; every value must be a finite number")
    huge = np.abs(array) > MAX_ABS
    if huge.any():
        row = int(huge.any(axis=1).argmax())
        raise DataError(f"{name}, row {row + 1}: {array[row][huge[row]][0]:g} is too large; every coordinate must "
                        f"lie between -{MAX_ABS:g} and {MAX_ABS:g} (rescale the points)")
    if array.shape[0] < min_points:
        raise DataError(f"{name} has only {array.shape[0]} points; at least {min_points} are needed")
    if array.shape[0] > max_points:
        raise DataError(f"{name} has {array.shape[0]:,} points, more than the {max_points:,} allowed; "
                        + _SUBSAMPLE.format(n=max_points))
