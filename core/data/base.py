"""What every dataset provides, and the training data a trainer draws batches from.

A dataset draws samples, knows its shape and plotting bounds, and, where one
exists, evaluates its exact log-density (so a model can be scored by
KL(p_data || q) = E_p[log p - log q]). Mixture datasets also expose their modes,
for the modes-covered and high-quality-sample metrics.

`training_data(n, seed, fields)` fixes what a run trains on: the points "x",
and with them what the model asks for (its `batch_fields`): "label" for a
classifier or a conditional model. A dataset of two unpaired domains (for a
CycleGAN) returns two groups; tensors of one group share rows, and each group
is drawn on its own.
"""

from __future__ import annotations

import collections
import threading

import torch

from ..errors import ConfigError, DataError


class Batch(dict):
    """The tensors of one training batch by name, when there is more than "x": batch["label"]."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __reduce__(self):
        return Batch, (dict(self),)


class TrainingData:
    """Groups of named tensors; a batch draws rows of each group independently.

    A model whose batch_fields are just ("x",) gets the tensor itself; any other
    gets a Batch with every field.
    """

    def __init__(self, *groups: dict[str, torch.Tensor]):
        if not groups or any(not g for g in groups):
            raise DataError("training data needs at least one non-empty group of tensors")
        names = [k for g in groups for k in g]
        if len(set(names)) != len(names):
            raise DataError(f"training data fields must be unique, got {names}")
        for g in groups:
            sizes = {k: v.shape[0] for k, v in g.items()}
            if len(set(sizes.values())) != 1:
                raise DataError(f"tensors of one group must have the same number of rows, got {sizes}")
        self.groups = [dict(g) for g in groups]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(k for g in self.groups for k in g)

    @property
    def x(self) -> torch.Tensor:
        """The data points (the first field), as the views draw them."""
        return next(iter(self.groups[0].values()))

    def rows(self) -> int:
        """Rows of the smallest group: the largest batch every group can fill."""
        return min(next(iter(g.values())).shape[0] for g in self.groups)

    def to(self, device) -> "TrainingData":
        return TrainingData(*({k: v.to(device) for k, v in g.items()} for g in self.groups))

    def batch(self, size: int, generator: torch.Generator):
        """A batch of `size` rows drawn with replacement from each group (indices from generator)."""
        out = {}
        for g in self.groups:
            first = next(iter(g.values()))
            idx = torch.randint(0, first.shape[0], (size,), generator=generator).to(first.device)
            out.update({k: v[idx] for k, v in g.items()})
        return out["x"] if self.fields == ("x",) else Batch(out)


KEPT_NUMBERS = 1 << 18  # a seeded draw of at most this many numbers (1 MB of float32) is kept...
KEPT_DRAWS = 4  # ...the last few of them, per dataset
_KEPT_LOCK = threading.Lock()


class Dataset:
    name: str = ""
    shape: tuple = (2,)
    has_density: bool = False
    # For mixtures of isotropic Gaussians: (K, D) centres and their common std.
    modes: torch.Tensor | None = None
    mode_std: float | None = None
    # Axis-aligned box that holds (almost) all the mass: ((xmin, xmax), (ymin, ymax)).
    bounds: tuple = ((-4.0, 4.0), (-4.0, 4.0))
    labels_name: str | None = None
    # The data blurred by Gaussian noise has a known density and score (noised_log_prob, score).
    has_score: bool = False
    note: str = ""  # what a person should know about the data (which split trains), shown beside it

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, *shape) samples; deterministic given the generator."""
        raise NotImplementedError

    def sample_with_labels(self, n: int, generator: torch.Generator | None = None):
        """Samples and an integer label each (mixture component, digit); -1 if none."""
        x = self.sample(n, generator)
        return x, torch.full((n,), -1, dtype=torch.long)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density at x: (n, *shape) -> (n,)."""
        raise NotImplementedError(f"dataset {self.name!r} has no known density")

    def noised_log_prob(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """log p_sigma(x), the exact log-density of X + sigma eps (X ~ data, eps ~ N(0, I)):
        (n, *shape) -> (n,) in float64, differentiable in x. sigma = 0 is log_prob."""
        raise NotImplementedError(f"dataset {self.name!r} has no known noised density")

    def score(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """The exact score grad_x log p_sigma(x) of the data blurred by N(0, sigma^2 I):
        (n, *shape) -> (n, *shape) in float64, by autograd of noised_log_prob."""
        if sigma < 0:
            raise ValueError(f"sigma must be at least 0, got {sigma}")
        x64 = x.detach().to("cpu", torch.float64).requires_grad_(True)
        with torch.enable_grad():
            log_p = self.noised_log_prob(x64, float(sigma))
            if not log_p.requires_grad:  # a density flat where x lies (checkerboard's squares)
                return torch.where(torch.isfinite(log_p)[:, None], torch.zeros_like(x64), torch.nan).detach()
            (grad,) = torch.autograd.grad(log_p.sum(), x64)
        return grad

    def path_score(self, x: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """The exact score of the law of alpha X + sigma eps at x (a point of a Gaussian path,
        core.dynamics.schedules): its density is p_{sigma/alpha}(x / alpha) / alpha^D, so the
        score is grad log p_{sigma/alpha}(x / alpha) / alpha."""
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        return self.score(x.detach().to(torch.float64) / alpha, sigma / alpha) / alpha

    def sample_seeded(self, n: int, seed: int) -> torch.Tensor:
        """sample(n) drawn with a generator seeded with `seed`: the same points at every call."""
        return self._kept(("x", int(n), int(seed)), lambda g: (self.sample(n, g),))[0]

    def training_set(self, n: int, seed: int) -> torch.Tensor:
        """A fixed training set of n points drawn with `seed`."""
        return self.sample_seeded(n, seed)

    def labelled_training_set(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """training_set(n, seed) and a label per point."""
        return self._kept(("x, label", int(n), int(seed)), lambda g: self.sample_with_labels(n, g))

    def _kept(self, key: tuple, draw) -> tuple[torch.Tensor, ...]:
        """draw(generator seeded with key[-1]), which is the same at every call: a small one (at
        most KEPT_NUMBERS numbers) is kept, the last KEPT_DRAWS of them, and every caller gets
        copies it may change. A class of thirty pressing Reset on the same data draws it once."""
        with _KEPT_LOCK:
            kept = self.__dict__.setdefault("_kept_draws", collections.OrderedDict())
            out = kept.get(key)
            if out is not None:
                kept.move_to_end(key)
        if out is None:
            out = tuple(draw(torch.Generator().manual_seed(key[-1])))
            if sum(t.numel() for t in out) <= KEPT_NUMBERS:
                with _KEPT_LOCK:
                    kept[key] = out
                    while len(kept) > KEPT_DRAWS:
                        kept.popitem(last=False)
        return tuple(t.clone() for t in out)

    def training_data(self, n: int, seed: int, fields: tuple = ("x",)) -> TrainingData:
        """What a run trains on: the fields a model's batch_fields ask for."""
        fields = tuple(fields)
        if fields == ("x",):
            return TrainingData({"x": self.training_set(n, seed)})
        if fields == ("x", "label"):
            x, label = self.labelled_training_set(n, seed)
            if int(label.min()) < 0:
                raise ConfigError(f"this model trains on labelled data, and {self.name or 'this dataset'} has no labels")
            return TrainingData({"x": x, "label": label})
        raise ConfigError(f"dataset {self.name!r} cannot provide the fields {fields}; it has x and label")
