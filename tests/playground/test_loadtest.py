"""The load test: how it reads what sessions saw, the processes it watches, and a short run of it.

The short run starts the real server with a cap of one run, one Chromium tab and two API
clients, and checks what must hold at any speed: every session connected, every action
answered, never more runs training than the cap, and nothing of the server left behind.
"""

import json
import os
import random
import subprocess
import sys
import time

import pytest

from core.errors import ConfigError
from playground import app as A
from playground.loadtest import cli
from playground.loadtest.cgroup import Weighted
from playground.loadtest.procs import CPU_PARTS, WAIT_PARTS, ProcessWatch, end_processes, most_held, read_procs
from playground.loadtest.readings import Obs, first_start_after, most_at_once, parse_status, queue_waits, stats, training_spans
from playground.loadtest.students import ACTIONS, CHROMIUM, PHASES
from playground.loadtest.witness import LoopLag, Witness
from playground.runs import Session

from .tiny import tiny_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- reading the status line ------------------------------------------------------
def test_the_status_line_of_a_training_and_a_queued_run_reads_back(manager):
    a, b = Session(manager), Session(manager)
    try:
        tiny_run(a).play()
        tiny_run(b).play()  # the cap is one run: b waits
        running, waiting = parse_status(A.format_status(a)), parse_status(A.format_status(b))
        assert running["state"] == "running" and running["queue"] == 0 and running["step"] >= 0
        assert (waiting["state"], waiting["queue"], waiting["step"]) == ("waiting", 1, 0)
    finally:
        a.close()
        b.close()


def test_the_status_line_as_a_tab_shows_it_and_a_refusal():
    shown = "step 1,234 / 5,000 · 80 steps/s · 12.3 s · waiting · device cpu · 4 runs are training; you are #3 in the queue"
    assert {k: parse_status(shown)[k] for k in ("step", "state", "queue", "refused")} == \
        {"step": 1234, "state": "waiting", "queue": 3, "refused": False}
    refused = parse_status("⚠️ Nothing to export yet: press Play first.")
    assert refused["refused"] and refused["step"] is None and refused["state"] is None
    assert parse_status("Loading…")["step"] is None


# ---- spans of training: never more than truly trained at once -----------------------
def simulate(cap: int, per_slot: int, seconds: float, tab_lag: float, rng: random.Random):
    """Sessions sharing `cap` slots (each slot passed among its own `per_slot` sessions, never to
    the one that just had it), and what each saw: API calls reading the state somewhere inside
    [t0, t1], or a tab showing it up to `tab_lag` seconds late. Returns (observations of each
    session with its guard, the true most training at once)."""
    intervals = {k: [] for k in range(cap * per_slot)}
    for slot in range(cap):
        t, last = 0.0, None
        while t < seconds:
            k = rng.choice([k for k in range(slot * per_slot, (slot + 1) * per_slot) if k != last])
            a = t + rng.choice([0.0, rng.uniform(0, 0.5)])  # a promoted run may start at once
            b = a + rng.uniform(0.3, 3.0)
            intervals[k].append((a, b))
            t, last = b, k

    def state(k, s):
        return "running" if any(a <= s < b for a, b in intervals[k]) else "waiting"

    sessions = []
    for k, mine in intervals.items():
        # a session's own Pause is answered (and seen) just after its run stops; and it looks now and then
        moments = sorted([b + rng.uniform(0.001, 0.05) for _, b in mine] + [rng.uniform(0, seconds) for _ in range(200)])
        tab = k % 2 == 1
        obs, shown = [], -1.0
        for s in moments:
            if tab:
                shown = max(shown, s + rng.uniform(0, tab_lag))  # a page shows answers in order
                obs.append(Obs(shown, shown, state(k, s), 0, 0))
            else:
                obs.append(Obs(s - rng.uniform(0, 0.3), s + rng.uniform(0, 0.3), state(k, s), 0, 0))
        sessions.append((obs, tab_lag if tab else 0.0))
    truth = max(sum(1 for v in intervals.values() for a, b in v if a <= t < b)
                for v in intervals.values() for t, _ in v)
    return sessions, truth


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_runs_seen_training_at_once_never_exceed_those_that_did(cap):
    rng = random.Random(cap)
    for _ in range(20):
        sessions, truth = simulate(cap, per_slot=3, seconds=60.0, tab_lag=0.8, rng=rng)
        spans = [span for obs, guard in sessions for span in training_spans(obs, guard)]
        most, _ = most_at_once(spans)
        assert truth == cap and most <= truth
    assert most == cap  # looked at often enough, every slot is seen in use at once


