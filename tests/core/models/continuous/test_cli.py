"""`python -m core` trains, samples and scores flow_matching and cnf end to end, on a tiny budget."""

import json

import numpy as np
import pytest
import torch

from core import checkpoint
from core.cli import main

SETTINGS = {"flow_matching": ["hidden=16", "steps=6", "log_prob_steps=8"],
            "cnf": ["hidden=16", "train_steps=2", "steps=6", "log_prob_steps=8"]}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(SETTINGS))
def test_train_sample_and_logprob_through_the_cli(name, tmp_path, capsys):
    out = tmp_path / name
    sets = [a for s in SETTINGS[name] for a in ("--set", s)]
    code, _, err = run(capsys, "train", name, "--data", "eight_gaussians", "--steps", "6", "--batch-size", "32",
                       "--set", "n_data=500", *sets, "--metrics-every", "6", "--n-samples", "50",
                       "--out", str(out), "--quiet")
    assert code == 0, err
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == name and report["steps_done"] == 6
    assert "kl" in report["final"] and np.isfinite(report["final"]["kl"])  # a density, so KL is scored
    assert np.load(out / "samples.npy").shape == (50, 2)

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run(capsys, "sample", str(out), "--n", "40", "--out", str(a), "--seed", "1")[0] == 0
    assert run(capsys, "sample", str(out), "--n", "40", "--out", str(b), "--seed", "1")[0] == 0
    assert np.load(a).shape == (40, 2) and np.array_equal(np.load(a), np.load(b))

    pts = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    code, _, err = run(capsys, "logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy"))
    assert code == 0, err
    model, meta = checkpoint.load(out)
    assert meta["model"] == name and model.config.log_prob_steps == 8
    with torch.no_grad():
        expect = model.log_prob(torch.from_numpy(pts)).numpy()
    lp = np.load(tmp_path / "lp.npy")
    assert lp.shape == (30,) and np.allclose(lp, expect, atol=1e-5)


def test_a_bad_coupling_is_refused_in_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "train", "flow_matching", "--data", "eight_gaussians", "--set", "coupling=sinkhorn",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "coupling" in err and "independent" in err and "ot" in err and err.count("\n") == 1
