"""Small datasets and models the tests build on: known answers, no training time."""

from __future__ import annotations

import dataclasses
import socket
import time

import torch

from core.config import param
from core.data.base import Dataset, TrainingData
from core.model import GenerativeModel, Phase

IMAGE_SHAPE = (1, 8, 8)


class Gauss2D(Dataset):
    """N((1, 1), 0.5^2 I): a known density and known moments."""

    name, shape, has_density = "gauss", (2,), True

    def sample(self, n, generator=None):
        return torch.randn(n, 2, generator=generator) * 0.5 + 1.0

    def log_prob(self, x):
        return torch.distributions.Normal(1.0, 0.5).log_prob(x).sum(1)


class TinyImages(Dataset):
    """8 x 8 grey images in [0, 1]: a bright bar at row `label` (0..7) on faint noise."""

    name, shape, has_density, bounds, labels_name = "tiny_images", IMAGE_SHAPE, False, None, "row"

    def sample_with_labels(self, n, generator=None):
        label = torch.randint(0, 8, (n,), generator=generator)
        x = 0.1 * torch.rand(n, *IMAGE_SHAPE, generator=generator)
        x[torch.arange(n), 0, label] = 0.9
        return x, label

    def sample(self, n, generator=None):
        return self.sample_with_labels(n, generator)[0]


class TwoDomains(Dataset):
    """Two unpaired sets, as a CycleGAN trains on: a[i] = i and b[j] = 1000 + j."""

    name, shape = "two_domains", (2,)

    def sample(self, n, generator=None):
        return torch.arange(n, dtype=torch.float32)[:, None].expand(n, 2).clone()

    def training_data(self, n, seed, fields=("x",)):
        a = torch.arange(n, dtype=torch.float32)[:, None].expand(n, 2).clone()
        return TrainingData({"x": a}, {"b": 1000.0 + a[: n // 2]})


@dataclasses.dataclass
class ToyConfig:
    ema: float = param(0.0, lo=0.0, hi=0.9999, help="decay of the weight average")
    optimizer: str = param("adam", choices=("adam", "rmsprop", "sgd"))
    scale: float = param(1.0, lo=0.0, hi=10.0, live=True)


class MeanModel(GenerativeModel):
    """N(mu, 0.5^2 I) with a learned mean; its loss turns NaN from call `nan_at` (if set)."""

    family = "flow"
    has_log_prob = True
    log_prob_is_exact = True

    def __init__(self, data_shape=(2,), config=None, nan_at=None):
        super().__init__(data_shape, config or ToyConfig())
        self.mu = torch.nn.Parameter(torch.zeros(2))
        self.calls = 0
        self.nan_at = nan_at

    def log_prob(self, x):
        return torch.distributions.Normal(self.mu, 0.5).log_prob(x).sum(1)

    def loss(self, x):
        self.calls += 1
        nll = -self.log_prob(x).mean() * self.config.scale
        if self.nan_at is not None and self.calls >= self.nan_at:
            nll = nll * float("nan")
        return {"loss": nll, "nll": nll}

    def phases(self, lr):
        return [Phase("model", self.loss, [self.mu], lr, optimizer=self.config.optimizer)]

    def sample(self, n):
        return self.mu + 0.5 * torch.randn(n, 2)


class RunningMean(GenerativeModel):
    """A model trained by an update, not a gradient: mu <- mean of every batch seen so far
    (an EM step of a one-component mixture). Its view_state is the last batch's mean."""

    family = "flow"

    def __init__(self, data_shape=(2,), config=None):
        super().__init__(data_shape, config or ToyConfig())
        self.register_buffer("mu", torch.zeros(2))
        self.register_buffer("seen", torch.zeros(()))
        self.last = torch.zeros(2)

    def phases(self, lr):
        return [Phase("em", update=self.update)]

    def update(self, x):
        n = x.shape[0]
        self.mu.mul_(self.seen / (self.seen + n)).add_(x.sum(0) / (self.seen + n))
        self.seen += n
        self.last = x.mean(0)
        return {"loss": ((x - self.mu) ** 2).sum(1).mean(), "seen": self.seen.clone()}

    def view_state(self):
        return {"last": self.last}

    def load_view_state(self, state):
        self.last = state["last"]

    def sample(self, n):
        return self.mu + torch.randn(n, 2)


class Labelled(GenerativeModel):
    """A model whose batches carry labels: it records what it was given."""

    family = "flow"
    batch_fields = ("x", "label")

    def __init__(self, data_shape=IMAGE_SHAPE, config=None):
        super().__init__(data_shape, config or ToyConfig())
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.batches = []

    def loss(self, batch):
        self.batches.append(batch)
        return {"loss": (self.w - batch["label"].float().mean()) ** 2}

    def sample(self, n):
        return torch.zeros(n, *self.data_shape)


class Unpaired(GenerativeModel):
    """A model of two unpaired domains (a CycleGAN's batches): it records what it was given."""

    family = "flow"
    batch_fields = ("x", "b")

    def __init__(self, data_shape=(2,), config=None):
        super().__init__(data_shape, config or ToyConfig())
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.batches = []

    def loss(self, batch):
        self.batches.append(batch)
        return {"loss": (self.w - batch.x.mean() + batch.b.mean() / 1000) ** 2}

    def sample(self, n):
        return torch.zeros(n, 2)


def wait_for(cond, timeout: float = 30.0, every: float = 0.02) -> bool:
    """Poll cond() until it holds (True) or the timeout passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return bool(cond())


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
