"""Files of the user's own points: good files load exactly, bad ones are refused
with a message that names the problem."""

import numpy as np
import pytest
import torch

from core.data.files import MAX_POINTS, MIN_POINTS, PointsFile
from core.errors import DataError
from core.registry import load_dataset

POINTS = np.random.default_rng(0).normal(size=(40, 2)).round(4)


def write_csv(path, rows, header=None, sep=","):
    lines = ([header] if header else []) + [sep.join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_with_header_loads_every_point(tmp_path):
    d = PointsFile.from_path(write_csv(tmp_path / "pts.csv", POINTS, header="x,y"))
    assert d.points.shape == (40, 2) and d.points.dtype == torch.float32
    assert np.allclose(d.points.numpy(), POINTS, atol=1e-6)
    assert d.name == "pts" and not d.has_density and d.shape == (2,)


def test_whitespace_separated_text_without_header_loads(tmp_path):
    d = PointsFile.from_path(write_csv(tmp_path / "pts.txt", POINTS, sep="  "))
    assert np.allclose(d.points.numpy(), POINTS, atol=1e-6)


def test_npy_loads_and_the_registry_accepts_a_path(tmp_path):
    path = tmp_path / "pts.npy"
    np.save(path, POINTS.astype(np.float32))
    d = load_dataset(str(path))
    assert isinstance(d, PointsFile) and np.array_equal(d.points.numpy(), POINTS.astype(np.float32))


def test_training_set_is_every_point_and_samples_are_stored_points(tmp_path):
    d = PointsFile(torch.from_numpy(POINTS))
    assert torch.equal(d.training_set(5, seed=3), d.points)  # the file is the data: n is ignored
    s1 = d.sample(500, torch.Generator().manual_seed(1))
    s2 = d.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(s1, s2)
    stored = {tuple(p) for p in d.points.tolist()}
    assert all(tuple(p) in stored for p in s1.tolist())
    assert len({tuple(p) for p in s1.tolist()}) > 30  # with replacement, from all of them


def test_bounds_hold_every_point_with_a_margin():
    d = PointsFile(torch.from_numpy(POINTS))
    for axis, (lo, hi) in enumerate(d.bounds):
        assert lo < POINTS[:, axis].min() - 0.4 and hi > POINTS[:, axis].max() + 0.4


def bad(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("name, content, words", [
    ("three.csv", "\n".join("1,2,3" for _ in range(30)), ["30 x 3", "N x 2"]),
    ("three.npy", np.zeros((30, 3)), ["30 x 3", "N x 2"]),
    ("flat.npy", np.zeros(30), ["shape 30", "N x 2"]),
    ("wide.npy", np.zeros((2, 30)), ["2 x 30", "transpose"]),
    ("nan.csv", "x,y\n" + "\n".join(["1,2"] * 20 + ["nan,1", "2,inf", "3,4"]), ["2 of 23 rows", "NaN or inf"]),
    ("nan.npy", np.array([[np.nan, 1.0]] * 3 + [[0.0, 0.0]] * 20), ["3 of 23 rows", "NaN or inf"]),
    ("text.csv", "x,y\n" + "1,2\n" * 5 + "1,two\n" + "1,2\n" * 20, ["line 7", "'two'", "not a number"]),
    ("ragged.csv", "1,2\n" * 5 + "1,2,3\n" + "1,2\n" * 20, ["line 6", "3 values"]),
    ("few.csv", "1,2\n" * 5, ["only 5 points", f"at least {MIN_POINTS}"]),
    ("empty.csv", "", ["empty"]),
    ("header_only.csv", "x,y\n", ["empty"]),
    ("empty.npy", np.zeros((0, 2)), ["empty"]),
    ("objects.npy", np.array([{"x": 1}, None], dtype=object), ["pickle", "refused"]),
    ("garbage.npy", b"not really an npy file at all", ["not a readable .npy"]),
    ("strings.npy", np.array([["a", "b"]] * 20), ["not numbers"]),
    ("points.json", "[[1, 2]]", ["unsupported file type", ".csv", ".npy"]),
])
def test_bad_files_are_refused_with_the_reason(tmp_path, name, content, words):
    path = bad(tmp_path, name, content)
    with pytest.raises(DataError) as e:
        PointsFile.from_path(path)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="no file at .*nowhere.csv"):
        PointsFile.from_path(tmp_path / "nowhere.csv")


def test_min_points_can_be_lowered_for_scoring_a_few_points(tmp_path):
    d = PointsFile.from_path(write_csv(tmp_path / "three.csv", POINTS[:3]), min_points=1)
    assert d.points.shape == (3, 2)


# ---- what a file may cost is bounded before it is read -------------------------------------------
def test_a_file_with_more_points_than_the_cap_is_refused_with_the_cap_and_how_to_subsample(tmp_path, monkeypatch):
    import core.data.files as F

    monkeypatch.setattr(F, "MAX_POINTS", 100)  # the same rule as at 200,000, on a small file
    rows = np.random.default_rng(1).normal(size=(101, 2)).round(3)
    np.save(tmp_path / "many.npy", rows)
    for path in (write_csv(tmp_path / "many.csv", rows, header="x,y"), tmp_path / "many.npy"):
        with pytest.raises(DataError) as e:
            F.PointsFile.from_path(path, max_points=F.MAX_POINTS)
        assert "100" in str(e.value) and "random subset" in str(e.value) and "choice(len(points), 100" in str(e.value)
    assert F.PointsFile.from_path(write_csv(tmp_path / "ok.csv", rows[:100]), max_points=100).points.shape == (100, 2)
    assert MAX_POINTS == 200_000  # the cap itself, read before the monkeypatch


def npy_header(path, shape, dtype="<f8", stored=b""):
    from numpy.lib import format as npformat

    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(stored)
    return path


@pytest.mark.parametrize("shape,stored_rows,words", [
    ((10**12, 2), 20, ["1000000000000 x 2 numbers", "200,000 points", "random subset"]),
    ((50, 2), 20, ["cut short", "50 x 2 numbers (800 bytes)", "320 bytes follow"]),
    ((30, 10**9), 20, ["more than the 200,000 points"]),
])
def test_a_npy_header_is_checked_against_the_cap_and_the_file_before_loading(tmp_path, shape, stored_rows, words):
    path = npy_header(tmp_path / "lies.npy", shape, stored=np.zeros((stored_rows, 2)).tobytes())
    with pytest.raises(DataError) as e:
        PointsFile.from_path(path)  # a MemoryError, or a read past the end, before these checks
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_file_larger_than_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import core.data.files as F

    monkeypatch.setattr(F, "MAX_FILE_BYTES", 2**20)
    path = write_csv(tmp_path / "big.csv", np.zeros((160_000, 2)))  # 160,000 lines of "0.0,0.0": 1.2 MiB
    monkeypatch.setattr(F, "_read_text", lambda *a: pytest.fail("the file was read"))
    with pytest.raises(DataError, match=r"big.csv is 1.2 MiB, more than the 1 MiB a file may hold; keep fewer"):
        F.PointsFile.from_path(path, max_points=1000)


def test_a_coordinate_too_large_for_a_float32_is_called_too_large_not_nan_or_inf(tmp_path):
    rows = [[1.0, 2.0]] * 20 + [[3.0, 1e300]]
    with pytest.raises(DataError) as e:
        PointsFile.from_path(write_csv(tmp_path / "far.csv", rows))
    assert "row 21: 1e+300 is too large" in str(e.value) and "NaN or inf" not in str(e.value)
