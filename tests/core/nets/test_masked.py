"""MADE's autoregressive property, checked directly: backpropagate from each output and see
which inputs it depends on (as pytorch-made does)."""

import pytest
import torch

from core.nets import MADE

DTYPE = torch.float64


@pytest.mark.parametrize("dim,hidden,depth", [(5, 32, 2), (6, 24, 3), (3, 8, 1)])
def test_made_outputs_depend_only_on_inputs_of_lower_degree(dim, hidden, depth):
    torch.manual_seed(dim)
    order = torch.randperm(dim)
    made = MADE(dim, params_per_dim=2, hidden=hidden, depth=depth, order=order).to(DTYPE)
    with torch.no_grad():
        for p in made.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(32, dim, dtype=DTYPE, requires_grad=True)
    theta = made(x)  # (n, dim, 2)
    for i in range(dim):
        for p in range(2):
            (grad,) = torch.autograd.grad(theta[:, i, p].sum(), x, retain_graph=True)
            depends_on = set(torch.nonzero(grad.abs().sum(0) > 0)[:, 0].tolist())
            assert depends_on == {j for j in range(dim) if order[j] < order[i]}
