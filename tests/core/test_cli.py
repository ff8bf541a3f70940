"""`python -m core` end to end on a tiny budget, and the refusals it promises."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from core import checkpoint, registry
from core.cli import main
from tests.conftest import REPO


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_model_and_dataset_one_per_line(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert set(registry.model_names()) | set(registry.dataset_names()) == set(lines)
    for name in ("nice", "realnvp", "glow", "maf", "iaf", "nsf", "vae", "gan", "nsgan", "lsgan",
                 "wgan", "wgan_gp", "fgan", "mmdgan", "ddpm", "eight_gaussians", "pinwheel", "checkerboard"):
        assert name in lines


def test_list_settings_shows_what_set_accepts(capsys):
    code, out, _ = run(capsys, "list", "--settings", "vae")
    assert code == 0 and out.startswith("vae (--set KEY=VALUE):")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert set(rows) >= {"latent", "beta", "likelihood", "steps", "lr", "grad_clip", "n_data"}
    assert "auto | gaussian | bernoulli" in rows["likelihood"] and rows["likelihood"].split()[1] == "auto"
    assert "0 to 100" in rows["beta"] and rows["beta"].endswith("(live)")
    code, out, _ = run(capsys, "list", "--settings")
    assert {line.split()[0] for line in out.splitlines() if not line.startswith(" ")} == set(registry.model_names())
    code, out, err = run(capsys, "list", "--settings", "stylegan")
    assert code == 2 and "unknown model 'stylegan'" in err and out == ""


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "core", "list"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "realnvp" in r.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "realnvp", "--data", "eight_gaussians", "--steps", "60", "--batch-size", "128",
                 "--seed", "3", "--set", "layers=2", "--set", "hidden=16", "--set", "grad_clip=5",
                 "--set", "n_data=3000", "--metrics-every", "30",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_train_writes_metrics_samples_and_weights(trained):
    report = json.loads((trained / "metrics.json").read_text())
    assert report["model"] == "realnvp" and report["steps_done"] == 60
    assert report["config"]["model"]["layers"] == 2 and report["config"]["train"]["seed"] == 3
    assert report["config"]["train"]["grad_clip"] == 5 and report["config"]["train"]["n_data"] == 3000  # --set reaches training
    assert report["history"][-1]["step"] == 60 and "loss" in report["history"][-1]
    assert {"kl", "mmd", "energy", "hist_kl", "modes_covered"} <= set(report["final"])
    assert report["metric_history"] and report["metric_history"][-1]["step"] == 60
    samples = np.load(trained / "samples.npy")
    assert samples.shape == (10_000, 2) and np.isfinite(samples).all()
    model, meta = checkpoint.load(trained)
    assert meta["model"] == "realnvp" and meta["dataset"] == "eight_gaussians"
    assert model.config.layers == 2


def test_sample_is_reproducible_with_a_seed(trained, tmp_path, capsys):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run(capsys, "sample", str(trained), "--n", "500", "--out", str(a), "--seed", "1")[0] == 0
    assert run(capsys, "sample", str(trained), "--n", "500", "--out", str(b), "--seed", "1")[0] == 0
    assert np.load(a).shape == (500, 2)
    assert np.array_equal(np.load(a), np.load(b))


def test_logprob_matches_the_model(trained, tmp_path, capsys):
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)
    np.save(tmp_path / "p.npy", pts)
    code, _, _ = run(capsys, "logprob", str(trained), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy"))
    assert code == 0
    lp = np.load(tmp_path / "lp.npy")
    model, _ = checkpoint.load(trained)
    with torch.no_grad():
        expect = model.log_prob(torch.from_numpy(pts)).numpy()
    assert lp.shape == (300,) and np.allclose(lp, expect, atol=1e-5)


def test_logprob_of_a_gan_is_refused(tmp_path, capsys):
    code, _, _ = run(capsys, "train", "gan", "--data", "eight_gaussians", "--steps", "2", "--batch-size", "32",
                     "--metrics-every", "2", "--n-samples", "10", "--out", str(tmp_path / "g"), "--quiet")
    assert code == 0
    np.save(tmp_path / "p.npy", np.zeros((4, 2), np.float32))
    code, _, err = run(capsys, "logprob", str(tmp_path / "g"), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "o.npy"))
    assert code != 0 and "no density" in err and "Traceback" not in err
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("argv,needle", [
    (["train", "stylegan", "--data", "eight_gaussians"], "unknown model 'stylegan'; valid models: nice"),
    (["train", "realnvp", "--data", "moons3d"], "unknown dataset 'moons3d'; valid datasets:"),
    (["train", "realnvp", "--data", "eight_gaussians", "--lr", "-1"], "lr=-1.0 is out of range"),
    (["train", "realnvp", "--data", "eight_gaussians", "--set", "layers=0"], "layers=0 is out of range"),
    (["train", "realnvp", "--data", "eight_gaussians", "--set", "momentum=3"], "unknown setting 'momentum'"),
    (["train", "realnvp", "--data", "eight_gaussians", "--device", "tpu"], "device 'tpu' is not allowed"),
])
def test_invalid_values_are_refused_in_one_line(argv, needle, tmp_path, capsys):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "x"))
    assert code == 2
    assert needle in err and err.count("\n") == 1


def test_batch_larger_than_a_file_of_points_is_refused(tmp_path, capsys):
    pts = np.random.default_rng(0).normal(size=(50, 2))
    np.savetxt(tmp_path / "pts.csv", pts, delimiter=",", header="x,y", comments="")
    code, _, err = run(capsys, "train", "realnvp", "--data", str(tmp_path / "pts.csv"), "--batch-size", "64",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "batch_size=64 is larger than the data (50 points)" in err


def test_training_on_a_file_of_points(tmp_path, capsys):
    pts = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    np.save(tmp_path / "pts.npy", pts)
    code, _, _ = run(capsys, "train", "maf", "--data", str(tmp_path / "pts.npy"), "--steps", "5", "--batch-size", "32",
                     "--metrics-every", "5", "--n-samples", "20", "--out", str(tmp_path / "m"), "--quiet")
    assert code == 0
    report = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert "kl" not in report["final"] and "mmd" in report["final"]


def test_a_bad_file_of_points_gets_a_message_not_a_traceback(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n3,oops\n")
    code, _, err = run(capsys, "train", "realnvp", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x"))
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err


def test_a_run_on_digits_says_which_split_trains_and_writes_a_png_grid(mnist_dir, tmp_path, capsys):
    from core.images import read_png

    code, _, err = run(capsys, "train", "vae", "--data", "mnist", "--steps", "2", "--batch-size", "16",
                       "--set", "hidden=16", "--set", "iw_samples=2", "--n-samples", "10", "--out", str(tmp_path))
    assert code == 0, err
    assert "only the 10,000-digit test split is present" in err and "samples.png" in err
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert "9,000" in report["data_note"]
    assert {"nll", "bits_per_dim", "fd", "confidence", "classes"} <= set(report["final"])
    samples = np.load(tmp_path / "samples.npy")
    grid = read_png((tmp_path / "samples.png").read_bytes())
    # 10 digits of 28 x 28 in 4 columns and 3 rows, 2 px gaps and borders, drawn at twice the size
    assert samples.shape == (10, 1, 28, 28) and grid.shape == (2 * (3 * 30 + 2), 2 * (4 * 30 + 2))
    assert np.array_equal(grid[4:60:2, 4:60:2], np.round(np.clip(samples[0, 0], 0, 1) * 255).astype(np.uint8))


def test_a_points_model_asked_for_digits_is_refused_with_the_models_that_fit(mnist_dir, tmp_path, capsys):
    code, _, err = run(capsys, "train", "gmm", "--data", "mnist", "--steps", "2", "--out", str(tmp_path))
    assert code == 2 and "gmm is built for points, not images" in err and "vae" in err and "Traceback" not in err


# ---- divergence, bad paths, corrupt files and caps: one line and a non-zero exit each -------------
def one_line_refusal(code, err, needle):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_a_run_whose_loss_explodes_stops_non_zero_and_writes_its_last_good_weights(tmp_path, capsys):
    # RealNVP at lr 1 on two_moons: its loss is 7e14 at step 2 and 1e31 from step 4 on, all finite,
    # and the run used to end "done" with exit code 0
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "realnvp", "--data", "two_moons", "--lr", "1.0", "--steps", "20",
                       "--n-samples", "500", "--out", str(out), "--quiet")
    report = json.loads((out / "metrics.json").read_text())
    assert code == 3 and report["status"] == "diverged"
    assert f"error: Training stopped at step {report['steps_done'] + 1}: the loss exploded to" in err
    assert "lower learning rate" in err and str(out) in err and err.count("\n") == 1
    model, _ = checkpoint.load(out)
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert np.isfinite(np.load(out / "samples.npy")).all() and report["nonfinite_samples"] == 0


def test_an_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "taken").write_text("notes")
    code, _, err = run(capsys, "train", "realnvp", "--data", "eight_gaussians", "--out", str(tmp_path / "taken"))
    one_line_refusal(code, err, "is a file; give a folder")
    code, _, err = run(capsys, "train", "realnvp", "--data", "eight_gaussians", "--out", str(tmp_path / "taken" / "run"))
    one_line_refusal(code, err, "is a file, not a folder")


def npy_claiming(path, shape, stored_rows):
    """A .npy whose header declares `shape` (float64) but holds only stored_rows x 2 numbers."""
    from numpy.lib import format as npformat

    with open(path, "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        f.write(np.zeros((stored_rows, 2)).tobytes())
    return path


@pytest.mark.parametrize("rows,needle", [(100, "is cut short: its header declares 100 x 2 numbers"),
                                         (10**12, "more than the 200,000 points")])
def test_a_npy_whose_header_lies_is_refused_without_reading_it(rows, needle, tmp_path, capsys):
    path = npy_claiming(tmp_path / "pts.npy", (rows, 2), stored_rows=40)
    code, _, err = run(capsys, "train", "realnvp", "--data", str(path), "--out", str(tmp_path / "x"))
    one_line_refusal(code, err, needle)


@pytest.fixture
def saved(tmp_path):
    """An untrained small RealNVP saved as a run would be, and its file's bytes and metadata."""
    from safetensors import safe_open

    torch.manual_seed(0)
    model = registry.build_model("realnvp", (2,), {"layers": 2, "hidden": 8})
    file = checkpoint.save(tmp_path / "model", "realnvp", model)
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata()
    return file, meta


