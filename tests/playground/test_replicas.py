"""Replicas behind nginx: every request of a session reaches its replica, new sessions alternate,
the replicas train side by side where one replica queues, a dead replica's sessions move to a
live one, and stopping the launcher leaves no process behind."""

import http.server
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from playground import replicas as R
from tests.fakes import wait_for

ROOT = Path(__file__).resolve().parents[2]
try:
    NGINX = R.find_nginx()
except R.ReplicaError:
    NGINX = None
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx; "
                                                       ".ci/run installs it)")


def free_ports(n: int) -> int:
    """The first of n consecutive free loopback ports."""
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        if all(R.port_is_free(R.LOOPBACK, base + i) for i in range(n)):
            return base
    raise RuntimeError("no free ports")


# ---- the command line -----------------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["--replicas", "0"], "--replicas 0 is not allowed; choose between 1 and 64"),
    (["--port", "65534", "--replicas", "3"], "the replicas need ports 65535..65537, past 65535"),
    (["--port", "70000"], "--port 70000 is not a port; choose between 1 and 65535"),
    (["--port", "8000", "--replica-port", "7999"], "--port 8000 is one of the replicas' ports 7999..8000"),
    (["--max-runs", "0"], "--max-runs 0 is not allowed"),
    (["--start-timeout", "-5"], "--start-timeout -5 is not allowed; give seconds above 0"),
    (["--nginx", "/no/such/nginx"], "--nginx /no/such/nginx is not an executable file"),
])
def test_values_that_are_not_allowed_get_one_line(argv, says, capsys):
    code = R.main(argv)
    err = capsys.readouterr().err
    assert code in (1, 2) and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_each_replica_gets_its_port_name_cap_and_gpu():
    plan = R.make_plan(3, 7860, max_runs=2, gpus=("4", "5"))
    assert plan.replica_ports == (7861, 7862, 7863)
    envs = [plan.replica_env(i, base={"PATH": "/bin"}) for i in range(3)]
    assert [e["GRADIO_SERVER_PORT"] for e in envs] == ["7861", "7862", "7863"]
    assert {e["GRADIO_SERVER_NAME"] for e in envs} == {"127.0.0.1"}
    assert [e["PLAYGROUND_REPLICA"] for e in envs] == ["127.0.0.1:7861", "127.0.0.1:7862", "127.0.0.1:7863"]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["4", "5", "4"]  # round the GPUs again
    assert {e["PLAYGROUND_MAX_RUNS"] for e in envs} == {"2"} and all(e["PATH"] == "/bin" for e in envs)
    plain = R.make_plan(1, 7860).replica_env(0, base={"CUDA_VISIBLE_DEVICES": "1"})
    assert "PLAYGROUND_MAX_RUNS" not in plain and plain["CUDA_VISIBLE_DEVICES"] == "1"  # left as it was
    assert R.visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ("2", "3")
    # on the CPU the replicas share the cores out, one of each share left to its page
    assert [R.shared_max_runs(n, cores=16) for n in (1, 2, 4, 8, 16)] == [15, 7, 3, 1, 1]
    assert R.shared_max_runs(2, cores=2) == 1


