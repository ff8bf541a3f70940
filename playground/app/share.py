"""Handlers for what leaves the page: PNG, GIF and weights exports, the Compare tab, the
run as plain data for scripts, and a closed tab's slot."""

from __future__ import annotations

import logging
import os

import gradio as gr

from core import checkpoint
from core.errors import PlaygroundError

from ..controls import UPLOAD_PREFIX, data_kind
from ..draw import charts, empty_figure
from ..export import history_gif, run_png
from ..runs import RunManager, Session, thin
from .drawing import PREFIX as DRAWN_PREFIX
from .status import MAX_CHART_POINTS, pick_metric, placement

log = logging.getLogger(__name__)


PNG_WIDTH = 1000  # px: the plots' column of the page on a 1280 px screen, a little wider


def export_png(session: Session) -> dict:
    """<model>-<dataset>-step<N>.png: every panel the page shows for the run, in its places, with
    their titles, axes and legends, then the loss and metric charts."""
    run = _need_snapshot(session)
    snap = run.latest
    path = os.path.join(session.tmpdir(), f"{_slug(run.model_name)}-{_slug(run.dataset_name)}-step{snap['step']}.png")
    keys = placement(run.family, run.model_name, data_kind(run.dataset_name))
    history = list(run.trainer.history)
    figures = [charts.loss_figure(thin(history, MAX_CHART_POINTS))] if history else []
    mets = list(run.trainer.metric_history)
    if mets:
        figures.append(charts.metrics_figure({run.label: thin(mets, MAX_CHART_POINTS)}, pick_metric("auto", mets)))
    title = f"{run.model_name} · {run.dataset_name}"
    with open(path, "wb") as f:
        f.write(run_png(run.family, snap, run.ctx, keys, figures, width=PNG_WIDTH, title=title))
    return {"export_file": gr.update(value=path, visible=True)}


def export_gif(session: Session) -> dict:
    run = _need_snapshot(session)
    frames = list(run.frames) or [run.latest]
    path = os.path.join(session.tmpdir(), f"{_slug(run.label)}-history.gif")
    with open(path, "wb") as f:
        f.write(history_gif(frames, run.family, run.ctx))
    return {"export_file": gr.update(value=path, visible=True)}


def export_weights(session: Session) -> dict:
    """model.safetensors, loadable by `python -m core sample DIR`."""
    run = session.current
    if run is None:
        raise PlaygroundError("Nothing to export yet: press Play first.")
    folder = os.path.join(session.tmpdir(), f"{_slug(run.label)}-step{run.step}")
    file = checkpoint.save(folder, run.model_name, run.export_model(), run.train_cfg, dataset=run.dataset_name
                           if not run.dataset_name.startswith((UPLOAD_PREFIX, DRAWN_PREFIX)) else "")
    return {"export_file": gr.update(value=str(file), visible=True)}


def _need_snapshot(session: Session):
    run = session.current
    if run is None or run.latest is None or "traces" not in run.latest:
        raise PlaygroundError("Nothing to export yet: press Play and wait for the first picture.")
    return run


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


COMPARE_SHOWN = 4  # runs chosen at once when the list changes


def compare_choices(session: Session) -> dict:
    labels = list(session.runs_for_compare())
    session.compare_labels = tuple(labels)
    return {"compare_runs": gr.update(choices=labels, value=labels[-COMPARE_SHOWN:])}


def compare_live(session: Session, compare_runs: list[str], compare_metric: str, compare_x: str) -> dict:
    """Compare's own timer, while the tab is shown: a run that took its first step or was reset
    joins the list (and is chosen), and the chart redraws while the current run trains."""
    runs = session.runs_for_compare()
    labels = tuple(runs)
    out = {}
    chosen = [label for label in compare_runs or [] if label in runs]
    if labels != session.compare_labels:
        new = [label for label in labels if label not in session.compare_labels]
        chosen = (chosen + new)[-COMPARE_SHOWN:]
        session.compare_labels = labels
        out["compare_runs"] = gr.update(choices=list(labels), value=chosen)
    current = session.current
    drawn = (tuple(chosen), compare_metric, compare_x,
             len(current.trainer.metric_history) if current is not None and current.label in chosen else 0)
    if drawn != session.compare_drawn:
        session.compare_drawn = drawn
        out.update(compare(session, chosen, compare_metric, compare_x))
    return out


