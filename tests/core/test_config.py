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


def test_the_training_set_drawn_from_a_built_in_dataset_is_capped():
    assert C.make(C.TrainConfig, {"n_data": C.MAX_N_DATA}).n_data == C.MAX_N_DATA == 200_000
    with pytest.raises(ConfigError, match="n_data=200001 is out of range: too large; allowed up to 200,000"):
        C.make(C.TrainConfig, {"n_data": 200_001})


@pytest.mark.parametrize("value,expect", [("0.001", 0.001), (" 3e-4 ", 3e-4), (0.002, 0.002), (1, 1)])
def test_numbers_may_come_as_numeric_strings(value, expect):
    assert C.make(C.TrainConfig, {"lr": value}).lr == pytest.approx(expect)


@pytest.mark.parametrize("key,value,needle", [
    ("lr", [0.001], "lr must be a number from 1e-07 to 1, got [0.001]"),
    ("lr", {"v": 1}, "lr must be a number from 1e-07 to 1, got {'v': 1}"),
    ("lr", True, "lr must be a number"),
    ("lr", "fast", "lr must be a number from 1e-07 to 1, got 'fast'"),
    ("steps", [100], "steps must be a whole number from 1 to 10,000,000, got [100]"),
    ("steps", "inf", "steps must be a whole number"),
    ("steps", float("nan"), "steps must be a whole number"),
    ("lr", 1e300, "lr=1e+300 is out of range: too large; allowed up to 1"),
    ("lr", "1e400", "lr=1e400 is out of range: too large; allowed up to 1"),
    ("lr", "-1e400", "lr=-1e400 is out of range: too small; allowed down to 1e-07"),
    ("steps", "1e300", "steps=1e+300 is out of range: too large; allowed up to 10,000,000"),
])
def test_what_is_not_a_number_of_the_range_is_refused_saying_what_is_allowed(key, value, needle):
    with pytest.raises(ConfigError) as e:
        C.make(C.TrainConfig, {key: value})
    message = str(e.value)
    assert needle in message and "NaN or inf" not in message and "Error" not in message
    assert len(message) < 200  # a huge whole number is not written out digit by digit


def test_a_config_built_directly_with_a_value_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="steps must be a whole number from 1 to 10,000,000, got 'ten'"):
        C.validate(C.TrainConfig(steps="ten"))
    with pytest.raises(ConfigError, match="batch_size must be a whole number"):
        C.validate(C.TrainConfig(batch_size=2.5))
