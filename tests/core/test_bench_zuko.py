"""The side-by-side benchmark against zuko: its KL is the exact one, and a short run fills its tables."""

from __future__ import annotations

import math

import pytest
import torch

from core import registry
from core.bench_zuko import kl_exact, train_side_by_side


def test_kl_exact_is_zero_for_the_data_density_and_the_gaussian_kl_otherwise():
    dataset = registry.load_dataset("eight_gaussians")
    x = dataset.sample(4000, torch.Generator().manual_seed(0))
    log_p = dataset.log_prob(x.double())
    assert abs(kl_exact(lambda v: dataset.log_prob(v.double()).float(), x, log_p)) < 1e-5

    # N(0, I) data against N(0, s^2 I): KL = 2 [log s + 1/(2 s^2) - 1/2] per point, estimated from samples
    s = 2.0
    g = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    log_n = -0.5 * (g**2).sum(1) - math.log(2 * math.pi)
    log_q = lambda v: (-0.5 * (v.double() ** 2).sum(1) / s**2 - math.log(2 * math.pi * s**2)).float()
    expected = 2 * (math.log(s) + 1 / (2 * s**2) - 0.5)
    assert kl_exact(log_q, g.float(), log_n) == pytest.approx(expected, abs=0.01)


def test_a_short_side_by_side_run_trains_every_flow_on_the_same_batches():
    pytest.importorskip("zuko")
    from core.bench_zuko import contenders

    dataset = registry.load_dataset("two_moons")
    data = dataset.training_set(2000, 0)
    x_held = dataset.sample(500, torch.Generator().manual_seed(5))
    held_out = (x_held, dataset.log_prob(x_held.double()))
    flows = contenders(0, torch.device("cpu"))
    before = {label: [p.detach().clone() for p in m.parameters()] for label, (m, _, _) in flows.items()}
    rates, kls = train_side_by_side(flows, data, steps=6, rounds=3, seed=0, held_out=held_out, kl_at=(2,))
    assert set(rates) == set(flows) == {"nsf", "zuko NSF", "realnvp", "zuko RealNVP"}
    for label, (module, _, _) in flows.items():
        assert len(rates[label]) == 3 and all(r > 0 for r in rates[label])
        assert set(kls[label]) == {2, 6} and all(math.isfinite(v) for v in kls[label].values())
        assert any(not torch.equal(a, b) for a, b in zip(before[label], module.parameters())), label


def test_the_continuous_case_trains_cnf_and_flow_matching_beside_one_zuko_cnf():
    pytest.importorskip("zuko")
    from core.bench_zuko import CONTINUOUS_PAIRS, contenders

    dataset = registry.load_dataset("eight_gaussians")
    data = dataset.training_set(1000, 0)
    x_held = dataset.sample(100, torch.Generator().manual_seed(5))
    held_out = (x_held, dataset.log_prob(x_held.double()))
    small = {"hidden": 16, "log_prob_steps": 4}
    flows = contenders(0, torch.device("cpu"), {"cnf": {**small, "train_steps": 2}, "flow_matching": small},
                       CONTINUOUS_PAIRS)
    assert set(flows) == {"cnf", "flow_matching", "zuko CNF"}
    before = {label: [p.detach().clone() for p in m.parameters()] for label, (m, _, _) in flows.items()}
    # what each trains on: the CNF's loss is its -log p (plus its kinetic penalty), flow matching's its regression
    x = data[:64]
    cnf, log_prob, loss = flows["cnf"]
    torch.manual_seed(0)
    expected = cnf.loss(x)["loss"]
    torch.manual_seed(0)
    assert torch.allclose(loss(x), expected)
    rates, kls = train_side_by_side(flows, data, steps=2, rounds=2, seed=0, held_out=held_out, kl_at=(1,))
    for label, (module, _, _) in flows.items():
        assert len(rates[label]) == 2 and all(r > 0 for r in rates[label])
        assert set(kls[label]) == {1, 2} and all(math.isfinite(v) for v in kls[label].values())
        assert any(not torch.equal(a, b) for a, b in zip(before[label], module.parameters())), label
