"""Fast clicks: what the page shows, what trains and what the link says always agree.

A page sends a change before it has shown the one before it: Family set to vae and, 0.3 s later,
Dataset set to eight_gaussians arrive as on_family(vae, two_moons) and on_dataset(realnvp,
eight_gaussians, realnvp's knobs), in either order and side by side. Both changes must be kept.
"""

import json
import threading
import urllib.parse

import gradio as gr
import pytest
import torch

from core.errors import PlaygroundError

from playground import app as A
from playground import controls as K
from playground.app.handlers import PACE
from playground.controls import settings_from
from playground.runs import RunManager, Session
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


def test_a_live_knob_moved_after_the_run_finished_says_it_changes_nothing_now(manager):
    s = Session(manager)
    run = s.new_run("vae", "eight_gaussians", {"hidden": 16}, {"n_data": 512, "batch_size": 64, "steps": 3})
    run.play()
    assert wait_for(lambda: run.status == "done")
    out = A.on_knob(s, "vae", "eight_gaussians", knob_values("vae", hidden=16, beta=8.0, n_data=512,
                                                             batch_size=64, steps=3),
                   key=K.knob_key(K.knobs_for("vae")["beta"][0]))
    assert "applied" not in out["status"] and "press Reset" in out["status"]
    s.close()


# ---- the same, over the page's own HTTP events --------------------------------------
def _event(demo, label: str, event: str) -> tuple[int, list]:
    """(fn_index, input components) of the page's `event` on the control labelled `label`."""
    block = next(b for b in demo.blocks.values() if getattr(b, "label", None) == label)
    for index, fn in demo.fns.items():
        if (block._id, event) in [(t[0], t[1]) for t in fn.targets]:
            return index, fn.inputs
    raise AssertionError(f"no {event} event on {label}")


