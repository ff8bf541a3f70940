"""The score models through `python -m core`: train, sample, and a refused logprob."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import checkpoint
from core.cli import main


SHORT_CHAINS = {"dsm": ["langevin_steps=10"], "ssm": ["langevin_steps=10"], "ncsn": ["L=3", "steps_per_level=3"]}


@pytest.mark.parametrize("name", list(SHORT_CHAINS))
def test_train_then_sample_then_logprob_is_refused(name, tmp_path, capsys):
    out = tmp_path / name
    short = [a for kv in SHORT_CHAINS[name] for a in ("--set", kv)]
    code = main(["train", name, "--data", "eight_gaussians", "--steps", "20", "--batch-size", "64",
                 "--set", "hidden=16", "--set", "layers=1", "--set", "n_data=500", *short, "--metrics-every", "20",
                 "--n-samples", "50", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == name and report["steps_done"] == 20
    assert 0 <= report["final"]["score_error"] < 10 and "mmd" in report["final"] and "kl" not in report["final"]
    model, meta = checkpoint.load(out)
    assert meta["model"] == name and model.config.hidden == 16
    assert np.load(out / "samples.npy").shape == (50, 2)

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["sample", str(out), "--n", "30", "--out", str(a), "--seed", "1"]) == 0
    assert main(["sample", str(out), "--n", "30", "--out", str(b), "--seed", "1"]) == 0
    assert np.load(a).shape == (30, 2) and np.isfinite(np.load(a)).all()
    assert np.array_equal(np.load(a), np.load(b))

    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32))
    capsys.readouterr()
    code = main(["logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy")])
    err = capsys.readouterr().err
    assert code != 0 and "no density" in err and not (tmp_path / "lp.npy").exists()
