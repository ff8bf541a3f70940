"""`python -m playground.bench`: what watching costs, on this device, as Markdown.

For each model it measures, in this process:

- training throughput headless (Trainer.fit, no snapshots) and with the views
  open: a run streaming snapshots while a loop does what the page's timer does
  every timer period (app.tick: pull the newest snapshot, render the family's panels,
  the loss and metric charts, and serialise every figure as Gradio would);
- the view update rate achieved (panel redraws per second: timer ticks that
  found a new snapshot), the time one redraw takes, and the CPU the page's
  process spends meanwhile (every thread: pictures, metrics, renders), which
  is the watching's share of the machine;
- Pause latency (from the click until the last step finishes) and Reset
  latency (until Reset returns, and until the fresh model's first picture).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import gradio as gr

from core import registry
from core.bench import device_name
from core.rng import manual_seed
from core.train import Trainer, resolve_device

from . import app as A
from .runs import RunManager, Session
from .runs.run import SNAPSHOT_INTERVAL
from .views import view_for



def default_cases() -> list[tuple[str, str]]:
    """One (model, dataset) per registered family: its view's showcase, else its first model on two_moons."""
    cases = []
    for family in registry.families():
        showcase = view_for(family).showcase
        cases.append(tuple(showcase) if showcase else (registry.model_names(family)[0], "two_moons"))
    return cases


TICK = A.REDRAW[A.DEFAULT_REDRAW]


def headless_rate(model: str, dataset: str, seconds: float, device: str) -> float:
    """Steps/s of Trainer.fit with nothing watching."""
    data = registry.load_dataset(dataset)
    manual_seed(0)
    trainer = Trainer(registry.build_model(model, data.shape), data, registry.train_config(model), device=device)
    trainer.fit(steps=10, log_every=10)  # warm-up
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.fit(steps=25, log_every=25)
        steps += 25
    return steps / (time.perf_counter() - t0)


def _serialise(out: dict) -> None:
    plot = gr.Plot()
    for value in out.get("slots", []) + [out.get("loss_plot"), out.get("metrics_plot")]:
        if value is not None and not isinstance(value, dict):
            plot.postprocess(value)


def watched(model: str, dataset: str, seconds: float, device: str) -> dict:
    """Train while a loop redraws at the page's cadence; returns rates and redraw times."""
    session = Session(RunManager(1), device=device)
    knobs = {A.knob_key(k): d for k, d in A.knobs_for(model).values()}
    A.reset(session, model, dataset, knobs)
    run = session.current
    run.play()
    while run.step < 10:
        time.sleep(0.01)
    redraws, durations = 0, []
    step0, t0, cpu0 = run.step, time.perf_counter(), _cpu_seconds()
    next_tick = t0
    while time.perf_counter() - t0 < seconds:
        next_tick += TICK
        t = time.perf_counter()
        out = A.tick(session, "step", "auto")
        _serialise(out)
        if "slots" in out:
            redraws += 1
            durations.append(time.perf_counter() - t)
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    rate = (run.step - step0) / elapsed
    page_cpu = (_cpu_seconds() - cpu0) / elapsed
    pause = pause_latency(run)
    reset, first_picture = reset_latency(session, model, dataset, knobs)
    session.close()
    session.manager.shutdown()
    return {"rate": rate, "page_cpu": page_cpu, "redraws": redraws / elapsed, "redraw_ms": 1000 * statistics.median(durations) if durations else float("nan"),
            "pause_ms": 1000 * pause, "reset_ms": 1000 * reset, "first_ms": 1000 * first_picture}


def _cpu_seconds() -> float:
    """CPU time this process (the page's: pictures, metrics, renders) has used, all threads."""
    return time.process_time()


def pause_latency(run) -> float:
    """Seconds from Pause until the step counter stops moving."""
    t0 = time.perf_counter()
    run.pause()
    last, last_change = run.step, time.perf_counter()
    while time.perf_counter() - last_change < 0.3:
        if run.step != last:
            last, last_change = run.step, time.perf_counter()
        time.sleep(0.0005)
    return max(0.0, last_change - t0)


def reset_latency(session: Session, model: str, dataset: str, knobs: dict) -> tuple[float, float]:
    """Seconds until Reset returns, and until the fresh model's first picture."""
    session.current.play()
    time.sleep(0.5)
    t0 = time.perf_counter()
    A.reset(session, model, dataset, knobs)
    returned = time.perf_counter() - t0
    while session.current.latest is None and time.perf_counter() - t0 < 30:
        time.sleep(0.002)
    return returned, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m playground.bench", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=None, help="model@dataset pairs (default: one per family)")
    p.add_argument("--seconds", type=float, default=4.0, help="measuring window per measurement")
    p.add_argument("--repeats", type=int, default=7,
                   help="rounds of (headless, with views) per case; the table gives medians, and the ratio is "
                        "the median of each round's ratio (and the middle half of the rounds' ratios), so a "
                        "shared machine's drift cancels out")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    A.use_one_thread_per_run()  # as the app runs
    device = resolve_device(args.device)
    cases = [tuple(c.split("@", 1)) for c in args.models] if args.models else default_cases()
    print(f"## Playground: the cost of watching\n\nDevice: {device_name(device)}. Redraw every {TICK} s, "
          f"snapshots every {SNAPSHOT_INTERVAL} s, {args.seconds:g} s per measurement, "
          f"medians of {max(1, args.repeats)} rounds.\n")
    print("| model | data | headless steps/s | steps/s with views | with views / headless (middle half of rounds) "
          "| page process CPU (cores) | view redraws/s | one redraw (ms) | Pause (ms) | Reset returns (ms) "
          "| Reset to first picture (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = statistics.median
    for model, dataset in cases:
        rounds = []
        for _ in range(max(1, args.repeats)):
            head = headless_rate(model, dataset, args.seconds, device.type)
            rounds.append((head, watched(model, dataset, args.seconds, device.type)))
        w = {k: med(r[k] for _, r in rounds) for k in rounds[0][1]}
        ratios = sorted(r["rate"] / head for head, r in rounds)
        spread = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3  # quartiles
        print(f"| {model} | {dataset} | {med(h for h, _ in rounds):,.0f} | {w['rate']:,.0f} | "
              f"{100 * med(ratios):.0f}% ({100 * spread[0]:.0f}–{100 * spread[2]:.0f}%) | {w['page_cpu']:.2f} | "
              f"{w['redraws']:.1f} | {w['redraw_ms']:.0f} | {w['pause_ms']:.0f} | {w['reset_ms']:.0f} | {w['first_ms']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
