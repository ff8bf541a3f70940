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


def test_a_run_stopped_without_its_last_picture_reports_its_end_and_draws_nothing_more():
    """A run reset or closed is never looked at again: its final snapshot (its step, its end) still
    comes, and no picture is drawn for it; stopped the default way, the last one is drawn."""
    for last_picture in (False, True):
        t, snaps = build(), Snaps()
        drawn = []
        snapshot = t.snapshot
        t.snapshot = lambda *a, **k: drawn.append(k.get("step")) or snapshot(*a, **k)
        t.start(snaps, snapshot_interval=0.05, metrics_interval=0.05)
        assert wait_for(lambda: len(snaps.items) >= 2 and t.step_count > 20, timeout=30)
        before = len(drawn)
        t.stop(last_picture=last_picture)
        assert snaps.items[-1]["final"] and snaps.items[-1]["step"] == t.step_count
        if last_picture:
            assert "traces" in snaps.items[-1] and drawn[-1] == t.step_count
        else:
            assert "traces" not in snaps.items[-1] and len(drawn) <= before + 1  # at most one under way
            assert t.step_count not in drawn


class _FakeScoring:
    n_eval = 1000


class _FakeTrainer:
    """Just what the metrics thread reads: a new copy at every look (after none at first), an
    evaluation whose cost in seconds of the fake clock is cost(n), and floors already known."""

    def __init__(self, clock, cost):
        self.scoring, self.clock, self.cost = _FakeScoring(), clock, cost
        self.metric_history, self.latest_metrics, self.looks, self.starts = [], {}, 0, []

    def newest(self):
        import contextlib

        import torch

        self.looks += 1
        model = torch.nn.Linear(1, 1)
        return contextlib.nullcontext((None, (0, 0.0)) if self.looks == 1 else (model, (self.looks, 0.1 * self.looks)))

    def initial_model(self):
        import torch

        return torch.nn.Linear(1, 1)

    def evaluate(self, n=None, model=None):
        self.starts.append(self.clock.now)
        self.clock.now += self.cost(n, len(self.starts))
        return {"mmd": 0.0}

    def floors(self, n=None, compute=True):
        return {"mmd": 0.0}


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def wait(self, event, timeout):
        if timeout is not None:
            self.now += timeout
        return event.is_set()


def _run_metrics(cost, evaluations=30):
    from core.train.views import Views

    clock = _FakeClock()
    trainer = _FakeTrainer(clock, cost)
    built, holder = threading.Event(), {}

    def cost_then_stop(n, i):
        if i >= evaluations:
            # the metrics thread starts inside Views(): on a busy machine it reaches this before
            # the constructor has returned (it used to fail here, and go on evaluating meanwhile)
            built.wait(30)
            holder["views"]._metrics_end = "stop"
        return cost(n, i)

    trainer.cost = cost_then_stop
    holder["views"] = views = Views(trainer, lambda snap: None, 1.0, clock=clock, wait=clock.wait)
    built.set()
    views._metrics.join(30)
    views.close()
    return trainer


def test_metrics_keep_a_steady_cadence_and_draw_fewer_samples_when_an_evaluation_is_slow():
    """Fake clock, fake cost: 2 ms a sample (0.2 s, the share of a 1 s cadence, at 100 samples),
    then four times that from the 15th evaluation on. The evaluations start exactly a second apart
    throughout; the count fits the share, and shrinks when the cost grows, instead of the cadence
    stretching (it used to wait five times an evaluation's length)."""
    from core.train.budget import METRICS_SHARE

    def cost(n, i):
        return (0.002 if i < 15 else 0.008) * n

    t = _run_metrics(cost)
    records, starts = t.metric_history, t.starts
    assert records[0]["step"] == 0  # the initial model, before any picture
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(abs(g - 1.0) < 1e-9 for g in gaps), gaps
    ns = [r["n"] for r in records]
    assert ns[0] < 100 and max(ns) <= 1000  # a first point soon, on few samples
    assert all(cost(n, i + 1) <= METRICS_SHARE * 1.0 + 1e-12 for i, n in enumerate(ns) if 3 <= i < 14 or i >= 17)
    before, after = ns[10:14], ns[17:]
    assert min(before) > max(after)  # slower samples: fewer of them
    assert max(before) >= 31  # and not needlessly few while they were cheap


def test_metrics_whose_smallest_evaluation_overruns_keep_their_share_by_resting():
    """Even 8 samples take 0.5 s: the cadence stretches, so that metrics take at most their share."""
    from core.train.budget import METRICS_SHARE

    t = _run_metrics(lambda n, i: 0.5 + 0.001 * n, evaluations=12)
    starts, ns = t.starts, [r["n"] for r in t.metric_history]
    busy = sum(0.5 + 0.001 * n for n in ns[:-1])
    assert busy <= METRICS_SHARE * (starts[-1] - starts[0]) + 1e-9
    assert ns[-1] == min(ns)


def test_closing_the_views_stops_an_evaluation_under_way_within_a_pass():
    """An evaluation of a million network passes: close() ends it after a few, not minutes later."""
    import torch

    from core.train.views import Views

    net = torch.nn.Linear(2, 2)
    passes, started = [0], threading.Event()
    net.register_forward_hook(lambda m, a, out: passes.__setitem__(0, passes[0] + 1))

    class Slow(_FakeTrainer):
        def newest(self):
            import contextlib

            return contextlib.nullcontext((net, (1, 0.1)))

        def evaluate(self, n=None, model=None):
            started.set()
            x = torch.zeros(1, 2)
            for _ in range(1_000_000):
                model(x)
            return {"mmd": 0.0}

    t = Slow(_FakeClock(), None)
    views = Views(t, lambda snap: None, 1.0)
    assert started.wait(30)
    views.close()
    views._metrics_end = "stop"
    assert views.join(30)
    assert passes[0] < 1_000_000 and t.metric_history == []
