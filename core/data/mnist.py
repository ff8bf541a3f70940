"""MNIST digits (LeCun, Cortes and Burges), read from the original IDX files.

Where the files are looked for, in order:

1. $PLAYGROUND_DATA/mnist/ (without the variable, a `data` folder at the repository root);
2. a cache folder in the user's home: $PLAYGROUND_CACHE/mnist, else
   $XDG_CACHE_HOME/generative-playground/mnist, else ~/.cache/generative-playground/mnist;
3. otherwise they are downloaded into that cache from the canonical mirrors, each file checked
   against its MD5 checksum, with progress on stderr. PLAYGROUND_DOWNLOAD=0 forbids it; with
   no files and no network the error says where to put them.

The training split (60,000 digits: train-*-ubyte.gz) is used when present, the test split
(10,000: t10k-*-ubyte.gz) then held out. When only the test split is there, as on the
project's own machines (`../shared/data/mnist`), a fixed permutation splits it into 9,000
digits to train on and 1,000 held out, and `note` says so.

The IDX format is parsed here:

    magic  = 0x00 0x00 <type code> <number of dimensions d>
    d big-endian uint32 sizes, then the values, big-endian, row-major.

Nothing is read at import: the files are loaded when the dataset is first built, and kept for
later builds. Images are float32 grey levels in [0, 1], shape (1, 28, 28); core.data.pixels
gives their binarized and dequantized views.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..registry import register_dataset
from .base import Dataset

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
# The files' MD5 checksums, as the mirrors publish them.
MD5 = {
    TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
           "http://yann.lecun.com/exdb/mnist/")
HELD_OUT_FRACTION = 0.1  # of the test split, when it is all there is: 1,000 of 10,000
SPLIT_SEED = 0  # the fixed permutation of that split
_REPO_ROOT = Path(__file__).resolve().parents[2]
# IDX type code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def data_root() -> Path:
    """The folder that holds mnist/: $PLAYGROUND_DATA, else <repo>/data."""
    env = os.environ.get("PLAYGROUND_DATA")
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / "data"


def cache_root() -> Path:
    """The cache folder in the user's home that holds mnist/ (and the digit classifier)."""
    if os.environ.get("PLAYGROUND_CACHE"):
        return Path(os.environ["PLAYGROUND_CACHE"]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "generative-playground"


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


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _progress(name: str, done: int, total: int) -> None:
    if total > 0:
        print(f"\rdownloading {name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)


def download(name: str, folder: Path, mirrors=MIRRORS, opener=urllib.request.urlopen, progress=_progress) -> Path:
    """Fetch one MNIST file into `folder` from the first mirror that serves it with the right
    checksum; a file that fails its checksum is discarded. Raises DataError if none does."""
    folder.mkdir(parents=True, exist_ok=True)
    target, errors = folder / name, []
    for mirror in mirrors:
        part = target.with_name(target.name + ".part")
        try:
            with opener(mirror + name, timeout=10) as response, open(part, "wb") as out:
                total, done = int(response.headers.get("Content-Length") or 0), 0
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    progress(name, done, total)
            if total:
                print(file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - any failure of one mirror: try the next
            errors.append(f"{mirror}: {type(e).__name__}: {e}")
            part.unlink(missing_ok=True)
            continue
        digest = _md5(part)
        if digest != MD5[name]:
            errors.append(f"{mirror}: checksum {digest} is not the published {MD5[name]}")
            part.unlink(missing_ok=True)
            continue
        part.replace(target)
        return target
    raise DataError(f"{name} could not be downloaded ({'; '.join(errors)})")


def find_folder(root: Path | None = None, fetch: bool | None = None) -> Path:
    """The folder holding at least the test split: root/mnist (root: data_root()), then the
    cache, then a download into the cache (unless fetch is False or PLAYGROUND_DOWNLOAD=0)."""
    first = Path(root if root is not None else data_root()) / "mnist"
    cache = cache_root() / "mnist"
    for folder in (first, cache):
        if (folder / IMAGES).is_file() and (folder / LABELS).is_file():
            return folder
    if fetch is None:
        fetch = os.environ.get("PLAYGROUND_DOWNLOAD", "1") != "0" and root is None
    where = (f"put {IMAGES} and {LABELS} (and, for the 60,000 training digits, {TRAIN_IMAGES} and "
             f"{TRAIN_LABELS}) in {first} or in {cache}, or set PLAYGROUND_DATA to a folder holding "
             f"mnist/ (e.g. PLAYGROUND_DATA=../shared/data)")
    missing = ", ".join(str(first / n) for n in (IMAGES, LABELS) if not (first / n).is_file())
    if not fetch:
        raise DataError(f"MNIST not found: looked for {missing} and in {cache}; {where}")
    try:
        for name in (IMAGES, LABELS, TRAIN_IMAGES, TRAIN_LABELS):
            if not (cache / name).is_file():
                download(name, cache)
    except DataError as e:
        if not ((cache / IMAGES).is_file() and (cache / LABELS).is_file()):
            raise DataError(f"MNIST not found: looked for {missing} and in {cache}, and {e}; {where}") from None
    return cache


def _read_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path} holds images of shape {images.shape}, expected N x 28 x 28")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path} holds {labels.shape} labels for {images.shape[0]} images; they must match")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))  # (N,)
    return x, y


