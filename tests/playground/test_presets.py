"""Every preset shows what its text promises, at a pace a class can follow.

Each preset is trained headless exactly as the page trains it: the controls' values with the
preset's settings (controls.settings_from), the model built after seeding, the same Trainer and
so the same metrics (core.train.Trainer.evaluate, what the page's chart draws). The test trains
the first stretch of the run that the text names, not a smaller stand-in: the page's run and
this one are the same steps from the same seed. Pace only slows the page's run (its steps wait,
the trajectory does not change), so headless training runs them at full speed.
"""

import pytest
import torch

from core import metrics as M
from core import registry
from core.train import Trainer
from playground import controls as K
from playground import presets as P
from playground.app.handlers import SPEEDS
from tests.playground.tiny import knob_values

WATCHABLE_S = 60  # a preset lasts at least this long at its pace: a class sees it happen


def trainer_for(run: dict) -> Trainer:
    """The Trainer a preset's run (the preset, or one of its runs) trains with on the page."""
    model_s, train_s = K.settings_from(run["model"], knob_values(run["model"], **run["settings"]))
    train_s["pace"] = 0.0  # full speed here; see the module's docstring
    dataset = registry.load_dataset(run["dataset"])
    cfg = registry.train_config(run["model"], train_s, registry.data_kind(dataset.shape))
    torch.manual_seed(cfg.seed)  # as a Run builds its model
    model = registry.build_model(run["model"], dataset.shape, model_s)
    return Trainer(model, dataset, cfg, device="cpu")


def trained(run: dict, steps: int, every: int, samples: list | None = None) -> Trainer:
    """The first `steps` of a preset's run, its metrics evaluated every `every` steps; with a list
    `samples`, also 1,000 samples of the model at every evaluation, drawn off the training RNG."""
    trainer = trainer_for(run)

    def keep(rec: dict) -> None:
        if samples is not None and rec["step"] % every == 0:
            with torch.random.fork_rng():
                torch.manual_seed(rec["step"])
                samples.append(trainer.model.sample(1000).detach().cpu())

    trainer.fit(steps, log_every=every, metrics_every=every, on_log=keep)
    assert trainer.status == "done" and trainer.step_count == steps
    return trainer


def covered_modes(samples: torch.Tensor, dataset) -> set[int]:
    """Which modes metrics.mode_stats counts as covered (its rule, mode by mode)."""
    x, mu = samples.double(), dataset.modes.double()
    d = torch.cdist(x, mu)
    d_min, nearest = d.min(1)
    counts = torch.bincount(nearest[d_min <= 3 * dataset.mode_std], minlength=len(mu))
    covered = {int(k) for k in torch.nonzero(counts >= max(1.0, M.COVERAGE_FRACTION * len(x) / len(mu)))}
    assert len(covered) == M.mode_stats(samples, dataset.modes, dataset.mode_std)["modes_covered"]
    return covered


def test_every_preset_lasts_long_enough_to_watch_at_its_pace():
    for p in P.PRESETS:
        for run in p.get("runs", [p]):
            pace, steps = run["settings"].get("pace", 0), run["settings"]["steps"]
            assert pace > 0 and pace in {v for _, v in SPEEDS}, (p["slug"], pace)  # one the speed menu names
            assert steps / pace >= WATCHABLE_S, (p["slug"], steps, pace)


def test_gan_collapse_stays_on_a_handful_of_modes_for_hundreds_of_steps():
    p = P.find("gan-collapse")
    samples: list = []
    trainer = trained(p, 1000, 100, samples)
    modes = [r["modes_covered"] for r in trainer.metric_history]
    assert len(modes) == 10 and all(r["n_modes"] == 25 for r in trainer.metric_history)
    assert max(modes) <= 6, modes  # "a handful of the 25" at every evaluation, steps 100 to 1,000
    # and it hops: between evaluations it leaves modes it held and lands on others, and over the
    # stretch it visits more of them than it holds at any one time
    dataset = trainer.dataset
    held = [covered_modes(x, dataset) for x in samples]
    assert max(len(h) for h in held) <= 6
    left = sum(bool(a - b) for a, b in zip(held, held[1:]))
    assert left >= 3, held
    assert len(set().union(*held)) > max(len(h) for h in held) + 2, held


@pytest.fixture(scope="module")
def wgan_gp() -> Trainer:
    """The WGAN-GP preset's first 500 steps (also the second run of likelihood-vs-quality)."""
    return trained(P.find("wgan-gp"), 500, 50)


def test_wgan_gp_reaches_every_mode_and_keeps_them(wgan_gp):
    modes = [r["modes_covered"] for r in wgan_gp.metric_history]
    assert all(r["n_modes"] == 8 for r in wgan_gp.metric_history)
    first = next(i for i, m in enumerate(modes) if m == 8)
    assert (first + 1) * 50 <= 400, modes  # 8 of 8 "by about step 350"
    assert all(m == 8 for m in modes[first:]), modes  # and it keeps them


