"""The server's processes, memory and CPU, read from /proc: no dependency beyond the kernel's files.

A process is named by its pid and its start time (clock ticks after boot), so a pid the
kernel hands out again is never taken for the process that had it before.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import threading
import time

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")
BUSY = 0.1  # cores a run process uses while it trains, at the least (a paused one sleeps)
ZOMBIE_LINGERS = 5.0  # seconds a zombie must stay to be reported: reaping takes a moment
CPU_PARTS = ("server", "its_processes", "load_test", "browsers", "rest")  # where the machine's CPU went
WAIT_PARTS = ("server", "load_test")  # whose threads' waits for a core are read


@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str  # R, S, Z, ...
    start: int
    name: str
    cpu: int = 0  # user and system time so far, in clock ticks


def read_procs() -> dict[int, Proc]:
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        close = text.rfind(")")  # the name may hold spaces and parentheses
        fields = text[close + 2:].split()
        procs[int(entry)] = Proc(int(entry), int(fields[1]), fields[0], int(fields[19]), text[text.find("(") + 1:close],
                                 int(fields[11]) + int(fields[12]))
    return procs


def busy_ticks() -> int:
    """The machine's CPU time so far outside idle and I/O wait, in clock ticks, all cores together."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(fields) - fields[3] - fields[4]


def thread_times(pid: int) -> dict[int, tuple[int, int]]:
    """Each thread of `pid`: (nanoseconds it ran, nanoseconds it was ready to run but waited for a
    core), from the scheduler's /proc/<pid>/task/<tid>/schedstat; empty where that is not kept."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ran, waited = (int(x) for x in f.read().split()[:2])
        except (OSError, ValueError):
            continue
        out[int(tid)] = (ran, waited)
    return out


def tree(root: int, procs: dict[int, Proc]) -> list[int]:
    """`root` and every process under it."""
    children = collections.defaultdict(list)
    for p in procs.values():
        children[p.ppid].append(p.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append(pid)
            todo += children[pid]
    return out


def memory_kb(pid: int) -> tuple[int, int | None]:
    """(RSS, PSS) in kB; PSS is None where smaps_rollup is not allowed or not there. A process that
    is gone, or a zombie (it has no memory left, and its smaps_rollup reads empty), counts 0."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0, 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
    except ProcessLookupError:  # it ended between the two readings
        return 0, 0
    except OSError:
        pss = None
    return rss, pss


Key = tuple[int, int]  # (pid, start)


def most_held(counts: list[int | None], seconds: int) -> int:
    """The highest count that held for `seconds` samples in a row (a slot handed on overlaps for a moment)."""
    best = 0
    for i in range(len(counts) - seconds + 1):
        window = counts[i:i + seconds]
        if None not in window:
            best = max(best, min(window))
    return best


