"""Several replicas of the playground behind nginx, each tab kept on the replica that holds it.

    python -m playground.replicas --replicas 2 --port 7860            # http://127.0.0.1:7860/
    python -m playground.replicas --replicas 4 --host 0.0.0.0 --max-runs 2 --gpus

One playground process serves every tab from one interpreter: it draws every
run's pictures and metrics, and its RunManager caps the runs training at once
(PLAYGROUND_MAX_RUNS). When a lecture hall saturates that one process, or a
machine has several GPUs, several processes serve more. Each replica is
`python app.py` on 127.0.0.1:<port + i + 1> (GRADIO_SERVER_NAME / _PORT), with
its own cap (`--max-runs`), and with `--gpus` its own GPU (CUDA_VISIBLE_DEVICES);
nginx (Debian's package, run in the foreground with a configuration, pid file,
temporary and log paths of its own in a temporary folder) listens on
`--host:--port` and spreads the tabs over them.

Sticky sessions. A tab's state lives in the replica that created it: its
Session, its runs and their training processes. Every request of that tab must
reach that replica: its events (POST /gradio_api/queue/join), its SSE stream
(GET /gradio_api/queue/data?session_hash=...) and its heartbeat
(GET /gradio_api/heartbeat/<session_hash>); one request elsewhere finds an empty
Session, and a heartbeat that stops makes its replica close the tab and stop its
run. nginx cannot route on the session hash: /queue/join carries it in its
POST body, and the page itself is fetched before it has one. `ip_hash` puts
every client behind one NAT, or on loopback, on one replica: a classroom would
all land on the same one. Open-source nginx has no `sticky cookie` (that is
NGINX Plus). So a cookie names the replica, the known open-source pattern:

  1. a request without the cookie goes round-robin over every replica, so new
     tabs alternate and N tabs spread evenly over the replicas;
  2. every response sets `playground_replica=<the address that answered>`
     (nginx's $upstream_addr);
  3. a request with the cookie is routed by a `map` to a group holding only
     that replica.

Browsers send the cookie with every request, EventSource streams included, and
gradio_client keeps the cookies of its first /config answer for every later
call (it does so for cookie affinity over several replicas), so both stay.

A replica that dies (connection refused or no answer within CONNECT_TIMEOUT)
hands its tabs to the live ones: the request goes on to a failover group that
hashes the cookie over every replica and skips the ones that fail. The same
stale cookie always lands on the same live replica, and the answer's cookie
names that one, so a browser moves there for good. The tab is new there: its
run is lost and the page shows no run, which tells the person to press Play.

Gradio's guide to running behind nginx asks for HTTP/1.1 with the Upgrade
headers, `proxy_buffering off` (the SSE streams would otherwise wait in nginx's
buffers), and Host, X-Forwarded-Host (with the port: Gradio builds its own
URLs from it) and X-Forwarded-Proto; `root_path` only when served under a
sub-path, which this is not.

Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stops nginx, then every replica:
Ctrl-C for a replica that is serving (Gradio closes and its RunManager stops the
runs), then its whole process group, where the server its training processes
fork from and those processes live, so nothing is left behind. Should the
launcher itself be killed, Linux sends each of its children SIGTERM
(PR_SET_PDEATHSIG). A replica that stops while starting (Gradio gives up when
its own first request takes over 3 s, as on a machine busy elsewhere) is started
again, alone, three times at most. Each replica's and nginx's output reaches
stderr behind `[replica i]` or `[nginx]`.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, PlaygroundError

ROOT = Path(__file__).resolve().parents[1]  # where app.py is
COOKIE = "playground_replica"
CONNECT_TIMEOUT = 3  # seconds nginx waits for a replica to accept before trying another
START_TIMEOUT = 180.0  # seconds every replica has to answer (importing torch and Gradio on a busy machine)
START_RETRIES = 3  # a replica that stops while starting is started again this many times
SETTLE = 60.0  # seconds a replica must stay up after its first answer to count as started, if it does not say
LAUNCHED = "To create a public link"  # what Gradio's launch() prints once it has reached its own page
STOP_GRACE = 20.0  # seconds a replica has to stop its runs after Ctrl-C before it is killed
MAX_REPLICAS = 64
LOOPBACK = "127.0.0.1"


class ReplicaError(PlaygroundError, RuntimeError):
    """nginx or a replica could not start, or stopped by itself."""


@dataclass(frozen=True)
class Plan:
    """What to start: the balancer's address, one port per replica, and what each replica gets."""

    host: str
    port: int
    replica_ports: tuple[int, ...]
    max_runs: int | None = None
    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES of replica i is gpus[i % len(gpus)]; none: left as it is

    @property
    def addresses(self) -> list[str]:
        return [f"{LOOPBACK}:{p}" for p in self.replica_ports]

    def replica_env(self, i: int, base: dict[str, str] | None = None) -> dict[str, str]:
        """Replica i's environment: its port, its name for /state, its cap and its GPU."""
        env = dict(os.environ if base is None else base)
        env.update(GRADIO_SERVER_NAME=LOOPBACK, GRADIO_SERVER_PORT=str(self.replica_ports[i]),
                   PLAYGROUND_REPLICA=self.addresses[i], PYTHONUNBUFFERED="1")
        env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # N replicas, no calls home
        if self.max_runs is not None:
            env["PLAYGROUND_MAX_RUNS"] = str(self.max_runs)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[i % len(self.gpus)]
        return env


