"""`python -m playground.loadtest`: a classroom on one server, measured.

    python -m playground.loadtest --sessions 30 --minutes 10 [--tabs K] [--url URL [--pid PID]]
                                  [--soak] [--json OUT]

By default it starts `python app.py` on a free loopback port (PLAYGROUND_MAX_RUNS and
PLAYGROUND_DATA pass through), waits until the page answers, and at the end stops the
server and every process under it, by pid. --url uses a running server instead (loopback
only); its memory and processes are read only when --pid names it.

Each of the --sessions students loops over a classroom script with think time until
--minutes have passed: Play, wait for its turn, watch, Pause, Step, Play, switch model,
Play, Reset. --tabs of them (a third by default) are headless Chromium tabs clicking the
page's buttons; the others call the app's named endpoints (/play, /pause, /step, /reset,
/state) as a page speaks to it (wire.py: the queue's POST and event stream, a heartbeat
stream while the session is open, all on one event loop). With --soak every cycle ends by closing the session and
opening a new one. Once the time is up, waiting and watching stop and a session clicks
only what it has not yet had answered (so that every action is measured), for at most
three --timeout more. Then the class leaves: everyone presses Play, and the tabs close
one at a time.

What it reports (a table on stdout, everything in --json), and how each figure is read:

  sessions   open and answering (the last action was answered), every 2 s; errors by kind.
  queue      runs training at once: the most sessions seen training together, counted only
             over spans a session surely trained (between two observations that both said
             `running`, less a tab's slowest answer), so it never overstates; the queue
             places seen; every wait in the queue, and whether it ended in training.
  latency    p50, p95 and max per action: an API call until it returns; a click until the
             tab's status line shows the answer (`running` or `waiting` for Play, `paused` for
             Pause, a higher step for Step, step 0 and `ready` for Reset and a new model); a
             page load until the status line shows a step.
  phases     a tab's clicks, traced through its page (students.PHASES): until the page
             dispatched the click, until Gradio's client posted the event, until the server
             accepted it, until it started and until it was done (both as the page read them from
             the session's event stream), until the status line showed the answer; p50 and p95 of
             each per kind of click. The browser's part and the server's part of a tab's seconds.
  redraws    per tab, bursts of changes inside Plotly's plots (a MutationObserver) per second:
             over the test, per minute, and while its run trained.
  memory     RSS and PSS (smaps_rollup) of the server and all its descendants, every second
             from /proc: start, peak, end, and --settle seconds after every session closed;
             with --soak, also after the warm-up and whether it then stayed within 10%, and
             the PSS of the server, of the helpers it keeps without a run and of the run
             processes apart (at the warm-up, the most after it, the end).
  stalls     the server asked twice a second by a process of its own (witness.py), on its
             event loop and in a worker thread, and how late the load test's own event loop
             woke: when every student stalls at once, whether the server or the load test did.
  processes  the server's children before and after; zombies; orphans (processes that were
             under the server and live on elsewhere), also once the server has stopped.
  close      for each tab closed while its run trained: the time until a run process of the
             server ended, and until a session waiting in the queue was seen training.

The tabs draw on this machine's cores too, which a classroom's own computers would not:
their figures are what the server and one shared machine give, not a student's laptop.
The API clients cost little beside them (one event loop, no threads, no polling).

    cli.py        arguments, refusals, the terminal
    classroom.py  the test: server, students, the class leaving, the report
    students.py   the API clients and the Chromium tabs, and their script
    wire.py       one session over Gradio's queue protocol, as a page holds it
    readings.py   observations read into figures (spans of training, queue waits, percentiles)
    procs.py      the server's processes and memory, from /proc
    server.py     `python app.py` as a child, and its stop
    witness.py    a process of its own asking the server, and the load test's own lateness
    table.py      the report as a table
"""

from .cli import main

__all__ = ["main"]
