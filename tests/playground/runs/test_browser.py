"""A tab's browser that is slow to draw is sent fewer pictures: what the page reports of its own
main thread, what one picture is estimated to cost it, and the interval that follows."""

import math

import pytest

from playground.runs import browser as B


@pytest.mark.parametrize("reading, expected", [
    ("visible", (True, None, None)),  # a page that does not measure itself: visibility alone
    ("hidden", (False, None, None)),
    ("", (True, None, None)),
    ("visible 1500 5000", (True, 1.5, 5.0)),
    ("hidden 0 5000", (False, 0.0, 5.0)),
    ("visible 7000 5000", (True, 5.0, 5.0)),  # busy is counted within the span: no more than all of it
    ("visible 200 500", (True, None, None)),  # half a second of measurement is too little to count
    ("visible -3 5000", (True, None, None)),
    ("visible nan 5000", (True, None, None)),
    ("visible 1e400 5000", (True, None, None)),
    ("visible <b>x</b> 5000", (True, None, None)),
    ("visible 12", (True, None, None)),
])
def test_the_pages_reading_is_taken_only_where_it_reads_as_a_measurement(reading, expected):
    assert B.read_page(reading) == expected


def test_a_picture_costs_the_busy_time_over_the_pictures_sent_in_the_same_span():
    load = B.BrowserLoad()
    assert load.interval() == 0.0  # unmeasured: the server's pace alone
    for t in (0.5, 1.5, 2.5, 3.5, 4.5, 9.0):  # five pictures in the five seconds before t = 5
        load.picture_sent(t)
    load.measured(2.0, 5.0, now=5.0)
    assert load.cost == pytest.approx(2.0 / 5)
    # at most SHARE of the browser's main thread on pictures: 0.4 s each, so one every 1.0 s
    assert load.interval() == pytest.approx(0.4 / B.SHARE)
    load.measured(None, None, now=6.0)  # no measurement changes nothing
    assert load.cost == pytest.approx(0.4)
    load.measured(1.0, 5.0, now=8.4)  # of the pictures, those at 3.5 and 4.5 fall in (3.4, 8.4]
    assert load.cost == pytest.approx((1 - B.SMOOTHING) * 0.4 + B.SMOOTHING * 0.5)


def test_a_span_with_no_picture_says_nothing_of_what_a_picture_costs():
    load = B.BrowserLoad()
    load.picture_sent(1.0)
    load.measured(4.0, 5.0, now=20.0)  # busy with something else (a new layout, a scroll)
    assert load.cost is None and load.interval() == 0.0


def test_however_slow_the_browser_a_picture_still_comes_every_few_seconds():
    load = B.BrowserLoad()
    load.picture_sent(4.9)
    load.measured(5.0, 5.0, now=5.0)
    assert load.cost == pytest.approx(5.0) and load.interval() == B.LONGEST
    assert math.isfinite(load.interval())


def test_a_fast_browser_settles_on_the_servers_pace():
    """A browser whose pictures cost little (no long tasks) is paced by the server alone, and one
    that was slow comes back to the server's pace as its readings fall."""
    load = B.BrowserLoad()
    for t in range(10):
        load.picture_sent(float(t))
    load.measured(4.0, 5.0, now=10.0)  # five pictures in (5, 10]: 0.8 s each
    slow = load.interval()
    for _ in range(10):
        load.measured(0.0, 5.0, now=10.0)
    assert slow == pytest.approx(0.8 / B.SHARE) and load.interval() < 0.01