def rewrite(file, meta):
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(file)), str(file), metadata=meta)


@pytest.mark.parametrize("damage,needle", [
    ("truncate", "is not a readable safetensors file"),
    ("json", "its metadata's 'config' is not a JSON dict"),
    ("missing", "its metadata lacks 'data_shape'"),
    ("shape", "names a data shape of [100000000000]"),
    ("settings", "cannot be used (layers must be a whole number"),
    ("mismatch", "its weights do not fit the realnvp model"),
])
def test_weights_with_corrupt_metadata_are_refused_in_one_line(damage, needle, saved, tmp_path, capsys):
    file, meta = saved
    if damage == "truncate":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    else:
        config = json.loads(meta["config"])
        meta = {"json": {**meta, "config": "{layers: 2"},
                "missing": {k: v for k, v in meta.items() if k != "data_shape"},
                "shape": {**meta, "data_shape": "[100000000000]"},
                "settings": {**meta, "config": json.dumps({**config, "layers": "two"})},
                "mismatch": {**meta, "config": json.dumps({**config, "layers": 3})}}[damage]
        rewrite(file, meta)
    code, _, err = run(capsys, "sample", str(file.parent), "--n", "10", "--out", str(tmp_path / "s.npy"))
    one_line_refusal(code, err, needle)
    assert not (tmp_path / "s.npy").exists()


