"""What a combination costs before it trains (core.train.budget.estimate), and the digit judge
trained from inside a metric evaluation."""

import pytest
import torch

from core.train import budget


@pytest.fixture
def fixed_rates(monkeypatch):
    """Work priced at fixed rates, so that estimates depend on the work counted alone."""
    budget.machine_rates.cache_clear()
    monkeypatch.setattr(budget, "machine_rates", lambda: (1e9, 1e-5))


def test_the_estimate_grows_with_the_batch_and_the_layers(fixed_rates):
    small = budget.estimate("realnvp", "two_moons", {"batch_size": 64, "layers": 2, "hidden": 16})
    big_batch = budget.estimate("realnvp", "two_moons", {"batch_size": 1024, "layers": 2, "hidden": 16})
    deep = budget.estimate("realnvp", "two_moons", {"batch_size": 64, "layers": 8, "hidden": 16})
    assert small["fits"] and not small["slow"] and small["message"] == ""
    assert big_batch["step"] > small["step"]
    assert deep["step"] > small["step"] and deep["picture"] > small["picture"]
    assert small["metrics_every"] >= budget.METRICS_EVERY and 1 <= small["metric_samples"] <= 1000


def test_a_combination_too_slow_to_watch_says_so_with_an_estimate(fixed_rates):
    slow = budget.estimate("realnvp", "two_moons", {"batch_size": 4096, "layers": 16, "hidden": 1024})
    assert slow["slow"] and "too slow to watch" in slow["message"] and "training step" in slow["message"]
    assert "s" in slow["message"] and "Try" in slow["message"]


def test_a_model_not_built_for_the_data_is_refused_with_its_reason(fixed_rates):
    out = budget.estimate("iaf", "mnist")
    assert not out["fits"] and "built for points" in out["message"]


def test_the_digit_classifier_trains_from_inside_a_no_grad_evaluation():
    """The first evaluation on digits (under no_grad) may be the one to train the judge."""
    from core.classifier import train_classifier

    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    with torch.no_grad():
        net = train_classifier(images, labels, images[:16], labels[:16], epochs=1)
    assert 0.0 <= net.accuracy <= 1.0
