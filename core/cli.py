"""`python -m core`: list, train, sample, logprob and bench, headless.

Every refusal is one line on stderr and a non-zero exit; no traceback reaches
the person for a mistake they made. What one command may cost is bounded:
samples and points scored (MAX_POINTS, MAX_IMAGES), files read (core.data.files).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, registry
from . import config as C
from .config import to_dict
from .errors import ConfigError, DataError, LogProbUnavailable, PlaygroundError, TrainingDiverged
from .rng import manual_seed
from .train import Trainer, finite_or_none, resolve_device
from .train.engine import LOSS_LIMIT

MAX_POINTS = 1_000_000  # points one command samples or scores: 8 MB, and seconds for most models
MAX_IMAGES = 10_000  # digits one command samples or scores, as many as MNIST's test split
MAX_SEED = 2**31 - 1
EXIT_REFUSED, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
EPILOG = f"""exit codes:
  0    done
  {EXIT_REFUSED}    refused: a setting, a file or a path could not be used (one line on stderr says why)
  {EXIT_DIVERGED}    train: the loss diverged (became NaN or inf, or exploded past {LOSS_LIMIT:.0e}); the run stops and
       still writes the weights of its last good step, with their samples and metrics
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Generative Playground, headless.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="the models and datasets, one per line")
    ls.add_argument("--settings", nargs="*", metavar="MODEL", default=None,
                    help="also list each model's settings (for --set) with defaults, allowed values and help; "
                         "name models to list only those")

    t = sub.add_parser("train", help="train a model and write metrics, samples and weights",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    t.add_argument("--metrics-every", type=int, default=0,
                   help="evaluate metrics every N steps (0, the default: about 10 times a run)")
    t.add_argument("--n-samples", type=int, default=None,
                   help=f"samples written to samples.npy (default 10,000 points, or 64 digits, also drawn as "
                        f"samples.png; at most {MAX_POINTS:,} points or {MAX_IMAGES:,} digits)")
    t.add_argument("--out", required=True, help="a folder (made if need be) for metrics.json, samples and weights")
    t.add_argument("--quiet", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained model")
    s.add_argument("dir")
    s.add_argument("--n", type=int, required=True, help=f"how many (at most {MAX_POINTS:,} points or {MAX_IMAGES:,} digits)")
    s.add_argument("--out", required=True, help="the .npy file to write")
    s.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED:,}")

    lp = sub.add_parser("logprob", help="log-density of points under a trained model")
    lp.add_argument("dir")
    lp.add_argument("--points", required=True,
                    help=f"a .csv/.npy file of points, or a .npy of digits (at most {MAX_POINTS:,} points or {MAX_IMAGES:,} digits)")
    lp.add_argument("--out", required=True, help="the .npy file to write")

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


def _count(flag: str, value: int, lo: int, hi: int, note: str = "") -> int:
    """A whole-number flag within [lo, hi], else a ConfigError that says so."""
    if not lo <= value <= hi:
        raise ConfigError(f"{flag} {value} is out of range; it must be between {lo:,} and {hi:,}{note}")
    return value


def _sample_cap(images: bool) -> tuple[int, str]:
    return (MAX_IMAGES, "digits") if images else (MAX_POINTS, "points")


def _writable(path: Path, folder: bool) -> Path:
    """Refuse, before any work, an --out that cannot be written: a folder that is a file, a file
    that is a folder, or a parent that is missing or not a folder."""
    if folder and path.exists() and not path.is_dir():
        raise DataError(f"--out {path} is a file; give a folder (it will hold metrics.json, samples.npy and "
                        f"{checkpoint.WEIGHTS})")
    if not folder and path.is_dir():
        raise DataError(f"--out {path} is a folder; give the name of the .npy file to write, e.g. {path / 'out.npy'}")
    above = next((p for p in (path if folder else path.parent, *path.parents) if p.exists()), None)
    if above is not None and not above.is_dir():
        raise DataError(f"--out {path}: {above} is a file, not a folder")
    if not folder and not path.parent.is_dir():
        raise DataError(f"--out {path}: the folder {path.parent} does not exist")
    if above is not None and not os.access(above, os.W_OK):
        raise DataError(f"--out {path}: {above} is not writable")
    return path


def _warn_nonfinite(samples: np.ndarray, where: str) -> int:
    """Say how many samples hold NaN or inf (they are written as they are); returns that count."""
    bad = int((~np.isfinite(samples.reshape(len(samples), -1))).any(axis=1).sum()) if len(samples) else 0
    if bad:
        print(f"warning: {bad:,} of {len(samples):,} samples in {where} hold NaN or inf: the model's sampler "
              f"overflowed; try a lower learning rate, gradient clipping (--set grad_clip=1) or more steps",
              file=sys.stderr)
    return bad


def cmd_train(args) -> int:
    out = _writable(Path(args.out), folder=True)
    if args.metrics_every < 0:
        raise ConfigError(f"--metrics-every {args.metrics_every} is out of range; it must be 0 (about 10 times a run) "
                          f"or a number of steps")
    train_fields = set(C.describe(C.TrainConfig))
    overrides = {k: v for k, v in args.settings if k in train_fields}  # --set n_data=..., grad_clip=...
    overrides.update({k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                        ("seed", args.seed)) if v is not None})
    dataset = registry.load_dataset(args.data)
    registry.check_fits(args.model, dataset.shape)
    train_cfg = registry.train_config(args.model, overrides, registry.data_kind(dataset.shape))
    device = resolve_device(args.device)
    manual_seed(train_cfg.seed)
    model = registry.build_model(args.model, dataset.shape, {k: v for k, v in args.settings if k not in train_fields})
    images = registry.data_kind(dataset.shape) == "images"
    n_samples = args.n_samples if args.n_samples is not None else (64 if images else 10_000)
    cap, what = _sample_cap(images)
    _count("--n-samples", n_samples, 1, cap, f" {what}")
    if dataset.note and not args.quiet:
        print(dataset.note, file=sys.stderr)
    trainer = Trainer(model, dataset, train_cfg, device=str(device))
    every = args.metrics_every or max(train_cfg.steps // 10, 1)
    log_every = max(1, min(50, every))
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
    nonfinite = _warn_nonfinite(samples, str(out / "samples.npy"))
    written = ["metrics.json", "samples.npy", checkpoint.WEIGHTS]
    if images:
        from .images import write_grid

        write_grid(out / "samples.png", np.clip(np.nan_to_num(samples[:64]), 0.0, 1.0))
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
        "nonfinite_samples": nonfinite,
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
        print(f"error: {diverged} Those weights, their samples and metrics are in {out}.", file=sys.stderr)
        return EXIT_DIVERGED
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
    out = _writable(Path(args.out), folder=False)
    _count("--seed", args.seed, 0, MAX_SEED)
    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    model, _ = checkpoint.load(args.dir)
    cap, what = _sample_cap(registry.data_kind(model.data_shape) == "images")
    _count("--n", args.n, 1, cap, f" {what}; write more with several calls of different --seed")
    manual_seed(args.seed)
    with torch.no_grad():
        samples = _sample_chunked(model, args.n)
    np.save(out, samples)
    _warn_nonfinite(samples, str(out))
    return 0


def cmd_logprob(args) -> int:
    from .data.files import PointsFile, check_file, read_npy

    out = _writable(Path(args.out), folder=False)
    model, meta = checkpoint.load(args.dir)
    if not model.has_log_prob:
        with_density = [n for n in registry.model_names() if registry.model_spec(n).cls.has_log_prob]
        raise LogProbUnavailable(f"model {meta['model']!r} ({model.family}) has no density, so log-probabilities "
                                 f"cannot be computed; these models have one: {', '.join(with_density)}")
    if model.data_shape == (2,):
        pts = PointsFile.from_path(args.points, min_points=1, max_points=MAX_POINTS).points
    else:
        path, size = Path(args.points), math.prod(model.data_shape)
        shape = " x ".join(map(str, model.data_shape))
        if path.suffix.lower() != ".npy":
            raise DataError(f"{path.name}: {meta['model']} scores a .npy array of N x {shape} images")
        check_file(path, f"a .npy array of N x {shape} images", max_bytes=16 * size * MAX_IMAGES + 2**16)
        array = read_npy(path, max_values=size * MAX_IMAGES, what=f"{MAX_IMAGES:,} images of {shape}",
                         hint="score them in parts")
        if array.size == 0 or array.size % size:
            raise DataError(f"{path.name} holds {array.size:,} numbers, not a whole number of {shape} images")
        if not np.isfinite(array).all():
            raise DataError(f"{path.name} holds NaN or inf; every pixel must be a finite number")
        pts = torch.as_tensor(array, dtype=torch.float32).reshape(-1, *model.data_shape)
    values = []
    for i in range(0, pts.shape[0], 2048):
        with torch.no_grad():  # a model that needs autograd inside log_prob (an ODE's divergence) enables it
            values.append(model.log_prob(pts[i:i + 2048]))
    np.save(out, torch.cat(values).cpu().numpy().astype(np.float64))
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

    if args.out:
        _writable(Path(args.out), folder=False)
    hi = C.describe(C.TrainConfig)["steps"]["hi"]
    _count("--steps", args.steps, 1, hi)
    if not 0 < args.quality_budget <= 86_400:
        raise ConfigError(f"--quality-budget {args.quality_budget:g} is out of range; give seconds, more than 0 "
                          f"and at most 86,400 (a day)")

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
        return EXIT_REFUSED
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a path that cannot be read or written
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_REFUSED
    except MemoryError:
        print("error: out of memory; ask for fewer samples or points, or a smaller model", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
