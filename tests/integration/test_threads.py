"""Spawning from a threaded process works (rule 1) and repeated use leaks nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import nsbox
from tests.conftest import HostState


@pytest.fixture
def busy_threads() -> Iterator[None]:
    """Eight threads spinning in Python (holding and passing the GIL) for the test's length."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x = (x + 1) % 1000003

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join()


def test_spawn_with_eight_busy_threads(busy_threads: None, host_state: HostState) -> None:
    """Containers start and run correctly while 8 other threads are busy."""
    for i in range(20):
        with nsbox.Container(hostname=f"t{i}") as c:
            assert c.run(["hostname"], text=True).stdout == f"t{i}\n"


def test_concurrent_spawns_from_many_threads(host_state: HostState) -> None:
    """Eight threads each running commands in one shared container get their own results."""
    errors: list[BaseException] = []
    with nsbox.Container() as c:

        def worker(n: int) -> None:
            try:
                for j in range(10):
                    out = c.run(["echo", f"{n}-{j}"], text=True).stdout
                    assert out == f"{n}-{j}\n"
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors


def test_two_hundred_sequential_runs_leave_nothing(host_state: HostState) -> None:
    """200 runs (100 in one container, 100 one-shot containers) leave no zombie, fd or mount."""
    with nsbox.Container() as c:
        for _ in range(100):
            assert c.run(["true"]).returncode == 0
    for _ in range(100):
        assert nsbox.run(["true"]).returncode == 0
