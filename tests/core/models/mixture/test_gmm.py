"""gmm: EM never lowers its objective, recovers a known mixture, a normalised density,
the E step's responsibilities, sampling, the trainer's update phase and the command line."""

import math

import numpy as np
import pytest
import torch

from core import checkpoint, registry
from core.cli import main
from core.config import TrainConfig, make
from core.data.toy2d import plane_grid
from core.errors import ConfigError
from core.models.mixture import GMM, GMMConfig, kmeans_plus_plus
from core.train import Trainer
from tests.fakes import Gauss2D

F64 = torch.float64

# a known mixture: three full-covariance components of unequal weights
W = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
MU = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=F64)
SIGMA = torch.tensor([[[0.6, 0.3], [0.3, 0.4]], [[0.3, -0.2], [-0.2, 0.5]], [[0.2, 0.0], [0.0, 0.8]]], dtype=F64)


def known_sample(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.multinomial(W, n, replacement=True, generator=g)
    eps = torch.randn(n, 2, generator=g, dtype=F64)
    return MU[k] + (torch.linalg.cholesky(SIGMA)[k] @ eps[..., None])[..., 0]


def fitted(x, steps, seed=0, **overrides):
    torch.manual_seed(seed)
    model = GMM((x.shape[1],), make(GMMConfig, overrides))
    model.init_from_data(x)
    terms = [model.em_step() for _ in range(steps)]
    return model, {k: torch.stack([t[k] for t in terms]) for k in terms[0]}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_em_never_lowers_its_objective(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([known_sample(600, seed), 4 * torch.rand(100, 2, generator=g, dtype=F64) - 2])  # and clutter
    model, terms = fitted(x, 80, seed, K=6, init="random" if seed % 2 else "kmeans++")
    J = terms["objective"]
    assert (J[1:] - J[:-1] >= -1e-12).all(), (J[1:] - J[:-1]).min()
    assert J[-1] > J[0] + 1e-3  # it climbs
    torch.testing.assert_close(terms["loss"], -J)
    # the reported log-likelihood is that of the parameters after the step, and J = ll - penalty
    torch.testing.assert_close(terms["log_likelihood"][-1], model.log_prob(x).mean())
    torch.testing.assert_close(J[-1], terms["log_likelihood"][-1] - model.penalty())
    # with a negligible regulariser the log-likelihood itself never falls
    _, terms = fitted(x, 80, seed, K=6, reg=1e-10)
    ll = terms["log_likelihood"]
    assert (ll[1:] - ll[:-1] >= -1e-10).all(), (ll[1:] - ll[:-1]).min()


def test_em_recovers_a_known_mixture():
    x = known_sample(10_000, 5)
    model, _ = fitted(x, 60, K=3, reg=1e-6)
    order = torch.cdist(MU, model.means).argmin(1)  # the fitted component nearest each true mean
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(model.weights[order], W, atol=0.015, rtol=0)
    torch.testing.assert_close(model.means[order], MU, atol=0.04, rtol=0)
    torch.testing.assert_close(model.covariances[order], SIGMA, atol=0.04, rtol=0)
    # and the fit's log-likelihood reaches the true mixture's on the same points
    true_ll = torch.logsumexp(W.log() + torch.distributions.MultivariateNormal(MU, SIGMA).log_prob(x[:, None]), 1)
    assert model.log_prob(x).mean() >= true_ll.mean()


def test_log_prob_integrates_to_one_and_is_the_mixture_density():
    model, _ = fitted(known_sample(2000, 1), 20, K=4)
    grid, xs, _ = plane_grid(((-9, 9), (-9, 9)), 361, F64)
    mass = model.log_prob(grid).exp().sum().item() * (xs[1] - xs[0]).item() ** 2
    assert abs(mass - 1) < 1e-3
    x = torch.randn(30, 2, dtype=F64) * 2
    components = torch.distributions.MultivariateNormal(model.means, model.covariances)
    expected = torch.logsumexp(model.weights.log() + components.log_prob(x[:, None]), 1)
    torch.testing.assert_close(model.log_prob(x), expected)
    assert model.log_prob(x.float()).dtype == torch.float32


def test_responsibilities_are_bayes_rule_and_sum_to_one():
    model, _ = fitted(known_sample(2000, 2), 10, K=3)
    x = torch.randn(50, 2, dtype=F64) * 3
    r = model.responsibilities(x)
    torch.testing.assert_close(r.sum(1), torch.ones(50, dtype=F64))
    joint = model.weights * torch.distributions.MultivariateNormal(model.means, model.covariances).log_prob(x[:, None]).exp()
    torch.testing.assert_close(r, joint / joint.sum(1, keepdim=True))


def test_samples_have_the_mixtures_moments():
    model, _ = fitted(known_sample(3000, 3), 30, K=3)
    n = 200_000
    s = model.sample(n, torch.Generator().manual_seed(0)).double()
    w, mu, cov = model.weights, model.means, model.covariances
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    torch.testing.assert_close(s.mean(0), mean, atol=0.015, rtol=0)
    torch.testing.assert_close(torch.cov(s.T), second - torch.outer(mean, mean), atol=0.03, rtol=0)


def test_kmeans_plus_plus_picks_distinct_data_points_one_per_cluster():
    x = torch.cat([torch.randn(200, 2, dtype=F64) * 0.05 + torch.tensor(c, dtype=F64)
                   for c in ([-5, 0], [5, 0], [0, 5], [0, -5])])
    torch.manual_seed(0)
    centres = kmeans_plus_plus(x, 4)
    assert all(((x - c).abs().sum(1) == 0).any() for c in centres)  # data points
    clusters = {int(i) for i in torch.cdist(centres, x[::200]).argmin(1)}
    assert clusters == {0, 1, 2, 3}


def test_the_trainer_runs_em_as_an_update_phase_and_the_history_reaches_the_view():
    data = Gauss2D()
    torch.manual_seed(0)
    model = registry.build_model("gmm", (2,), {"K": 2})
    assert [p.is_gradient for p in model.phases(1e-3)] == [False] and not list(model.parameters())
    trainer = Trainer(model, data, make(TrainConfig, {"steps": 12, "batch_size": 500, "n_data": 1000}), "cpu",
                      n_reference=100, n_eval=100)
    trainer.fit(12, log_every=4)
    assert int(model.em_steps) == 12 and model.em_data.shape == (500, 2)
    tr = trainer.snapshot(with_metrics=False, n=40)["traces"]
    assert tr["ll_steps"].tolist() == list(range(1, 13))
    assert (np.diff(tr["ll_history"]) >= -1e-9).all()
    assert tr["ll_history"][-1] == pytest.approx(model.log_prob(model.em_data).mean().item())
    assert tr["responsibilities"].shape == (40, 2) and tr["log_density"].shape == (3600,)
    np.testing.assert_allclose(tr["responsibilities"].sum(1), 1, atol=1e-6)
    # a log record holds the mean of its interval's steps, 9 to 12
    assert trainer.history[-1]["log_likelihood"] == pytest.approx(float(tr["ll_history"][-4:].mean()))
    # the data are one Gaussian N((1, 1), 0.25 I): two components together fit its moments
    w, mu = model.weights, model.means
    mean = (w[:, None] * mu).sum(0)
    torch.testing.assert_close(mean, model.em_data.mean(0))


def test_images_and_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="gmm is built for points, not images"):
        registry.build_model("gmm", (1, 8, 8))
    for bad, needle in [({"K": 0}, "K=0 is out of range"), ({"init": "kmeans"}, "init='kmeans' is not allowed"),
                        ({"reg": -1.0}, "reg=-1.0 is out of range")]:
        with pytest.raises(ConfigError, match=needle):
            registry.build_model("gmm", (2,), bad)
    spec = registry.model_spec("gmm")
    assert spec.family == "mixture" and spec.quality.metric == "kl" and GMM.data_kinds == ("points",)


def test_command_line_train_sample_and_logprob(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "gmm", "--data", "eight_gaussians", "--steps", "15", "--batch-size", "1000",
                 "--set", "n_data=2000", "--metrics-every", "15", "--n-samples", "200",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    model, meta = checkpoint.load(out)
    assert meta["model"] == "gmm" and int(model.em_steps) == 15
    assert (model.ll_history[-15:] < 0).all() and (model.ll_history[:-15] == 0).all()  # the steps' values kept
    assert main(["sample", str(out), "--n", "60", "--out", str(tmp_path / "s.npy"), "--seed", "1"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (60, 2) and np.isfinite(s).all()
    pts = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32) * 2
    np.save(tmp_path / "p.npy", pts)
    assert main(["logprob", str(out), "--points", str(tmp_path / "p.npy"), "--out", str(tmp_path / "lp.npy")]) == 0
    with torch.no_grad():
        expect = model.log_prob(torch.from_numpy(pts).double()).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "lp.npy"), expect, rtol=1e-5, atol=1e-5)
    assert math.isfinite(expect.sum())


def test_em_goes_on_from_loaded_weights_on_the_first_batch_it_is_given(tmp_path):
    x = known_sample(1500, 4)
    model, terms = fitted(x, 10, K=3)
    checkpoint.save(tmp_path, "gmm", model)
    loaded, _ = checkpoint.load(tmp_path)
    assert loaded.em_data.shape[0] == 0 and int(loaded.em_steps) == 10
    torch.testing.assert_close(loaded.means, model.means)
    (phase,) = loaded.phases(1e-3)
    out = phase.update(x.float())
    assert out["objective"] >= terms["objective"][-1] - 1e-6  # one more step from where it stopped, not a restart
    assert int(loaded.em_steps) == 11 and loaded.em_data.shape == (1500, 2)
