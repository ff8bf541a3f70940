"""fvsbn, nade, made and pixelcnn through the command line on MNIST: train, then sample binary
digits and score them with their exact log-likelihood."""

import numpy as np
import pytest

from core.cli import main
from tests.core.models.autoregressive.test_binary_models import NAMES, SMALL


@pytest.mark.parametrize("name", NAMES)
def test_the_command_line_trains_samples_and_scores_on_mnist(name, mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", name, "--data", "mnist", "--steps", "4", "--batch-size", "16", "--n-samples", "4", "--metrics-every", "4", "--out", str(out), "--quiet"]
    for key, value in SMALL[name].items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0
    assert main(["sample", str(out), "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (3, 1, 28, 28) and set(np.unique(samples)) <= {0.0, 1.0}
    assert main(["logprob", str(out), "--points", str(tmp_path / "s.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    log_p = np.load(tmp_path / "lp.npy")
    assert log_p.shape == (3,) and np.isfinite(log_p).all() and (log_p < 0).all()
