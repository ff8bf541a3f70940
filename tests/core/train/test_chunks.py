"""Training in chunks: exactly the steps of headless training, and live control between the calls."""

import contextvars
import math
import pickle
import threading
import time

import numpy as np
import pytest
import torch

from core import registry
from core.config import TrainConfig
from core.errors import ConfigError
from core.train import ChunkedTransport, Trainer, train_chunk
from tests.fakes import Gauss2D, MeanModel, wait_for

SETTINGS = {"n_data": 256, "batch_size": 32, "steps": 16, "seed": 3, "lr_schedule": "cosine", "warmup": 4,
            "grad_clip": 1.0}
MODELS = {
    "realnvp": {"layers": 2, "hidden": 16},  # a flow without ActNorm
    "nsgan": {"layers": 2, "hidden": 16},  # two phases, whose noise comes from torch's global stream
    "ddpm": {"layers": 2, "hidden": 16, "T": 20, "ema": 0.9},  # a weight average
    "ebm": {"layers": 2, "hidden": 16, "langevin_steps": 3, "buffer_size": 128, "reinit": 0.3},  # a replay buffer
    "gmm": {"K": 3},  # an EM update, whose EM set is a buffer outside the state dict
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
LIVE_AT, LIVE = 8, ("set", "lr", 3e-3)  # a live setting, made before step LIVE_AT + 1


def setup(name, **settings):
    cfg = registry.train_config(name, {**SETTINGS, **settings})
    torch.manual_seed(cfg.seed)
    data = registry.load_dataset("eight_gaussians")
    return registry.build_model(name, data.shape, dict(MODELS[name])), data, cfg


def headless(name, device="cpu", steps=None, live_at=LIVE_AT, log_every=4, **settings):
    """Trainer.fit, as `python -m core train` trains, with LIVE made after live_at steps."""
    t = Trainer(*setup(name, **settings), device=device, n_reference=64, n_eval=64)
    steps = t.cfg.steps if steps is None else steps
    if live_at is not None and live_at < steps:
        t.fit(live_at, log_every=log_every)
        t.set_live(*LIVE[1:])
    t.fit(steps - t.step_count, log_every=log_every)
    return t


def payload(name, **settings):
    """What a chunked Trainer hands each call: the model as it was before training, its data and cfg."""
    t = Trainer(*setup(name, **settings), device="cpu", transport="chunked", n_reference=64, n_eval=64)
    return pickle.dumps((t.model, t.training_data, t.cfg))


def assert_host_only(value, where="item"):
    """Numpy, bytes and plain Python only, all the way down: nothing a process without a GPU cannot unpickle."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, (str, int)), f"{where} has a key {k!r}"
            assert_host_only(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_host_only(v, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        assert value.dtype != object, where
    else:
        assert value is None or isinstance(value, (str, bytes, bool, int, float, np.generic)), \
            f"{where} is a {type(value).__name__}"


def check_item(item):
    assert_host_only(item)
    if item["resume"] is not None:
        assert_host_only(pickle.loads(item["resume"]), "the resume state")


def by_steps(blob, device, every, steps=SETTINGS["steps"], log_every=4):
    """A run in calls of `every` steps each (and one report per call), LIVE made at the call from LIVE_AT."""
    items, state, step = [], None, 0
    while True:
        commands = [LIVE] if step == LIVE_AT else []
        got = list(train_chunk(blob, state, device, step + every, log_every, math.inf, math.inf, commands))
        assert len(got) == 1 and got[0]["chunk_end"]  # one report: the call's last
        for item in got:
            check_item(item)
        items += got
        state, step = got[-1]["resume"], got[-1]["step"]
        if got[-1]["final"]:
            return items
        assert step == min(len(items) * every, steps)


def by_closing(blob, device, every, log_every=4):
    """A run whose calls report after every step and are closed after `every` reports, each call
    resuming from the last report taken, as a pause does; LIVE made at the call from LIVE_AT."""
    items, state, step = [], None, 0
    while True:
        chunk = train_chunk(blob, state, device, SETTINGS["steps"], log_every, 0.0, math.inf,
                            [LIVE] if step == LIVE_AT else [])
        for _ in range(every):
            item = next(chunk)
            check_item(item)
            assert item["step"] == step + 1  # a report after every step, each of one step more
            step = item["step"]
            items.append(item)
            if item["chunk_end"]:
                break
        chunk.close()
        state = items[-1]["resume"]
        if items[-1]["final"]:
            return items


def same_weights(state, reference, exact=True):
    """Bit for bit on the CPU; a GPU's kernels may sum in another order from one run to the next."""
    assert state.keys() == reference.keys()
    for k, v in reference.items():
        got = torch.as_tensor(state[k])
        assert torch.equal(got, v.cpu()) if exact else torch.allclose(got, v.cpu(), rtol=1e-4, atol=1e-6), k


def total(history, key):
    """The sum of every step's loss, whatever steps the records were cut at."""
    return sum(h[key] * (h["step"] - prev["step"]) for prev, h in zip([{"step": 0}] + history, history))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(MODELS))
