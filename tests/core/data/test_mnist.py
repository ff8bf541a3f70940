"""MNIST: the IDX parser on files written here, and the real test split when it is beside the checkout."""

import gzip
import importlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import mnist as M
from core.errors import DataError
from core.registry import DATASETS


def write_idx(path, array: np.ndarray, type_code=0x08, magic=None):
    header = magic if magic is not None else bytes([0, 0, type_code, array.ndim])
    header += b"".join(struct.pack(">I", s) for s in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


@pytest.fixture
def tiny_root(tmp_path):
    """A folder with mnist/ holding 5 digits of 28 x 28 in the original format."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / M.IMAGES, images)
    write_idx(tmp_path / "mnist" / M.LABELS, labels)
    return tmp_path, images, labels


def test_idx_parser_reads_what_was_written(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(M.read_idx(write_idx(tmp_path / "a.idx", a)), a)
    b = np.array([[1.5, -2.25], [1e6, 0.0]], dtype=np.float32)  # big-endian floats (type 0x0D)
    assert np.array_equal(M.read_idx(write_idx(tmp_path / "b.idx.gz", b, type_code=0x0D)), b)


def test_dataset_from_tiny_files_scales_pixels_to_unit_interval(tiny_root):
    root, images, labels = tiny_root
    d = M.MNIST(root)
    assert d.images.shape == (5, 1, 28, 28) and d.images.dtype == torch.float32 and d.shape == (1, 28, 28)
    assert torch.equal(d.images[:, 0] * 255, torch.from_numpy(images).float())
    assert d.labels.tolist() == [3, 1, 4, 1, 5]
    x, y = d.sample_with_labels(50, torch.Generator().manual_seed(0))
    for xi, yi in zip(x, y):  # every sample is a stored image with its own label
        i = int((d.images - xi).abs().flatten(1).sum(1).argmin())
        assert torch.equal(d.images[i], xi) and d.labels[i] == yi


def test_bad_magic_number_is_refused(tmp_path):
    path = write_idx(tmp_path / "bad.idx", np.zeros((2, 2), np.uint8), magic=bytes([1, 2, 8, 2]))
    with pytest.raises(DataError, match="bad magic number 01020802"):
        M.read_idx(path)


def test_truncated_file_is_refused(tmp_path):
    path = write_idx(tmp_path / "t.idx", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        M.read_idx(path)


def test_images_and_labels_must_agree(tmp_path):
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / M.IMAGES, np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "mnist" / M.LABELS, np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="must match"):
        M.MNIST(tmp_path)


def test_missing_files_say_where_we_looked_and_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        M.MNIST()
    assert str(tmp_path / "mnist" / M.IMAGES) in str(e.value) and "PLAYGROUND_DATA" in str(e.value)


def test_import_reads_nothing(monkeypatch):
    def no_reading(self):
        raise AssertionError(f"{self} was read at import")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    importlib.reload(M)  # runs the module body again, registration included
    assert "mnist" in DATASETS and DATASETS["mnist"].factory is M.MNIST


def test_loading_is_cached(tiny_root, monkeypatch):
    root, _, _ = tiny_root
    monkeypatch.setenv("PLAYGROUND_DATA", str(root))
    M.load_test_split.cache_clear()
    a, b = M.MNIST(), M.MNIST()
    assert a.images is b.images and M.load_test_split.cache_info().hits == 1


def test_real_test_split(mnist_dir):
    d = M.MNIST(mnist_dir)
    assert d.images.shape == (10_000, 1, 28, 28) and d.images.dtype == torch.float32
    assert float(d.images.min()) == 0.0 and float(d.images.max()) == 1.0
    assert d.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the published first test digits
    assert torch.bincount(d.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    subset = d.training_set(300, seed=1)
    assert subset.shape == (300, 1, 28, 28) and torch.equal(subset, d.training_set(300, seed=1))
    assert len({hash(x.numpy().tobytes()) for x in subset}) == 300  # 300 distinct images
    assert d.training_set(50_000, seed=1).shape[0] == 10_000
    assert d.sample(7, torch.Generator().manual_seed(0)).shape == (7, 1, 28, 28)
