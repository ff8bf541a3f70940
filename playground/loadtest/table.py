"""The report as a readable table for the terminal."""

from __future__ import annotations


def _s(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _mem(v: dict) -> str:
    pss = f", PSS {v['pss_mb']:.0f}" if v["pss_mb"] is not None else ""
    return f"RSS {v['rss_mb']:.0f}{pss} MB ({v['children']} children)"


def _kids(kids: list[dict]) -> str:
    return f"{len(kids)}" + (" (" + ", ".join(f"{k['pid']} {k['name']}" for k in kids) + ")" if kids else "")


def _lag(row: dict, start: float) -> str:
    """p50 / p95 / max of a stalls row, and when its slowest moments were (seconds into the class)."""
    if not row["n"]:
        return "-"
    worst = ", ".join(f"{w['s']:.1f} s {w['t'] - start:.0f} s in" for w in row["slowest"])
    return f"p50 {_s(row['p50'])} / p95 {_s(row['p95'])} / max {_s(row['max'])} s (slowest {worst})"


def render(rep: dict) -> str:
    c, s, q, lat, r, m, p, cl = (rep[k] for k in ("config", "sessions", "queue", "latency", "redraws", "memory",
                                                   "processes", "close"))
    start = c["marks_s"].get("start", 0.0)
    out = [f"Load test: {c['sessions']} sessions ({c['tabs']} tabs, {c['api_clients']} API clients) for "
           f"{c['minutes']:g} min{' (soak)' if c['soak'] else ''} on {c['url']}; cap {c['cap'] or 'unknown'} runs"
           + (f"; server ready after {c['server_ready_after_s']:.1f} s" if c["server_ready_after_s"] else "")]
    if c.get("browser_weight") is not None:
        g = c["browser_cgroup"]
        out.append(f"  the tabs' Chromium ran at CPU weight {c['browser_weight']} (100: one ordinary process) in "
                   f"cgroup v{g['version']}, {g['processes_once_up']} processes once it was up")
    if c["server_start_failures"]:
        out.append(f"  the server failed to start {len(c['server_start_failures'])} time(s) first: "
                   + c["server_start_failures"][0])
    if c["api_refused"]:
        out.append("  API clients train " + ", ".join(f"{m} on {d}" for m, d in c["api_cases"])
                   + f": through the API the server refused {c['api_refused']}")
    if "server_exited" in c["marks_s"]:
        out.append(f"  THE SERVER EXITED {c['marks_s']['server_exited'] - start:.0f} s into the test; "
                   f"its last lines: {c['server_last_lines']}")

    held = s["held_over_time"]
    every = max(1, len(held) // 12)
    out += ["", (f"Sessions   connected {s['connected']}/{s['of']} (opened {s['opened']} times); held (open and "
                 f"answering) least {s['held_min']}, most {s['held_max']}"),
            "           held over time: " + " · ".join(f"{h['t'] - start:.0f}s {h['held']}" for h in held[::every]),
            "           errors: " + ("none" if not s["errors"] else "; ".join(f"{k} ×{v}" for k, v in s["errors"].items()))]

    t = q["time_to_start_s"]
    verdict = "" if q["within_cap"] is None else " — within the cap" if q["within_cap"] else " — OVER THE CAP"
    out += ["", f"Queue      most runs seen training at once: {q['most_training_at_once']} (cap {q['cap'] or 'unknown'})"
                + verdict,
            (f"           on the server, run processes busy (≥{q['server_busy_runs']['busy_cores']:g} core) at once for "
             f"3 s or more: {_s(q['server_busy_runs']['most_held_3s'], 'd')}; seconds with each count: "
             + (", ".join(f"{k}: {v}" for k, v in q["server_busy_runs"]["seconds_with"].items()) or "-")),
            "           places seen: " + (", ".join(f"#{k} ×{v}" for k, v in q["places_seen"].items()) or "none"),
            f"           waits {q['waits']}: started {q['started']}, left before their turn {q['left_before_their_turn']}, "
            f"still waiting at the end {q['still_waiting_at_the_end']}"
            + (f"; until training p50 {_s(t['p50'], '.1f')} s, p95 {_s(t['p95'], '.1f')} s, max {_s(t['max'], '.1f')} s"
               if t["n"] else "")]

    out += ["", "Latency (s)          n   err     p50     p95     max"]
    for name, row in lat.items():
        out.append(f"  {name:<16} {row['n']:>5} {row['errors']:>5} "
                   + " ".join(f"{_s(row[k]):>7}" for k in ("p50", "p95", "max")))

    if rep.get("tab_phases"):
        names = list(next(iter(rep["tab_phases"].values())))[2:]
        out += ["", "Tab clicks by phase, p50 / p95 (s): " + ", ".join(names)
                + " (each from the end of the one before)"]
        for kind, row in rep["tab_phases"].items():
            out.append(f"  {kind:<8} n {row['n']:>3}  whole {_s(row['whole']['p50'])} / {_s(row['whole']['p95'])}  "
                       + "  ".join(f"{name} {_s(row[name]['p50'])} / {_s(row[name]['p95'])}" for name in names))

    if r["per_tab"]:
        out += ["", (f"Redraws    per tab per second: mean {_s(r['mean_per_s'])}, least {_s(r['least_per_s'])}; "
                     f"while its run trained: mean {_s(r['mean_per_s_while_training'])}"),
                "           each minute (mean over tabs): " + " · ".join(_s(x) for x in r["mean_per_s_each_minute"])]

    out.append("")
    if m["measured"]:
        out += [f"Memory     start {_mem(m['start'])}",
                f"           peak  {_mem(m['peak_rss'])}, {m['peak_rss']['t'] - start:.0f} s in",
                f"           end   {_mem(m['end'])}",
                f"           {c['settle_s']:g} s after every session closed: {_mem(m['after_close'])}"]
        if "soak" in m:
            so = m["soak"]
            out.append(f"           soak: after {so['warm_up_s']:.0f} s of warm-up {_mem(so['warm_up'])}; peak after it "
                       f"RSS {so['peak_after_warm_up_rss_mb']:.0f} MB; within 10%: RSS {so['within_10pct_rss']}"
                       + (f", PSS {so['within_10pct_pss']}" if "within_10pct_pss" in so else ""))
            if "pss_parts_mb" in so:
                out.append("           soak PSS by part (warm-up → peak after → end): " + "; ".join(
                    f"{k} {v['warm_up']:.0f} → {v['peak_after']:.0f} → {v['end']:.0f} MB"
                    for k, v in so["pss_parts_mb"].items()))
    else:
        out.append(f"Memory     not measured: {m['why']}")
    u = rep.get("cpu", {"measured": False, "why": "not in this report"})
    if u["measured"]:
        k = u["mean_cores"]
        out.append(f"CPU        cores used while the class worked (mean of {u['readings']} readings, of {u['cores']}): "
                   f"server {k['server']:.2f}, its processes {k['its_processes']:.2f}, this load test "
                   f"{k['load_test']:.2f}, its browsers {k['browsers']:.2f}, the rest {k['rest']:.2f}")
        w = u.get("mean_waiting_threads")
        if w:
            out.append(f"           threads ready to run but waiting for a core (mean): "
                       f"the server's {w['server']:.2f}, this load test's {w['load_test']:.2f}")
    else:
        out.append(f"CPU        not measured: {u['why']}")
    st = rep.get("stalls")
    if st:
        w, lag = st["server_asked_by_a_witness"], st["load_test_loop_late"]
        if w:
            out.append(f"Stalls     the server asked every {w['loop']['every_s']:g} s from a process of its own: "
                       + "; ".join(f"{where} {_lag(w[route], start)}, errors {len(w[route]['errors'])}" for route, where in
                                   (("loop", "on its event loop"), ("thread", "in a worker thread"))))
        out.append(f"           this load test's own event loop woke late by {_lag(lag, start)}")
    if p["measured"]:
        left = p["left_after_server_stopped"]
        out += [f"Processes  before: {_kids(p['before'])}", f"           after:  {_kids(p['after'])}",
                f"           most run processes at once: {m.get('most_run_processes', '-')}; zombies: most "
                f"{p['most_zombies_at_once']} at once, {len(p['lingering_zombies'])} lingering, "
                f"{p['zombies_at_the_end']} at the end; orphans: {len(p['orphans'])}"
                + ("" if left is None else f"; left after the server stopped: {len(left)}")]

    pe, qs = cl["process_ended"], cl["queued_started"]
    out += ["", (f"Close      {len(cl['tabs'])} tabs closed: a run process ended after p50 {_s(pe['p50'])} s, "
                 f"max {_s(pe['max'])} s (n {pe['n']}); a queued session trained after p50 {_s(qs['p50'])} s, "
                 f"max {_s(qs['max'])} s (n {qs['n']})")]
    a = cl["api_clients"]
    if a:
        out.append(f"           {c['api_clients']} API clients closed with {a['runs_at_close']} run processes: "
                   + (f"all ended after {a['freed_after_s']} s" if a["freed_after_s"] is not None
                      else f"{a['still_running_after_60s']} still running after 60 s"))
    return "\n".join(out)