def test_sample_counts_and_seeds_are_capped(saved, mnist_free_image_model, tmp_path, capsys):
    file, _ = saved
    out = str(tmp_path / "s.npy")
    code, _, err = run(capsys, "sample", str(file.parent), "--n", "100000000000", "--out", out)
    one_line_refusal(code, err, "--n 100000000000 is out of range; it must be between 1 and 1,000,000 points")
    code, _, err = run(capsys, "sample", str(mnist_free_image_model), "--n", "20000", "--out", out)
    one_line_refusal(code, err, "between 1 and 10,000 digits")
    for seed in ("-1", str(2**64)):
        code, _, err = run(capsys, "sample", str(file.parent), "--n", "5", "--seed", seed, "--out", out)
        one_line_refusal(code, err, f"--seed {seed} is out of range")
    code, _, err = run(capsys, "sample", str(file.parent), "--n", "5", "--out", str(tmp_path))
    one_line_refusal(code, err, "is a folder; give the name of the .npy file")
    assert not (tmp_path / "s.npy").exists()


@pytest.fixture
def mnist_free_image_model(tmp_path):
    """A small image VAE saved untrained: sample's cap for digits needs no digits."""
    torch.manual_seed(0)
    model = registry.build_model("vae", (1, 28, 28), {"hidden": 8, "channels": 2})
    return checkpoint.save(tmp_path / "digits", "vae", model).parent


