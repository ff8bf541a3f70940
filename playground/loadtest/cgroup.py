"""The browsers' CPU weight: a Linux cgroup that holds the tabs' Chromium.

On a classroom's network each student's browser runs on the student's own machine; on one test
machine the browsers take the server's cores. Where the kernel schedules each session of
processes as one group (autogroup, on where /proc/sys/kernel/sched_autogroup_enabled reads 1),
Chromium, which Playwright starts in a session of its own, weighs as much as the server's whole
session: the server, its training processes and the load test together. A cgroup's weight is
shared by all it holds, and a cgroup of low weight gives the server its machine at the browsers'
expense. The weight is given on cgroup v2's scale, where an ordinary process (nice 0) weighs
100; cgroup v1's cpu.shares, where it weighs 1024, is scaled to match. Moving a process needs
write access to the cgroup file system (root, or a delegated subtree); what the load test cannot
do it refuses before it starts, in one line.
"""

from __future__ import annotations

import os
import time

from core.errors import ConfigError

ROOT = "/sys/fs/cgroup"
WEIGHT_MAX = 10000  # cgroup v2's cpu.weight runs from 1 to 10000, 100 for an ordinary process
V1_PER_WEIGHT = 1024 / 100  # cgroup v1's cpu.shares for one of v2's weight


def _own_path(version: int, root: str, pid: int) -> str:
    """The cgroup `pid` is in, for the cpu controller, as a directory under `root`."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if (version == 2 and controllers == "") or (version == 1 and "cpu" in controllers.split(",")):
                return os.path.join(root, path.lstrip("/"))
    raise ConfigError(f"process {pid} is in no cgroup of the cpu controller")


def _put(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class Weighted:
    """A new cgroup of the given CPU weight, at the top of the hierarchy; `add` moves a process
    (with its threads) into it, and the processes it starts from then on are born there; `close`
    moves back what is still in it and removes it.

    `root` is where the cgroup file system is mounted; the tests point it at a directory of their own.
    """

    def __init__(self, weight: int, root: str = ROOT, name: str | None = None):
        if not 1 <= weight <= WEIGHT_MAX:
            raise ConfigError(f"--browser-weight {weight}: allowed 1 to {WEIGHT_MAX} "
                              "(100 weighs as an ordinary process)")
        self.weight, self.root = weight, root
        self.name = name or f"playground-loadtest-{os.getpid()}"
        if os.path.isfile(os.path.join(root, "cpu", "cpu.shares")):
            self.version, self.base = 1, os.path.join(root, "cpu")
        elif os.path.isfile(os.path.join(root, "cgroup.controllers")):
            self.version, self.base = 2, root
        else:
            raise ConfigError(f"--browser-weight needs the cgroup file system at {root} (Linux), "
                              "with the cpu controller")
        self.path = os.path.join(self.base, self.name)
        self.homes: dict[int, str] = {}  # pid moved -> the cgroup it came from
        self._create()

    @staticmethod
    def _denied(what: str, path: str, e: OSError) -> ConfigError:
        return ConfigError(f"--browser-weight: cannot {what} {path} ({e.strerror}); it needs root or a "
                           "delegated cgroup, or leave --browser-weight out")

    def _write(self, path: str, text: str) -> None:
        try:
            _put(path, text)
        except OSError as e:
            raise self._denied("write", path, e) from None

    def _create(self) -> None:
        if self.version == 2:
            with open(os.path.join(self.base, "cgroup.controllers")) as f:
                if "cpu" not in f.read().split():
                    raise ConfigError(f"--browser-weight: the cgroup file system at {self.base} has no cpu controller")
            with open(os.path.join(self.base, "cgroup.subtree_control")) as f:
                enabled = "cpu" in f.read().split()
            if not enabled:
                self._write(os.path.join(self.base, "cgroup.subtree_control"), "+cpu")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise self._denied("make", self.path, e) from None
        if self.version == 2:
            self._write(os.path.join(self.path, "cpu.weight"), str(self.weight))
        else:
            self._write(os.path.join(self.path, "cpu.shares"), str(max(2, round(self.weight * V1_PER_WEIGHT))))

    def add(self, pid: int) -> None:
        self.homes.setdefault(pid, _own_path(self.version, self.root if self.version == 2 else self.base, pid))
        self._write(os.path.join(self.path, "cgroup.procs"), str(pid))

    def members(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def close(self, wait: float = 5.0) -> bool:
        """Move back what is still inside to where it came from (or the root) and remove the cgroup.
        False if it could not be removed in `wait` seconds (something inside would not leave)."""
        end = time.time() + wait
        while True:
            for pid in self.members():
                # back home; where it ended meanwhile, or its old cgroup is gone, the root takes it
                for home in (self.homes.get(pid, self.base), self.base):
                    try:
                        _put(os.path.join(home, "cgroup.procs"), str(pid))
                        break
                    except OSError:
                        pass
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.time() >= end:
                    return False
                time.sleep(0.2)
