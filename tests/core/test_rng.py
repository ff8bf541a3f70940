"""core.rng.manual_seed: the generators torch.manual_seed seeds, in the same state, and no
traceback of its caller formatted where no accelerator is used."""

import traceback

import pytest
import torch

from core.rng import manual_seed


def test_it_seeds_the_generator_torch_manual_seed_seeds():
    torch.manual_seed(123)
    expected = torch.rand(5), torch.randn(3, generator=None), torch.randint(0, 100, (4,))
    torch.manual_seed(7)  # something else in between
    manual_seed(123)
    got = torch.rand(5), torch.randn(3, generator=None), torch.randint(0, 100, (4,))
    for e, g in zip(expected, got):
        assert torch.equal(e, g)
    assert manual_seed(5) is torch.random.default_generator and torch.initial_seed() == 5


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(),
                    reason="with an accelerator, its generators are seeded as torch.manual_seed seeds them")
def test_without_an_accelerator_it_formats_no_traceback(monkeypatch):
    """torch.manual_seed queues CUDA's seeding with traceback.format_stack() of the caller even where
    CUDA will never start; a request thread of the server paid for reading every frame's source."""
    def refuse(*args, **kwargs):
        raise AssertionError("a traceback was formatted to seed generators that are not there")

    monkeypatch.setattr(traceback, "format_stack", refuse)
    manual_seed(11)
    assert torch.initial_seed() == 11
    with pytest.raises(AssertionError, match="a traceback was formatted"):
        torch.manual_seed(11)  # what it replaces does: the cost it avoids is real