@pytest.mark.parametrize("argv,needle", [
    (["--metrics-every", "-1"], "--metrics-every -1 is out of range"),
    (["--n-samples", "0"], "--n-samples 0 is out of range"),
    (["--n-samples", "2000000"], "between 1 and 1,000,000 points"),
    (["--seed", "-1"], "seed=-1 is out of range"),
    (["--steps", "0"], "steps=0 is out of range"),
    (["--batch-size", "100000"], "batch_size=100000 is out of range: too large; allowed up to 65,536"),
    (["--lr", "1e400"], "lr=inf is not a finite number"),
    (["--set", "n_data=10000000"], "n_data=10000000 is out of range: too large; allowed up to 200,000"),
    (["--set", "lr=1e400"], "lr=1e400 is out of range: too large; allowed up to 1"),
])
def test_numeric_flags_out_of_range_are_refused(argv, needle, tmp_path, capsys):
    code, _, err = run(capsys, "train", "realnvp", "--data", "eight_gaussians", "--steps", "2", *argv,
                       "--out", str(tmp_path / "x"))
    one_line_refusal(code, err, needle)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv,needle", [(["--steps", "0"], "--steps 0 is out of range"),
                                         (["--quality-budget", "-5"], "--quality-budget -5 is out of range"),
                                         (["--quality-budget", "nan"], "--quality-budget nan is out of range")])
def test_bench_flags_out_of_range_are_refused(argv, needle, capsys):
    code, _, err = run(capsys, "bench", "--models", "realnvp", *argv)
    one_line_refusal(code, err, needle)


def test_samples_that_are_not_finite_are_said_to_be(saved, tmp_path, capsys):
    file, _ = saved
    model, _ = checkpoint.load(file.parent)
    with torch.no_grad():
        next(p for p in model.parameters() if p.dim() == 2).fill_(float("nan"))  # a spoilt sampler
    checkpoint.save(file, "realnvp", model)
    code, _, err = run(capsys, "sample", str(file.parent), "--n", "50", "--out", str(tmp_path / "s.npy"))
    assert code == 0 and "warning: 50 of 50 samples" in err and "hold NaN or inf" in err
    assert np.isnan(np.load(tmp_path / "s.npy")).any(axis=1).all()  # written as they are


def test_logprob_of_images_of_the_wrong_size_is_refused(mnist_free_image_model, tmp_path, capsys):
    np.save(tmp_path / "d.npy", np.zeros((3, 27, 28), np.float32))
    code, _, err = run(capsys, "logprob", str(mnist_free_image_model), "--points", str(tmp_path / "d.npy"),
                       "--out", str(tmp_path / "lp.npy"))
    one_line_refusal(code, err, "not a whole number of 1 x 28 x 28 images")


def test_the_help_names_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "3    train: the loss diverged" in out and "last good step" in out
