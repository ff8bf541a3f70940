"""The pictures and metrics threads of a background run: they cost nothing when there is nothing
new to show, or nobody to show it to."""

import threading
import time

from core import registry
from core.train import Trainer
from tests.fakes import wait_for

TINY = {"layers": 2, "hidden": 16}


def build(**settings):
    cfg = registry.train_config("realnvp", {"n_data": 512, "batch_size": 64, "steps": 100_000, "seed": 3, **settings})
    data = registry.load_dataset("eight_gaussians")
    return Trainer(registry.build_model("realnvp", data.shape, dict(TINY)), data, cfg, device="cpu",
                   transport="thread", n_reference=200, n_eval=200)


class Snaps:
    def __init__(self):
        self.items = []

    def __call__(self, snap):
        self.items.append(snap)


def test_a_paused_run_leaves_the_metrics_thread_asleep():
    """Metrics due but no new weights (paused): the thread waits for a picture, it does not spin."""
    t, snaps = build(), Snaps()
    t.start(snaps, snapshot_interval=0.05, metrics_interval=0.05, paused=True)
    t.step_once(5)
    assert wait_for(lambda: t.metric_history and t.metric_history[-1]["step"] == 5, timeout=30)
    views = t._views
    time.sleep(0.3)  # the last picture and metrics of step 5 settle
    polls, evaluations = views.polls, views.evaluations
    time.sleep(1.0)
    assert views.polls - polls <= 5, f"the metrics thread woke {views.polls - polls} times in 1 s while paused"
    assert views.evaluations == evaluations
    t.step_once(3)  # new weights wake it again
    assert wait_for(lambda: t.metric_history[-1]["step"] == 8, timeout=30)
    t.stop()


def test_nobody_watching_costs_no_pictures_and_no_metrics_until_someone_looks():
    watching = threading.Event()
    t, snaps = build(), Snaps()
    t.start(snaps, snapshot_interval=0.05, metrics_interval=0.05, watched=watching.is_set)
    assert wait_for(lambda: t.step_count > 20, timeout=30)
    time.sleep(0.5)
    assert snaps.items == [] and t.metric_history == []  # training went on, nothing was drawn
    watching.set()
    assert wait_for(lambda: len(snaps.items) >= 2 and t.metric_history, timeout=30)
    assert snaps.items[-1]["step"] > 20  # the newest weights, not a backlog
    watching.clear()
    time.sleep(0.5)  # a picture under way may still arrive
    drawn, evaluated = len(snaps.items), len(t.metric_history)
    time.sleep(1.0)
    assert len(snaps.items) == drawn and len(t.metric_history) == evaluated
    t.stop()
    assert snaps.items[-1]["final"]  # the last picture is drawn whoever watches
