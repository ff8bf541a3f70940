import pytest

from core import config as C
from core import registry
from core.errors import ConfigError


def test_defaults_of_every_registered_model_are_valid():
    for name in registry.model_names():
        cfg = registry.model_config(name)
        C.validate(cfg)
        C.validate(registry.train_config(name))


@pytest.mark.parametrize("key,value,needle", [
    ("lr", -0.1, "lr=-0.1 is out of range"),
    ("lr", float("nan"), "finite"),
    ("batch_size", 0, "batch_size=0 is out of range"),
    ("steps", "ten", "steps must be a whole number"),
    ("batch_size", "2.5", "whole number"),
    ("momentum", 0.9, "unknown setting 'momentum'; valid settings:"),
])
def test_bad_trainer_values_are_refused_with_a_reason(key, value, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        C.make(C.TrainConfig, {key: value})


def test_strings_from_the_command_line_are_coerced():
    cfg = C.make(C.TrainConfig, {"steps": "100", "lr": "3e-4"})
    assert cfg.steps == 100 and cfg.lr == pytest.approx(3e-4)


def test_zero_layers_is_refused_for_every_model_with_layers():
    checked = 0
    for name in registry.model_names():
        if "layers" in {f for f in C.describe(registry.model_config(name))}:
            with pytest.raises(ConfigError, match="layers=0 is out of range"):
                registry.model_config(name, {"layers": 0})
            checked += 1
    assert checked >= 6


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        registry.model_spec("stylegan")
    for name in ("realnvp", "wgan_gp", "ddpm", "vae"):
        assert name in str(e.value)
