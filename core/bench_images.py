"""Benchmarks on MNIST: every image model's training speed, a conv VAE's epoch, and the time
until generated digits convince the project's digit classifier, as Markdown.

    python -m core bench-images [--models ...] [--device cuda] [--budget 240] [--out FILE]

- steps/s: the engine headless at each model's default image batch, after a warm-up; on a
  GPU the step is timed between device synchronisations.
- epoch: seconds for one pass over the 9,000 training digits (ceil(9000 / batch) steps).
- time to confidence: default settings trained until the classifier's mean confidence in
  samples (core.metrics.digit_quality) reaches CONFIDENCE with at least CLASSES digits each
  given 5% of the samples (a model drawing one digit well is not there), checked every CHECK_S
  seconds of training, within a budget. `--before M ...` adds those models with their MLP (net=mlp), back
  to back, where they have one: what the model did on digits before it had an image network.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from . import registry
from .bench import _sync, device_name
from .errors import PlaygroundError
from .rng import manual_seed
from .train import Trainer, resolve_device, warm_up

CONFIDENCE = 0.8  # the classifier's mean max-probability over samples that counts as "digits"
CLASSES = 9  # ... with at least this many digits each given COVERED of the samples: not one digit drawn well
COVERED = 0.05
CHECK_S = 20.0
EPOCH_DIGITS = 9000
QUALITY_MODELS = ("vae", "nsgan", "ddpm", "flow_matching", "pixelcnn", "realnvp_ms", "ebm")


def image_models() -> list[str]:
    return registry.models_for("images")


def _trainer(name: str, dataset, device: torch.device, steps: int, settings: dict | None = None) -> Trainer:
    cfg = registry.train_config(name, {"steps": steps, "seed": 0}, "images")
    manual_seed(0)
    model = registry.build_model(name, dataset.shape, settings or {})
    return Trainer(model, dataset, cfg, device=device.type)


def steps_per_second(name: str, dataset, device: torch.device, seconds: float = 8.0, warmup: int = 3,
                     settings: dict | None = None) -> tuple[float, int]:
    """(steps/s, batch) of the engine headless, timed over about `seconds` after a warm-up."""
    t = _trainer(name, dataset, device, 10_000_000, settings)
    t.fit(warmup, log_every=10_000)
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        t.fit(1, log_every=10_000)
        n += 1
    _sync(device)
    return n / (time.perf_counter() - t0), t.cfg.batch_size


def convinced(metrics: dict) -> bool:
    """The classifier's confidence reaches CONFIDENCE and at least CLASSES digits are drawn."""
    covered = sum(c >= COVERED for c in metrics.get("classes", []))
    return metrics.get("confidence", 0.0) >= CONFIDENCE and covered >= CLASSES


def time_to_confidence(name: str, dataset, device: torch.device, budget_s: float, settings: dict | None = None) -> dict:
    t = _trainer(name, dataset, device, 10_000_000, settings)
    last, reached = {}, False
    while t.elapsed < budget_s:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < CHECK_S:
            t.fit(5, log_every=10_000)
        last = t.evaluate(model=t.final_model())
        if convinced(last):
            reached = True
            break
    return {"steps": t.step_count, "seconds": t.elapsed, "reached": reached, "metrics": last}


def _has_mlp(name: str) -> bool:
    fields = {f.name: f for f in dataclasses.fields(registry.model_spec(name).config_cls)}
    net = fields.get("net")
    return net is not None and "mlp" in (net.metadata.get("choices") or ())


def run(models=None, device: str = "auto", budget: float = 240.0, before=(), quality=None,
        threads: int = 1, seconds: float = 8.0, log=print) -> str:
    from .data.mnist import MNIST

    dev = resolve_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    dataset = MNIST()
    names = models or image_models()
    warm_up()
    lines = [f"Device: {device_name(dev)}, torch {torch.__version__}, {torch.get_num_threads()} threads. "
             f"{dataset.note}.", "",
             "| model | family | batch | steps/s | epoch over 9,000 digits (s) | >= 5 steps/s |",
             "|---|---|---|---|---|---|"]
    for name in names:
        rate, batch = steps_per_second(name, dataset, dev, seconds=seconds)
        epoch = math.ceil(EPOCH_DIGITS / batch) / rate
        lines.append(f"| {name} | {registry.model_spec(name).family} | {batch} | {rate:.1f} | {epoch:.0f} | "
                     f"{'yes' if rate >= 5 else 'no'} |")
        log(lines[-1])
    chosen = [m for m in (quality if quality is not None else QUALITY_MODELS) if m in registry.MODELS]
    if chosen and budget > 0:
        lines += ["", f"Time until the digit classifier's mean confidence in samples reaches {CONFIDENCE:g} with at "
                      f"least {CLASSES} digits each given {COVERED:.0%} of them (checked every {CHECK_S:g} s of "
                      f"training, budget {budget:g} s each):", "",
                  "| model | network | reached | steps | training seconds | confidence | fd | classes covered (>= 5%) | nll (nats) | bits/dim |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name in chosen:
            variants = [("auto", None)] + ([("mlp", {"net": "mlp"})] if name in before and _has_mlp(name) else [])
            for label, settings in variants:
                r = time_to_confidence(name, dataset, dev, budget, settings)
                m = r["metrics"]
                covered = sum(c >= COVERED for c in m.get("classes", []))
                fmt = lambda k: f"{m[k]:.3g}" if isinstance(m.get(k), float) and math.isfinite(m[k]) else "-"  # noqa: E731
                lines.append(f"| {name} | {label} | {'yes' if r['reached'] else 'no'} | {r['steps']} | {r['seconds']:.0f} "
                             f"| {fmt('confidence')} | {fmt('fd')} | {covered} | {fmt('nll')} | {fmt('bits_per_dim')} |")
                log(lines[-1])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench_images", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=None, help="image models to time (default: every one)")
    p.add_argument("--quality", nargs="*", default=None, help=f"models to train to confidence (default: {' '.join(QUALITY_MODELS)})")
    p.add_argument("--device", default="auto")
    p.add_argument("--budget", type=float, default=240.0, help="training seconds allowed per time-to-confidence run (0: skip)")
    p.add_argument("--before", nargs="*", default=[], metavar="MODEL",
                   help="quality models also trained with their MLP (net=mlp), back to back")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1, as the page's training process uses; the metrics take the other core)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds each steps/s figure is timed over")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    try:
        text = run(args.models, args.device, args.budget, args.before, args.quality, args.threads, args.seconds,
                   log=lambda s: print(s, file=sys.stderr))
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
