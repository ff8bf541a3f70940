"""`python app.py` on a free loopback port, as a child of the load test, and its stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from core.errors import PlaygroundError

REPO = Path(__file__).resolve().parents[2]
SERVING = "To create a public link"  # what Gradio prints once its start-up check has passed
START_ATTEMPTS = 3


class ServerGone(PlaygroundError):
    """The server exited before it answered."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The page's server as a person starts it; its output goes to a log file."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        with tempfile.NamedTemporaryFile(prefix="loadtest-server-", suffix=".log", delete=False) as f:
            self.log = f.name
        env = dict(os.environ, GRADIO_SERVER_PORT=str(self.port), GRADIO_SERVER_NAME="127.0.0.1", PYTHONUNBUFFERED="1")
        # A Python child ignores Ctrl-C when its parent does (a background job). The server must
        # not: SIGINT is how it is asked to stop, running its exit handlers, which stop its runs.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self.exit: dict = {}

    def wait_ready(self, limit: float = 240.0) -> float:
        """Seconds until the page answers; ServerGone if the server exits first.

        The page is asked for only once Gradio says it serves: Gradio's own start-up check asks
        for the page with a 3 s timeout and gives up on a busy machine, all the more when the
        first page is being rendered for someone else at the same moment.
        """
        import httpx

        t0 = time.time()
        while time.time() - t0 < limit:
            if self.proc.poll() is not None:
                raise ServerGone(f"the server exited with code {self.proc.returncode} before answering; "
                                 f"its last lines: {self.tail()}")
            if SERVING in self.text():
                try:
                    if httpx.get(self.url, timeout=30).status_code == 200:
                        return time.time() - t0
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        raise PlaygroundError(f"the server did not answer at {self.url} within {limit:.0f} s; "
                              f"its last lines: {self.tail()}")

    def text(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def tail(self, n: int = 5) -> str:
        return " | ".join(line.strip() for line in self.text().splitlines()[-n:])

    def stop(self, grace: float = 30.0) -> dict:
        """Ctrl-C (its exit handlers stop the runs), then SIGTERM, then SIGKILL; returns how it ended."""
        how = "itself" if self.proc.poll() is not None else ""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            how = signal.Signals(sig).name
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self.exit = {"stopped_by": how, "returncode": self.proc.returncode}
        return self.exit