class ProcessWatch:
    """A process and its descendants, read every second: memory, children, busy runs, zombies, orphans.

    A run process that used BUSY of a core or more since the last reading is busy: it trains.

    An orphan is a process once seen under the root that is alive outside it now (its parent
    died and it was handed to another). `baseline` holds the helpers the root keeps with no
    run at all (a forkserver, a resource tracker); the other descendants are run processes.
    """

    def __init__(self, root: int, t0: float, every: float = 1.0, students: int | None = None):
        self.root, self.t0, self.every = root, t0, every
        self.students = os.getpid() if students is None else students
        self.samples: list[dict] = []
        self.seen: dict[Key, str] = {}
        self.orphans: dict[Key, str] = {}
        self.zombie_since: dict[Key, float] = {}
        self.lingering_zombies: dict[Key, float] = {}  # zombie -> seconds it stayed
        self.baseline: set[Key] = set()
        self._last = None  # time of the last sample
        self._ticks: dict[Key, int] = {}  # every process's CPU ticks at the last sample
        self._busy = None  # the machine's busy ticks at the last sample
        self._threads: dict[str, dict[int, tuple[int, int]]] = {}  # WAIT_PARTS -> thread_times at the last sample
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.time()
            try:
                self.sample()
            except OSError:  # a reading that failed is a missing second, not the end
                pass
            self._stop.wait(max(0.05, self.every - (time.time() - began)))

    def current(self) -> tuple[dict[int, Proc], list[int]]:
        procs = read_procs()
        return procs, [pid for pid in tree(self.root, procs) if pid != self.root]

    def sample(self) -> dict:
        now = time.time()
        procs, kids = self.current()
        rss = pss = 0
        pss_known = True
        part = {"server": 0, "helpers": 0, "runs": 0}  # PSS in kB: the root, its kept helpers, the run processes
        for pid in ([self.root] if self.root in procs else []) + kids:
            r, p = memory_kb(pid)
            rss += r
            pss_known = pss_known and p is not None
            pss += p or 0
            who = "server" if pid == self.root else "helpers" if (pid, procs[pid].start) in self.baseline else "runs"
            part[who] += p or 0
        inside = {(pid, procs[pid].start) for pid in kids}
        zombies = [key for key in inside if procs[key[0]].state == "Z"]
        runs = inside - self.baseline
        ticks = {(p.pid, p.start): p.cpu for p in procs.values()}
        dt = now - self._last if self._last is not None else None
        busy = None if not dt else sum(1 for key in runs
                                       if key in self._ticks and (ticks[key] - self._ticks[key]) / TICKS / dt >= BUSY)
        cores = self._cpu_parts(procs, kids, ticks, dt)
        self._ticks, self._last = ticks, now
        waiting = self._waits(dt)
        with self._lock:
            for pid, start in inside:
                self.seen.setdefault((pid, start), procs[pid].name)
            for key, name in self.seen.items():
                if key not in inside and _alive(key, procs):
                    self.orphans.setdefault(key, name)
            for key in zombies:
                since = self.zombie_since.setdefault(key, now)
                if now - since >= ZOMBIE_LINGERS:
                    self.lingering_zombies[key] = round(now - since, 1)
            s = {"t": round(now - self.t0, 2), "alive": self.root in procs, "children": len(kids),
                 "runs": len(runs), "busy_runs": busy, "rss_mb": round(rss / 1024, 1),
                 "pss_mb": round(pss / 1024, 1) if pss_known else None, "zombies": len(zombies),
                 "pss_parts_mb": {k: round(v / 1024, 1) for k, v in part.items()} if pss_known else None,
                 "cpu_cores": cores, "waiting_threads": waiting}
            self.samples.append(s)
        return s

    def _cpu_parts(self, procs: dict[int, Proc], kids: list[int], ticks: dict[Key, int],
                   dt: float | None) -> dict | None:
        """Cores used since the last reading (`self._ticks`) by each of CPU_PARTS (None at the first reading)."""
        busy = busy_ticks()
        ours = set(tree(self.students, procs)) - {self.root, *kids}
        who = {self.root: "server", **{pid: "its_processes" for pid in kids}, self.students: "load_test",
               **{pid: "browsers" for pid in ours - {self.students}}}
        out = None
        if dt and self._busy is not None:
            used = dict.fromkeys(CPU_PARTS, 0)
            for (pid, start), t in ticks.items():
                if pid in who:  # a process new since the last reading counts all it has used
                    used[who[pid]] += t - self._ticks.get((pid, start), 0)
            used["rest"] = max(0, busy - self._busy - sum(used.values()))
            out = {k: round(v / TICKS / dt, 3) for k, v in used.items()}
        self._busy = busy
        return out

    def _waits(self, dt: float | None) -> dict | None:
        """Threads of WAIT_PARTS that were ready but not running since the last reading, on average
        (seconds waited per second); None at the first reading or where the scheduler keeps no record."""
        now = {"server": thread_times(self.root), "load_test": thread_times(self.students)}
        out = None
        if dt and self._threads and all(now.values()):
            out = {}
            for part, threads in now.items():
                before = self._threads.get(part, {})
                waited = sum(w - before[tid][1] for tid, (_, w) in threads.items() if tid in before)
                out[part] = round(waited / 1e9 / dt, 3)
        self._threads = now
        return out

    def settle_baseline(self, quiet: float = 3.0, limit: float = 30.0) -> None:
        """The children the root keeps with no run: the set once it stopped changing for `quiet` seconds."""
        end, last, since = time.time() + limit, None, time.time()
        while time.time() < end:
            now = self.children()
            if now != last:
                last, since = now, time.time()
            elif time.time() - since >= quiet:
                break
            time.sleep(0.3)
        self.baseline = last or set()

    def children(self) -> set[Key]:
        procs, kids = self.current()
        return {(pid, procs[pid].start) for pid in kids}

    def run_processes(self) -> set[Key]:
        """Descendants beyond the baseline helpers: one per run that has started training."""
        return self.children() - self.baseline

    def describe_children(self) -> list[dict]:
        procs, kids = self.current()
        return [{"pid": pid, "name": procs[pid].name, "state": procs[pid].state,
                 "helper": (pid, procs[pid].start) in self.baseline} for pid in sorted(kids)]

    def still_alive(self) -> list[Key]:
        """Every process ever seen under the root that is alive now (once the root is gone: orphans)."""
        procs = read_procs()
        with self._lock:
            return [key for key in self.seen if _alive(key, procs)]


def _alive(key: Key, procs: dict[int, Proc]) -> bool:
    pid, start = key
    return pid in procs and procs[pid].start == start and procs[pid].state != "Z"


def end_processes(keys: list[Key], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, each process named by (pid, start) that is still that process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = read_procs()
        alive = [key for key in keys if _alive(key, procs)]
        if not alive:
            return
        for pid, _ in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.time() + grace
        while time.time() < end and any(_alive(key, read_procs()) for key in alive):
            time.sleep(0.2)
