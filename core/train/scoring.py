"""Scoring and drawing a model: its metrics against the data, and the traces its view draws.

A run scores every model against one fixed reference set of true samples, so
values are comparable across evaluations and across runs of the same seed,
and the reference's own share of MMD and energy distance is computed once.
That share and the metrics' noise floors depend only on the reference, the
dataset and the sizes, so they are kept for the whole process (a few runs'
worth): a Reset on the same data and seed pays for neither again.
Evaluation and traces run under their own seeds inside torch.random.fork_rng,
so they leave the training RNG where it was.

On digits (a dataset with held-out images) the reference is the held-out digits, and the
metrics are those a paper reports: the NLL of held-out digits in nats and bits per dimension
(for a model with a density, in the pixel view it reads), and what the project's digit
classifier says of samples (their classes, its confidence, a Fréchet distance in its feature
space; core.classifier). Sampling a digit can take hundreds of network passes (PixelCNN), so a
model's `metric_samples` bounds how many the metrics draw, and an evaluation asked for fewer
samples (core.train.budget.Cadence) averages the NLL over proportionally fewer digits too.
The classifier is trained once per machine (about a minute); live metrics (wait_for_classifier
False, as core.train.views sets it) have it trained on a thread of its own and go without the
classifier's numbers until it is ready, rather than wait for it.
A picture (`traced`) stops after budget.PICTURE_SECONDS, whatever the model.
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import threading

import numpy as np
import torch

from .. import metrics as M
from ..data import pixels as P
from ..data.base import Dataset
from ..model import GenerativeModel
from ..rng import manual_seed
from .budget import PICTURE_SECONDS, Limit, limited

IMAGE_SAMPLES = 256  # samples the metrics draw on digits, unless the model's metric_samples says fewer
NLL_DIGITS = 200  # held-out digits the NLL is averaged over (a standard error of about 2 nats)
NLL_CHUNK = 100
DISCRETE_VIEWS = ("binary", "threshold", "dequantized")  # pixel views whose NLL papers report


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

    def __init__(self, dataset: Dataset, n_reference: int, n_eval: int, seed: int, image_samples: int = IMAGE_SAMPLES):
        self.dataset, self.n_eval, self.seed = dataset, n_eval, seed
        self.images = callable(getattr(dataset, "held_out", None))
        if self.images:  # digits: scored against digits no model trains on
            self.reference = dataset.held_out()[0][:n_reference]
            self.n_eval = max(2, min(n_eval, int(image_samples)))
        else:
            self.reference = dataset.sample_seeded(n_reference, seed + 1)
        # the same data drawn with the same seed: the same reference, whatever object holds it
        digest = hashlib.sha1(self.reference.detach().cpu().numpy().tobytes()).hexdigest()
        self._shared = _shared_for((getattr(dataset, "name", ""), digest, seed))
        self._floors: dict[int, dict] = self._shared["floors"]
        self.wait_for_classifier = True  # False: digit metrics leave out the classifier's until it is ready

    @property
    def ref_terms(self) -> dict:
        if self._shared["ref_terms"] is None:
            self._shared["ref_terms"] = M.reference_terms(self.reference)
        return self._shared["ref_terms"]

    def evaluate(self, model: GenerativeModel, n: int | None = None, with_kl: bool | None = None) -> dict:
        """core.metrics.evaluate on n samples (n_eval by default); KL where the model scores it live."""
        with_kl = model.live_kl if with_kl is None else with_kl
        with torch.random.fork_rng(devices=[]):
            manual_seed(self.seed + 2)
            if self.images:
                return self._evaluate_digits(model, max(1, min(n or self.n_eval, self.n_eval)))
            return M.evaluate(model, self.dataset, self.reference, n=n or self.n_eval, with_kl=with_kl,
                              ref_terms=self.ref_terms)

    @property
    def classifier(self):
        """The project's digit classifier (trained once per machine, then cached), with the
        reference digits' features; waits for it."""
        with _shared_lock:
            lock = self._shared.setdefault("classifier_lock", threading.Lock())
        with lock:  # one training, whoever asks first
            if self._shared.get("classifier") is None:
                from ..classifier import classifier_for

                net = classifier_for(self.dataset)
                self._shared["classifier"] = (net, net.judge(self.reference)[1])
        return self._shared["classifier"]

    def classifier_if_ready(self):
        """The classifier (as `classifier`) if it is loaded, else None, having started its loading
        (or first training) on a thread of its own; with wait_for_classifier, waits for it instead."""
        if self.wait_for_classifier:
            return self.classifier
        ready = self._shared.get("classifier")
        if ready is not None:
            return ready
        with _shared_lock:
            if self._shared.get("classifier_thread") is None:
                thread = threading.Thread(target=self._load_classifier, daemon=True)
                self._shared["classifier_thread"] = thread
                thread.start()
        return None

    def _load_classifier(self) -> None:
        try:
            self.classifier
        except Exception:  # noqa: BLE001 - the digit metrics then go without the classifier's numbers
            pass

    @torch.no_grad()
    def _evaluate_digits(self, model: GenerativeModel, n: int) -> dict:
        was_training = model.training
        model.eval()
        try:
            samples = model.sample(int(n)).detach().to("cpu", torch.float32)  # (n, 1, 28, 28)
            out = {}
            # an NLL of digits is a discrete one: binarized, or a density of dequantized pixels;
            # a density of grey levels as reals (DDPM's, through an ODE) is neither, and costly
            if getattr(model, "has_log_prob", False) and model.pixels in DISCRETE_VIEWS:
                out.update(self.held_out_nll(model, self.nll_digits(n)))
        finally:
            model.train(was_training)
        out.update(M.sample_metrics(samples.double(), self.dataset, self.reference, self.ref_terms))
        judge = self.classifier_if_ready()
        if judge is not None:
            out.update(M.digit_quality(samples, *judge))
        return out

    def nll_digits(self, n: int) -> int:
        """The held-out digits the NLL averages over when n of n_eval samples are drawn: NLL_DIGITS
        at the full count, proportionally fewer below it."""
        return max(1, min(NLL_DIGITS, round(NLL_DIGITS * n / self.n_eval)))

    def held_out_nll(self, model: GenerativeModel, digits: int = NLL_DIGITS) -> dict:
        """nll: the mean NLL of the first `digits` (NLL_DIGITS) held-out digits in nats per digit,
        in the model's pixel view (binarized or dequantized once, with a fixed seed, so every
        evaluation scores the same digits); bits_per_dim: the same per pixel, in bits;
        nll_digits: how many digits."""
        held = self.reference[:NLL_DIGITS]
        # viewed all at once and then cut, so a digit reads the same whatever the count
        x = P.view(held, model.pixels, torch.Generator().manual_seed(self.seed + 5))[:digits]
        log_p = torch.cat([model.log_prob(part.to(model.device)).detach().to("cpu", torch.float64)
                           for part in x.split(NLL_CHUNK)])
        nats = float(P.nll_nats(log_p, model.pixels, model.dim).mean())
        return {"nll": nats, "bits_per_dim": float(P.bits_per_dim(nats, model.dim)), "nll_digits": int(x.shape[0])}

    def floors(self, n: int | None = None, compute: bool = True) -> dict:
        """Each sample metric between the reference and n independent true samples (n_eval by
        default): its noise floor, what a perfect model scores at the sizes evaluate(n) compares.
        Computed once per n ({} if not yet, with compute False); on digits the Fréchet distance's
        floor joins them once the classifier is ready."""
        n = n or self.n_eval
        if n not in self._floors:
            if not compute:
                return {}
            self._floors[n] = M.noise_floor(self.dataset, self.reference, n, self.seed + 4, ref_terms=self.ref_terms)
        floors = self._floors[n]
        judge = self.classifier_if_ready() if self.images and compute and "fd" not in floors else None
        if judge is not None:  # what n real training digits score against the held-out ones
            digits = self.dataset.sample(n, torch.Generator().manual_seed(self.seed + 4))
            floors["fd"] = M.digit_quality(digits, *judge)["fd"]
        return floors


def traced(model: GenerativeModel, dataset: Dataset, x: torch.Tensor, options: dict, seed: int,
           grid_resolution: int = 60) -> dict[str, np.ndarray]:
    """model.traces on the points x and, for 2D data, the plane grid, in eval mode and under
    `seed`; `options` are the view's controls, passed where the model's traces() takes them.
    Raises budget.OutOfTime past PICTURE_SECONDS."""
    grid = None
    if tuple(dataset.shape) == (2,) and dataset.bounds is not None:
        from ..data.toy2d import plane_grid

        grid = plane_grid(dataset.bounds, grid_resolution)[0].to(model.device)
    with torch.random.fork_rng(devices=[]), limited(model, Limit(PICTURE_SECONDS, what="the picture")):
        manual_seed(seed)
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
