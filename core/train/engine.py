"""The engine: one training step of any model, and what keeps a run honest.

A step runs the model's phases in order (core.model.Phase), each `repeats`
times on a fresh batch: a gradient phase takes a loss, backpropagates, clips
and steps its optimiser; an update phase changes the model directly (an EM
step, a replay buffer). The alternating GAN update (D n_critic times, then G)
is therefore written once, here.

The step never waits for the device, and adds no work of its own to it: it
keeps references to the loss terms it computed (detached, on the device).
`check()`, once per log interval, stacks them, tests every loss and sums every
term there, and reads the lot in one transfer. A loss that is not finite, or
that has exploded past LOSS_LIMIT, then stops the run with a message naming
the step and phase where it first appeared and what to try, and the weights,
optimiser state and average from the last check are put back; so a GPU can
run ahead of the host between checks.

The same read carries one sum over every weight the pictures use (the model's
state and its average), in float64: finite exactly when each weight is. A
weight that stops being finite though every loss stayed finite (a phase whose
loss does not read it, the average, an update's last step before the check)
spoils every sample drawn from it, and stops the run in the same way, at that
check's step.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch

from ..config import TrainConfig, coerce, describe, validate
from ..data.base import TrainingData
from ..errors import ConfigError, TrainingDiverged
from ..model import GenerativeModel, Phase
from ..rng import manual_seed
from .optim import EMA, lr_multiplier, make_optimizer, scheduled

# A loss past this magnitude has exploded, though it is still a float32 number. The largest
# healthy losses of the registered models are NLLs of a whole digit in nats, summed over 784
# pixels: a few hundred once trained, up to about 2e5 at the first step (glow's, 3e4 for
# made_mog's; every model's on points is under 100 at its first step); GAN, EBM and score losses
# stay within tens. A loss of 1e10 is some 50,000 times past the largest of them, is no longer an
# estimate of anything (a float32 of 1e10 cannot tell two losses 1,000 apart), and does not come
# back: RealNVP on two_moons at lr 1 reaches 1e31 within 50 steps and stays there for 5,000.
LOSS_LIMIT = 1e10


def live_train_value(cfg: TrainConfig, name: str, value):
    """`value` for the training setting `name` (a number, or a link's numeric string), checked
    against the setting's range; ConfigError, with the allowed values, otherwise."""
    like = getattr(TrainConfig, name, getattr(cfg, name))  # the default, whose type the setting has
    value = coerce(name, value, like, describe(TrainConfig)[name])
    validate(dataclasses.replace(cfg, **{name: value}))
    return float(value) if isinstance(like, float) else value


def initialise(model: GenerativeModel, data: TrainingData, cfg: TrainConfig, device: torch.device,
               reseed: bool = True) -> torch.Generator:
    """What a run does before its first step: seed (reseed), move the model, let it see a first
    batch (ActNorm's data-dependent start). Returns the generator that draws the batches."""
    if reseed:
        manual_seed(cfg.seed)
    batches = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    model.train()
    model.init_from_data(data.batch(cfg.batch_size, batches))
    return batches


def training_data_for(model: GenerativeModel, dataset, n: int, seed: int) -> TrainingData:
    """What `model` trains on: the dataset's fields of its batch_fields, and beside them, as a
    group of its own, the fields the model draws itself (own_data)."""
    own = model.own_data(n, seed)
    fields = tuple(f for f in model.batch_fields if f not in own) or ("x",)
    data = dataset.training_data(n, seed, fields)
    return TrainingData(*data.groups, own) if own else data


def check_data(cfg: TrainConfig, data: TrainingData, model: GenerativeModel) -> None:
    """The data hold what the model's batches carry, and enough rows for a batch."""
    missing = [f for f in model.batch_fields if f not in data.fields]
    if missing:
        raise ConfigError(f"{type(model).__name__} trains on batches of {', '.join(model.batch_fields)}, and this "
                          f"data has no {', '.join(missing)}")
    rows = data.rows()
    if cfg.batch_size > rows:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the data ({rows} points); "
                          f"use a batch of at most {rows}")