def make_plan(replicas: int, port: int, host: str = LOOPBACK, replica_port: int | None = None,
              max_runs: int | None = None, gpus: tuple[str, ...] = ()) -> Plan:
    """A Plan, or a ConfigError that says which value is wrong and what is allowed."""
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"--replicas {replicas} is not allowed; choose between 1 and {MAX_REPLICAS}")
    first = port + 1 if replica_port is None else replica_port
    for name, value in (("--port", port), ("--replica-port", first)):
        if not 1 <= value <= 65535:
            raise ConfigError(f"{name} {value} is not a port; choose between 1 and 65535")
    ports = tuple(range(first, first + replicas))
    if ports[-1] > 65535:
        raise ConfigError(f"the replicas need ports {first}..{ports[-1]}, past 65535; choose a lower --replica-port")
    if port in ports and host in (LOOPBACK, "0.0.0.0", "localhost"):
        raise ConfigError(f"--port {port} is one of the replicas' ports {first}..{ports[-1]}; "
                          f"choose another --port or --replica-port")
    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"--max-runs {max_runs} is not allowed; each replica trains at least 1 run at once")
    return Plan(host, port, ports, max_runs, tuple(gpus))


def shared_max_runs(replicas: int, cores: int | None = None) -> int:
    """Each replica's cap on the CPU when nothing sets one: its share of the cores, less one for its page.

    Alone, a replica would take the app's own default (cores - 1) and N replicas would start N times
    as many training processes as the machine has cores."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // replicas - 1)


def visible_gpus(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The GPUs replicas may use: CUDA_VISIBLE_DEVICES's list where it is set, else those nvidia-smi lists."""
    env = os.environ if env is None else env
    if env.get("CUDA_VISIBLE_DEVICES", "").strip():
        return tuple(g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip())
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "-L"], check=False, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU ")))


# ---------------------------------------------------------------------------
# nginx's configuration
# ---------------------------------------------------------------------------
def nginx_config(plan: Plan, folder: Path) -> str:
    """nginx.conf for `plan`: round-robin for new tabs, the cookie's replica for the rest, failover."""
    folder = Path(folder)
    servers = "".join(f"        server {a} max_fails=1 fail_timeout=10s;\n" for a in plan.addresses)
    one_each = "".join(f"    upstream replica_{i} {{ server {a}; }}\n" for i, a in enumerate(plan.addresses))
    by_cookie = "".join(f'        "{a}" replica_{i};\n' for i, a in enumerate(plan.addresses))
    listen = f"[{plan.host}]:{plan.port}" if ":" in plan.host else f"{plan.host}:{plan.port}"
    proxy = f"""            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_cache off;
            proxy_redirect off;
            proxy_connect_timeout {CONNECT_TIMEOUT}s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            add_header Set-Cookie $playground_set_cookie always;
"""
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# Written by playground.replicas for this run only.
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} warn;
events {{ worker_connections 4096; }}

