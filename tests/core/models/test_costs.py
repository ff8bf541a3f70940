"""What a person may type is bounded: every numeric setting of every registered model, and of
its training, has a finite range that holds its default, and a value past the top is refused
with that top; so no size, count or number of steps can make one training step or one
metric evaluation run without end."""

import math

import pytest

from core import registry
from core.config import describe
from core.errors import ConfigError


def numeric_settings(cfg):
    for field, meta in describe(cfg).items():
        value = getattr(cfg, field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and meta.get("choices") is None:
            yield field, value, meta


@pytest.mark.parametrize("name", registry.model_names())
def test_every_size_and_count_has_a_finite_cap_that_is_refused_past(name):
    kinds = registry.model_spec(name).cls.data_kinds
    settings = [("model", f, v, m) for f, v, m in numeric_settings(registry.model_config(name))]
    settings += [("train", f, v, m) for kind in kinds for f, v, m in numeric_settings(registry.train_config(name, kind=kind))]
    assert settings
    for scope, field, default, meta in settings:
        lo, hi = meta.get("lo"), meta.get("hi")
        assert hi is not None and math.isfinite(hi), f"{name}: {field} has no finite upper bound"
        assert lo is not None and lo <= default <= hi, f"{name}: {field}'s default {default} is outside {lo}..{hi}"
        past = hi + 1 if isinstance(default, int) else hi * 2 + 1
        build = registry.model_config if scope == "model" else registry.train_config
        with pytest.raises(ConfigError, match=f"{field}=.* is out of range: too large; allowed up to"):
            build(name, {field: past})