def test_a_pause_between_two_looks_ends_the_span():
    obs = [Obs(0.0, 0.2, "running", 10, 0), Obs(1.0, 1.2, "running", 20, 0), Obs(2.0, 2.1, "paused", 25, 0),
           Obs(3.0, 3.1, "running", 25, 0), Obs(5.0, 5.2, "waiting", 30, 1)]
    assert training_spans(obs) == [(0.2, 1.0)]  # the lone `running` at 3 s proves no span
    assert training_spans(obs, guard=0.5) == [(0.2, 0.5)]
    assert training_spans(obs, guard=1.0) == []


def test_the_most_at_once_overall_and_every_ten_seconds():
    most, every = most_at_once([(0.0, 5.0), (3.0, 12.0), (11.0, 25.0)], bucket=10.0)
    assert most == 2
    assert every == [{"t": 0.0, "most": 2}, {"t": 10.0, "most": 2}, {"t": 20.0, "most": 1}]
    assert most_at_once([]) == (0, [])


def test_waits_in_the_queue_end_in_training_in_leaving_or_not_at_all():
    obs = [Obs(0, 1, "waiting", 0, 2), Obs(2, 3, "waiting", 0, 1), Obs(4, 5, "running", 0, 0),
           Obs(6, 7, "waiting", 9, 1), Obs(8, 9, "paused", 9, 0), Obs(10, 11, "waiting", 9, 1)]
    assert queue_waits(obs) == [{"outcome": "started", "waited_s": 5}, {"outcome": "left", "waited_s": 3},
                                {"outcome": "open", "waited_s": 1}]
    others = [obs, [Obs(0, 1, "running", 0, 0), Obs(6, 6.5, "running", 0, 0)]]
    assert first_start_after(3.5, 30.0, others) == pytest.approx(1.5)  # the queued one, not the one training
    assert first_start_after(3.5, 4.0, others) is None
    assert first_start_after(5.5, 30.0, others) is None  # nobody was waiting then


def test_percentiles_are_values_that_were_measured():
    assert stats([float(v) for v in range(20, 0, -1)]) == {"n": 20, "p50": 10.0, "p95": 19.0, "max": 20.0}
    assert stats([0.25]) == {"n": 1, "p50": 0.25, "p95": 0.25, "max": 0.25}
    assert stats([])["p50"] is None


# ---- the command line ---------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:7860", "http://localhost:7860/", "https://[::1]:8443/x"])
def test_loopback_addresses_are_taken(url):
    assert cli.loopback_url(url).startswith(url.split("://")[0] + "://")


@pytest.mark.parametrize("argv, says", [
    (["--url", "http://10.0.0.5:7860/"], "loopback"), (["--url", "http://example.com/"], "loopback"),
    (["--url", "ftp://127.0.0.1/"], "loopback"), (["--sessions", "3", "--tabs", "4"], "allowed 0 to --sessions"),
    (["--minutes", "0"], "allowed above 0"), (["--pid", "1"], "goes with --url")])
