"""A small MNIST classifier of the project's own, to judge generated digits.

The Inception network of the FID (Heusel et al. 2017) knows nothing of digits, and nothing is
downloaded here, so the playground trains its own judge: two conv layers and a 128-unit
feature layer (a LeNet-like net, LeCun et al. 1998), trained on the digits models train on
with small random shifts, and checked on the held-out digits (at least 98% correct). It is
trained once and cached (core.data.mnist.cache_root()/classifier-<key>.pt, the key naming
the training digits and this recipe), so later runs load it in a moment.

From it (core.metrics.digit_quality): the class histogram of generated digits (mode collapse
on real data), the mean confidence max_k p(k | x), and a Fréchet distance between Gaussians
fitted to its 128 features of generated and of held-out digits. That distance is computed
like the FID but in this classifier's feature space: its values are the project's own and
are not comparable with published FIDs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .errors import DataError
from .rng import manual_seed

RECIPE = "conv32-conv64-fc128; adam 2e-3; 8 epochs of 128; shifts of 2 px; seed 0"  # in the cache key
EPOCHS, BATCH, LR, SHIFT, SEED = 8, 128, 2e-3, 2, 0
REQUIRED_ACCURACY = 0.98
FEATURES = 128


class DigitClassifier(nn.Module):
    """(n, 1, 28, 28) grey digits in [0, 1] -> 10 logits; features() gives the 128 before them."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, FEATURES)
        self.out = nn.Linear(FEATURES, 10)
        self.accuracy = float("nan")  # on the held-out digits, once trained

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x - 0.5)), 2)  # (n, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (n, 64, 7, 7)
        return F.relu(self.fc(h.flatten(1)))  # (n, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.dropout(self.features(x), 0.3, self.training))  # (n, 10)

    @torch.no_grad()
    def judge(self, x: torch.Tensor, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities (n, 10), features (n, 128)) of digits x, in eval mode, on the CPU."""
        self.eval()
        x = x.detach().to("cpu", torch.float32).reshape(-1, 1, 28, 28).clamp(0.0, 1.0)
        probs, feats = [], []
        for part in x.split(chunk):
            f = self.features(part)
            feats.append(f)
            probs.append(self.out(f).softmax(1))
        return torch.cat(probs), torch.cat(feats)


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each digit moved by up to SHIFT pixels each way (zero padding), a cheap augmentation."""
    n = x.shape[0]
    padded = F.pad(x, (SHIFT,) * 4)
    dx, dy = (torch.randint(0, 2 * SHIFT + 1, (n,), generator=g) for _ in range(2))
    rows = (dy[:, None] + torch.arange(28))[:, :, None]  # (n, 28, 1)
    cols = (dx[:, None] + torch.arange(28))[:, None, :]  # (n, 1, 28)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]  # (n, 1, 28, 28)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, held_images: torch.Tensor,
                     held_labels: torch.Tensor, epochs: int = EPOCHS) -> DigitClassifier:
    """Train a DigitClassifier on (images, labels) and measure its accuracy on the held-out digits."""
    g = torch.Generator().manual_seed(SEED)
    # enable_grad: the first caller may be a metric evaluation, which runs under no_grad
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        manual_seed(SEED)
        net = DigitClassifier()
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        steps = epochs * ((images.shape[0] + BATCH - 1) // BATCH)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(images.shape[0], generator=g).split(BATCH):
                loss = F.cross_entropy(net(_shift(images[idx], g)), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    net.accuracy = accuracy(net, held_images, held_labels)
    return net.eval()


def accuracy(net: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    probs, _ = net.judge(images)
    return float((probs.argmax(1) == labels).double().mean())


def cache_key(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha1(RECIPE.encode())
    h.update(images.detach().cpu().numpy().tobytes())
    h.update(labels.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_path(dataset, cache_dir: Path | None = None) -> Path:
    """Where the classifier of `dataset`'s training digits is cached."""
    from .data.mnist import cache_root

    return Path(cache_dir or cache_root()) / f"classifier-{cache_key(dataset.images, dataset.labels)}.pt"


def classifier_for(dataset, cache_dir: Path | None = None, train_if_missing: bool = True) -> DigitClassifier:
    """The classifier of `dataset` (core.data.mnist.MNIST): from the cache, else trained on its
    training digits now (a minute or so on a CPU) and cached. Raises DataError if it is not
    cached and train_if_missing is False, or if it misses the required accuracy."""
    path = cache_path(dataset, cache_dir)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = DigitClassifier()
            net.load_state_dict(saved["state"])
            net.accuracy = float(saved["accuracy"])
            return net.eval()
        except Exception:  # noqa: BLE001 - a damaged cache file is trained again
            pass
    if not train_if_missing:
        raise DataError(f"the digit classifier is not trained yet (it is cached in {path.parent} after its first "
                        f"training); run `python -m core classifier` to train it")
    held_images, held_labels = dataset.held_out()
    net = train_classifier(dataset.images, dataset.labels, held_images, held_labels)
    if net.accuracy < REQUIRED_ACCURACY:
        raise DataError(f"the digit classifier reached {net.accuracy:.2%} on the held-out digits, below the "
                        f"{REQUIRED_ACCURACY:.0%} it needs to judge samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as f:
        torch.save({"state": net.state_dict(), "accuracy": net.accuracy, "recipe": RECIPE}, f)
    os.replace(f.name, path)  # atomic: a process reading the cache never sees half a file
    return net
