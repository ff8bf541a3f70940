"""A dataset made of the user's own 2D points, read from a .csv/.txt or .npy file.

The file is the data: the training set is every stored point, and sampling
draws stored points uniformly with replacement (the empirical distribution).
There is no density to score against, so only sample-based metrics apply.

Files are checked before use and refused with a one-line reason: what was
wrong and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import Dataset

EXTENSIONS = (".csv", ".txt", ".npy")
MIN_POINTS = 16
_ALLOWED = "a .csv/.txt file with two numbers (x, y) per line, or a .npy array of shape N x 2"
_SPLIT = re.compile(r"\s*[,;]\s*|\s+")


class PointsFile(Dataset):
    """The empirical distribution of N stored 2D points."""

    has_density = False

    def __init__(self, points, name: str = "points", min_points: int = MIN_POINTS, source: str | None = None):
        points = torch.as_tensor(points).detach().cpu().to(torch.get_default_dtype())
        _check_array(points.numpy(), source or name, min_points)
        self.points = points  # (N, 2)
        self.name = name
        self.shape = (2,)
        lo, hi = self.points.min(0).values, self.points.max(0).values
        margin = torch.clamp(0.1 * (hi - lo), min=0.5)  # room around the data for the plane views
        self.bounds = tuple((float(a), float(b)) for a, b in zip(lo - margin, hi + margin))

    @classmethod
    def from_path(cls, path, min_points: int = MIN_POINTS) -> "PointsFile":
        path = Path(path)
        if path.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{path.name}: unsupported file type {path.suffix or '(none)'!r}; use {_ALLOWED}")
        if not path.exists():
            raise DataError(f"no file at {path}; give the path of {_ALLOWED}")
        if not path.is_file():
            raise DataError(f"{path} is not a file; give the path of {_ALLOWED}")
        array = _read_npy(path) if path.suffix.lower() == ".npy" else _read_text(path)
        return cls(torch.from_numpy(array), name=path.stem, min_points=min_points, source=path.name)

    def sample(self, n, generator=None):
        if int(n) < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        idx = torch.randint(0, self.points.shape[0], (int(n),), generator=generator)
        return self.points[idx]

    def training_set(self, n, seed):
        """Every stored point (the file is the data; n and seed are ignored)."""
        return self.points.clone()


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":  # numpy would take anything else for a pickle
        raise DataError(f"{path.name} is not a readable .npy array (it lacks the .npy header); "
                        f"save one with np.save(path, points)")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(f"{path.name} holds Python objects (a pickled array), which are refused for safety; "
                            f"save a plain numeric array with np.save(path, points) of shape N x 2") from None
        raise DataError(f"{path.name} is not a readable .npy array ({e}); save one with np.save(path, points)") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path.name} is not a readable .npy array ({e}); save one with np.save(path, points)") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path.name} is not a single .npy array; save one with np.save(path, points)")
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path.name} holds values of type {array.dtype}, not numbers; "
                        f"save a float or integer array of shape N x 2")
    return array.astype(np.float64)


def _read_text(path: Path) -> np.ndarray:
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


def _check_array(array: np.ndarray, name: str, min_points: int) -> None:
    if array.size == 0:
        raise DataError(f"{name} is empty (shape {tuple(array.shape)}); it needs N x 2 points with N >= {min_points}")
    if array.ndim != 2 or array.shape[1] != 2:
        found = " x ".join(str(s) for s in array.shape)
        hint = "; transpose it" if array.ndim == 2 and array.shape[0] == 2 else ""
        raise DataError(f"{name} has shape {found}, expected N x 2 (one x, y point per row){hint}")
    bad_rows = int((~np.isfinite(array)).any(axis=1).sum())
    if bad_rows:
        raise DataError(f"{name}: {bad_rows} of {array.shape[0]} rows contain NaN or inf; every value must be a finite number")
    if array.shape[0] < min_points:
        raise DataError(f"{name} has only {array.shape[0]} points; at least {min_points} are needed")
