"""`python -m core`: list, train, sample, logprob and bench, headless.

Every refusal is one line on stderr and a non-zero exit; no traceback reaches
the person for a mistake they made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, registry
from . import config as C
from .config import to_dict
from .errors import LogProbUnavailable, PlaygroundError, TrainingDiverged
from .train import Trainer, finite_or_none, resolve_device


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Generative Playground, headless.")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="the models and datasets, one per line")
    ls.add_argument("--settings", nargs="*", metavar="MODEL", default=None,
                    help="also list each model's settings (for --set) with defaults, allowed values and help; "
                         "name models to list only those")

    t = sub.add_parser("train", help="train a model and write metrics, samples and weights")
    t.add_argument("model")
    t.add_argument("--data", required=True, help="a built-in dataset name or a .csv/.npy file of N x 2 points")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--set", dest="settings", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="a model or training setting, e.g. --set layers=4 or --set grad_clip=1 "
                        "(see 'python -m core list --settings MODEL')")
    t.add_argument("--metrics-every", type=int, default=0, help="evaluate metrics every N steps (0: about 10 times a run)")
    t.add_argument("--n-samples", type=int, default=None,
                   help="samples written to samples.npy (default 10,000 points, or 64 digits, also drawn as samples.png)")
    t.add_argument("--out", required=True)
    t.add_argument("--quiet", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained model")
    s.add_argument("dir")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)

    lp = sub.add_parser("logprob", help="log-density of points under a trained model")
    lp.add_argument("dir")
    lp.add_argument("--points", required=True)
    lp.add_argument("--out", required=True)

    c = sub.add_parser("classifier", help="train (once) and check the digit classifier that judges MNIST samples")
    c.add_argument("--retrain", action="store_true", help="train it again even if a cached one exists")

    b = sub.add_parser("bench", help="training speed and time-to-quality, written as Markdown")
    b.add_argument("--models", nargs="*", default=None)
    b.add_argument("--steps", type=int, default=300)
    b.add_argument("--device", default="auto")
    b.add_argument("--quality-budget", type=float, default=240.0, help="seconds allowed per time-to-quality run")
    b.add_argument("--skip-quality", action="store_true")
    b.add_argument("--out", default=None, help="write the Markdown here as well as to stdout")
    return p


def _allowed(meta: dict) -> str:
    if meta.get("choices"):
        return " | ".join(map(str, meta["choices"]))
    lo, hi = (f"{v:,}" if isinstance(v, int) else (f"{v:g}" if v is not None else None)
              for v in (meta.get("lo"), meta.get("hi")))
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f">= {lo}" if lo is not None else (f"<= {hi}" if hi is not None else "")


def _print_settings(title: str, cfg) -> None:
    print(title)
    for name, meta in C.describe(cfg).items():
        notes = [n for n, on in (("live", meta.get("live")), ("the model's own: choose another model instead",
                                                               meta.get("variant"))) if on]
        if meta.get("when"):
            field, values = meta["when"]
            notes.append(f"used when {field} is {' or '.join(map(str, values))}")
        note = f" ({'; '.join(notes)})" if notes else ""
        print(f"    {name:<16} {str(getattr(cfg, name)):<10} {_allowed(meta):<28} {meta.get('help', '')}{note}")


def cmd_list(args) -> int:
    registry.load_all()
    if args.settings is not None:
        names = args.settings or registry.model_names()
        for name in names:
            registry.model_spec(name)  # an unknown name is refused before anything is printed
        for name in names:
            _print_settings(f"{name} (--set KEY=VALUE):", registry.model_config(name))
            _print_settings("  training (--steps, --batch-size, --lr, --seed, or --set):", registry.train_config(name))
        return 0
    print("models:")
    names = registry.model_names()
    w_name, w_family = max(map(len, names)), max(len(registry.MODELS[n].family) for n in names)
    for name in names:
        spec = registry.MODELS[name]
        print(f"  {name:<{w_name}} {spec.family:<{w_family}} {spec.summary}")
    print("datasets:")
    for name, spec in registry.DATASETS.items():
        print(f"  {name:<22} {spec.summary}")
    return 0


def _progress(total: int, quiet: bool):
    t0 = time.perf_counter()
    last = [0.0]
    tty = sys.stderr.isatty()

    def show(rec: dict) -> None:
        now = time.perf_counter()
        if quiet or (now - last[0] < (0.5 if tty else 5.0) and rec["step"] < total):
            return
        last[0] = now
        rate = rec["step"] / max(now - t0, 1e-9)
        eta = (total - rec["step"]) / max(rate, 1e-9)
        terms = "  ".join(f"{k} {v:.4g}" for k, v in rec.items() if k not in ("step", "time"))
        line = f"step {rec['step']}/{total}  {terms}  ({rate:.0f} steps/s, {eta:.0f}s left)"
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        if tty and rec["step"] >= total:
            print(file=sys.stderr)

    return show


def cmd_train(args) -> int:
    train_fields = set(C.describe(C.TrainConfig))
    overrides = {k: v for k, v in args.settings if k in train_fields}  # --set n_data=..., grad_clip=...
    overrides.update({k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                        ("seed", args.seed)) if v is not None})
    dataset = registry.load_dataset(args.data)
    registry.check_fits(args.model, dataset.shape)
    train_cfg = registry.train_config(args.model, overrides, registry.data_kind(dataset.shape))
    device = resolve_device(args.device)
    torch.manual_seed(train_cfg.seed)
    model = registry.build_model(args.model, dataset.shape, {k: v for k, v in args.settings if k not in train_fields})
    images = registry.data_kind(dataset.shape) == "images"
    n_samples = args.n_samples if args.n_samples is not None else (64 if images else 10_000)
    if n_samples < 1:
        raise PlaygroundError(f"--n-samples must be at least 1, got {n_samples}")
    if dataset.note and not args.quiet:
        print(dataset.note, file=sys.stderr)
    trainer = Trainer(model, dataset, train_cfg, device=str(device))
    every = args.metrics_every or max(train_cfg.steps // 10, 1)
    log_every = max(1, min(50, every))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    diverged = None
    try:
        trainer.fit(log_every=log_every, metrics_every=every, on_log=_progress(train_cfg.steps, args.quiet))
    except TrainingDiverged as e:
        diverged = str(e)
    model = trainer.final_model()  # with its weight average, where the model keeps one
    final = trainer.evaluate(n=2000, with_kl=model.has_log_prob and dataset.has_density, model=model)
    model.eval()
    with torch.no_grad():
        samples = _sample_chunked(model, n_samples)
    np.save(out / "samples.npy", samples)
    written = ["metrics.json", "samples.npy", checkpoint.WEIGHTS]
    if images:
        from .images import write_grid

        write_grid(out / "samples.png", np.clip(samples[:64], 0.0, 1.0))
        written.insert(2, "samples.png")
    checkpoint.save(out, args.model, model, train_cfg, dataset=args.data)
    report = {
        "model": args.model,
        "family": model.family,
        "dataset": args.data,
        "data_note": dataset.note,
        "device": str(device),
        "config": {"model": to_dict(model.config), "train": to_dict(train_cfg)},
        "steps_done": trainer.step_count,
        "train_seconds": trainer.elapsed,
        "status": "diverged" if diverged else "done",
        "message": diverged or "",
        "history": trainer.history,
        "metric_history": trainer.metric_history,
        "final": final,
        "notes": {"kl": f"KL(p_data || q) from the model's log_prob, an {model.density_note}"}
        if model.density_note and "kl" in final else {},
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(_json_safe(report), f, indent=1)
    if not args.quiet:
        summary = "  ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, (int, float)))
        print(f"wrote {out}/{', '.join(written)}  |  {summary}", file=sys.stderr)
    if diverged:
        print(f"error: {diverged}", file=sys.stderr)
        return 3
    return 0


def _sample_chunked(model, n: int, chunk: int = 4096) -> np.ndarray:
    parts = [model.sample(min(chunk, n - i)).cpu().numpy() for i in range(0, n, chunk)]
    return np.concatenate(parts).astype(np.float32)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return finite_or_none(obj)


def cmd_sample(args) -> int:
    if args.n < 1:
        raise PlaygroundError(f"--n must be at least 1, got {args.n}")
    model, _ = checkpoint.load(args.dir)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        samples = _sample_chunked(model, args.n)
    np.save(args.out, samples)
    return 0


def cmd_logprob(args) -> int:
    from .data.files import PointsFile

    model, meta = checkpoint.load(args.dir)
    if not model.has_log_prob:
        with_density = [n for n in registry.model_names() if registry.model_spec(n).cls.has_log_prob]
        raise LogProbUnavailable(f"model {meta['model']!r} ({model.family}) has no density, so log-probabilities "
                                 f"cannot be computed; these models have one: {', '.join(with_density)}")
    if model.data_shape == (2,):
        pts = PointsFile.from_path(args.points, min_points=1).points
    else:
        pts = torch.as_tensor(np.load(args.points, allow_pickle=False), dtype=torch.float32)
        pts = pts.reshape(-1, *model.data_shape)
    values = []
    for i in range(0, pts.shape[0], 2048):
        with torch.no_grad():  # a model that needs autograd inside log_prob (an ODE's divergence) enables it
            values.append(model.log_prob(pts[i:i + 2048]))
    np.save(args.out, torch.cat(values).cpu().numpy().astype(np.float64))
    if not model.log_prob_is_exact:
        print(f"note: {meta['model']} log_prob is an estimate (see its documentation)", file=sys.stderr)
    return 0


def cmd_classifier(args) -> int:
    from . import classifier as K
    from .data.mnist import MNIST

    dataset = MNIST()
    print(dataset.note, file=sys.stderr)
    path = K.cache_path(dataset)
    if args.retrain:
        path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    net = K.classifier_for(dataset)
    print(f"digit classifier: {net.accuracy:.2%} of {dataset.held_out()[1].shape[0]:,} held-out digits correct "
          f"({time.perf_counter() - t0:.1f} s; cached at {path})")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    text = run_bench(models=args.models, steps=args.steps, device=args.device,
                     quality_budget=args.quality_budget, with_quality=not args.skip_quality)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


COMMANDS = {"list": cmd_list, "train": cmd_train, "sample": cmd_sample, "logprob": cmd_logprob,
            "classifier": cmd_classifier, "bench": cmd_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
