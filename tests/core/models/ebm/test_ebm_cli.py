"""`python -m core` with the EBM: list, train, sample and logprob on a tiny budget."""

import json

import numpy as np
import pytest
import torch

from core import checkpoint
from core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ebm")
    code = main(["train", "ebm", "--data", "eight_gaussians", "--steps", "30", "--batch-size", "64", "--seed", "2",
                 "--set", "hidden=16", "--set", "layers=2", "--set", "langevin_steps=5", "--set", "n_data=500",
                 "--set", "buffer_size=256", "--set", "grid_size=48", "--metrics-every", "30", "--n-samples", "500",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_list_names_the_ebm(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "ebm" in [line.split()[0] for line in out.splitlines() if line.startswith("  ")]


def test_train_reports_kl_as_a_grid_normalised_estimate_and_keeps_the_buffer(trained):
    report = json.loads((trained / "metrics.json").read_text())
    assert report["model"] == "ebm" and report["steps_done"] == 30
    assert {"cd", "E_data", "E_model"} <= set(report["history"][-1])
    assert np.isfinite(report["final"]["kl"]) and "grid normalisation" in report["notes"]["kl"]
    model, meta = checkpoint.load(trained)
    assert meta["model"] == "ebm" and model.config.buffer_size == 256 and model.replay.shape == (256, 2)
    lo, hi = model.box
    assert (model.replay >= lo).all() and (model.replay <= hi).all() and (hi > lo).all()
    assert np.load(trained / "samples.npy").shape == (500, 2)


def test_sample_is_reproducible_and_inside_the_box(trained, tmp_path, capsys):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run(capsys, "sample", str(trained), "--n", "300", "--out", str(a), "--seed", "1")[0] == 0
    assert run(capsys, "sample", str(trained), "--n", "300", "--out", str(b), "--seed", "1")[0] == 0
    x = np.load(a)
    model, _ = checkpoint.load(trained)
    lo, hi = model.box.numpy()
    assert x.shape == (300, 2) and np.array_equal(x, np.load(b)) and (x >= lo).all() and (x <= hi).all()


def test_logprob_matches_the_model_and_says_it_is_an_estimate(trained, tmp_path, capsys):
    pts = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32) * 2
    np.save(tmp_path / "p.npy", pts)
    code, _, err = run(capsys, "logprob", str(trained), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy"))
    assert code == 0 and "estimate" in err
    model, _ = checkpoint.load(trained)
    expect = model.log_prob(torch.from_numpy(pts)).numpy()
    assert np.allclose(np.load(tmp_path / "lp.npy"), expect, atol=1e-6)
