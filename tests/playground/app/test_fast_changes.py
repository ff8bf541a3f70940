"""Fast clicks: what the page shows, what trains and what the link says always agree.

A page sends a change before it has shown the one before it: Family set to vae and, 0.3 s later,
Dataset set to eight_gaussians arrive as on_family(vae, two_moons) and on_dataset(realnvp,
eight_gaussians, realnvp's knobs), in either order and side by side. Both changes must be kept.
"""

import threading
import urllib.parse

import pytest

from playground import app as A
from playground.controls import settings_from
from playground.runs import Session
from tests.fakes import wait_for
from tests.playground.tiny import knob_values


def _query(out) -> dict:
    return dict(urllib.parse.parse_qsl(out["query"]))


def _shown(out, name):
    value = out[name]
    return value["value"] if isinstance(value, dict) else value


@pytest.fixture
def page(manager):
    s = Session(manager)
    A.on_model(s, "realnvp", "two_moons")
    yield s
    s.close()


def test_a_dataset_picked_before_the_family_change_shows_keeps_both(page):
    A.on_family(page, "vae", "two_moons")
    out = A.on_dataset(page, "realnvp", "eight_gaussians", knob_values("realnvp"))  # the page still says realnvp
    run = page.current
    assert (run.model_name, run.dataset_name) == ("vae", "eight_gaussians")
    assert run.model_settings == settings_from("vae", knob_values("vae"))[0]  # realnvp's knobs were not taken
    # the page is brought up to date: family, model, the knobs and panels of a VAE, and the link
    assert _shown(out, "family") == "vae" and _shown(out, "model") == "vae"
    assert _shown(out, "dataset") == "eight_gaussians"
    assert _query(out)["model"] == "vae" and _query(out)["data"] == "eight_gaussians"
    assert len(out["slots"]) == len(A.SLOTS)


def test_the_same_two_changes_arriving_the_other_way_round_keep_both(page):
    A.on_dataset(page, "realnvp", "eight_gaussians", knob_values("realnvp"))
    out = A.on_family(page, "vae", "two_moons")  # sent before the dataset changed on the page
    assert (page.current.model_name, page.current.dataset_name) == ("vae", "eight_gaussians")
    assert _shown(out, "dataset") == "eight_gaussians" and _query(out)["data"] == "eight_gaussians"


def test_changes_sent_side_by_side_are_made_one_at_a_time_and_both_kept(page):
    """Gradio runs a tab's events on threads of their own: without turns, each builds a run over the
    other's and the slower one wins."""
    started = threading.Barrier(2)
    errors = []

    def change(fn, *args):
        try:
            started.wait()
            fn(page, *args)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=change, args=(A.on_family, "vae", "two_moons")),
               threading.Thread(target=change, args=(A.on_dataset, "realnvp", "eight_gaussians",
                                                     knob_values("realnvp")))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert (page.current.model_name, page.current.dataset_name) == ("vae", "eight_gaussians")
    assert page.current.label.endswith("#3")  # one run per change, none lost or built twice


def test_play_from_a_page_that_is_behind_trains_the_run_it_will_show(page):
    A.on_family(page, "vae", "two_moons")
    vae = page.current
    out = A.play(page, "realnvp", "two_moons", knob_values("realnvp"), page=True)
    assert page.current is vae and vae.status in ("running", "waiting")
    assert _shown(out, "model") == "vae" and _query(out)["model"] == "vae"
    # a script calling the API names the model it wants, and gets it
    A.play(page, "realnvp", "two_moons", knob_values("realnvp"))
    assert page.current.model_name == "realnvp"


def test_a_knob_of_the_model_before_is_not_applied_to_the_next(page):
    A.on_family(page, "vae", "two_moons")
    lr_before = page.current.train_settings.get("lr")
    out = A.on_knob(page, "realnvp", "two_moons", knob_values("realnvp", lr=0.5), key="lr")
    assert page.current.model_name == "vae" and page.current.train_settings.get("lr") == lr_before
    assert _shown(out, "model") == "vae" and _query(out)["model"] == "vae"


def test_a_redraw_begun_before_a_change_sends_nothing_of_the_run_before(page):
    old = page.current
    old.step_once(3)
    assert wait_for(lambda: old.latest is not None and old.latest["step"] == 3)
    real = old.snapshot_now

    def snapshot_then_change():  # the person picks a family while this redraw is drawn
        got = real()
        A.on_family(page, "vae", "two_moons")
        return got

    old.snapshot_now = snapshot_then_change
    assert A.tick(page, "step", "auto") == {}
    # the next redraw draws the new run from scratch
    assert wait_for(lambda: page.current.latest is not None)
    out = A.tick(page, "step", "auto")
    assert "slots" in out and page.current.model_name == "vae"


def test_a_presets_next_run_is_named_in_the_link(manager):
    s = Session(manager)
    A.apply_preset(s, "Likelihood versus sample quality")
    s.current.trainer.cfg.steps = 3
    s.current.play()
    assert wait_for(lambda: s.current.status == "done")
    out = A.tick(s, "step", "auto")
    assert _query(out)["model"] == s.current.model_name != "realnvp"
    s.close()
