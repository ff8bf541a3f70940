"""A classroom on one server: closed tabs free what they held and start nothing afterwards, a
killed training process can be played again, text from a link is shown as text, and the
picture budget spreads over the tabs that watch."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from playground import app as A
from playground.app import share
from playground.app.status import markdown_text
from playground.runs import RunManager, Session
from playground.runs.manager import default_max_runs
from tests.fakes import free_port, wait_for
from tests.playground.tiny import knob_values, tiny_run

ROOT = Path(__file__).resolve().parents[3]


class Request:
    """What the page's handlers read of a Gradio request."""

    def __init__(self, session_hash="tab", query=None):
        self.session_hash, self.query_params = session_hash, dict(query or {})


def child_alive(run) -> bool:
    proc = getattr(run.trainer._transport, "proc", None)
    return proc is not None and proc.is_alive()


# ---- closed tabs --------------------------------------------------------------
@pytest.mark.parametrize("state", ["paused", "stepped", "training"])
def test_closing_a_tab_stops_its_run_whatever_its_state(state):
    m = RunManager(2)
    try:
        s = Session(m)
        s.owner = "tab-a"
        assert m.attach("tab-a", s)
        run = tiny_run(s)
        if state == "stepped":
            run.step_once(3)
        else:
            run.play()
        assert wait_for(lambda: run.step >= 3, timeout=30)
        if state == "paused":
            run.pause()
        assert child_alive(run)
        share.close_session(m, Request("tab-a"))
        assert wait_for(lambda: not child_alive(run), timeout=10), "the closed tab's training process lives on"
        assert s.closed and s.current is None and m.active == 0
    finally:
        m.shutdown()


def test_a_request_after_the_tab_closed_starts_nothing():
    """A late Play (its tab already unloaded) neither trains nor holds a slot, nor queues."""
    m = RunManager(1)
    try:
        a, b = Session(m), Session(m)
        for owner, s in (("tab-a", a), ("tab-b", b)):
            s.owner = owner
            m.attach(owner, s)
        tiny_run(a).play()
        run_b = tiny_run(b)
        share.close_session(m, Request("tab-b"))
        run_b.play()
        assert run_b.status != "waiting" and m.waiting == 0
        run_b.step_once(5)
        time.sleep(0.5)
        assert run_b.step == 0 and not child_alive(run_b)
        with pytest.raises(Exception, match="Reload the page"):
            tiny_run(b)
        # the same tab's session made anew (Gradio dropped the old state) is refused as well
        c = Session(m)
        assert not m.attach("tab-b", c)
    finally:
        m.shutdown()


def test_the_page_refuses_a_late_play_over_http(served_api):
    """The reproduction: a session, its tab closes, then Play with the same session hash."""
    manager, client = served_api
    state = lambda: client.predict(api_name="/state")[0]  # noqa: E731
    client.predict("realnvp", "two_moons", api_name="/play")
    assert wait_for(lambda: state()["step"] > 5, timeout=30, every=0.2)
    share.close_session(manager, Request(client.session_hash))  # what the unload event does
    runs = [r for r in list(manager._runs) if r.owner == client.session_hash]
    assert runs and wait_for(lambda: not any(child_alive(r) for r in runs), timeout=10)
    status = client.predict("realnvp", "two_moons", api_name="/play")
    assert "Reload the page" in str(status)
    time.sleep(1.0)
    assert manager.active == 0 and manager.waiting == 0
    assert not any(child_alive(r) for r in list(manager._runs))


def test_a_closed_tab_leaves_nothing_in_gradios_session_store():
    """Gradio keeps a closed session's state for an hour (half a megabyte of this page's
    configuration per session); closing the tab drops it at once, and the tab stays closed."""
    import asyncio

    import httpx

    from playground.loadtest.wire import Endpoints, Wire

    manager = RunManager(2)
    demo = A.build_app(manager)
    demo.launch(server_name="127.0.0.1", server_port=(port := free_port()), prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"

    async def visit() -> str:
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None), trust_env=False) as http:
            wire = Wire(http, url, await Endpoints.read(http, url))
            await wire.open(30)
            await wire.call("/state", timeout=30)
            assert wire.session_hash in demo.state_holder.session_data  # what Gradio holds while it is open
            await wire.close()  # as a tab closes: its heartbeat ends, the page's unload runs
            return wire.session_hash

    try:
        session_hash = asyncio.run(visit())
        assert wait_for(lambda: manager.is_closed(session_hash), timeout=30)
        assert wait_for(lambda: session_hash not in demo.state_holder.session_data, timeout=10)
    finally:
        demo.close()
        manager.shutdown()