http {{
{temp}    log_format replica '$remote_addr "$request" $status cookie=$cookie_{COOKIE} answered=$upstream_addr';
    access_log {folder / 'access.log'} replica;
    client_max_body_size 64m;

    # new tabs (no cookie, or one naming no replica of this run): round-robin over all of them
    upstream playground_any {{
{servers}    }}
    # a tab whose replica is gone: the same cookie always reaches the same live replica
    upstream playground_failover {{
        hash $cookie_{COOKIE} consistent;
{servers}    }}
{one_each}
    map $cookie_{COOKIE} $playground_upstream {{
        default playground_any;
{by_cookie}    }}
    # the replica that answered is the last address nginx tried (after a failover it lists several)
    map $upstream_addr $playground_answered {{
        "~(?<last>[0-9.]+:[0-9]+)$" $last;
        default "";
    }}
    map $playground_answered $playground_set_cookie {{
        "" "";
        default "{COOKIE}=$playground_answered; Path=/; HttpOnly; SameSite=Lax";
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" "";
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://$playground_upstream;
{proxy}            error_page 502 504 = @failover;
        }}
        location @failover {{
            proxy_pass http://playground_failover;
{proxy}        }}
    }}
}}
"""


def nginx_folder() -> Path:
    """A new temporary folder for nginx's configuration, pid, logs and temporary files.

    Started as root, nginx's workers run as an unprivileged user: they must be able to enter
    the folder to write an upload's body to its temporary file (the folder lists to no one)."""
    folder = Path(tempfile.mkdtemp(prefix="playground-replicas-"))
    folder.chmod(0o711)
    return folder


def find_nginx(explicit: str | None = None) -> str:
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ReplicaError(f"--nginx {explicit} is not an executable file")
        return explicit
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        raise ReplicaError("nginx was not found on PATH or in /usr/sbin: install it (Debian: apt-get install nginx) "
                           "or pass --nginx PATH")
    return found


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx and uvicorn bind
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
def _parent_death_signal():
    """In the child before exec: if the launcher itself is killed, the child gets SIGTERM (Linux only).

    Looked up here, in the launcher: in a child forked beside threads, the call imports nothing
    and takes no lock, so it cannot wait for a lock another thread held at the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_DIE_WITH_PARENT = _parent_death_signal()


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ...
            members.append(int(entry))
    return members


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_empty(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Child:
    """One process the launcher started, in a process group of its own, its output prefixed on stderr."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_DIE_WITH_PARENT)  # noqa: PLW1509 - it takes no lock
        self.pid = self.proc.pid  # also its process group's id
        self.tail: list[str] = []
        self.launched = False  # it printed LAUNCHED
        self._forward = threading.Thread(target=self._copy_output, daemon=True)

    def start_forwarding(self) -> None:
        self._forward.start()

    def _copy_output(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail = (self.tail + [line])[-20:]
            self.launched = self.launched or LAUNCHED in line
            print(f"[{self.name}] {line}", file=sys.stderr, flush=True)

    def last_line(self) -> str:
        self._forward.join(2.0)  # what it wrote last, once read
        return next((ln for ln in reversed(self.tail) if ln.strip()), "see its output above")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, first: int, grace: float) -> None:
        """`first` to the process, then the whole group: SIGTERM, then SIGKILL for what is left."""
        if self.alive:
            try:
                self.proc.send_signal(first)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if not _wait_group_empty(self.pid, 1.0):  # the server training forks from ends by itself, soon
            _kill_group(self.pid, signal.SIGTERM)
            if not _wait_group_empty(self.pid, 3.0):
                _kill_group(self.pid, signal.SIGKILL)
                _wait_group_empty(self.pid, 5.0)
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            pass


