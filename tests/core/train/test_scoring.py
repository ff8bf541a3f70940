"""Scoring: the reference's own terms and the noise floors are computed once per process and data."""

import torch

from core import metrics as M
from core import registry
from core.train.scoring import Scoring


def test_runs_on_the_same_data_and_seed_share_reference_terms_and_floors(monkeypatch):
    calls = []
    real = M.noise_floor
    monkeypatch.setattr(M, "noise_floor", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    data = registry.load_dataset("two_moons")
    a, b = Scoring(data, 300, 200, seed=11), Scoring(registry.load_dataset("two_moons"), 300, 200, seed=11)
    assert torch.equal(a.reference, b.reference)
    assert a.ref_terms is b.ref_terms
    assert a.floors() is b.floors() and calls == [200]  # the second run paid for neither
    # and what is shared is what each would have computed on its own
    fresh = M.reference_terms(a.reference)
    assert fresh["k_yy"] == a.ref_terms["k_yy"] and fresh["e_yy"] == a.ref_terms["e_yy"]
    assert a.floors() == real(data, a.reference, 200, 11 + 4, ref_terms=fresh)


def test_other_seeds_and_other_data_have_references_of_their_own():
    moons = registry.load_dataset("two_moons")
    a = Scoring(moons, 300, 200, seed=21)
    other_seed = Scoring(moons, 300, 200, seed=22)
    other_data = Scoring(registry.load_dataset("eight_gaussians"), 300, 200, seed=21)
    for other in (other_seed, other_data):
        assert not torch.equal(a.reference, other.reference)
        assert a.ref_terms is not other.ref_terms and a.floors() is not other.floors()
