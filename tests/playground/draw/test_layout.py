"""Titles that fit: the width estimate agrees with the browser, and wrapping keeps brackets whole."""

from __future__ import annotations


import pytest

from playground import draw as V


def test_text_width_agrees_with_the_browser():
    # Widths in px of bold 13 px text as Chromium draws it with Liberation Sans (Arial's metrics),
    # measured with getComputedTextLength(); the estimate that decides where titles wrap must agree.
    measured = {"Samples": 53.5, "Latent space: encoder means vs the prior": 257.2,
                "Optimal discriminator; p_g: Gaussian KDE of 500 samples, h = 0.27": 415.1,
                "Samples nearest each mode: 4 of 4 covered (≥ 20% of a uniform share)": 436.3,
                "Learned score ∇ log p_t(x) at t = 0.30; arrow length ∝ √|field|, shade ∝ |field|": 465.4,
                "Data ← … ← base: the flow bends the base grid into the data": 375.6,
                "WWWWWWWWWWMMMMMMMMMM": 231.0, "iiiiiiiiiilllllllll": 68.6}
    for text, px in measured.items():
        assert V.text_width(text, 13) == pytest.approx(px, rel=0.05), text


def test_wrap_breaks_between_words_outside_brackets():
    text = "Data pulled back to the base (first 2 of 784 dims): E|z|²/D = 0.29 (1 for N(0, I))"
    lines = V.wrap(text)
    assert len(lines) >= 2 and " ".join(lines) == text
    assert all(V.text_width(line) <= V.TITLE_ROOM for line in lines)
    assert any(line.startswith("(first 2 of 784 dims):") for line in lines) and lines[-1].endswith("(1 for N(0, I))")  # brackets stay whole
    assert V.wrap("Samples") == ["Samples"] and V.wrap("") == []


def test_wrap_keeps_an_equations_sides_together():
    text = "Learned score ∇ log p_t(x) at t = 0.50"
    lines = V.wrap(text)
    assert " ".join(lines) == text and any("t = 0.50" in line for line in lines), lines
