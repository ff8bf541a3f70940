"""Checks shared by the models that work on digits with the U-Net (ddpm, flow_matching, ncsn):
training on real MNIST lowers the loss, and samples come from the exponential moving average."""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from core import checkpoint, registry
from core.config import TrainConfig, make
from core.data.mnist import MNIST
from core.nets.unet import UNet
from core.train import Engine
from core.train.engine import training_data_for
from tests.fakes import TinyImages


def mnist_losses(name: str, overrides: dict, steps: int = 40, batch: int = 16, lr: float = 1e-3, seed: int = 0):
    """The loss at each of `steps` Adam steps of model `name` on real digits (n, 1, 28, 28) in [0, 1]."""
    x = MNIST().training_set(1000, seed)
    torch.manual_seed(seed)
    model = registry.build_model(name, x.shape[1:], overrides)
    model.init_from_data(x[:256])
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        out = model.loss(x[torch.randint(0, x.shape[0], (batch,), generator=g)])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return model, np.array(losses)


def closed_form_ema(thetas: list[torch.Tensor], decay: float) -> torch.Tensor:
    """theta_ema after K steps from theta_0, ..., theta_K with d_k = min(decay, (1 + k) / (10 + k)):
    prod_k d_k theta_0 + sum_k (1 - d_k) prod_{j > k} d_j theta_k, written out as that sum."""
    K = len(thetas) - 1
    d = [min(decay, (1 + k) / (10 + k)) for k in range(1, K + 1)]  # d[k - 1] = d_k
    weights = [float(np.prod(d))] + [(1 - d[k - 1]) * float(np.prod(d[k:])) for k in range(1, K + 1)]
    assert abs(sum(weights) - 1) < 1e-12  # an average
    return sum(w * t for w, t in zip(weights, thetas))


def check_samples_come_from_the_average(name: str, overrides: dict, steps: int = 6) -> None:
    """On images the model keeps an average (decay 0.999 by default), the trainer's averaged weights
    are the closed-form EMA of the weights it went through, and sample() of the model the trainer
    hands out draws exactly what a model holding those weights draws."""
    dataset = TinyImages()
    torch.manual_seed(0)
    model = registry.build_model(name, dataset.shape, overrides)
    assert model.ema_decay() == 0.999
    assert registry.build_model(name, (2,), {k: v for k, v in overrides.items() if k != "channels"}).ema_decay() == 0.0
    cfg = make(TrainConfig, {"batch_size": 16, "n_data": 128, "lr": 1e-2})
    engine = Engine(model, training_data_for(model, dataset, 128, 0), cfg, torch.device("cpu"))
    names = [n for n, p in model.named_parameters()]
    history = [{n: p.detach().clone() for n, p in model.named_parameters()}]
    for _ in range(steps):
        engine.step()
        history.append({n: p.detach().clone() for n, p in model.named_parameters()})
    averaged = engine.averaged_model()
    expected = {n: closed_form_ema([h[n] for h in history], 0.999) for n in names}
    got = dict(averaged.named_parameters())
    for n in names:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-5, atol=1e-6, msg=n)
    assert any(not torch.allclose(expected[n], history[-1][n]) for n in names)  # the average is not the last step

    by_hand = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in by_hand.named_parameters():
            p.copy_(expected[n])
    averaged.eval(), by_hand.eval(), model.eval()
    draws = []
    for m in (averaged, by_hand, model):
        torch.manual_seed(5)
        draws.append(m.sample(3))
    torch.testing.assert_close(draws[0], draws[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(draws[0], draws[2], atol=1e-4)  # the raw weights would draw other digits
    assert draws[0].min() >= 0 and draws[0].max() <= 1


def check_cli_on_mnist(main, name: str, sets: list[str], tmp_path, logprob: bool) -> None:
    """`python -m core train/sample (/logprob)` on MNIST, tiny: digits in [0, 1] come out."""
    out = tmp_path / name
    args = [a for s in ["n_data=64", *sets] for a in ("--set", s)]
    code = main(["train", name, "--data", "mnist", "--steps", "3", "--batch-size", "8", *args,
                 "--metrics-every", "3", "--n-samples", "4", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == name and report["steps_done"] == 3
    samples = np.load(out / "samples.npy")
    assert samples.shape == (4, 1, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    model, meta = checkpoint.load(out)
    assert meta["model"] == name and any(isinstance(m, UNet) for m in model.modules())  # net=auto on digits
    drawn = tmp_path / "drawn.npy"
    assert main(["sample", str(out), "--n", "3", "--out", str(drawn), "--seed", "1"]) == 0
    d = np.load(drawn)
    assert d.shape == (3, 1, 28, 28) and d.min() >= 0 and d.max() <= 1
    if logprob:
        x = MNIST().training_set(2, 0).numpy()
        np.save(tmp_path / "digits.npy", x)
        assert main(["logprob", str(out), "--points", str(tmp_path / "digits.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
        lp = np.load(tmp_path / "lp.npy")
        assert lp.shape == (2,) and np.isfinite(lp).all()
