"""`python -m core` with the EBM on MNIST: train, sample from the kept buffer, and no logprob."""

import json

import numpy as np
import torch

from core import checkpoint
from core.cli import main
from core.nets.conv_energy import ConvEnergy


def test_cli_trains_on_digits_samples_from_the_buffer_and_has_no_logprob(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "ebm", "--data", "mnist", "--steps", "6", "--batch-size", "16", "--seed", "1",
                 "--set", "channels=4", "--set", "langevin_steps=3", "--set", "image_buffer=64",
                 "--set", "n_data=256", "--metrics-every", "6", "--n-samples", "8", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "metrics.json").read_text())
    assert report["steps_done"] == 6 and {"cd", "E_data", "E_model"} <= set(report["history"][-1])
    assert "kl" not in report["final"] and report["notes"] == {}
    samples = np.load(out / "samples.npy")
    assert samples.shape == (8, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1

    model, meta = checkpoint.load(out)
    assert meta["model"] == "ebm" and isinstance(model.energy_net, ConvEnergy)
    assert model.replay.shape == (64, 1, 28, 28) and not model.has_log_prob
    assert not torch.equal(model.replay, torch.zeros_like(model.replay))

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["sample", str(out), "--n", "5", "--out", str(a), "--seed", "2"]) == 0
    assert main(["sample", str(out), "--n", "5", "--out", str(b), "--seed", "2"]) == 0
    s = np.load(a)
    assert s.shape == (5, 1, 28, 28) and np.array_equal(s, np.load(b)) and s.min() >= 0 and s.max() <= 1
    # each sample is a buffer entry moved by 3 more steps of the chain: nearer to one entry than to the others
    buffer = model.replay.numpy().reshape(64, -1)
    d = ((s.reshape(5, 1, -1) - buffer[None]) ** 2).sum(2)  # (5, 64)
    assert (np.sort(d, 1)[:, 0] < 0.5 * np.sort(d, 1)[:, 1]).all()

    np.save(tmp_path / "d.npy", s)
    capsys.readouterr()
    code = main(["logprob", str(out), "--points", str(tmp_path / "d.npy"), "--out", str(tmp_path / "lp.npy")])
    assert code != 0 and "no density" in capsys.readouterr().err
