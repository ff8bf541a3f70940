"""Our default flows beside zuko's (Rozet et al., probabilists/zuko), trained side by side.

    python -m core.bench_zuko [--steps 2000] [--rounds 20] [--seeds 0 1 2]
                              [--datasets eight_gaussians two_moons] [--device cpu|cuda]
                              [--pairs flows|continuous]

Pairs, "flows": our `nsf` and `realnvp` (registry defaults) against
`zuko.flows.NSF(2)` and `zuko.flows.RealNVP(2)` (zuko's defaults).
"continuous": our `cnf` (maximum likelihood through a fixed-step RK4 solve with
Hutchinson's trace) and `flow_matching` (a regression, no solve in training),
both against `zuko.flows.CNF(2)` (zuko's defaults: an adaptive Dormand-Prince
solve at atol 1e-6, rtol 1e-5, with the exact trace, back-propagated by the
adjoint). Every model trains in the same plain PyTorch loop: batches of 512
drawn from one fixed training set, Adam at lr 1e-3, one thread on a CPU,
nothing read back to the host inside a step. A flow minimises -log q(x); our
continuous models minimise their own loss (`model.loss`), so flow matching's
steps/s is that of its regression and its KL that of its ODE's density.

The flows take turns: the steps are cut into `rounds` chunks, and each round
trains every flow for one chunk, so the drift of a shared, noisy machine falls
on all flows alike. Speed is steps/s per chunk; a pair's ratio is the median of
its per-round ratios ours / zuko, with their quartiles. Quality is the exact

    KL(p_data || q) = E_{x ~ p_data}[log p_data(x) - log q(x)]

on held-out samples of the dataset (its exact density, `dataset.log_prob`),
at a few step counts on the way and at the end, for every seed.

zuko is a benchmark-only dependency: pip install -r requirements-bench.txt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from . import registry
from .bench import _sync, device_name
from .rng import manual_seed

PAIRS = (("nsf", "NSF"), ("realnvp", "RealNVP"))
CONTINUOUS_PAIRS = (("cnf", "CNF"), ("flow_matching", "CNF"))
PAIR_SETS = {"flows": PAIRS, "continuous": CONTINUOUS_PAIRS}
BATCH, LR, N_TRAIN, N_HELD_OUT = 512, 1e-3, 20_000, 20_000
HELD_OUT_SEED = 10_000  # far from the training seeds, so held-out points are new


def _zuko():
    try:
        import zuko
    except ImportError:
        sys.exit("zuko is not installed; this benchmark needs it: pip install -r requirements-bench.txt")
    return zuko


def contenders(seed: int, device: torch.device, overrides: dict | None = None, pairs=PAIRS) -> dict:
    """label -> (module, log_prob, loss): ours and zuko's of every pair, each built after
    torch.manual_seed(seed); loss(x) is what training minimises (-mean log q(x) for a flow)."""
    zuko = _zuko()
    out = {}
    for ours, theirs in pairs:
        manual_seed(seed)
        model = registry.build_model(ours, (2,), (overrides or {}).get(ours)).to(device)
        if model.family == "continuous":  # its log_prob is not differentiable: it trains on its own loss
            out[ours] = (model, model.log_prob, lambda x, model=model: model.loss(x)["loss"])
        else:
            out[ours] = (model, model.log_prob, lambda x, model=model: -model.log_prob(x).mean())
        if f"zuko {theirs}" in out:  # one reference for several of ours
            continue
        manual_seed(seed)
        flow = getattr(zuko.flows, theirs)(2).to(device)
        out[f"zuko {theirs}"] = (flow, lambda x, flow=flow: flow().log_prob(x), lambda x, flow=flow: -flow().log_prob(x).mean())
    return out


@torch.no_grad()
def kl_exact(log_prob, x: torch.Tensor, log_p: torch.Tensor) -> float:
    """(1/n) sum_i [log p(x_i) - log q(x_i)] over the held-out x (n, 2), log p in float64."""
    log_q = torch.cat([log_prob(chunk) for chunk in x.split(4096)])
    return float((log_p - log_q.double().cpu()).mean())


def train_side_by_side(flows: dict, data: torch.Tensor, steps: int, rounds: int, seed: int,
                       held_out: tuple, kl_at: tuple) -> tuple[dict, dict]:
    """Round-robin training; (steps/s per chunk, per flow), ({step: KL} per flow)."""
    device = data.device
    chunks = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
    state = {}
    for label, (module, log_prob, loss_fn) in flows.items():
        gen = torch.Generator(device=device).manual_seed(seed)  # every flow sees the same batches
        state[label] = (log_prob, loss_fn, torch.optim.Adam(module.parameters(), lr=LR), gen)
    rates = {label: [] for label in flows}
    kls = {label: {} for label in flows}
    done = 0
    for chunk in chunks:
        for label, (log_prob, loss_fn, opt, gen) in state.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(chunk):
                x = data[torch.randint(0, data.shape[0], (BATCH,), generator=gen, device=device)]
                loss = loss_fn(x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            _sync(device)
            rates[label].append(chunk / (time.perf_counter() - t0))
        done += chunk
        if done in kl_at or done == steps:
            for label, (log_prob, _, _, _) in state.items():
                kls[label][done] = kl_exact(log_prob, *held_out)
    return rates, kls


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def run(steps: int = 2000, rounds: int = 20, seeds=(0,), datasets=("eight_gaussians", "two_moons"),
        device: str = "cpu", overrides: dict | None = None, log=print, pairs=PAIRS) -> str:
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    rounds = max(1, min(rounds, steps))
    kl_at = tuple(sorted({steps // 4, steps // 2, steps}))
    rates, ratios, kls = {}, {ours: [] for ours, _ in pairs}, {}
    sizes = {}
    for name in datasets:
        dataset = registry.load_dataset(name)
        x_held = dataset.sample(N_HELD_OUT, torch.Generator().manual_seed(HELD_OUT_SEED))
        held_out = (x_held.to(dev), dataset.log_prob(x_held.double()))
        for seed in seeds:
            data = dataset.training_set(N_TRAIN, seed).to(dev)
            flows = contenders(seed, dev, overrides, pairs)
            sizes = {label: sum(p.numel() for p in m.parameters()) for label, (m, _, _) in flows.items()}
            r, k = train_side_by_side(flows, data, steps, rounds, seed, held_out, kl_at)
            for label in flows:
                rates.setdefault(label, []).extend(r[label])
                kls[(name, seed, label)] = k[label]
            for ours, theirs in pairs:  # one ratio per round: both chunks ran back to back
                ratios[ours] += [a / b for a, b in zip(r[ours], r[f"zuko {theirs}"])]
            log(f"  {name}, seed {seed}: " + ", ".join(f"{label} KL {k[label][steps]:.3f}" for label in flows))

    labels = list(rates)
    lines = [f"Device: {device_name(dev)}. zuko {_zuko().__version__}. Batch {BATCH}, Adam lr {LR:g}, "
             f"{steps} steps in {rounds} round-robin chunks per run; seeds {', '.join(map(str, seeds))}; "
             f"KL on {N_HELD_OUT} held-out points.", "",
             "| ours | zuko | ours (steps/s) | zuko (steps/s) | ours / zuko, median of rounds | quartiles | rounds | parameters |",
             "|---|---|---|---|---|---|---|---|"]
    for ours, theirs in pairs:
        q1, q2, q3 = _quartiles(ratios[ours])
        lines.append(f"| {ours} | {theirs} | {statistics.median(rates[ours]):.0f} "
                     f"| {statistics.median(rates['zuko ' + theirs]):.0f} | **{q2:.2f}** | {q1:.2f} - {q3:.2f} "
                     f"| {len(ratios[ours])} | {sizes[ours]} vs {sizes['zuko ' + theirs]} |")
    lines += ["", "KL(p_data || q) in nats, held-out data (lower is better):", "",
              "| dataset | seed | steps | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for name in datasets:
        for seed in seeds:
            for s in kl_at:
                lines.append(f"| {name} | {seed} | {s} | " + " | ".join(f"{kls[(name, seed, l)][s]:.3f}" for l in labels) + " |")
        if len(seeds) > 1:
            mean = {l: statistics.mean(kls[(name, seed, l)][steps] for seed in seeds) for l in labels}
            lines.append(f"| {name} | mean | {steps} | " + " | ".join(f"**{mean[l]:.3f}**" for l in labels) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench_zuko", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps per flow and run")
    p.add_argument("--rounds", type=int, default=20, help="round-robin chunks the steps are cut into")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one interleaved run per seed")
    p.add_argument("--datasets", nargs="+", default=["eight_gaussians", "two_moons"])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--pairs", default="flows", choices=tuple(PAIR_SETS),
                   help="flows: nsf and realnvp vs zuko's NSF and RealNVP; continuous: cnf and flow_matching vs zuko's CNF")
    args = p.parse_args(argv)
    _zuko()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available here; run with --device cpu")
        return 2
    print(run(args.steps, args.rounds, args.seeds, args.datasets, args.device, log=lambda s: print(s, file=sys.stderr),
              pairs=PAIR_SETS[args.pairs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