# ---- nginx's routing, against stand-in replicas ------------------------------------
class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the port it serves and the body it was sent."""

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = f"{self.server.server_address[1]} {body.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@needs_nginx
def test_nginx_spreads_new_sessions_keeps_each_on_its_replica_and_fails_over():
    base, folder = free_ports(4), R.nginx_folder()
    plan = R.make_plan(3, base)
    servers = [http.server.ThreadingHTTPServer((R.LOOPBACK, p), _Echo) for p in plan.replica_ports]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    conf = folder / "nginx.conf"
    conf.write_text(R.nginx_config(plan, folder))
    nginx = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"),
                              "-g", "daemon off;"], start_new_session=True)
    url = f"http://{R.LOOPBACK}:{base}/gradio_api/queue/join"

    def ask(cookie=None, body=""):
        r = httpx.post(url, content=body, cookies={R.COOKIE: cookie} if cookie else None, timeout=10)
        port, _, echoed = r.text.partition(" ")
        return f"{R.LOOPBACK}:{port}", echoed, r.cookies.get(R.COOKIE)

    try:
        assert wait_for(lambda: nginx.poll() is None and not R.port_is_free(R.LOOPBACK, base), timeout=10)
        # new sessions, round-robin: six of them land two on each replica, and are told which
        first = [ask() for _ in range(6)]
        assert sorted(a for a, _, _ in first) == sorted(plan.addresses * 2)
        assert all(cookie == answered for answered, _, cookie in first)
        # a session with its cookie always reaches its replica
        for addr in plan.addresses:
            assert {ask(addr, "x")[0] for _ in range(5)} == {addr}
        assert ask("127.0.0.1:1")[0] in plan.addresses  # a cookie naming no replica: a new session
        upload = "x" * 300_000  # an upload: larger than nginx holds in memory, so it waits in a temporary file
        assert ask(plan.addresses[0], upload)[:2] == (plan.addresses[0], upload)
        # replica 1 dies: its sessions go on to one live replica, always the same one, body and all
        servers[1].shutdown()
        servers[1].server_close()
        moved = [ask(plan.addresses[1], f"event {i}") for i in range(6)]
        assert len({a for a, _, _ in moved}) == 1 and moved[0][0] in (plan.addresses[0], plan.addresses[2])
        assert [e for _, e, _ in moved] == [f"event {i}" for i in range(6)]
        assert all(cookie == answered for answered, _, cookie in moved)  # a browser follows it there
        for addr in (plan.addresses[0], plan.addresses[2]):  # the others' sessions stay where they were
            assert ask(addr)[0] == addr
    finally:
        nginx.terminate()
        nginx.wait(10)
        for s in servers:
            s.server_close()
        shutil.rmtree(folder)


# ---- the launcher, with stand-in replicas ----------------------------------------------
STAND_IN = """
import http.server, os, subprocess, sys
name = os.environ["PLAYGROUND_REPLICA"]
marker = os.path.join(sys.argv[1], name.replace(":", "-"))
if name == sys.argv[2] and not os.path.exists(marker):  # its first start fails, as Gradio's may on a busy machine
    open(marker, "w").close()
    sys.exit(3)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # stands for a training process
print("* To create a public link, set `share=True` in `launch()`.", flush=True)  # as Gradio's launch() says

class Name(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name.encode())

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["GRADIO_SERVER_PORT"])), Name).serve_forever()
"""


@needs_nginx
def test_the_launcher_starts_again_a_replica_that_failed_and_stops_every_process_it_started(tmp_path, capsys):
    (tmp_path / "app.py").write_text(STAND_IN)
    plan = R.make_plan(2, free_ports(3))
    replicas = R.Replicas(plan, NGINX, app=[sys.executable, str(tmp_path / "app.py"), str(tmp_path), plan.addresses[0]])
    started = {}
    try:
        replicas.start(timeout=60)
        assert replicas.tries == [1, 0] and replicas.ready == {0, 1}
        assert "replica 0 stopped while starting (exit code 3): " in capsys.readouterr().err
        assert {httpx.get(replicas.url, timeout=10).text for _ in range(4)} == set(plan.addresses)
        started = {pid: _stat(pid)[1] for c in replicas.replicas + [replicas.nginx] for pid in R.group_members(c.pid)}
        assert len(started) == 2 * 2 + 2  # each replica and its "training process", nginx and its worker
    finally:
        replicas.stop()
    assert started and not still_running(started)
    assert not replicas.folder.exists()


# ---- the launcher and the app, end to end -------------------------------------------
def _stat(pid: int):
    """(parent, start time, state) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19]), fields[0]