class Engine:
    """Trains `model` on `data` (already on no particular device) with the settings in `cfg`."""

    def __init__(self, model: GenerativeModel, data: TrainingData, cfg: TrainConfig, device: torch.device):
        validate(cfg)
        check_data(cfg, data, model)
        self.model, self.cfg, self.device = model, cfg, torch.device(device)
        self.data = data.to(self.device)
        self._batches = initialise(model, self.data, cfg, self.device)
        self.phases: list[Phase] = model.phases(cfg.lr)
        self.base_lr = {p.name: p.lr for p in self.phases}
        self.optimizers = {p.name: make_optimizer(p) for p in self.phases if p.is_gradient}
        decay = model.ema_decay()
        self.ema = EMA(model, decay) if decay > 0 else None
        self._scheduled = scheduled(cfg)
        self.step_count = 0
        self.status, self.message = "ready", ""
        self._reset_watch()
        self._save_good()

    # ---- one step ---------------------------------------------------------
    def step(self, phase: str | None = None) -> dict[str, torch.Tensor]:
        """One training step: every phase, each `repeats` times, or only the phase named `phase`
        (its `repeats` batches, as in a full step). Returns the loss terms, on the device.

        A step of one phase is a step of the run: it counts towards cfg.steps, the learning-rate
        schedule and the weight average, and its record holds that phase's terms only."""
        if phase is not None:
            self.check_phase(phase)
        try:
            return self._step(phase)
        except TrainingDiverged:
            raise
        except Exception:
            self._raise_if_diverged()  # a non-finite loss spoils the weights, and then anything may raise
            raise

    @property
    def phase_names(self) -> list[str]:
        return [p.name for p in self.phases]

    def check_phase(self, phase) -> None:
        """ConfigError, listing the model's phases, unless `phase` names one of them."""
        if phase not in self.phase_names:
            raise ConfigError(f"{phase!r} is not a phase of {type(self.model).__name__}; its phases are: "
                              f"{', '.join(self.phase_names)}")

    def _step(self, only: str | None = None) -> dict[str, torch.Tensor]:
        if self._scheduled:
            m = lr_multiplier(self.step_count, self.cfg)
            for name, opt in self.optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = self.base_lr[name] * m
        multi = len(self.phases) > 1
        terms: dict[str, torch.Tensor] = {}
        for index, phase in enumerate(self.phases):
            if only is not None and phase.name != only:
                continue
            for _ in range(phase.repeats):
                batch = self.data.batch(self.cfg.batch_size, self._batches)
                if phase.is_gradient:
                    out = phase.loss(batch)
                    opt = self.optimizers[phase.name]
                    opt.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    if self.cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(phase.params, self.cfg.grad_clip)
                    opt.step()
                    self.model.after_phase(phase.name)
                else:
                    with torch.no_grad():
                        out = phase.update(batch)
                if "loss" in out:
                    self._losses.append((self.step_count + 1, index, out["loss"].detach()))
            for k, v in out.items():
                key = (f"loss_{phase.name}" if multi else "loss") if k == "loss" else k
                terms[key] = torch.as_tensor(v, device=self.device).detach()
        self.step_count += 1
        if self.ema is not None:
            self.ema.update(self.step_count)
        self._terms.append(terms)
        return terms

    def _reset_watch(self) -> None:
        self._losses: list[tuple[int, int, torch.Tensor]] = []  # (step, phase index, loss) since the check
        self._terms: list[dict[str, torch.Tensor]] = []  # each step's terms since the check

    # ---- checks -------------------------------------------------------------
    def check(self) -> dict[str, float] | None:
        """The mean loss terms since the last check (None if no step was taken), in one read
        from the device; raises TrainingDiverged if any loss was not finite."""
        if not self._terms:
            return None
        keys = list(dict.fromkeys(k for terms in self._terms for k in terms))
        counts = [sum(k in terms for terms in self._terms) for k in keys]
        sums = [torch.stack([terms[k].reshape(()).double() for terms in self._terms if k in terms]).sum() for k in keys]
        losses = [loss.reshape(()).double() for _, _, loss in self._losses]
        values = torch.stack(sums + losses + [self._weights_sum()]).tolist()  # the one read from the device
        self._raise_if_diverged(values[len(keys):-1], values[-1])
        means = {k: total / n for k, total, n in zip(keys, values, counts)}
        self._reset_watch()
        self._save_good()
        return means

    def _weights_sum(self) -> torch.Tensor:
        """The sum of every floating-point weight of the model and its average, in float64 (a
        scalar on the device): NaN or inf exactly when some weight is (a float64 sum of float32
        numbers cannot overflow)."""
        tensors = [v for v in self.model.state_dict().values() if v.is_floating_point()]
        if self.ema is not None:
            tensors += self.ema.shadow
        if not tensors:
            return torch.zeros((), dtype=torch.float64, device=self.device)
        return torch.stack([t.detach().sum(dtype=torch.float64).to(self.device) for t in tensors]).sum()

    def _raise_if_diverged(self, losses: list[float] | None = None, weights: float | None = None) -> None:
        """Divergence handling: at the first loss since the last check (if any) that is not finite
        or past LOSS_LIMIT in magnitude, or else if the weights are no longer finite, put the last
        good state back and raise TrainingDiverged with a message that says what to try."""
        if losses is None:
            losses = torch.stack([loss.reshape(()).double() for _, _, loss in self._losses]).tolist() \
                if self._losses else []
        bad = next((i for i, v in enumerate(losses) if not abs(v) <= LOSS_LIMIT), None)  # NaN fails too
        if bad is not None:
            step, phase_index, _ = self._losses[bad]
            self._diverged(step, phase_index, losses[bad])
        if weights is None:
            weights = float(self._weights_sum())
        if not math.isfinite(weights):
            self._diverged(self.step_count, None, weights)

    def _save_good(self) -> None:
        self._good = {"step": self.step_count,
                      "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                      "opt": {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()},
                      "ema": {k: v.clone() for k, v in self.ema.state().items()} if self.ema else None}

    def _diverged(self, bad_step: int, phase_index: int | None, value: float) -> None:
        """phase_index None: the weights (whose sum is `value`) are no longer finite at bad_step."""
        good = self._good
        self.model.load_state_dict(good["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(good["opt"][k])
        if self.ema is not None:
            self.ema.load(good["ema"])
        multi = len(self.phases) > 1
        lr = ", ".join(f"{p.name}: {self.base_lr[p.name]:g}" for p in self.phases) if multi \
            else f"{self.base_lr[self.phases[0].name]:g}"
        if phase_index is None:
            # every loss was finite: the weights went bad somewhere after the last check
            self.step_count = good["step"]
            what = "the model's weights"
            became = (f"became {'nan' if math.isnan(value) else 'inf'} somewhere after step {good['step']}, "
                      f"though every loss was finite")
        else:
            self.step_count = bad_step - 1  # the steps that gave finite losses
            what = f"the {self.phases[phase_index].name} loss" if multi else "the loss"
        if phase_index is not None and math.isfinite(value):
            became = f"exploded to {value:.3g} (past {LOSS_LIMIT:.0e} in magnitude, which no healthy run reaches)"
        elif phase_index is not None:
            became = "became " + ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
        self.status = "diverged"
        self.message = (f"Training stopped at step {bad_step}: {what} {became}. "
                        f"The weights from step {good['step']} were kept. Try a lower learning rate "
                        f"(now {lr}), gradient clipping, or a smaller model.")
        self._reset_watch()
        raise TrainingDiverged(self.message)

    # ---- live settings --------------------------------------------------------
    def set_lr(self, lr: float, phase: str | None = None) -> None:
        """Change a learning rate live (all phases, or one by name)."""
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {lr}")
        m = lr_multiplier(self.step_count, self.cfg) if self._scheduled else 1.0
        for p in self.phases:
            if phase is None or p.name == phase:
                p.lr = self.base_lr[p.name] = lr
                for group in self.optimizers[p.name].param_groups if p.name in self.optimizers else ():
                    group["lr"] = lr * m
        if phase is None:
            self.cfg.lr = lr

    def set_live(self, name: str, value) -> None:
        """Apply a knob marked live while training runs.

        lr: every phase (a phase's own rate lr_<phase>, when set, keeps precedence,
        as in the model's phases()); lr_<phase>: that phase, 0 meaning "the
        trainer's lr"; grad_clip: the trainer's; pace: the Runner's steps per
        second (0: full speed), refused outside its range; anything else is a
        model config field that the loss reads at every step (beta, ...).
        """
        cfg = self.model.config
        phases = {p.name for p in self.phases}
        if name == "lr":
            for phase in phases:
                self.set_lr(getattr(cfg, f"lr_{phase.lower()}", 0.0) or float(value), phase=phase)
            self.cfg.lr = float(value)
        elif name == "grad_clip":
            self.cfg.grad_clip = float(value)
        elif name == "pace":
            self.cfg.pace = live_train_value(self.cfg, name, value)
        elif name.startswith("lr_") and name[3:].upper() in phases:
            setattr(cfg, name, float(value))
            self.set_lr(float(value) or self.cfg.lr, phase=name[3:].upper())
        elif hasattr(cfg, name):
            setattr(cfg, name, value)
        else:
            raise ConfigError(f"{name!r} is not a setting of {type(self.model).__name__} or of training")

    def learning_rates(self) -> dict[str, float]:
        return {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    # ---- what the views draw ----------------------------------------------------
    def view_weights(self) -> dict[str, torch.Tensor]:
        """The state dict the pictures and samples use: the average's weights where there is one."""
        state = self.model.state_dict()
        if self.ema is not None:
            state.update(self.ema.state())
        return state

    def averaged_model(self) -> GenerativeModel:
        """The model with view_weights() (itself when there is no average)."""
        if self.ema is None:
            return self.model
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.view_weights())
        return model
