"""The exact assignment behind minibatch OT: optimal against brute force, and a true permutation."""

import itertools

import numpy as np
import pytest
import torch

from core.models.continuous import linear_sum_assignment, ot_pairing


def brute_force(cost: np.ndarray) -> float:
    n = cost.shape[0]
    return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n)))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_assignment_is_optimal_on_small_cases(n):
    rng = np.random.default_rng(n)
    for kind in ("normal", "integers", "squared distances"):
        for _ in range(15):
            if kind == "normal":
                cost = rng.normal(size=(n, n))
            elif kind == "integers":  # many ties
                cost = rng.integers(0, 3, size=(n, n)).astype(float)
            else:
                a, b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
                cost = ((a[:, None] - b[None]) ** 2).sum(-1)
            sigma = linear_sum_assignment(cost)
            assert sorted(sigma.tolist()) == list(range(n))
            assert cost[np.arange(n), sigma].sum() == pytest.approx(brute_force(cost), abs=1e-9)


def test_a_known_assignment_is_recovered():
    # A permuted diagonal of zeros among ones: the optimum is that permutation and costs 0.
    perm = np.array([3, 0, 4, 1, 2])
    cost = np.ones((5, 5))
    cost[np.arange(5), perm] = 0.0
    np.testing.assert_array_equal(linear_sum_assignment(cost), perm)


def test_bad_costs_are_refused():
    with pytest.raises(ValueError, match="square"):
        linear_sum_assignment(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[0.0, np.inf], [1.0, 0.0]]))


def test_ot_pairing_permutes_the_noise_and_lowers_the_transport_cost():
    g = torch.Generator().manual_seed(0)
    x_0 = torch.randn(64, 2, generator=g) + torch.tensor([4.0, 0.0])
    x_1 = torch.randn(64, 2, generator=g)
    paired = ot_pairing(x_0, x_1)
    # the same points, reordered
    assert torch.equal(torch.sort(paired[:, 0]).values, torch.sort(x_1[:, 0]).values)
    cost = torch.cdist(x_0.double(), x_1.double()) ** 2
    sigma = torch.from_numpy(linear_sum_assignment(cost.numpy()))
    assert torch.equal(paired, x_1[sigma])
    # no pairing does better than the optimum: try the identity and random permutations
    best = float(((x_0 - paired) ** 2).sum())
    for _ in range(50):
        other = x_1[torch.randperm(64, generator=g)]
        assert best <= float(((x_0 - other) ** 2).sum()) + 1e-6
    # 2-opt: swapping any two partners cannot lower the cost either
    d = ((x_0[:, None] - paired[None]) ** 2).sum(-1).double()  # d[i, j] = |x_0^i - x_1^(sigma j)|^2
    diag = d.diagonal()
    assert bool((diag[:, None] + diag[None, :] <= d + d.T + 1e-9).all())