@functools.lru_cache(maxsize=4)
def load_test_split(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (10000, 1, 28, 28) float32 in [0, 1], labels (10000,) int64) from root/mnist/."""
    folder = Path(root) / "mnist"  # find_folder says where it looked when the files are absent
    return _read_pair(folder / IMAGES, folder / LABELS)


@functools.lru_cache(maxsize=2)
def load_train_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 60,000 training digits from folder, or None where they are absent."""
    images_path, labels_path = folder / TRAIN_IMAGES, folder / TRAIN_LABELS
    if not (images_path.is_file() and labels_path.is_file()):
        return None
    return _read_pair(images_path, labels_path)


def split(images: torch.Tensor, labels: torch.Tensor, held_out: float = HELD_OUT_FRACTION, seed: int = SPLIT_SEED):
    """A fixed split of one set of digits into (train images, train labels, held images, held
    labels): a permutation drawn with `seed`, its first `held_out` fraction held out."""
    n = images.shape[0]
    k = min(max(1, round(held_out * n)), n - 1) if n > 1 else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, train = perm[:k], perm[k:]
    return images[train], labels[train], images[held], labels[held]


@functools.lru_cache(maxsize=4)
def load_splits(folder: Path):
    """(train images, train labels, held-out images, held-out labels, a note saying which is which)."""
    test_x, test_y = load_test_split(Path(folder).parent)
    train = load_train_split(Path(folder))
    if train is not None:
        return (*train, test_x, test_y, f"MNIST: training on the {train[0].shape[0]:,} training digits, "
                                        f"scored on the {test_x.shape[0]:,} test digits")
    x, y, held_x, held_y = split(test_x, test_y)
    return x, y, held_x, held_y, (f"MNIST: only the {test_x.shape[0]:,}-digit test split is present, so a fixed "
                                  f"split trains on {x.shape[0]:,} of its digits and holds out the other "
                                  f"{held_x.shape[0]:,}")


class MNIST(Dataset):
    """MNIST as a dataset of images; labels are the digits.

    images, labels: the digits a model trains on (the 60,000 training digits, or 9,000 of the
    test split when it is all there is); held_images, held_labels: the digits it is scored on,
    never trained on. `note` says which split is which.
    """

    name = "mnist"
    shape = (1, 28, 28)
    has_density = False
    labels_name = "digit"
    bounds = None  # images have no plane to draw

    def __init__(self, root=None):
        self.folder = find_folder(Path(root).resolve() if root is not None else None)
        self.root = self.folder.parent
        self.images, self.labels, self.held_images, self.held_labels, self.note = load_splits(self.folder)

    def held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of the held-out digits, the same at every call."""
        return self.held_images, self.held_labels

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
        """min(n, the training digits) distinct training digits, chosen with `seed`."""
        return self.images[self._training_rows(n, seed)]

    def labelled_training_set(self, n, seed):
        idx = self._training_rows(n, seed)
        return self.images[idx], self.labels[idx]


register_dataset("mnist", MNIST, "MNIST digits (1 x 28 x 28): the training split, or 9,000 of the test split "
                                 "when only it is present, with digits held out for scoring")