def _send(base: str, session_hash: str, fn_index: int, data: list) -> dict:
    """What the page does for one event: join the queue, read the stream until it is answered."""
    import httpx

    join = httpx.post(f"{base}gradio_api/queue/join", timeout=60,
                      json={"data": data, "fn_index": fn_index, "session_hash": session_hash,
                            "event_data": None, "trigger_id": None})
    join.raise_for_status()
    with httpx.stream("GET", f"{base}gradio_api/queue/data", params={"session_hash": session_hash},
                      timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg
    raise AssertionError("the event was never answered")


def test_a_change_sent_with_the_values_of_the_model_before_reaches_the_page_over_http():
    """The reproduction under load: the family's answer is in (the server's knob sliders now hold a
    VAE's ranges), and the dataset change the page sent before seeing it carries realnvp's values
    (10 layers, past a VAE's 8). Gradio refused that event outright and the dataset was dropped."""
    from tests.playground.app.test_classroom import free_port

    manager = RunManager(1)
    demo = A.build_app(manager)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        family, _ = _event(demo, "Family", "input")
        dataset, inputs = _event(demo, "Dataset", "input")
        opened = [None if isinstance(c, gr.State) else c.value for c in inputs]  # realnvp's, as the page opened
        assert _send(base, "tab", family, [None, "vae", "two_moons"])["success"]
        stale = [None if isinstance(c, gr.State) else "eight_gaussians" if getattr(c, "label", "") == "Dataset"
                 else v for c, v in zip(inputs, opened)]
        answer = _send(base, "tab", dataset, stale)
        assert answer["success"], answer.get("output")
        session = manager._sessions["tab"]
        assert (session.current.model_name, session.current.dataset_name) == ("vae", "eight_gaussians")
        shown = {getattr(c, "label", None): v for c, v in zip(demo.fns[dataset].outputs, answer["output"]["data"])}
        assert shown["Model"]["value"] == "vae" and shown["Family"]["value"] == "vae"  # the page catches up
    finally:
        demo.close()
        manager.shutdown()


# ---- Compare, live ---------------------------------------------------------------------------
def test_compare_lists_new_runs_by_itself_and_redraws_the_one_training(manager):
    """The list used to stay empty until "Refresh" was pressed, and showed finished curves only."""
    s = Session(manager)
    first = s.new_run("realnvp", "two_moons", {"layers": 2, "hidden": 16},
                      {"n_data": 512, "batch_size": 64, "steps": 4})
    first.play()
    assert wait_for(lambda: first.status == "done" and first.trainer.metric_history)
    second = s.new_run("realnvp", "two_moons", {"layers": 2, "hidden": 16},
                       {"n_data": 512, "batch_size": 64, "steps": 100_000})
    second.play()
    assert wait_for(lambda: second.step > 0)
    out = A.compare_live(s, [], "auto", "step")  # the tab was just shown: nothing chosen yet
    assert out["compare_runs"]["choices"] == [first.label, second.label]
    assert out["compare_runs"]["value"] == [first.label, second.label] and "compare_plot" in out
    chosen = out["compare_runs"]["value"]
    n = len(second.trainer.metric_history)
    assert wait_for(lambda: len(second.trainer.metric_history) > n, timeout=30)
    again = A.compare_live(s, chosen, "auto", "step")
    assert "compare_runs" not in again and "compare_plot" in again  # the training run's curve grew
    second.pause()
    assert wait_for(lambda: second.status == "paused")
    # nothing new: nothing sent (once the last evaluation after Pause is in)
    assert wait_for(lambda: A.compare_live(s, chosen, "auto", "step") == {}, timeout=20)
    s.close()


# ---- a model on data it is not built for -------------------------------------------------------
class _Request:
    def __init__(self, **query):
        self.query_params, self.session_hash = query, ""


def test_a_link_to_a_model_on_data_it_is_not_built_for_is_refused_by_name_and_shows_a_run(manager):
    s = Session(manager)
    out = A.on_load(s, _Request(model="iaf", data="mnist"))
    assert (s.current.model_name, s.current.dataset_name) == ("iaf", "two_moons")
    assert "iaf is built for points, not mnist" in out["status"] and "pixelcnn" in out["status"]
    s.close()


def test_a_model_picked_that_does_not_fit_the_data_leaves_the_run_and_the_page_as_they_were(manager):
    s = Session(manager)
    digits = s.new_run("vae", "mnist", {"hidden": 16}, {"n_data": 256, "batch_size": 32})
    with pytest.raises(PlaygroundError, match="iaf is built for points") as refused:
        A.on_model(s, "iaf", "mnist")
    assert s.current is digits  # not stopped for a model that cannot train here
    shown = refused.value.outputs  # what the page is sent beside the warning: the run it still has
    assert shown["model"]["value"] == "vae" and shown["dataset"]["value"] == "mnist"
    s.close()


# ---- pace, and one phase alone -------------------------------------------------------------------
def test_a_gan_offers_a_step_of_each_phase_alone_and_it_moves_only_that_network(manager):
    s = Session(manager)
    out = A.on_model(s, "nsgan", "eight_gaussians")
    assert [out[f"phase{i}"]["visible"] for i in range(3)] == [True, True, False]
    assert out["phase0"]["value"] == "Step discriminator only" and out["phase1"]["value"] == "Step generator only"
    run = s.current
    A.step_phase(s, "nsgan", "eight_gaussians", knob_values("nsgan"), index=0)  # past the data-dependent start
    assert wait_for(lambda: run.step == 1 and run.latest is not None and run.latest["step"] == 1)
    before = {k: v.clone() for k, v in run.trainer.latest_model.state_dict().items()}
    A.step_phase(s, "nsgan", "eight_gaussians", knob_values("nsgan"), index=0)
    assert wait_for(lambda: run.step == 2 and run.latest is not None and run.latest["step"] == 2)
    after = {k: v for k, v in run.trainer.latest_model.state_dict().items()}
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved and all("disc" in k or k.startswith("D") for k in moved), moved
    assert "discriminator alone" in A.format_status(s)
    assert [A.on_model(s, "vae", "eight_gaussians")[f"phase{i}"]["visible"] for i in range(3)] == [False] * 3
    s.close()


def test_the_speed_is_a_live_knob_beside_play(manager):
    s = Session(manager)
    A.on_model(s, "realnvp", "two_moons")
    run = s.current
    run.play()
    out = A.on_knob(s, "realnvp", "two_moons", knob_values("realnvp", pace=2.0), key=PACE)
    assert "pace = 2.0 applied to the running model" in out["status"]
    assert run.train_settings["pace"] == 2.0 and run.trainer.cfg.pace == 2.0
    s.close()


# ---- replay ------------------------------------------------------------------------------------
def test_the_replay_slider_goes_back_through_the_recorded_pictures_and_live_follows_again(manager):
    from playground.app.handlers import LIVE, on_live, on_replay

    s = Session(manager)
    run = s.new_run("realnvp", "two_moons", {"layers": 2, "hidden": 16}, {"n_data": 512, "batch_size": 64})
    run._frame_interval = 0.0  # record every picture
    for target in (5, 10, 15):
        run.step_once(5)
        assert wait_for(lambda: run.latest is not None and run.latest["step"] == target)
    steps = [f["step"] for f in run.frames]
    assert steps[0] == 0 and steps[-1] == 15 and len(steps) >= 3
    out = on_replay(s, 0)
    assert s.replaying and "replaying step 0" in out["status"] and "slots" in out
    # the redraws leave the recorded picture alone while the curves still follow
    s.shown_seq, s.last_redraw = -1, -1e9
    assert "slots" not in A.tick(s, "step", "auto")
    middle = on_replay(s, LIVE / 2)
    assert f"replaying step {steps[round((len(steps) - 1) / 2)]:,}" in middle["status"]
    back = on_live(s)
    assert not s.replaying and back["replay"]["value"] == LIVE and "replaying" not in back["status"]
    assert "slots" in A.tick(s, "step", "auto")  # the newest picture again
    s.close()


def test_on_a_mixture_the_train_tabs_metric_chart_follows_the_modes_covered(manager):
    from playground.app.handlers import _metrics_chart

    s = Session(manager)
    run = s.new_run("nsgan", "eight_gaussians", {}, {"n_data": 512, "batch_size": 64})
    mets = [{"step": 0, "time": 0.0, "mmd": 0.5, "kl": 1.0, "modes_covered": 2, "n_modes": 8},
            {"step": 50, "time": 1.0, "mmd": 0.3, "kl": 0.8, "modes_covered": 5, "n_modes": 8}]
    fig = _metrics_chart(run, mets, "auto", "step")
    modes = [t for t in fig.data if t.name.startswith("modes covered")]
    assert len(modes) == 1 and list(modes[0].y) == [2, 5] and modes[0].yaxis == "y2"
    assert fig.layout.yaxis2.range[1] == 8.5
    moons = s.new_run("nsgan", "two_moons", {}, {"n_data": 512, "batch_size": 64})
    plain = _metrics_chart(moons, [{k: v for k, v in r.items() if "modes" not in k} for r in mets], "auto", "step")
    assert not [t for t in plain.data if (t.name or "").startswith("modes covered")]
    s.close()


# ---- too slow to watch, said before Play ------------------------------------------------------------
def test_a_combination_too_slow_to_watch_says_so_before_play_and_is_estimated_once(manager, monkeypatch):
    from playground.app import handlers as H

    calls = []

    def estimate(model, dataset, settings):
        calls.append((model, dataset))
        return {"message": f"{model} on {dataset} is too slow to watch here: one picture about 3 s"}

    monkeypatch.setattr(H, "estimate", estimate)
    monkeypatch.setattr(H, "_COSTS", {})
    s = Session(manager)
    A.on_dataset(s, "vae", "mnist", knob_values("vae"))
    assert wait_for(lambda: "too slow to watch" in A.format_status(s))
    A.reset(s, "vae", "mnist", H._run_knobs(s.current))  # the same combination: not estimated again
    assert wait_for(lambda: "too slow to watch" in A.format_status(s))
    A.on_dataset(s, "vae", "two_moons", knob_values("vae"))  # points: every model is quick there
    assert calls == [("vae", "mnist")] and "too slow" not in A.format_status(s)
    s.close()
