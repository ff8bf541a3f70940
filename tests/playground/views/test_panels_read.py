"""Every panel of every view can be read on a 1024 x 768 screen: a hover note that says what it
shows, titles, notes and placeholders that fit a panel, and tick labels that do not run into
their neighbours'. A view registered tomorrow is covered here without anyone editing this file."""

from __future__ import annotations

import re

import pytest

from playground import draw as V
from playground.views import all_views, render_panel
from tests.playground.views.helpers import FAMILIES, IMAGE_SHAPE, ctx, message, synthetic

PANEL_PX = 297  # a grid panel's width in Chromium at 1024 x 768 (two a row in the plots' column); a wide one is two
TITLE_BUDGET = PANEL_PX - 40 - 12 - 22  # px after the left margin, the right margin and the ⓘ
KINDS = {"points": lambda f: (synthetic(f), ctx()),
         "images": lambda f: (synthetic(f, d=784), ctx(data_shape=IMAGE_SHAPE, bounds=None, true_log_density=None))}


def cases():
    for family, view in all_views().items():
        for panel in view.panels:
            for kind in panel.data:
                yield pytest.param(family, panel, kind, id=f"{panel.key}-{kind}")


def _plain(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


def _annotation(fig, name: str):
    found = [a for a in fig.layout.annotations if a.name == name]
    return found[0] if found else None


def test_every_panel_declares_a_hover_note_that_teaches():
    for family, view in all_views().items():
        for panel in view.panels:
            about = panel.about
            assert len(about) >= 120, f"{family}/{panel.key}: a note says what it shows and what to watch for"
            assert re.search(r"\b(watch|should|look|compare|means|shows|move|see)\b", about, re.I), (panel.key, about)


@pytest.mark.parametrize("family,panel,kind", list(cases()))
def test_every_drawn_panel_carries_its_hover_note(family, panel, kind):
    snap, c = KINDS[kind](family)
    fig = render_panel(family, panel.key, snap, c)
    note = _annotation(fig, "about")
    assert note is not None, panel.key
    assert note.text == V.INFO and note.hovertext.replace("<br>", " ") == " ".join(panel.about.split())
    assert all(V.text_width(line, V.HOVER_SIZE) <= V.HOVER_ROOM for line in note.hovertext.split("<br>"))
    # a panel that cannot draw keeps its note too
    empty = render_panel(family, panel.key, {"step": 0, "traces": {}}, c)
    assert _annotation(empty, "about") is not None and message(empty)


@pytest.mark.parametrize("family,panel,kind", list(cases()))
def test_titles_notes_and_placeholders_fit_a_panel_at_1024_wide(family, panel, kind):
    snap, c = KINDS[kind](family)
    fig = render_panel(family, panel.key, snap, c)
    title = _annotation(fig, "title")
    for line in title.text.split("<br>"):
        size = V.NOTE_SIZE if "font-size" in line else V.TITLE_SIZE
        assert V.text_width(_plain(line), size) <= TITLE_BUDGET, (panel.key, _plain(line))
    assert message(fig) is None, message(fig)
    empty = render_panel(family, panel.key, {"step": 0, "traces": {}}, c)
    for line in _annotation(empty, "message").text.split("<br>"):
        assert V.text_width(line, V.MESSAGE_SIZE) <= PANEL_PX - 20, line


def _axes(fig) -> list[tuple[str, dict]]:
    lay = fig.layout.to_plotly_json()
    return sorted(((k, v) for k, v in lay.items() if re.fullmatch(r"xaxis\d*", k)), key=lambda kv: int(kv[0][5:] or 1))


@pytest.mark.parametrize("family,panel,kind", list(cases()))
def test_side_by_side_planes_keep_their_labels_apart(family, panel, kind):
    """Axis titles fit their own plane, and neighbouring planes' tick labels do not touch."""
    snap, c = KINDS[kind](family)
    fig = render_panel(family, panel.key, snap, c)
    axes = _axes(fig)
    width = (2 * PANEL_PX if panel.wide else PANEL_PX) - 40 - 12  # the plot area
    lay = fig.layout.to_plotly_json()
    spans = []
    for name, ax in axes:
        lo, hi = ax.get("domain", [0, 1])
        label = ((ax.get("title") or {}).get("text") or "")
        assert V.text_width(label, 11) <= (hi - lo) * width + 8, (panel.key, label)
        if len(axes) < 2 or ax.get("showticklabels") is False or ax.get("visible") is False:
            continue
        vals = ax.get("tickvals")
        if vals is None and "range" not in ax:  # a chart over training time: a label as wide as "8000" may end it
            end = V.text_width("8000", V.TICK_SIZE) / 2
            spans.append((width * lo - end, width * hi + end, name))
        else:
            assert vals is not None, f"{panel.key}: {name} shows tick labels on a plane; say where they go"
            if not len(vals):
                continue
            r0, r1 = ax["range"]
            px = [width * (lo + (v - r0) / (r1 - r0) * (hi - lo)) for v in vals]
            text = ax.get("ticktext") or [f"{v:g}".replace("-", "−") for v in vals]
            half = [V.text_width(str(t), V.TICK_SIZE) / 2 for t in text]
            spans.append((px[0] - half[0], px[-1] + half[-1], name))
        y = lay.get("yaxis" + name[5:], {})
        if spans[:-1] and y.get("showticklabels") is not False and y.get("visible") is not False:
            spans[-1] = (min(spans[-1][0], width * lo - 30), spans[-1][1], name)  # y labels sit left of the plane
    for (_, right, a), (left, _, b) in zip(spans, spans[1:]):
        assert right + 4 <= left, f"{panel.key}: the tick labels of {a} and {b} collide"


def test_inner_ticks_are_round_inside_and_clear_of_the_ends():
    assert V.inner_ticks(-4, 4) == [-2.0, 0.0, 2.0]
    assert V.inner_ticks(-3.5, 3.5) == [-2.0, 0.0, 2.0]
    assert V.inner_ticks(0, 1) == [0.25, 0.5, 0.75]
    for lo, hi in ((-4, 4), (-1.5, 2.5), (0.0, 0.3), (-100, 40)):
        vals = V.inner_ticks(lo, hi)
        assert 1 <= len(vals) <= 3 and all(lo + 0.1 * (hi - lo) <= v <= hi - 0.1 * (hi - lo) for v in vals)
    assert V.inner_ticks(1, 1) == []


def test_every_family_is_covered():
    assert set(FAMILIES) == set(all_views())


def test_a_view_control_shows_only_on_the_data_whose_panels_it_moves():
    """A slider for a field on the plane (t, σ, x₁) is hidden on digits, where no such panel is drawn:
    a control applies to a kind of data only where the view draws a panel made for that kind."""
    from playground.app.status import control_updates
    from playground.views import DATA_KINDS

    for family, view in all_views().items():
        for c in view.controls:
            assert c.data and set(c.data) <= set(DATA_KINDS), (family, c.name)
            for kind in c.data:
                own = [p.key for p in view.panels if kind in p.data and tuple(p.data) != tuple(DATA_KINDS)]
                assert own, f"{family}: the control {c.name} is shown on {kind}, where no panel of its own is drawn"
            for kind in DATA_KINDS:
                assert control_updates(family, kind=kind)[f"control:{c.name}"]["visible"] is (kind in c.data)
