"""A picture of an autoregressive flow on digits does bounded work: its sequential direction
(MAF's sampling, IAF's density: D passes a layer) is traced on a few points, not on 500."""

import pytest
import torch

from core.models.flows.base import TRACE_WORK
from core.models.flows.recipes import IAF, MAF, FlowConfig
from core.nets import MADE
from core.train.scoring import traced


class _Digits:
    shape, bounds = (1, 28, 28), None


@pytest.mark.parametrize("cls", [MAF, IAF])
def test_the_first_picture_of_maf_and_iaf_on_digits_is_bounded_work(cls):
    torch.manual_seed(0)
    flow = cls((1, 28, 28), FlowConfig(layers=2, hidden=8, depth=1))
    rows = [0]  # rows pushed through a MADE, summed over its passes
    for m in flow.modules():
        if isinstance(m, MADE):
            m.register_forward_pre_hook(lambda mod, args: rows.__setitem__(0, rows[0] + args[0].shape[0]))
    x = torch.rand(500, 1, 28, 28)
    tr = traced(flow, _Digits(), x, {}, seed=0)
    sequential = 2 * 784  # passes of the slow direction through both layers
    assert rows[0] <= 2 * TRACE_WORK + 500 * 2, rows[0]  # 500 x 1,568 = 784,000 before
    L = 2
    assert tr["forward_states"].shape[0] == tr["inverse_states"].shape[0] == L + 1
    slow, fast = ("inverse_states", "forward_states") if cls is MAF else ("forward_states", "inverse_states")
    assert tr[fast].shape[1] == 500 and 1 <= tr[slow].shape[1] <= TRACE_WORK // sequential
    assert flow.passes("forward" if cls is IAF else "inverse") == sequential


def test_points_keep_every_point_in_both_directions():
    flow = IAF((2,), FlowConfig(layers=4, hidden=8))
    tr = traced(flow, type("P", (), {"shape": (2,), "bounds": None})(), torch.randn(500, 2), {}, seed=0)
    assert tr["forward_states"].shape[1] == tr["inverse_states"].shape[1] == 500
