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
    assert d.images.shape == (4, 1, 28, 28) and d.images.dtype == torch.float32 and d.shape == (1, 28, 28)
    assert d.held_images.shape == (1, 1, 28, 28)  # the test split alone: a tenth held out, at least one
    everything = torch.cat([d.images, d.held_images])[:, 0] * 255
    order = [int((everything - torch.from_numpy(im).float()).abs().sum((1, 2)).argmin()) for im in images]
    assert sorted(order) == [0, 1, 2, 3, 4]  # each digit once, on one side of the split
    assert torch.equal(everything[order], torch.from_numpy(images).float())
    assert torch.cat([d.labels, d.held_labels])[order].tolist() == [3, 1, 4, 1, 5]
    assert "only the 5-digit test split" in d.note
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
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as e:
        M.MNIST()
    message = str(e.value)
    assert str(tmp_path / "mnist" / M.IMAGES) in message and "PLAYGROUND_DATA" in message
    assert str(tmp_path / "cache" / "mnist") in message  # the cache was looked in too


class _Response:
    def __init__(self, body: bytes):
        self.body, self.headers = body, {"Content-Length": str(len(body))}

    def read(self, size):
        chunk, self.body = self.body[:size], self.body[size:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_the_checksum_and_tries_the_next_mirror(tmp_path, monkeypatch):
    good = b"the published bytes"
    monkeypatch.setitem(M.MD5, M.LABELS, __import__("hashlib").md5(good).hexdigest())
    served = {"http://a/" + M.LABELS: b"tampered bytes", "http://b/" + M.LABELS: good}
    seen = []

    def opener(url, timeout):
        if url not in served:
            raise OSError("no route")
        return _Response(served[url])

    path = M.download(M.LABELS, tmp_path, mirrors=("http://a/", "http://b/"), opener=opener,
                      progress=lambda name, done, total: seen.append((done, total)))
    assert path.read_bytes() == good and seen[-1] == (len(good), len(good))
    assert not list(tmp_path.glob("*.part"))  # the tampered copy was discarded
    with pytest.raises(DataError, match="checksum") as e:
        M.download(M.LABELS, tmp_path / "x", mirrors=("http://a/", "http://c/"), opener=opener, progress=lambda *a: None)
    assert "no route" in str(e.value) and not (tmp_path / "x" / M.LABELS).exists()


def test_the_cache_is_looked_in_when_the_data_folder_lacks_the_files(tiny_root, tmp_path, monkeypatch):
    root, _, _ = tiny_root
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("PLAYGROUND_CACHE", str(root))  # root/mnist holds the files
    assert M.find_folder() == root / "mnist"


def test_the_training_split_is_used_when_present(tiny_root):
    root, images, labels = tiny_root
    write_idx(root / "mnist" / M.TRAIN_IMAGES, images[::-1].copy())
    write_idx(root / "mnist" / M.TRAIN_LABELS, labels[::-1].copy())
    M.load_train_split.cache_clear()
    M.load_splits.cache_clear()
    d = M.MNIST(root)
    assert d.images.shape[0] == 5 and d.held_images.shape[0] == 5
    assert d.labels.tolist() == [5, 1, 4, 1, 3] and d.held_labels.tolist() == [3, 1, 4, 1, 5]
    assert "training on the 5 training digits" in d.note


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
    M.load_splits.cache_clear()
    a, b = M.MNIST(), M.MNIST()
    assert a.images is b.images and a.held_images is b.held_images and M.load_splits.cache_info().hits == 1


def test_real_test_split(mnist_dir):
    x, y = M.load_test_split(mnist_dir)
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the published first test digits
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    d = M.MNIST(mnist_dir)
    assert d.images.shape == (9_000, 1, 28, 28) and d.held_out()[0].shape == (1_000, 1, 28, 28)
    assert "9,000" in d.note and "1,000" in d.note
    train = {x.numpy().tobytes() for x in d.images}
    assert not any(h.numpy().tobytes() in train for h in d.held_images[:200])  # held out means unseen
    assert torch.bincount(d.held_labels).min() >= 70  # every digit is held out, about 100 of each
    assert torch.equal(M.MNIST(mnist_dir).held_labels, d.held_labels)  # the split is fixed
    subset = d.training_set(300, seed=1)
    assert subset.shape == (300, 1, 28, 28) and torch.equal(subset, d.training_set(300, seed=1))
    assert len({hash(x.numpy().tobytes()) for x in subset}) == 300  # 300 distinct images
    assert d.training_set(50_000, seed=1).shape[0] == 9_000
    assert d.sample(7, torch.Generator().manual_seed(0)).shape == (7, 1, 28, 28)