def test_a_run_in_chunks_takes_exactly_the_steps_of_headless_training(name, device):
    exact = device == "cpu"
    reference = headless(name, device)
    blob = payload(name)
    in_steps = by_steps(blob, device, 4)
    for items in (in_steps, by_closing(blob, device, 2)):
        last = items[-1]
        assert last["final"] and last["status"] == "done" and last["step"] == SETTINGS["steps"]
        same_weights(last["state"], reference.engine.view_weights(), exact)  # the weight average where there is one
        assert last["lrs"] == pytest.approx(reference.engine.learning_rates(), rel=1e-12)
        history = [h for item in items for h in item["history"]]
        assert [h["step"] for h in history] == sorted({h["step"] for h in history})  # none lost or repeated
        key = "loss_D" if name == "nsgan" else "loss"
        assert total(history, key) == pytest.approx(total(reference.history, key), rel=1e-12 if exact else 1e-4)
    # calls that end where the records fall carry the very records of headless training
    untimed = [{k: v for k, v in h.items() if k != "time"} for h in reference.history]
    records = [{k: v for k, v in h.items() if k != "time"} for item in in_steps for h in item["history"]]
    if exact:
        assert records == untimed
    else:
        assert [r.keys() for r in records] == [u.keys() for u in untimed]
        assert all(r == pytest.approx(u, rel=1e-4) for r, u in zip(records, untimed))


def test_a_call_ends_at_its_deadline_after_one_step_at_least():
    blob = payload("realnvp")
    items = list(train_chunk(blob, None, "cpu", 16, 4, math.inf, 0.0, []))
    assert len(items) == 1
    first = items[0]
    assert first["chunk_end"] and not first["final"] and first["step"] == 1 and first["status"] == "running"
    after = list(train_chunk(blob, first["resume"], "cpu", 16, 4, math.inf, 0.0, []))
    assert [i["step"] for i in after] == [2] and after[0]["history"][0]["step"] == 2
    assert after[0]["elapsed"] > first["elapsed"]  # training time adds up across calls


def test_a_live_setting_outlasts_the_call_that_took_it():
    t = chunked_trainer("vae", steps=4)
    blob = pickle.dumps((t.model, t.training_data, t.cfg))
    first = list(train_chunk(blob, None, "cpu", 2, 1, math.inf, math.inf, [("set", "beta", 0.0)]))
    later = list(train_chunk(blob, first[-1]["resume"], "cpu", 4, 1, math.inf, math.inf, []))
    records = first[-1]["history"] + later[-1]["history"]
    assert [h["step"] for h in records] == [1, 2, 3, 4]
    for h in records:  # the loss is the reconstruction term alone in the call that took it and after
        assert h["loss"] == pytest.approx(h["recon"], rel=1e-6) and h["kl"] > 0


def test_a_call_that_cannot_train_says_why():
    bad_setting = list(train_chunk(payload("realnvp"), None, "cpu", 16, 4, math.inf, 5.0, [("set", "nonsense", 1)]))
    assert len(bad_setting) == 1 and bad_setting[0]["final"] and bad_setting[0]["status"] == "error"
    assert "'nonsense' is not a setting of RealNVP" in bad_setting[0]["message"]
    assert "\n" not in bad_setting[0]["message"]
    broken = list(train_chunk(b"not a pickle", None, "cpu", 16, 4, math.inf, 5.0, []))
    assert broken[0]["final"] and broken[0]["status"] == "error"
    assert broken[0]["message"].startswith("Training could not start: ")
    with pytest.raises(ValueError, match="live settings"):
        next(train_chunk(payload("realnvp"), None, "cpu", 16, 4, math.inf, 5.0, [("pause",)]))


def test_a_run_that_diverges_in_a_later_call_keeps_the_weights_it_resumed_from():
    cfg = TrainConfig(steps=10, batch_size=16, n_data=64, lr=0.1)
    blob = pickle.dumps((MeanModel(nan_at=2), Gauss2D().training_data(64, 0), cfg))  # its second loss is NaN
    first = list(train_chunk(blob, None, "cpu", 1, 10, math.inf, math.inf, []))
    mu = first[-1]["state"]["mu"]
    assert first[-1]["step"] == 1 and np.all(mu != 0)  # one step away from mu = 0
    # each call builds its model afresh, so the next call's second step gives the NaN
    end = list(train_chunk(blob, first[-1]["resume"], "cpu", 10, 10, math.inf, math.inf, []))
    assert len(end) == 1 and end[0]["final"] and end[0]["status"] == "diverged"
    assert "Training stopped at step 3" in end[0]["message"]
    assert np.all(np.isfinite(end[0]["state"]["mu"])) and np.all(end[0]["state"]["mu"] != 0)  # not the start


