"""`python -m core` trains the VAE on MNIST, samples binary digits from it and scores digits."""

import numpy as np

from core import checkpoint
from core.cli import main


def test_cli_trains_samples_and_scores_digits(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", "mnist", "--steps", "4", "--batch-size", "16", "--set", "hidden=16",
                 "--set", "channels=4", "--set", "n_data=256", "--set", "iw_samples=4", "--metrics-every", "4",
                 "--n-samples", "8", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert np.load(out / "samples.npy").shape == (8, 1, 28, 28)
    model, meta = checkpoint.load(out)
    assert meta["model"] == "vae" and model.config.net == "conv" and model.pixels == "binary"

    assert main(["sample", str(out), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 1, 28, 28) and set(np.unique(s)) <= {0.0, 1.0}

    from core.data.mnist import MNIST

    digits = (MNIST(mnist_dir).held_out()[0][:6] > 0.5).float().numpy()
    np.save(tmp_path / "d.npy", digits)
    assert main(["logprob", str(out), "--points", str(tmp_path / "d.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    lp = np.load(tmp_path / "lp.npy")
    assert lp.shape == (6,) and np.isfinite(lp).all() and (lp < 0).all()
    assert "estimate" in capsys.readouterr().err