MALLOC_PROBE = """
import ctypes, sys
from playground.app import share

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t)
                for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc.mallinfo2.restype = Info

def kept(size=1 << 20):  # whether the heap's top still holds most of a large block once it is freed
    libc.free(libc.malloc(size))
    return libc.mallinfo2().keepcost >= size // 2

before = kept()
tuned = share.tune_malloc()
print(before, tuned, kept(), kept(4 << 20), kept(300 << 10))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_the_servers_heap_gives_a_freed_picture_buffer_back():
    """A large block freed is given back at once: where glibc has raised its thresholds past large
    blocks freed before (importing torch and Gradio does), it keeps the next ones in its heap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", MALLOC_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["True", "True", "False", "False", "False"], out  # before: kept in the heap; after: given back
    env["MALLOC_MMAP_THRESHOLD_"] = env["MALLOC_TRIM_THRESHOLD_"] = str(64 << 20)  # a person's own settings win
    out = subprocess.run([sys.executable, "-c", MALLOC_PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["True", "True", "True", "True", "True"], out


def test_the_api_plays_any_family_not_only_the_first_shown(served_api):
    _, client = served_api
    client.predict("vae", "two_moons", api_name="/play")
    s = client.predict(api_name="/state")[0]
    assert s["model"] == "vae" and s["status"] in ("running", "waiting")
    status = client.predict("no_such_model", "two_moons", api_name="/reset")
    shown = str(status).replace("\\", "")
    assert "no_such_model" in shown and "realnvp" in shown  # named, with what is allowed


# ---- a killed training process ----------------------------------------------------
def test_a_killed_training_process_is_reported_and_play_starts_again(manager):
    s = Session(manager)
    knobs = knob_values("realnvp", layers=2, hidden=16, n_data=512, batch_size=64)
    A.play(s, "realnvp", "two_moons", knobs)
    run = s.current
    assert wait_for(lambda: run.step > 3 and child_alive(run), timeout=30)
    os.kill(run.trainer._transport.proc.pid, signal.SIGKILL)
    assert wait_for(lambda: run.status == "error", timeout=10)
    status = A.format_status(s)
    assert "killed" in status and "Play" in status
    A.play(s, "realnvp", "two_moons", knobs)
    assert s.current is not run
    assert wait_for(lambda: s.current.step > 3, timeout=30)


@contextlib.contextmanager
def app_py(tmp_path, **env):
    """`python app.py` on a loopback port, as a person starts it: (process, port, gradio_client)."""
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", **env}
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        client = None
        deadline = time.monotonic() + 240  # imports alone take a minute on a loaded 2-core machine
        while client is None and time.monotonic() < deadline:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        assert client is not None, "the server did not start: " + (tmp_path / "server.log").read_text()[-2000:]
        yield server, port, client
    finally:
        if server.poll() is None:
            server.kill()
        for p in descendants(server.pid):
            os.kill(p, signal.SIGKILL)
        server.wait(10)
        log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_a_killed_server_leaves_no_training_process_behind(tmp_path):
    with app_py(tmp_path, PLAYGROUND_MAX_RUNS="2") as (server, _, client):
        client.predict("realnvp", "two_moons", api_name="/play")
        assert wait_for(lambda: client.predict(api_name="/state")[0]["step"] > 5, timeout=120, every=0.3)
        family = descendants(server.pid)
        assert len(family) >= 2  # the server the children fork from, and the training child
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert wait_for(lambda: not [p for p in family if alive(p)], timeout=15), \
            f"left behind: {[p for p in family if alive(p)]}"


def test_the_server_keeps_an_idle_connection_longer_than_its_clients_do(tmp_path):
    """A client drops an idle connection after its own time, counted from when it read the answer;
    if the server closed it first, a client that read late would send on a closing connection and
    lose the request. Gradio's server as launched closed after 5 s, httpx's own time."""
    import http.client

    import httpx

    clients_time = httpx.Limits().keepalive_expiry  # gradio_client's too
    with app_py(tmp_path, PLAYGROUND_MAX_RUNS="1") as (_, port, _client):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for idle in (0.0, clients_time + 1.5):
                time.sleep(idle)
                conn.request("GET", "/gradio_api/info")  # on the same connection: no reconnect
                answer = conn.getresponse()
                answer.read()
                assert answer.status == 200, idle
        except (http.client.RemoteDisconnected, ConnectionError) as e:
            pytest.fail(f"the server closed a connection idle for {idle} s: {e!r}")
        finally:
            conn.close()


def descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---- what a link or a file may put on the page ----------------------------------------
def test_html_and_markdown_from_a_link_are_shown_as_text(manager):
    s = Session(manager)
    out = A.on_load(s, Request(query={"model": '<a href="https://example.org">Session expired</a>',
                                      "data": "<h1 style=color:red>big</h1>", "lr": "[click](https://x.org)"}))
    status = out["status"]
    for raw in ("<a ", "<h1", "](https://", "https://"):
        assert raw not in status, raw
    assert "&lt;a href" in status and "&lt;h1" in status  # still readable, as the characters it was
    assert markdown_text("**x** # y") == "\\*\\*x\\*\\* # y"


def test_a_small_upload_trains_on_all_its_points_at_each_step(manager, tmp_path):
    pts = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    path = tmp_path / "few.csv"
    np.savetxt(path, pts, delimiter=",")
    s = Session(manager)
    out = A.on_upload(s, "realnvp", str(path), knob_values("realnvp"))  # the default batch is larger
    assert s.current.dataset_name == "upload: few.csv" and s.current.train_cfg.batch_size == 40
    assert "batch_size is 40" in out["status"].replace("\\", "")
    A.play(s, "realnvp", "upload: few.csv", knob_values("realnvp"))
    assert wait_for(lambda: s.current.step > 3, timeout=30)
    assert s.current.dataset_name == "upload: few.csv"
    # a batch size the person chose stays theirs, and is refused with the largest allowed
    with pytest.raises(Exception, match="at most 40"):
        A.on_upload(s, "realnvp", str(path), knob_values("realnvp", batch_size=64))


# ---- the picture budget and the queue cap -----------------------------------------------------
def test_the_picture_budget_spreads_over_the_watched_tabs():
    m = RunManager(4)
    m._redraw_cost = 0.05
    assert m.redraw_interval(0.15) == 0.15  # nobody else watching: the page's own timer
    for i in range(30):
        m.watching(f"tab{i}")
    assert m.redraw_interval(0.15) == pytest.approx(30 * 0.05 / 0.5)  # 30 tabs share half a core
    for i in range(20):
        m.unwatched(f"tab{i}")  # background tabs cost nothing
    assert m.redraw_interval(0.15) == pytest.approx(10 * 0.05 / 0.5)
    assert m.picture_rest(0.25) > 0.25


def test_a_hidden_tab_is_sent_no_pictures(manager):
    s = Session(manager)
    s.owner = "tab"
    run = tiny_run(s)
    assert wait_for(lambda: run.latest is not None, timeout=30)
    assert "slots" not in A.tick(s, "step", "auto", visible="hidden")
    assert not s.watched() and not run.watched()
    assert "slots" in A.tick(s, "step", "auto", visible="visible") and s.watched()


def test_a_tab_whose_browser_is_slow_to_draw_is_sent_fewer_pictures(manager):
    """The page reports its long tasks with each tick: a browser that spent 4 of the last 5 s
    drawing the one picture it was sent is sent the next only after LONGEST seconds, and its
    timer slows to once a second; once its readings fall it is back at the server's pace."""
    from playground.runs import browser as B

    s = Session(manager)
    s.owner = "tab"
    run = tiny_run(s)
    run.play()
    try:
        assert wait_for(lambda: run.step >= 5 and run.latest is not None, timeout=30)
        assert "slots" in A.tick(s, "step", "auto", visible="visible 0 5000")
        sent = s.last_redraw
        assert wait_for(lambda: run.seq != s.shown_seq, timeout=30)  # a newer picture is ready
        out = A.tick(s, "step", "auto", visible="visible 4000 5000")
        assert "slots" not in out and s.browser.interval() == B.LONGEST
        assert timer_period(out) == A.handlers.IDLE_TICK  # slower, but its status line still moves each second
        while time.monotonic() - sent < B.LONGEST - 0.5:  # none until LONGEST has passed
            assert "slots" not in A.tick(s, "step", "auto", visible="visible 4000 5000")
            time.sleep(0.3)
        for _ in range(12):  # the browser keeps up again: its estimate falls back
            A.tick(s, "step", "auto", visible="visible 0 5000")
        assert s.browser.interval() < 0.15
        assert wait_for(lambda: "slots" in A.tick(s, "step", "auto", visible="visible 0 5000"), timeout=10)
    finally:
        run.stop(wait=5)


def test_a_client_of_the_api_is_drawn_no_pictures_not_even_its_first(manager):
    """A script has no page to show pictures on: its runs draw none, step 0 included (each drawn
    for nobody cost the server a picture at every Reset); a page's run shows its untrained model."""
    api, page = Session(manager), Session(manager)
    api.api_call()
    page.page_loaded()
    try:
        run_api, run_page = tiny_run(api), tiny_run(page)
        assert wait_for(lambda: run_page.latest is not None and run_api.latest is not None, timeout=30)
        assert "traces" in run_page.latest and run_page.latest["step"] == 0
        assert "traces" not in run_api.latest and run_api.latest["step"] == 0 and not run_api.watched()
        run_api.step_once(3)
        assert wait_for(lambda: run_api.step >= 3, timeout=30)
        time.sleep(0.5)
        assert "traces" not in run_api.latest
    finally:
        api.close()
        page.close()


def timer_period(out):
    """The period a handler set the page's timer to, or None if it left it alone."""
    return out["timer"].value if "timer" in out else None


def test_the_page_ticks_slowly_while_nothing_it_shows_can_change(manager):
    s = Session(manager)
    s.owner = "tab"
    run = tiny_run(s)
    assert wait_for(lambda: run.latest is not None, timeout=30)
    out = A.tick(s, "step", "auto")  # the first picture is drawn; nothing trains
    assert "slots" in out and timer_period(out) == A.handlers.IDLE_TICK and s.timer_period == A.handlers.IDLE_TICK
    assert timer_period(A.tick(s, "step", "auto")) is None  # told once, not at every tick

    out = A.play(s, "realnvp", "two_moons", knob_values("realnvp"), page=True)  # Play: at the page's pace at once
    run = s.current
    assert timer_period(out) == 0.15 and run.status == "running"
    assert wait_for(lambda: run.step >= 5, timeout=30)
    for _ in range(3):  # while it trains the timer stays as it is
        assert timer_period(A.tick(s, "step", "auto")) is None
    assert timer_period(A.tick(s, "step", "auto", visible="hidden")) == A.handlers.IDLE_TICK  # a background tab
    assert timer_period(A.tick(s, "step", "auto", visible="visible")) == 0.15  # back in front: at once

    A.pause(s)
    s.lively_until = 0.0  # the seconds after a button have passed
    assert wait_for(lambda: run.status == "paused" and
                    timer_period(A.tick(s, "step", "auto")) == A.handlers.IDLE_TICK, timeout=10)
    assert timer_period(A.step(s, "realnvp", "two_moons", knob_values("realnvp"), page=True)) == 0.15  # soon shown
    manager._redraw_cost = 0.05
    for i in range(12):  # thirteen tabs share the picture budget: each may redraw every 13 x 0.05 / 0.5 = 1.3 s
        manager.watching(f"other{i}")
    assert manager.redraw_interval(0.15) == pytest.approx(1.3)
    assert timer_period(A.handlers._retime(s)) == 1.5  # the next period the timer takes


def test_the_page_wires_its_timer_to_the_redraws_and_the_buttons_that_move_a_run():
    import gradio as gr

    demo = A.build_app(RunManager(1))
    timer = next(b for b in demo.blocks.values() if isinstance(b, gr.Timer) and b.value == 0.15)

    def handler(dep):  # the handler a bound callback calls (None for Gradio's own)
        cells = getattr(dep.fn, "__closure__", None) or ()
        return dict(zip(dep.fn.__code__.co_freevars, (c.cell_contents for c in cells))).get("fn") if dep.fn else None

    wired = {}  # handler name -> {(sends the timer, is an API endpoint)}
    for dep in demo.fns.values():
        fn = handler(dep)
        if fn is not None:
            wired.setdefault(fn.__name__, set()).add((timer in dep.outputs, dep.api_visibility != "private"))
    assert wired["tick"] == {(True, False)} and wired["set_redraw"] == {(True, False)}
    assert wired["step_phase"] == {(True, False)}
    for name in ("play", "step", "reset"):  # the page's buttons set its timer; the API's endpoints have none
        assert wired[name] == {(True, False), (False, True)}, name


def test_the_default_cap_follows_the_machine(monkeypatch):
    assert default_max_runs(cores=2, gpus=0) == 1  # one core is the page's
    assert default_max_runs(cores=16, gpus=0) == 15
    assert default_max_runs(cores=16, gpus=1) == 8 and default_max_runs(cores=4, gpus=2) == 4
    monkeypatch.setenv("PLAYGROUND_MAX_RUNS", "3")
    assert RunManager().max_runs == 3
    monkeypatch.setenv("PLAYGROUND_MAX_RUNS", "many")
    with pytest.raises(ValueError, match="whole number"):
        RunManager()


def pulse_due(s, visible="visible"):
    return A.handlers.pulse(s, visible)["pulse"] == "1"


def test_the_pulse_says_a_redraw_is_due_exactly_when_a_tick_would_send_something(manager):
    """Between redraws the page asks the pulse whether to tick: it must say yes whenever a tick
    would change the page (its timer, the status line, a picture, a curve), and no when the tick
    would send nothing, or a page that only waits would keep costing its browser a Gradio event."""
    s = Session(manager)
    s.owner = "tab"
    run = tiny_run(s)
    assert wait_for(lambda: run.latest is not None, timeout=30)
    assert pulse_due(s)  # the first picture, and the timer's period, are still to be sent
    assert "slots" in A.tick(s, "step", "auto")
    for _ in range(3):  # a ready run, drawn: nothing to send, and the pulse says so
        assert not pulse_due(s)
        assert set(A.tick(s, "step", "auto")) == set()
    assert not pulse_due(s, "hidden")  # in the background, its timer already at its idle period
    assert not pulse_due(s)

    run.play()
    try:
        assert wait_for(lambda: run.step >= 5, timeout=30)
        assert pulse_due(s)  # the status line moves and a newer picture is ready
        out = A.tick(s, "step", "auto")
        assert "status" in out and out["pace"] == "busy"  # the page now redraws at each tick
        run.pause()
        assert wait_for(lambda: run.status == "paused", timeout=10)
        s.lively_until = 0.0
        assert pulse_due(s)  # "paused" is still to be shown
        assert wait_for(lambda: (A.tick(s, "step", "auto"), not pulse_due(s))[1], timeout=10)
        assert s.timer_mode == "still"  # and asks the pulse first again
        assert set(A.tick(s, "step", "auto")) == set()  # and, as the pulse said, the tick sends nothing
        assert pulse_due(s, "hidden") is False  # a paused run in the background: nothing to say either
        s.notify("a note")  # a note in the status line is news
        assert pulse_due(s, "visible")
    finally:
        run.stop(wait=5)
