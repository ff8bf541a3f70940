"""Scoring and drawing a model: its metrics against the data, and the traces its view draws.

A run scores every model against one fixed reference set of true samples, so
values are comparable across evaluations and across runs of the same seed,
and the reference's own share of MMD and energy distance is computed once.
That share and the metrics' noise floors depend only on the reference, the
dataset and the sizes, so they are kept for the whole process (a few runs'
worth): a Reset on the same data and seed pays for neither again.
Evaluation and traces run under their own seeds inside torch.random.fork_rng,
so they leave the training RNG where it was.
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import threading

import numpy as np
import torch

from .. import metrics as M
from ..data.base import Dataset
from ..model import GenerativeModel


_SHARED_SIZE = 8  # references kept with their terms and floors, least recently used first out
_shared: collections.OrderedDict[tuple, dict] = collections.OrderedDict()
_shared_lock = threading.Lock()


def _shared_for(key: tuple) -> dict:
    """The process-wide store of one reference: {"ref_terms": ..., "floors": {n: ...}}."""
    with _shared_lock:
        entry = _shared.pop(key, None) or {"ref_terms": None, "floors": {}}
        _shared[key] = entry
        while len(_shared) > _SHARED_SIZE:
            _shared.popitem(last=False)
        return entry


class Scoring:
    """The metrics of models of one dataset, against a reference of n_reference true samples."""

    def __init__(self, dataset: Dataset, n_reference: int, n_eval: int, seed: int):
        self.dataset, self.n_eval, self.seed = dataset, n_eval, seed
        self.reference = dataset.sample(n_reference, torch.Generator().manual_seed(seed + 1))
        # the same data drawn with the same seed: the same reference, whatever object holds it
        digest = hashlib.sha1(self.reference.detach().cpu().numpy().tobytes()).hexdigest()
        self._shared = _shared_for((getattr(dataset, "name", ""), digest, seed))
        self._floors: dict[int, dict] = self._shared["floors"]

    @property
    def ref_terms(self) -> dict:
        if self._shared["ref_terms"] is None:
            self._shared["ref_terms"] = M.reference_terms(self.reference)
        return self._shared["ref_terms"]

    def evaluate(self, model: GenerativeModel, n: int | None = None, with_kl: bool | None = None) -> dict:
        """core.metrics.evaluate on n samples (n_eval by default); KL where the model scores it live."""
        with_kl = model.live_kl if with_kl is None else with_kl
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 2)
            return M.evaluate(model, self.dataset, self.reference, n=n or self.n_eval, with_kl=with_kl,
                              ref_terms=self.ref_terms)

    def floors(self, n: int | None = None, compute: bool = True) -> dict:
        """Each sample metric between the reference and n independent true samples (n_eval by
        default): its noise floor, what a perfect model scores at the sizes evaluate(n) compares.
        Computed once per n ({} if not yet, with compute False)."""
        n = n or self.n_eval
        if n not in self._floors:
            if not compute:
                return {}
            self._floors[n] = M.noise_floor(self.dataset, self.reference, n, self.seed + 4, ref_terms=self.ref_terms)
        return self._floors[n]


def traced(model: GenerativeModel, dataset: Dataset, x: torch.Tensor, options: dict, seed: int,
           grid_resolution: int = 60) -> dict[str, np.ndarray]:
    """model.traces on the points x and, for 2D data, the plane grid, in eval mode and under
    `seed`; `options` are the view's controls, passed where the model's traces() takes them."""
    grid = None
    if tuple(dataset.shape) == (2,) and dataset.bounds is not None:
        from ..data.toy2d import plane_grid

        grid = plane_grid(dataset.bounds, grid_resolution)[0].to(model.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        was_training = model.training
        model.eval()
        try:
            return model.traces(x.to(model.device), grid, **accepted(model, options))
        finally:
            model.train(was_training)


def accepted(model: GenerativeModel, options: dict) -> dict:
    """The options the model's traces() takes: those it names, or all with **options."""
    params = inspect.signature(model.traces).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}
