"""The knobs take what a page or a link sends: numbers, numeric strings; anything else is refused
with a ConfigError that names the knob, the value and what is allowed."""

import pytest

from core.errors import ConfigError
from playground import controls as K


def key(model: str, name: str) -> str:
    return K.knob_key(K.knobs_for(model)[name][0])


@pytest.mark.parametrize("name,value,expect", [("lr", "0.001", 0.001), ("lr", 0.003, 0.003),
                                               ("layers", "4", 4), ("layers", 5.0, 5), ("hidden", " 32 ", 32)])
def test_numbers_and_numeric_strings_are_taken(name, value, expect):
    model_s, train_s = K.settings_from("realnvp", {key("realnvp", name): value})
    assert {**model_s, **train_s} == {name: expect}
    assert type({**model_s, **train_s}[name]) is type(expect)


@pytest.mark.parametrize("name,value,needle", [
    ("lr", [0.001], "lr must be a number from 1e-07 to 1, got [0.001]"),
    ("lr", "abc", "lr must be a number from 1e-07 to 1, got 'abc'"),
    ("lr", 1e300, "lr=1e+300 is out of range: too large; allowed up to 1"),
    ("lr", "1e400", "lr=1e400 is out of range: too large; allowed up to 1"),
    ("lr", None, "lr needs a value: a number from 1e-07 to 1"),
    ("layers", [4], "layers must be a whole number from 1 to 64, got [4]"),
    ("layers", "inf", "layers must be a whole number from 1 to 64, got 'inf'"),
    ("layers", float("nan"), "layers must be a whole number from 1 to 64, got nan"),
    ("layers", 1e300, "layers=1e+300 is out of range: too large; allowed up to 64"),
    ("layers", "2.5", "layers must be a whole number from 1 to 64, got '2.5'"),
])
def test_anything_else_is_refused_naming_the_knob_the_value_and_what_is_allowed(name, value, needle):
    with pytest.raises(ConfigError) as e:
        K.settings_from("realnvp", {key("realnvp", name): value})
    assert str(e.value) == needle or needle in str(e.value)
    assert "NaN or inf" not in str(e.value) and "Error" not in str(e.value)


def test_a_link_with_bad_values_keeps_the_good_ones_and_says_why_for_each():
    _, _, settings, problems = K.decode_query({"lr": "0.002", "layers": "1e300", "steps": "nan",
                                                "grad_clip": "1e400", "hidden": "[32]"})
    assert settings == {"lr": 0.002}
    text = " | ".join(problems)
    assert "layers=1e+300 is out of range: too large; allowed up to 64" in text
    assert "steps must be a whole number" in text and "grad_clip=1e400 is out of range: too large" in text
    assert "hidden must be a whole number from 2 to 1,024, got '[32]'" in text
    assert "NaN or inf" not in text and len(problems) == 4
