"""Benchmarks: training speed for every model and time-to-quality, as Markdown.

Speed is measured four ways in one run, on the same device, with the same
network and optimiser: a plain PyTorch loop (the floor), the engine headless,
and the engine while snapshots stream at the playground's cadence, once with
training in a thread of this process (Trainer's thread transport) and once in
a child process (its process transport, as the playground trains). The ratios show what the
engine and the live views cost.

Time-to-quality trains default configs on eight_gaussians until the target a
model registered (core.registry.Quality) is met: KL < 0.1 nats for realnvp and
nsf, every mode covered for wgan_gp, and for ddpm an MMD within twice the MMD
between two independent true sample sets.
"""

from __future__ import annotations

import platform
import threading
import time

import torch

from . import registry
from .rng import manual_seed
from .train import Trainer, resolve_device, warm_up
from .train.optim import make_optimizer

DATASET = "eight_gaussians"
UI_SNAPSHOT_INTERVAL = 0.2  # seconds, the playground's redraw cadence
UI_METRICS_INTERVAL = 1.0


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fresh(name: str, dataset, device: torch.device, steps: int, transport: str = "thread") -> Trainer:
    cfg = registry.train_config(name, {"steps": steps, "seed": 0}, registry.data_kind(dataset.shape))
    manual_seed(0)
    model = registry.build_model(name, dataset.shape)
    return Trainer(model, dataset, cfg, device=device.type, transport=transport)


def plain_loop_rate(name: str, dataset, device: torch.device, steps: int, warmup: int = 20) -> float:
    """Steps/s of a hand-written loop over the same phases, network and optimiser."""
    t = _fresh(name, dataset, device, steps)  # only to reuse its data and model set-up
    model, data, bs = t.model, t.engine.data.x, t.cfg.batch_size
    phases = model.phases(t.cfg.lr)
    opts = [make_optimizer(p) if p.is_gradient else None for p in phases]

    def run(n: int) -> None:
        for _ in range(n):
            for p, opt in zip(phases, opts):
                for _ in range(p.repeats):
                    x = data[torch.randint(0, data.shape[0], (bs,), device=data.device)]
                    if not p.is_gradient:  # an update (an EM step) changes the model itself
                        with torch.no_grad():
                            p.update(x)
                        continue
                    loss = p.loss(x)["loss"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    model.after_phase(p.name)

    run(warmup)
    _sync(device)
    t0 = time.perf_counter()
    run(steps)
    _sync(device)
    return steps / (time.perf_counter() - t0)


def engine_rate(name: str, dataset, device: torch.device, steps: int, warmup: int = 20) -> float:
    t = _fresh(name, dataset, device, steps + warmup)
    t.fit(warmup, log_every=10)
    _sync(device)
    t0 = time.perf_counter()
    t.fit(steps, log_every=10)
    _sync(device)
    return steps / (time.perf_counter() - t0)


def streaming_rate(name: str, dataset, device: torch.device, steps: int, warmup: int = 20) -> tuple[float, int]:
    """Steps/s while snapshots (samples, traces, metrics) stream to a consumer."""
    t = _fresh(name, dataset, device, steps + warmup)
    t.fit(warmup, log_every=10)
    got = []
    done = threading.Event()

    def on_snapshot(s):
        got.append(s["step"])
        if s.get("final"):
            done.set()

    t0 = time.perf_counter()
    t.start(on_snapshot=on_snapshot, snapshot_interval=UI_SNAPSHOT_INTERVAL, metrics_interval=UI_METRICS_INTERVAL)
    t._transport.join(None)
    wall = time.perf_counter() - t0
    done.wait(60)
    return steps / wall, len(got)


def process_streaming_rate(name: str, dataset, device: torch.device, steps: int, warmup: int = 20) -> tuple[float, int]:
    """Steps/s of a run training in a child process while this one draws its snapshots.

    The child reports its step a few times a second; the rate is taken between
    the first report past the warm-up and the end, on this process's clock.
    """
    t = _fresh(name, dataset, device, steps + warmup, transport="process")
    got = []
    t.start(on_snapshot=lambda s: got.append(s["step"]), snapshot_interval=UI_SNAPSHOT_INTERVAL,
            metrics_interval=UI_METRICS_INTERVAL)
    while t.step_count < warmup and t.running:
        time.sleep(0.001)
    step0, t0 = t.step_count, time.perf_counter()
    t._transport.join(None)
    wall = time.perf_counter() - t0
    t.wait_views(60)
    return (t.step_count - step0) / wall, len(got)


def time_to_quality(name: str, dataset, device: torch.device, budget_s: float, check_every: int = 250) -> dict:
    """Train the default config until the model's registered target is met or the budget runs out."""
    quality = registry.model_spec(name).quality
    t = _fresh(name, dataset, device, 10_000_000)
    floors = t.floors(2000)
    last = {}
    while t.elapsed < budget_s:
        t.fit(check_every, log_every=check_every)
        # KL when the target is a KL, whether or not the model scores it live (an ODE's density
        # is too slow for the page's metrics, not for a check every few hundred steps)
        last = t.evaluate(n=2000, model=t.final_model(), with_kl=quality.metric == "kl" or None)
        if quality.reached(last, floors):
            break
    return {"model": name, "target": quality.label(last, floors), "reached": quality.reached(last, floors),
            "steps": t.step_count, "seconds": t.elapsed, "metrics": last}


def run_bench(models=None, steps: int = 300, device: str = "auto", quality_budget: float = 240.0,
              with_quality: bool = True, log=print) -> str:
    dev = resolve_device(device)
    if dev.type == "cpu":
        # 2D models are tiny: a second intra-op thread only waits, and the
        # playground runs with one so the snapshot worker has the other core.
        torch.set_num_threads(1)
    dataset = registry.load_dataset(DATASET)
    names = models or registry.model_names()
    lines = [f"Device: {device_name(dev)}. Dataset: {DATASET}, default configs, {steps} timed steps after 20 warm-up steps.",
             "",
             "| model | family | plain loop (steps/s) | engine headless (steps/s) | engine / plain "
             "| live, thread (steps/s) | thread / headless | live, child process (steps/s) | process / headless | snapshots |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    warm_up()
    for name in names:
        fam = registry.model_spec(name).family
        plain = plain_loop_rate(name, dataset, dev, steps)
        eng = engine_rate(name, dataset, dev, steps)
        live, _ = streaming_rate(name, dataset, dev, steps)
        child, n_snaps = process_streaming_rate(name, dataset, dev, steps)
        lines.append(f"| {name} | {fam} | {plain:.0f} | {eng:.0f} | {eng / plain:.2f} | {live:.0f} | {live / eng:.2f} "
                     f"| {child:.0f} | {child / eng:.2f} | {n_snaps} |")
        log(lines[-1])
    if with_quality:
        lines += ["", f"Time-to-quality on {DATASET} (default configs, checked every 250 steps, budget {quality_budget:.0f} s of training each):", "",
                  "| model | target | reached | steps | training seconds | final metrics |", "|---|---|---|---|---|---|"]
        for name in names:
            if registry.model_spec(name).quality is None:
                continue
            r = time_to_quality(name, dataset, dev, quality_budget)
            shown = ", ".join(f"{k} {v:.3g}" for k, v in r["metrics"].items() if k in ("kl", "mmd", "modes_covered", "high_quality"))
            lines.append(f"| {name} | {r['target']} | {'yes' if r['reached'] else 'no'} | {r['steps']} | {r['seconds']:.1f} | {shown} |")
            log(lines[-1])
    return "\n".join(lines) + "\n"