def compare(session: Session, compare_runs: list[str], compare_metric: str, compare_x: str) -> dict:
    """The chosen runs' metric on one chart, and which modes each covered over time."""
    runs = session.runs_for_compare()
    chosen = {label: runs[label].metric_history for label in compare_runs or [] if label in runs}
    if not chosen:
        empty = empty_figure("finish or reset a run, then choose it here")
        return {"compare_plot": empty, "modes_plot": empty}
    records = [r for h in chosen.values() for r in h]
    notes = {label: runs[label].kl_note for label in chosen}
    return {"compare_plot": charts.metrics_figure(chosen, pick_metric(compare_metric, records), compare_x, notes=notes),
            "modes_plot": charts.modes_timeline(chosen)}


def run_state(session: Session) -> dict:
    """The run as plain data (step, status, queue place): for scripts and tests via the API.

    `replica` names the process that answered when playground.replicas started it ("" otherwise)."""
    replica = os.environ.get("PLAYGROUND_REPLICA", "")
    run = session.current
    if run is None:
        return {"api_state": {"step": 0, "status": "none", "label": "", "queue": 0, "replica": replica}}
    return {"api_state": {"step": run.step, "status": run.status, "label": run.label, "queue": run.queue_position(),
            "snapshots": run.seq, "model": run.model_name, "dataset": run.dataset_name,
            "message": run.trainer.message, "replica": replica}}


def close_session(manager: RunManager, request: gr.Request, demo: gr.Blocks | None = None) -> None:
    """The tab closed: stop its run whatever its state (training, waiting, paused, stepped), free
    what its session held, refuse its later requests, and give the memory back."""
    if manager is not None and request is not None and request.session_hash:
        stopped = manager.close_owner(request.session_hash)
        log.info("session %s closed; stopped %d run(s)", request.session_hash, stopped)
        if demo is not None:
            forget_session(demo, request.session_hash)
        release_memory()


def forget_session(demo: gr.Blocks, session_hash: str) -> bool:
    """Drop what Gradio holds for a closed session: it keeps a session's state (the values of its
    gr.State, a copy of the configuration of every component it updated, half a megabyte for a
    session of this page) for an hour after the tab closed, and a class's Space sees hundreds of
    tabs an hour. The session was closed and refuses its requests, so none of it is needed.
    Returns whether there was anything to drop."""
    holder = getattr(demo, "state_holder", None)
    data, lock = getattr(holder, "session_data", None), getattr(holder, "lock", None)
    if data is None or lock is None:  # a Gradio that keeps it elsewhere: it expires on its own
        return False
    with lock:
        gone = data.pop(session_hash, None)
        getattr(holder, "time_last_used", {}).pop(session_hash, None)
    return gone is not None


def release_memory() -> None:
    """Hand freed heap back to the system (glibc keeps it for reuse otherwise; a closed tab's
    pictures and copies of a model would then stay counted against the server)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MMAP_THRESHOLD = 256 * 1024  # bytes: a block this large or larger is mapped alone and unmapped when freed
TRIM_THRESHOLD = 256 * 1024  # bytes free at a heap's top beyond which it is given back
ARENA_MAX = 2  # heaps that threads share


def tune_malloc() -> bool:
    """Keep a long-running server's heap from growing with what it frees. A page's pictures are
    large short-lived buffers (a figure's JSON, its arrays), made and freed on many threads: by
    default glibc gives threads up to eight heaps per core, and after the first large block is
    freed it raises its threshold for mapping blocks alone, so that the next ones come from those
    heaps (it raises the threshold for giving a heap's top back with it) and leave them
    fragmented. Under a soak of three tabs the server's heap then held four times as much free
    memory as used, and its RSS climbed by a third in four minutes (BENCHMARKS.md, "The soak's
    memory, put where it grows"). Fixed thresholds map each large block alone and give back what
    a heap frees at its top; two heaps bound what the threads keep between them. Call it before
    the server starts its threads. A setting given in glibc's own environment variable
    (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_ARENA_MAX) is left as given. Returns
    whether glibc took every setting made here."""
    libc = _glibc()
    if not libc:
        return False
    settings = (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX))
    return all([bool(libc.mallopt(k, v)) for name, k, v in settings if name not in os.environ])


def _glibc():
    """The C library, where it is glibc; False elsewhere (nothing to tune or trim)."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _libc = libc
        except (OSError, AttributeError):  # not glibc
            _libc = False
    return _libc


_libc = None