def _answers(url: str, timeout: float = 10.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Replicas:
    """nginx in front of N replicas of the app: `start()`, `wait()` until stopped, `stop()`."""

    def __init__(self, plan: Plan, nginx: str, app: list[str] | None = None):
        self.plan = plan
        self.nginx_bin = nginx
        self.app = app or [sys.executable, str(ROOT / "app.py")]  # each replica's command
        self.folder = nginx_folder()
        self.replicas: list[Child] = []
        self.nginx: Child | None = None
        self.ready: set[int] = set()
        self.tries = [0] * len(plan.replica_ports)
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        host = LOOPBACK if self.plan.host in ("0.0.0.0", "::", "") else self.plan.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.plan.port}/"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start every process, then wait until every replica and nginx answer."""
        wanted = [(self.plan.host, self.plan.port)] + [(LOOPBACK, p) for p in self.plan.replica_ports]
        busy = [f"{h}:{p}" for h, p in wanted if not port_is_free(h, p)]
        if busy:
            raise ReplicaError(f"port {', '.join(busy)} is already in use: choose another --port or --replica-port")
        conf = self.folder / "nginx.conf"
        conf.write_text(nginx_config(self.plan, self.folder))
        self.replicas = [self._spawn(i) for i in range(len(self.plan.replica_ports))]
        self.nginx = Child("nginx", [self.nginx_bin, "-p", str(self.folder), "-c", str(conf),
                                     "-e", str(self.folder / "error.log"), "-g", "daemon off;"])
        for child in self.replicas + [self.nginx]:
            child.start_forwarding()
        deadline = time.monotonic() + timeout
        answered: dict[int, float] = {}  # when each replica first answered
        again: list[int] = []  # replicas that stopped while starting, to start again one at a time
        while True:
            self._check_alive(answered, again)
            for i, addr in enumerate(self.plan.addresses):
                if i not in answered and i not in again and _answers(f"http://{addr}/config"):
                    answered[i] = time.monotonic()
            # Gradio's launch() asks for its own page once it serves, and gives up (the process ends) when
            # that takes over 3 s, as on a busy machine: a replica counts once launch() says it got past
            # that, or has stayed up SETTLE s after its first answer
            now = time.monotonic()
            self.ready = {i for i, t in answered.items() if self.replicas[i].launched or now - t >= SETTLE}
            if again and all(i in self.ready or i in again for i in range(len(self.replicas))):
                i = again.pop(0)  # alone: the others' start no longer competes for the cores
                self.replicas[i] = self._spawn(i)
                self.replicas[i].start_forwarding()
            if len(self.ready) == len(self.replicas) and _answers(self.url):
                return
            if self.stopping.wait(0.5):
                return
            if now > deadline:
                late = [f"replica {i}" for i in range(len(self.replicas)) if i not in self.ready]
                raise ReplicaError(f"{', '.join(late) or 'nginx'} did not answer within {timeout:.0f} s")

    def _spawn(self, i: int) -> Child:
        return Child(f"replica {i}", self.app, self.plan.replica_env(i))

    def _check_alive(self, answered: dict[int, float], again: list[int]) -> None:
        """Raise if nginx stopped; a replica that stopped while starting joins `again`, a few times."""
        if self.nginx is not None and not self.nginx.alive:
            log = self.folder / "error.log"
            last = (log.read_text().strip().splitlines() or [""])[-1] if log.exists() else ""
            code = self.nginx.proc.returncode
            raise ReplicaError(f"nginx stopped (exit code {code}): {last or 'see its output above'}")
        for i, child in enumerate(self.replicas):
            if child.alive or i in again:
                continue
            child.stop(signal.SIGKILL, 0)  # whatever it started
            answered.pop(i, None)
            self.tries[i] += 1
            why = f"replica {i} stopped while starting (exit code {child.proc.returncode}): {child.last_line()}"
            if self.tries[i] > START_RETRIES:
                raise ReplicaError(why)
            print(f"{why}; it starts again once the others have ({self.tries[i]} of {START_RETRIES})",
                  file=sys.stderr, flush=True)
            again.append(i)

    def wait(self) -> None:
        """Serve until stop is asked for; a replica that dies is reported and its tabs move to the others."""
        lost: set[int] = set()
        while not self.stopping.wait(0.5):
            if not self.nginx.alive:
                raise ReplicaError(f"nginx stopped by itself (exit code {self.nginx.proc.returncode})")
            for i, child in enumerate(self.replicas):
                if i not in lost and not child.alive:
                    lost.add(i)
                    _kill_group(child.pid, signal.SIGKILL)  # what it leaves behind (its training processes)
                    print(f"replica {i} ({self.plan.addresses[i]}) stopped (exit code {child.proc.returncode}); "
                          f"its tabs move to the other replicas and lose their runs", file=sys.stderr, flush=True)
            if len(lost) == len(self.replicas):
                raise ReplicaError("every replica has stopped")

    def stop(self) -> None:
        """nginx first (no new requests), then every replica at once, then the temporary folder."""
        self.stopping.set()
        if self.nginx is not None:
            self.nginx.stop(signal.SIGTERM, 5.0)
        stoppers = [threading.Thread(target=c.stop, args=(signal.SIGINT if i in self.ready else signal.SIGTERM,
                                                           STOP_GRACE)) for i, c in enumerate(self.replicas)]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m playground.replicas", description=__doc__.split("\n\n")[0],
                                epilog="Ctrl-C, SIGTERM or SIGHUP stops nginx and every replica. Exit code 0 "
                                       "when stopped, 1 when nginx or a replica could not start or stopped by itself, "
                                       "2 for a value that is not allowed.")
    p.add_argument("--replicas", type=int, default=2, help="how many app processes (default 2)")
    p.add_argument("--port", type=int, default=7860, help="the balancer's port (default 7860)")
    p.add_argument("--host", default=LOOPBACK, help="the balancer's address (default 127.0.0.1; 0.0.0.0 for a room)")
    p.add_argument("--replica-port", type=int, default=None,
                   help="the first replica's port on 127.0.0.1; the others follow (default --port + 1)")
    p.add_argument("--max-runs", type=int, default=None,
                   help="runs each replica trains at once (PLAYGROUND_MAX_RUNS; default: where neither it nor "
                        "--gpus is set, each replica's share of the cores less one, at least 1; else the app's own)")
    p.add_argument("--gpus", action="store_true", help="replica i trains on GPU i (CUDA_VISIBLE_DEVICES), "
                                                       "round the GPUs again when there are more replicas")
    p.add_argument("--nginx", default=None, help="the nginx executable (default: nginx on PATH, or /usr/sbin/nginx)")
    p.add_argument("--start-timeout", type=float, default=START_TIMEOUT,
                   help=f"seconds every replica has to answer (default {START_TIMEOUT:.0f})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        gpus = ()
        if args.gpus:
            gpus = visible_gpus()
            if not gpus:
                raise ConfigError("--gpus: this machine shows no GPU (nvidia-smi -L lists none); leave out --gpus")
        if not args.start_timeout > 0:
            raise ConfigError(f"--start-timeout {args.start_timeout:g} is not allowed; give seconds above 0")
        plan = make_plan(args.replicas, args.port, args.host, args.replica_port, args.max_runs, gpus)
        if plan.max_runs is None and not gpus and not os.environ.get("PLAYGROUND_MAX_RUNS", "").strip():
            plan = dataclasses.replace(plan, max_runs=shared_max_runs(args.replicas))
        nginx = find_nginx(args.nginx)
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1

    replicas = Replicas(plan, nginx)

    def on_signal(signum, frame):
        replicas.stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        replicas.start(args.start_timeout)
        if not replicas.stopping.is_set():
            where = ", ".join(f"{a}" + (f" (GPU {plan.gpus[i % len(plan.gpus)]})" if plan.gpus else "")
                              for i, a in enumerate(plan.addresses))
            runs = f"{plan.max_runs} run{'s' if plan.max_runs != 1 else ''}"
            cap = f", each training up to {runs} at once" if plan.max_runs else ""
            print(f"The playground: {replicas.url} ({len(plan.addresses)} replicas: {where}{cap}). Ctrl-C stops it.",
                  flush=True)
            replicas.wait()
    except PlaygroundError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("stopping nginx and every replica…", file=sys.stderr, flush=True)
        replicas.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


if __name__ == "__main__":
    sys.exit(main())
