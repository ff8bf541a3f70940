"""Fixtures of the playground's tests: one thread per run, as the app sets it, and a run manager."""

import pytest
import torch

from playground import app as A
from playground.runs import RunManager


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_run():
    """As the app runs (build_app sets it): runs, snapshots and metrics are threads of one process."""
    before = torch.get_num_threads()
    A.use_one_thread_per_run()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def manager():
    m = RunManager(1)
    yield m
    m.shutdown()
