"""MNIST digits (LeCun, Cortes and Burges), the 10,000-image test split.

Read from the original IDX files under $PLAYGROUND_DATA/mnist/
(t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz); without the variable,
from a `data` folder at the repository root. The IDX format is parsed here:

    magic  = 0x00 0x00 <type code> <number of dimensions d>
    d big-endian uint32 sizes, then the values, big-endian, row-major.

Nothing is read at import: the files are loaded when the dataset is first
built, and kept for later builds. Images are float32 in [0, 1], shape (1, 28, 28).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..registry import register_dataset
from .base import Dataset

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# IDX type code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def data_root() -> Path:
    """The folder that holds mnist/: $PLAYGROUND_DATA, else <repo>/data."""
    env = os.environ.get("PLAYGROUND_DATA")
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "data"


def read_idx(path) -> np.ndarray:
    """An IDX file (gzip-compressed if it ends in .gz) as a numpy array."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path} could not be read as an IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'}; "
                        f"expected 0000 then a type code (08 for bytes) and the number of dimensions")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is a truncated IDX file: its header announces {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} holds {len(raw)} bytes but its header ({' x '.join(map(str, dims))} values "
                        f"of {dtype.itemsize} byte(s)) needs {expected}; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


@functools.lru_cache(maxsize=4)
def load_test_split(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (10000, 1, 28, 28) float32 in [0, 1], labels (10000,) int64) from root/mnist/."""
    folder = Path(root) / "mnist"
    images_path, labels_path = folder / IMAGES, folder / LABELS
    missing = [p for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        raise DataError(f"MNIST not found: looked for {', '.join(str(p) for p in missing)}. "
                        f"Set PLAYGROUND_DATA to a folder containing mnist/{IMAGES} and mnist/{LABELS} "
                        f"(e.g. PLAYGROUND_DATA=../shared/data)")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path} holds images of shape {images.shape}, expected N x 28 x 28")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path} holds {labels.shape} labels for {images.shape[0]} images; they must match")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x, y


class MNIST(Dataset):
    """The MNIST test split as a dataset of images; labels are the digits."""

    name = "mnist"
    shape = (1, 28, 28)
    has_density = False
    labels_name = "digit"
    bounds = None  # images have no plane to draw

    def __init__(self, root=None):
        self.root = Path(root).resolve() if root is not None else data_root()
        self.images, self.labels = load_test_split(self.root)

    def sample_with_labels(self, n, generator=None):
        if int(n) < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        idx = torch.randint(0, self.images.shape[0], (int(n),), generator=generator)
        return self.images[idx], self.labels[idx]

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]

    def _training_rows(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(self.images.shape[0], generator=g)[: min(int(n), self.images.shape[0])]

    def training_set(self, n, seed):
        """min(n, 10000) distinct images, chosen with `seed`."""
        return self.images[self._training_rows(n, seed)]

    def labelled_training_set(self, n, seed):
        idx = self._training_rows(n, seed)
        return self.images[idx], self.labels[idx]


register_dataset("mnist", MNIST, "MNIST digits, the 10,000-image test split (1 x 28 x 28)")
