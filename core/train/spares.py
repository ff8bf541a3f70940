"""The copies of a model that a background run's pictures are drawn from.

Reported weights are loaded into a spare copy that nobody is reading (the
metrics thread and the page hold the newest one while they read it), so no
weights change under a reader, and no picture pays for a deep copy. The
template, a copy of the untrained model, takes the live settings, and each
spare takes them from it, so a picture is drawn with the config of the moment.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import threading

import torch

from ..model import GenerativeModel
from .engine import initialise
from .transports import from_wire


class Spares:
    SIZE = 4  # the newest picture's model, one held by metrics, one by the page, one to draw

    def __init__(self, template: GenerativeModel):
        self.template = template
        self.models: list[GenerativeModel] = []
        self.latest_model: GenerativeModel | None = None  # the newest picture's model: read it via newest()
        self.latest_at: tuple[int, float] = (0, 0.0)
        self._lock = threading.Lock()
        self._leases: collections.Counter = collections.Counter()  # id(model) -> holders

    def initial(self, data, cfg) -> GenerativeModel:
        """The model as it starts training (after its data-dependent start), to draw step 0."""
        model = copy.deepcopy(self.template)
        initialise(model, data, cfg, torch.device("cpu"), reseed=False)
        return model

    @contextlib.contextmanager
    def newest(self):
        """(model, (step, elapsed)) the views last drew, held for the block: nothing loads other
        weights into that model while you read it. model is None before the first picture."""
        with self._lock:
            model, at = self.latest_model, self.latest_at
            if model is not None:
                self._leases[id(model)] += 1
        try:
            yield model, at
        finally:
            if model is not None:
                with self._lock:
                    self._leases[id(model)] -= 1
                    if not self._leases[id(model)]:
                        del self._leases[id(model)]

    def publish(self, model: GenerativeModel, at: tuple[int, float]) -> None:
        with self._lock:
            self.latest_model, self.latest_at = model, at

    def materialize(self, state) -> GenerativeModel:
        """A model with the reported weights (state, or (state, view_state)): a spare that nobody
        holds and that is not the newest picture's, else a fresh copy of the template. Copying a
        model takes about as long as drawing a small one."""
        if isinstance(state, GenerativeModel):
            return state
        weights, view_state = state if isinstance(state, tuple) else (state, {})
        with self._lock:
            free = [m for m in self.models if m is not self.latest_model and not self._leases[id(m)]]
        if free:
            model = free[0]
            for f in dataclasses.fields(model.config):  # the live config (beta, the sampler, ...)
                setattr(model.config, f.name, copy.deepcopy(getattr(self.template.config, f.name)))
        else:
            model = copy.deepcopy(self.template)
            if len(self.models) < self.SIZE:
                self.models.append(model)
        model.load_state_dict(from_wire(weights))
        if view_state:
            model.load_view_state(from_wire(view_state))
        return model