# ---- the transport ---------------------------------------------------------------
class Inbox:
    def __init__(self):
        self.items, self.lock = [], threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.items.append(msg)

    @property
    def step(self):
        return self.items[-1]["step"] if self.items else 0


def test_pause_step_and_live_settings_through_the_transport_lose_and_repeat_no_step():
    settings = {"steps": 100_000, "lr_schedule": "constant", "warmup": 0}
    inbox = Inbox()
    tr = ChunkedTransport(payload("nsgan", **settings), "cpu", 100_000, 5, 0.02, False, seconds=2.0)
    tr.start(inbox)
    assert wait_for(lambda: inbox.step > 8)
    seen = len(inbox.items)
    tr.send("pause")
    assert wait_for(lambda: tr.waiting)
    assert len(inbox.items) <= seen + 1  # at once: the report on its way at most, nothing the call did after
    frozen = inbox.step
    time.sleep(0.3)
    assert inbox.step == frozen
    tr.send("set", "lr", 4e-3)
    tr.send("step", 4)
    assert wait_for(lambda: inbox.step == frozen + 4) and wait_for(lambda: tr.waiting)
    assert inbox.step == frozen + 4 and inbox.items[-1]["lrs"] == {"D": 4e-3, "G": 4e-3}
    assert inbox.items[-1]["status"] == "paused"
    calls = tr.calls
    tr.send("resume")
    assert wait_for(lambda: inbox.step > frozen + 10 and tr.calls > calls + 1)
    tr.send("pause")
    assert wait_for(lambda: tr.waiting)
    tr.send("stop")
    tr.join(10)
    assert not tr.alive
    last = inbox.items[-1]
    assert last["final"] and last["status"] == "stopped" and "state" not in last  # stopped while paused
    weighed = [m for m in inbox.items if "state" in m]
    n = weighed[-1]["step"]
    assert last["step"] == n
    steps = [h["step"] for m in inbox.items for h in m["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == n
    reference = Trainer(*setup("nsgan", **settings), device="cpu", n_reference=64, n_eval=64)
    reference.fit(frozen, log_every=5)
    reference.set_live("lr", 4e-3)
    reference.fit(n - frozen, log_every=5)
    same_weights(weighed[-1]["state"], reference.engine.view_weights())
    history = [h for m in inbox.items for h in m["history"]]
    assert total(history, "loss_D") == pytest.approx(total(reference.history, "loss_D"), rel=1e-12)


class Snaps:
    def __init__(self):
        self.items = []

    def __call__(self, snap):
        self.items.append(snap)


def chunked_trainer(name="vae", chunk_call=None, chunk_seconds=0.2, **settings):
    cfg = registry.train_config(name, {**SETTINGS, "steps": 100_000, "lr_schedule": "constant", "warmup": 0,
                                       **settings})
    torch.manual_seed(cfg.seed)
    data = registry.load_dataset("eight_gaussians")
    model = registry.build_model(name, data.shape, {"layers": 2, "hidden": 16})
    return Trainer(model, data, cfg, device="cpu", transport="chunked", chunk_call=chunk_call,
                   chunk_seconds=chunk_seconds, n_reference=200, n_eval=200)


def test_a_chunked_trainer_pauses_steps_takes_live_settings_and_stops():
    t, snaps = chunked_trainer(), Snaps()
    t.start(snaps, snapshot_interval=0.05, metrics_interval=0.5)
    assert wait_for(lambda: t.step_count > 5)
    t.pause()
    assert t.status == "paused" and wait_for(lambda: t._transport.waiting)
    frozen = t.step_count
    time.sleep(0.3)
    assert t.step_count == frozen
    t.step_once(3)
    assert wait_for(lambda: t.step_count == frozen + 3) and wait_for(lambda: t._transport.waiting)
    assert t.step_count == frozen + 3
    t.set_live("lr", 4e-3)
    t.set_live("beta", 0.0)  # the loss becomes the reconstruction term alone
    t.resume()
    assert wait_for(lambda: t.reported_lrs == {"model": 4e-3})
    seen = len(t.history)
    assert wait_for(lambda: len(t.history) > seen + 3)
    t.stop()
    assert t.status == "stopped" and not t.running
    assert t._transport.calls >= 3  # the run went on over several calls
    last = t.history[-1]
    assert last["loss"] == pytest.approx(last["recon"], rel=1e-5) and last["kl"] > 0
    assert snaps.items[-1]["final"] and snaps.items[-1]["step"] == t.step_count


def test_a_chunked_run_that_reaches_its_steps_is_done_with_final_metrics():
    t, snaps = chunked_trainer(steps=30, chunk_seconds=0.01), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.status == "done")
    assert t.wait_views(30)
    assert t.step_count == 30 and snaps.items[-1]["final"] and snaps.items[-1]["step"] == 30
    assert t.metric_history[-1]["step"] == 30
    assert t._transport.calls > 1 and not t.running


class QuotaError(Exception):
    title = "ZeroGPU quota exceeded"  # as a gradio.Error has


def test_a_call_that_fails_ends_the_run_with_a_one_line_message():
    calls = []

    def failing(*args):
        calls.append(args[3])
        if len(calls) > 1:
            raise QuotaError("You have exceeded your GPU quota.\n<a href='https://huggingface.co'>Sign in</a>")
        return train_chunk(*args)

    t, snaps = chunked_trainer(chunk_call=failing, chunk_seconds=0.05), Snaps()
    t.start(snaps, snapshot_interval=0.05)
    assert wait_for(lambda: t.status == "error") and t.wait_views(30)
    assert t.message == f"Training stopped at step {t.step_count}: ZeroGPU quota exceeded: " \
                        f"You have exceeded your GPU quota. Sign in"
    assert t.step_count > 0 and snaps.items[-1]["final"] and not t.running


def test_a_call_that_ends_before_its_last_report_is_an_error():
    def truncated(*args):
        for item in train_chunk(*args):
            if not item["chunk_end"]:
                yield item
            return

    inbox = Inbox()
    tr = ChunkedTransport(payload("realnvp"), "cpu", 16, 4, 0.0, False, chunk_call=truncated)
    tr.start(inbox)
    tr.join(30)
    assert not tr.alive and inbox.items[-1]["final"] and inbox.items[-1]["status"] == "error"
    assert inbox.items[-1]["message"] == "Training stopped at step 1: RuntimeError: the call that trains ended " \
                                         "before its last report"


def test_a_call_that_does_not_return_is_left_behind():
    release, inside = threading.Event(), threading.Event()

    def stuck(*args):
        inside.set()
        release.wait(30)
        yield from train_chunk(*args)

    inbox = Inbox()
    tr = ChunkedTransport(payload("realnvp"), "cpu", 16, 4, 0.0, False, chunk_call=stuck)
    tr.start(inbox)
    assert inside.wait(10)
    tr.send("stop")
    tr.join(0.2)
    assert tr.alive
    tr.kill()
    assert not tr.alive and len(inbox.items) == 1 and inbox.items[0]["final"] and inbox.items[0]["status"] == "stopped"
    release.set()
    tr.join(30)
    assert not tr._thread.is_alive() and len(inbox.items) == 1  # what the call said afterwards went nowhere


WHO = contextvars.ContextVar("who")


def test_every_call_runs_in_the_context_it_was_given():
    seen = []

    def noting(payload, state, device, steps, *rest):
        seen.append(WHO.get(None))
        done = pickle.loads(state)["step"] if state is not None else 0
        for item in train_chunk(payload, state, device, min(steps, done + 2), *rest):  # several calls, however fast
            seen.append(WHO.get(None))
            yield item

    asked = contextvars.copy_context()
    asked.run(WHO.set, "the person who pressed Play")
    t = chunked_trainer(chunk_call=noting, chunk_seconds=0.01, steps=6)
    threading.Thread(target=t.start, kwargs={"context": asked}).start()  # started from elsewhere
    assert wait_for(lambda: t.status == "done")
    assert len(seen) >= 6 and set(seen) == {"the person who pressed Play"}

    seen.clear()  # by default: the context of whoever starts it
    inbox, tr = Inbox(), ChunkedTransport(payload("realnvp"), "cpu", 3, 4, 0.0, False, chunk_call=noting)
    starter = contextvars.copy_context()
    starter.run(WHO.set, "the starter")
    starter.run(tr.start, inbox)
    tr.join(30)
    assert inbox.items[-1]["status"] == "done" and set(seen) == {"the starter"}


def test_chunk_options_are_checked():
    cfg = registry.train_config("realnvp", SETTINGS)
    data = registry.load_dataset("eight_gaussians")
    model = registry.build_model("realnvp", data.shape, MODELS["realnvp"])
    with pytest.raises(ConfigError, match="chunk_call is for transport 'chunked'"):
        Trainer(model, data, cfg, device="cpu", transport="process", chunk_call=train_chunk)
    with pytest.raises(ConfigError, match="chunk_seconds must be a positive number"):
        Trainer(model, data, cfg, device="cpu", transport="chunked", chunk_seconds=0)
    with pytest.raises(ConfigError, match="thread, process, chunked"):
        Trainer(model, data, cfg, device="cpu", transport="gpu")
    with pytest.raises(RuntimeError, match="in chunks"):
        _ = Trainer(model, data, cfg, device="cpu", transport="chunked").engine
