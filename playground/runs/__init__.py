"""Runs and sessions: who trains what, and what each browser tab holds.

    manager.py   RunManager: the cap on runs training at once, and the queue
    run.py       Run: one model training on one dataset, with its snapshots
    session.py   Session: one tab's current run, finished runs and uploads
"""

from .manager import RunManager
from .run import FINISHED, Run, RunRecord, thin, view_context
from .session import Session

__all__ = ["FINISHED", "Run", "RunManager", "RunRecord", "Session", "thin", "view_context"]