def descendants(pid: int) -> dict[int, int]:
    """Every process below `pid`, with its start time (to tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(int(entry))
        if st:
            children.setdefault(st[0], []).append(int(entry))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            st = _stat(child)
            if st:
                found[child] = st[1]
                todo.append(child)
    return found


def still_running(procs: dict[int, int]) -> list[int]:
    alive = []
    for pid, started in procs.items():
        st = _stat(pid)
        if st and st[1] == started and st[2] != "Z":
            alive.append(pid)
    return alive


def replica_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    except OSError:
        return ""
    return env.get(b"PLAYGROUND_REPLICA", b"").decode()


@needs_nginx
def test_two_replicas_keep_sessions_train_side_by_side_and_leave_nothing_behind(tmp_path):
    from gradio_client import Client

    base = free_ports(3)
    with open(tmp_path / "out.log", "w") as out, open(tmp_path / "err.log", "w") as err:  # the launcher keeps its own
        launcher = subprocess.Popen([sys.executable, "-m", "playground.replicas", "--replicas", "2",
                                     "--port", str(base), "--max-runs", "1", "--start-timeout", "280"],
                                    cwd=ROOT, stdout=out, stderr=err, start_new_session=True)
    url = f"http://{R.LOOPBACK}:{base}/"
    clients, seen = [], {}
    try:
        started = wait_for(lambda: launcher.poll() is not None or url in (tmp_path / "out.log").read_text(),
                           timeout=300, every=0.5)  # about 40 s; far longer on a machine busy elsewhere
        assert started and launcher.poll() is None, (tmp_path / "err.log").read_text()[-3000:]
        addresses = {f"{R.LOOPBACK}:{base + 1}", f"{R.LOOPBACK}:{base + 2}"}

        def connect(cookies=None):  # a machine busy elsewhere may take longer than httpx's 5 s to answer
            clients.append(Client(url, verbose=False, httpx_kwargs={"timeout": 60, "cookies": cookies or {}}))
            return clients[-1]

        def state(c):
            return c.predict(api_name="/state")[0]

        # (a) every call of a session reaches one replica, the one its cookie names; two sessions, both replicas
        a, b = connect(), connect()
        home = {}
        for name, c in (("a", a), ("b", b)):
            answered = {state(c)["replica"] for _ in range(3)}
            assert answered == {c.cookies[R.COOKIE]}, (name, answered, c.cookies)
            home[name] = answered.pop()
        assert {home["a"], home["b"]} == addresses

        # (b) each replica trains one run at once (--max-runs 1): across the two, both sessions train together
        for c in (a, b):
            c.predict("realnvp", "two_moons", api_name="/play")
        assert wait_for(lambda: [state(a)["status"], state(b)["status"]] == ["running", "running"], timeout=30,
                        every=0.3), (state(a), state(b))
        steps = state(a)["step"], state(b)["step"]
        assert wait_for(lambda: state(a)["step"] > steps[0] and state(b)["step"] > steps[1], timeout=30, every=0.3)
        # ... while a second session on a's replica waits in its queue behind a's run
        c = connect(cookies={R.COOKIE: home["a"]})
        c.predict("realnvp", "two_moons", api_name="/play")
        queued = state(c)
        assert (queued["replica"], queued["status"], queued["queue"]) == (home["a"], "waiting", 1), queued
        assert state(a)["status"] == "running" and state(b)["status"] == "running"
        c.predict(api_name="/pause")  # gives its place in the queue back

        # every process the launcher started, training processes included
        seen = descendants(launcher.pid)
        parent = {pid: (_stat(pid) or (0,))[0] for pid in seen}
        leaders = {replica_of(pid): pid for pid in seen if parent[pid] == launcher.pid and replica_of(pid)}
        training = [pid for pid in seen if parent.get(parent[pid]) in leaders.values()]  # forked by their server
        assert set(leaders) == addresses and len(training) >= 2, (leaders, training)

        # a's replica dies: a's next calls reach the live replica, where a has no run any more; b trains on
        os.kill(leaders[home["a"]], signal.SIGKILL)
        assert wait_for(lambda: f"({home['a']}) stopped (exit code -9)" in (tmp_path / "err.log").read_text(),
                        timeout=20, every=0.3)
        moved = state(a)
        assert (moved["replica"], moved["status"]) == (home["b"], "none"), moved
        assert (state(b)["replica"], state(b)["status"]) == (home["b"], "running")

        # (c) stopping the launcher stops nginx, the replicas and everything they started
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0, (tmp_path / "err.log").read_text()[-3000:]
        assert wait_for(lambda: not still_running(seen), timeout=10, every=0.2), \
            [(pid, Path(f"/proc/{pid}/cmdline").read_bytes()[:80]) for pid in still_running(seen)]
    finally:
        for c in clients:
            c.close()
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
            try:
                launcher.wait(60)
            except subprocess.TimeoutExpired:
                launcher.kill()
        for pid in still_running(seen):  # only what this test's launcher started, by pid
            os.kill(pid, signal.SIGKILL)
