"""Fixtures of the playground's tests: one thread per run, as the app sets it, a run manager, and
the app served on a loopback port with a client of its API."""

import pytest
import torch

from playground import app as A
from playground.runs import RunManager
from tests.fakes import free_port


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


@pytest.fixture
def served_api():
    """(manager, client): the app served on a loopback port, and a gradio_client of it."""
    from gradio_client import Client

    manager = RunManager(2)
    demo = A.build_app(manager)
    demo.launch(server_name="127.0.0.1", server_port=(port := free_port()), prevent_thread_lock=True, quiet=True)
    try:
        yield manager, Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()
        manager.shutdown()