def test_a_bad_argument_is_one_line_saying_what_is_allowed(argv, says, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("loadtest: ") and says in err and "\n" not in err and "Traceback" not in err


# ---- processes from /proc -----------------------------------------------------------
PARENT = """
import subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
gone = subprocess.Popen([sys.executable, "-c", "pass"])  # exits at once; never waited for: a zombie
spin = subprocess.Popen([sys.executable, "-c", "import time; t = time.time() + 60; exec('while time.time() < t: pass')"])
print(kid.pid, gone.pid, spin.pid, flush=True)
time.sleep(60)
"""


def test_the_watch_sees_children_a_busy_one_zombies_and_orphans_left_by_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    kids = []
    try:
        kids = [int(x) for x in parent.stdout.readline().split()]
        kid, gone, spin = kids
        watch = ProcessWatch(parent.pid, time.time())
        end = time.time() + 20
        while read_procs()[gone].state != "Z" and time.time() < end:
            time.sleep(0.1)
        s = watch.sample()
        assert s["children"] == 3 and s["zombies"] == 1 and s["rss_mb"] > 1 and s["alive"]
        assert s["busy_runs"] is None and watch.orphans == {}  # busy needs two readings
        parts = s["pss_parts_mb"]
        if os.path.exists(f"/proc/{parent.pid}/smaps_rollup"):  # a zombie among the children counts 0
            assert s["pss_mb"] is not None and parts is not None
        if parts is not None:  # where smaps_rollup can be read: the parts add up, each where it belongs
            assert abs(sum(parts.values()) - s["pss_mb"]) <= 0.3 and parts["server"] > 0
            assert parts["runs"] > 0 and parts["helpers"] == 0  # no baseline yet: every child counts as a run
            watch.baseline = {(kid, read_procs()[kid].start)}
            parts = watch.sample()["pss_parts_mb"]
            assert parts["helpers"] > 0 and parts["runs"] > 0
        busy = []
        for _ in range(20):  # the spinner gets a tenth of a core at some second, the sleeper never
            time.sleep(0.5)
            busy.append(watch.sample()["busy_runs"])
            if 1 in busy:
                break
        assert 1 in busy and max(busy) == 1
        parent.kill()
        parent.wait()
        s = watch.sample()  # the sleeper and the spinner live on under another parent
        assert not s["alive"] and sorted(pid for pid, _ in watch.orphans) == sorted([kid, spin])
        assert sorted(pid for pid, _ in watch.still_alive()) == sorted([kid, spin])
        end_processes(watch.still_alive())
        assert watch.still_alive() == []
    finally:
        parent.kill()
        parent.wait()
        procs = read_procs()
        for pid in kids:
            if pid in procs and procs[pid].state != "Z":
                os.kill(pid, 9)


SPIN = "import time; t = time.time() + 20; exec('while time.time() < t: pass')"
SERVER = f"""
import subprocess, sys, time
spin = subprocess.Popen([sys.executable, "-c", {SPIN!r}])
print(spin.pid, flush=True)
time.sleep(20)
"""


def test_the_machines_cpu_is_put_on_the_server_its_processes_the_browsers_and_the_rest():
    # a sleeping "server" whose child spins, and a spinning process of this one's (a "browser")
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    browser = subprocess.Popen([sys.executable, "-c", SPIN])
    spin = None
    try:
        spin = int(server.stdout.readline())
        watch = ProcessWatch(server.pid, time.time())
        assert watch.sample()["cpu_cores"] is None  # a rate needs two readings
        time.sleep(2)
        cores = watch.sample()["cpu_cores"]
        assert set(cores) == set(CPU_PARTS) and min(cores.values()) >= 0
        assert cores["its_processes"] >= 0.3 and cores["browsers"] >= 0.3, cores  # each spinner about a core
        assert cores["server"] < 0.2 and cores["load_test"] < 0.5, cores  # a sleeper; this test, waiting
        assert sum(cores.values()) <= 1.1 * os.cpu_count(), cores
    finally:
        for proc in (server, browser):
            proc.kill()
            proc.wait()
        procs = read_procs()
        if spin in procs:
            end_processes([(spin, procs[spin].start)])


CROWD = f"""
import os, subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", {SPIN!r}]) for _ in range(os.cpu_count())]
print(" ".join(str(k.pid) for k in kids), flush=True)
{SPIN}
"""


def test_a_server_that_spins_among_more_spinners_than_cores_is_seen_waiting_for_one():
    server = subprocess.Popen([sys.executable, "-c", CROWD], stdout=subprocess.PIPE, text=True)
    kids = []
    try:
        kids = [int(x) for x in server.stdout.readline().split()]
        watch = ProcessWatch(server.pid, time.time())
        assert watch.sample()["waiting_threads"] is None  # a rate needs two readings
        time.sleep(2)
        waiting = watch.sample()["waiting_threads"]
        if waiting is None:
            pytest.skip("this kernel keeps no scheduler statistics (/proc/<pid>/task/<tid>/schedstat)")
        # one core too few: each spinner is ready all the time and runs about n/(n+1) of it
        assert set(waiting) == set(WAIT_PARTS) and waiting["server"] >= 0.05, waiting
        assert waiting["server"] <= 1.05, waiting  # one thread cannot wait more than the whole time
    finally:
        server.kill()
        server.wait()
        procs = read_procs()
        end_processes([(pid, procs[pid].start) for pid in kids if pid in procs])


def test_the_witness_times_the_servers_loop_and_its_worker_threads_apart():
    """A server whose event-loop route stalls once and whose worker-thread route fails once: the
    witness, asking both from a process of its own, dates the stall on the one route only and
    keeps the failure as an error, not as a time."""
    import http.server
    import threading

    asked = {"/gradio_api/user": 0, "/gradio_api/app_id": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked[self.path] += 1
            if self.path == "/gradio_api/user" and asked["/gradio_api/user"] == 3:
                time.sleep(1.2)
            status = 503 if self.path == "/gradio_api/app_id" and asked["/gradio_api/app_id"] == 2 else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    t0 = time.time()
    witness = Witness(f"http://127.0.0.1:{server.server_address[1]}/", t0, every=0.1)
    try:
        assert wait_until(lambda: len(witness.seen["loop"]) >= 8 and len(witness.seen["thread"]) >= 8, 60)
    finally:
        witness.stop()
        server.shutdown()
    rep = witness.report(0.0, rep_at := time.time() - t0)
    loop, thread = rep["loop"], rep["thread"]
    assert loop["max"] >= 1.2 and loop["slowest"][0]["s"] == pytest.approx(loop["max"], abs=1e-3), loop
    assert loop["errors"] == [], loop
    assert thread["max"] < 1.0, thread  # its own thread: not held up by the other route's stall
    assert [e["error"] for e in thread["errors"]] == ["HTTP 503"] and thread["n"] == len(witness.seen["thread"])
    assert 0.0 < loop["slowest"][0]["t"] < rep_at  # dated on the test's clock, as the students' actions are


def test_the_load_tests_own_loop_is_seen_late_when_something_holds_it():
    import asyncio

    t0 = time.time()
    lag = LoopLag(t0)

    async def held_once():
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.5)
        time.sleep(0.7)  # holds the loop, as a busy callback would
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(held_once())
    rep = lag.report(0.0, time.time() - t0)
    worst = rep["slowest"][0]
    assert rep["max"] >= 0.45 and worst["s"] == pytest.approx(rep["max"], abs=1e-3), rep  # the 0.7 s hold, less the sleep it fell in
    assert 0.5 <= worst["t"] <= 1.5 and rep["p50"] < 0.3, rep


def wait_until(test, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if test():
            return True
        time.sleep(0.05)
    return False


def test_the_most_busy_at_once_counts_only_what_held():
    assert most_held([1, 2, 4, 2, 2, 3, 3, 3, 1], 3) == 3  # the 4 of a hand-over moment does not hold
    assert most_held([None, 5, 5, 5], 3) == 5 and most_held([None, 5, 5], 3) == 0 and most_held([], 3) == 0


# ---- a short load test on the real server -------------------------------------------
def _can_drive_chromium() -> str:
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (CI installs it)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return ""


@pytest.mark.skipif(bool(_can_drive_chromium()), reason=_can_drive_chromium() or "-")
def test_a_short_class_with_a_queue_keeps_the_cap_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "report.json"
    env = dict(os.environ, PLAYGROUND_MAX_RUNS="1")
    done = subprocess.run([sys.executable, "-m", "playground.loadtest", "--sessions", "3", "--tabs", "1",
                           "--minutes", "0.1", "--think", "0.3", "--patience", "5", "--settle", "2",
                           "--timeout", "120", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert set(rep) == {"config", "sessions", "queue", "latency", "tab_phases", "redraws", "memory", "cpu",
                        "stalls", "processes", "close"}
    assert "Latency (s)" in done.stdout and "Queue" in done.stdout  # the table

    # the tab's clicks, traced through the page: the phases follow one another and add up to the
    # whole latency (each is rounded to the millisecond)
    traced = [a for each in rep["sessions"]["each"] if each["session"].startswith("tab")
              for a in each["actions"] if a.get("phases")]
    assert traced and set(rep["tab_phases"]) <= set(ACTIONS)
    for a in traced:
        assert list(a["phases"]) == list(PHASES)
        assert abs(sum(a["phases"].values()) - a["latency"]) < 0.01, a
        # (the stream may be read before the answer to the post: the queue's phase alone may be negative)
        assert min(a["phases"][name] for name in ("post", "accept", "handle")) >= 0, a
    assert "Tab clicks by phase" in done.stdout

    assert rep["sessions"]["connected"] == 3 and rep["sessions"]["error_count"] == 0, rep["sessions"]["errors"]
    for kind in ACTIONS:
        assert sum(row["n"] for row in rep["latency"].values() if row["kind"] == kind) >= 1, kind
    assert {row["via"] for row in rep["latency"].values()} == {"tab", "api"}

    q = rep["queue"]
    assert q["cap"] == 1 and q["most_training_at_once"] <= 1 and q["within_cap"]
    assert q["deepest_place"] >= 1  # a queue formed: the class presses Play as it leaves

    p = rep["processes"]
    assert p["measured"] and p["orphans"] == [] and p["left_after_server_stopped"] == []
    procs = read_procs()
    ours = {k["pid"] for k in p["ever_under_the_server"]
            if k["pid"] in procs and procs[k["pid"]].start == k["start"]}
    # A process that ended after its parent was adopted by the container's first process; where that
    # process reaps nothing (some CI runners), the dead child stays a zombie there: it is dead and holds
    # no memory, and reaping it is not ours to do. Anything else still here is a leak.
    left = [(pid, procs[pid].state, procs[pid].ppid) for pid in ours
            if not (procs[pid].state == "Z" and procs[pid].ppid == 1)]
    assert not left, f"still here after the load test (pid, state, parent): {left}"
    assert rep["memory"]["measured"] and rep["memory"]["peak_rss"]["rss_mb"] >= rep["memory"]["start"]["rss_mb"] > 0
    assert rep["redraws"]["per_tab"] and rep["redraws"]["per_tab"][0]["per_s"] >= 0
    cpu = rep["cpu"]  # the tab's Chromium is the load test's, not the server's
    assert cpu["measured"] and cpu["readings"] >= 1 and cpu["mean_cores"]["browsers"] > 0, cpu
    waits = cpu["mean_waiting_threads"]  # None only where the kernel keeps no scheduler statistics
    assert waits is None or (set(waits) == set(WAIT_PARTS) and min(waits.values()) >= 0), waits
    assert "CPU        cores used" in done.stdout
    st = rep["stalls"]  # Gradio answers both of the witness's questions, twice a second
    for route, seen in st["server_asked_by_a_witness"].items():
        assert seen["n"] >= 1 and seen["errors"] == [], (route, seen)
    assert st["load_test_loop_late"]["n"] >= 5 and "Stalls" in done.stdout


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (CI installs it)")
def test_a_tab_sees_a_switch_from_step_0_though_its_status_line_reads_the_same():
    """After Reset, a switch of model shows the same status line ("step 0 / 5,000 · ready"): the
    tab's record keeps the model beside each line, so the switch is answered when the new model
    shows, and not before (the soak once counted every such switch as unanswered)."""
    from playwright.sync_api import sync_playwright

    from playground.loadtest.students import CHROMIUM_ARGS, TAB_SCRIPT

    line = "step 0 / 5,000 · 0.0 s · ready · device cpu"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_content(f'<div id="status"><p data-testid="markdown">{line}</p></div>'
                             '<div id="model"><input value="realnvp"></div><div id="plot"></div>')
            page.evaluate(TAB_SCRIPT)
            page.evaluate("document.getElementById('plot').textContent = 'a picture'")  # the page redraws
            ask = {"since": 0, "states": ["ready"], "step": "zero", "unlike": "realnvp"}
            find = "(a) => window.__loadtest.find(a)"
            assert page.evaluate(find, {**ask, "unlike": None})[1] == line  # a Reset's answer
            assert page.evaluate(find, ask) is None  # not yet a switch: the same model
            page.evaluate("document.querySelector('#model input').value = 'vae';"
                          "document.getElementById('plot').textContent = 'the new model'")
            found = page.evaluate(find, ask)
            assert found is not None and found[1] == line and found[2] == "vae"
        finally:
            browser.close()


# ---- a session as a page speaks it -------------------------------------------------
def test_the_endpoints_put_nothing_where_the_sessions_state_goes():
    from playground.loadtest.wire import AppError, Endpoints

    config = {"components": [{"id": 1, "type": "state"}, {"id": 2, "type": "dropdown"},
                             {"id": 3, "type": "number", "props": {"value": 8}}],
              "dependencies": [{"id": 7, "api_name": "play", "inputs": [1, 2, 3]},
                               {"id": 8, "api_name": "hidden", "inputs": [1], "api_visibility": "private"}]}
    ep = Endpoints(config)
    assert ep.payload("/play", ("realnvp", 4)) == (7, [None, "realnvp", 4])
    assert ep.payload("play", ("realnvp",)) == (7, [None, "realnvp", 8])  # the rest as a fresh page shows them
    with pytest.raises(AppError, match="no endpoint /hidden; this server has /play"):
        ep.payload("/hidden", ())


def test_a_wire_session_plays_and_its_close_frees_the_run():
    """Over HTTP as a page: the heartbeat stream opens the session, calls answer through the
    event stream, and closing it runs the page's unload (the run stops, its slot is free)."""
    import asyncio

    import httpx

    from playground.loadtest.wire import Endpoints, Wire
    from playground.runs import RunManager
    from tests.fakes import free_port, wait_for

    manager = RunManager(1)
    demo = A.build_app(manager)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"

    async def session():
        async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), trust_env=False) as http:
            wire = Wire(http, url, await Endpoints.read(http, url))
            await wire.open(30)
            await wire.call("/play", "realnvp", "two_moons", timeout=60)
            for _ in range(200):
                state = (await wire.call("/state", timeout=30))[0]
                if state["step"] > 0:
                    break
                await asyncio.sleep(0.1)
            await wire.close()
            return wire.session_hash, state

    try:
        owner, state = asyncio.run(session())
        assert state["model"] == "realnvp" and state["status"] == "running" and state["step"] > 0
        assert wait_for(lambda: manager.is_closed(owner) and manager.active == 0, timeout=30)
    finally:
        demo.close()
        manager.shutdown()


# ---- the browsers' cgroup -------------------------------------------------------------
def _cgroup_writable() -> str:
    try:
        Weighted(100, name=f"playground-test-probe-{os.getpid()}").close()
    except ConfigError as e:
        return str(e)
    return ""


def test_a_weight_outside_the_scale_or_a_machine_without_cgroups_is_refused_in_one_line(tmp_path):
    for weight in (0, 10001):
        with pytest.raises(ConfigError, match="allowed 1 to 10000"):
            Weighted(weight)
    with pytest.raises(ConfigError, match="needs the cgroup file system"):
        Weighted(100, root=str(tmp_path))


@pytest.mark.skipif(bool(_cgroup_writable()), reason=_cgroup_writable() or "-")
def test_a_process_moved_into_the_cgroup_and_what_it_starts_then_are_weighed_there_and_moved_back():
    def cgroup_of(pid):
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read()

    group = Weighted(50, name=f"playground-test-{os.getpid()}")
    starter = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\nsys.stdin.readline()\n"
                                "k = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
                                "print(k.pid, flush=True)\ntime.sleep(30)"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    kid = None
    try:
        home = cgroup_of(starter.pid)
        group.add(starter.pid)
        starter.stdin.write("\n")
        starter.stdin.flush()
        kid = int(starter.stdout.readline())
        assert sorted(group.members()) == sorted([starter.pid, kid])  # the child was born inside
        assert group.name in cgroup_of(kid) and group.name not in cgroup_of(os.getpid())
        weight_file = "cpu.weight" if group.version == 2 else "cpu.shares"
        with open(os.path.join(group.path, weight_file)) as f:
            assert int(f.read()) == (50 if group.version == 2 else 512)  # half an ordinary process's
        assert group.close() and not os.path.exists(group.path)
        assert cgroup_of(starter.pid) == home and group.name not in cgroup_of(kid)
    finally:
        starter.kill()
        starter.wait()
        if kid is not None:
            procs = read_procs()
            if kid in procs:
                end_processes([(kid, procs[kid].start)])
        group.close()
