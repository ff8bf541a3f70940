"""Every registered model, trained briefly with a fixed seed, clearly improves.

Flows (exact density) are judged by KL(p_data || q); every other family by the
sample MMD to the data, both against their value at initialisation. Models built
for digits only are trained on real digits in their own tests.
"""

import pytest
import torch

from core import registry
from core.train import Trainer

STEPS = {"flow": 300, "vae": 400, "gan": 400, "diffusion": 400}  # every other family: 300
BATCH = 128  # smaller than the registered defaults: this checks direction, not final quality


@pytest.mark.parametrize("name", registry.models_for("points"))
def test_short_training_lowers_kl_or_mmd(name):
    data = registry.load_dataset("eight_gaussians")
    spec = registry.model_spec(name)
    torch.manual_seed(0)
    model = registry.build_model(name, data.shape)
    # A budget of optimiser passes: a critic with n_critic = 5 takes 6 per step.
    passes = sum(p.repeats for p in model.phases(1e-3))
    steps = max(STEPS.get(spec.family, 300) * len(model.phases(1e-3)) // passes, 100)
    # EM fits one fixed batch: a small one would only show it fitting 128 points
    em_only = not any(p.is_gradient for p in model.phases(1e-3))
    batch = registry.train_config(name).batch_size if em_only else BATCH
    cfg = registry.train_config(name, {"steps": steps, "seed": 0, "n_data": 5000, "batch_size": batch})
    t = Trainer(model, data, cfg, device="cpu", n_reference=1000, n_eval=1000)
    exact = model.has_log_prob and model.log_prob_is_exact
    key = "kl" if exact else "mmd"
    before = t.evaluate(with_kl=exact)[key]
    t.fit(steps, log_every=50)
    after = t.evaluate(with_kl=exact)[key]
    assert after < 0.6 * before, f"{name}: {key} {before:.4f} -> {after:.4f}"