def test_the_flow_pulls_the_moons_back_to_a_gaussian_as_its_kl_falls():
    p = P.find("flow-moons")
    trainer = trainer_for(p)
    start = trainer.evaluate()["kl"]
    trainer.fit(400, log_every=100, metrics_every=100)
    kls = [r["kl"] for r in trainer.metric_history]
    assert kls[-1] < 0.25 * start and kls[-1] < kls[0], (start, kls)
    # the data pulled back through every layer: N(0, I) by mean and covariance
    z = trainer.model.layer_states(trainer.data[:4000])[-1].double()
    assert z.mean(0).abs().max() < 0.15
    assert (torch.cov(z.T) - torch.eye(2, dtype=z.dtype)).abs().max() < 0.25


def test_raising_beta_while_the_vae_trains_crowds_its_codes_toward_the_prior_then_collapses_them():
    p = P.find("vae-latent")
    assert p["settings"]["latent"] == 2
    trainer = trainer_for(p)
    x = trainer.data[:2000]

    def state() -> dict:
        with torch.random.fork_rng():  # looking must not change the run (z ~ q(z|x) draws noise)
            terms = trainer.model.elbo_terms(x)
        mu, var = trainer.model.encode(x)
        blur = (trainer.model.decode_mean(mu) - x).pow(2).sum(1).mean()  # error of the reconstructions
        return {"kl": float(terms["kl"].mean()), "blur": float(blur), "mu2": float(mu.pow(2).sum(1).mean()),
                "var": float(var.mean())}

    trainer.fit(1000, log_every=100)
    before = state()
    trainer.set_live("beta", 2.0)  # the live knob the text asks for
    trainer.fit(500, log_every=100)
    crowded = state()
    assert 0.3 * before["kl"] < crowded["kl"] < 0.8 * before["kl"], (before, crowded)  # pulled toward N(0, I)
    assert crowded["var"] > before["var"] and crowded["mu2"] < before["mu2"], (before, crowded)
    assert crowded["blur"] > 1.2 * before["blur"], (before, crowded)
    trainer.set_live("beta", 4.0)
    trainer.fit(400, log_every=100)
    collapsed = state()  # every code N(0, I), every reconstruction the data's mean
    assert collapsed["kl"] < 0.1 and collapsed["mu2"] < 0.2 and collapsed["var"] > 0.9, collapsed
    spread = (x - x.mean(0)).pow(2).sum(1).mean()
    assert collapsed["blur"] > 0.8 * float(spread), (collapsed, float(spread))


def _beyond_affine(field: torch.Tensor, grid: torch.Tensor) -> float:
    """The share of a field's variance over the grid that no affine map of x explains. The score of a
    Gaussian is affine, so a field near pure noise leaves almost none; near the data, the fine
    structure of the roll leaves much."""
    f, a = field.double(), torch.cat([grid.double(), torch.ones(len(grid), 1, dtype=torch.float64)], 1)
    residual = f - a @ torch.linalg.lstsq(a, f).solution
    return float(residual.pow(2).sum() / (f - f.mean(0)).pow(2).sum())


def test_diffusion_samples_reach_the_roll_and_its_field_is_smooth_near_noise_and_fine_near_data():
    from core.data.toy2d import plane_grid

    p = P.find("diffusion-trajectories")
    trainer = trainer_for(p)
    start = trainer.evaluate()["mmd"]
    floor = trainer.floors()["mmd"]
    trainer.fit(1000, log_every=500, metrics_every=500)
    end = trainer.metric_history[-1]["mmd"]
    assert end < 0.1 * start and end < 10 * floor, (start, end, floor)
    model = trainer.final_model()
    grid = plane_grid(trainer.dataset.bounds, 40, torch.float32)[0]
    near_noise, near_data = (_beyond_affine(torch.as_tensor(model.fields(grid, t)["eps_field"]), grid)
                             for t in (0.9, 0.05))
    assert near_noise < 0.02 and near_data > 10 * near_noise, (near_noise, near_data)


def test_likelihood_versus_quality_only_the_flow_has_a_kl_and_both_cover_every_mode(wgan_gp):
    p = P.find("likelihood-vs-quality")
    flow_run, gan_run = p["runs"]
    assert (p["model"], p["dataset"], p["settings"]) == (flow_run["model"], flow_run["dataset"], flow_run["settings"])
    assert gan_run["settings"] == P.find("wgan-gp")["settings"]  # the GAN is the WGAN-GP preset's run
    flow = trained(flow_run, 500, 500).metric_history[-1]
    gan = wgan_gp.metric_history[-1]
    assert "kl" in flow and "kl" not in gan
    assert flow["modes_covered"] == gan["modes_covered"] == 8
    assert flow["mmd"] < gan["mmd"] < 10 * flow["mmd"], (flow, gan)  # "a few times further" by MMD
