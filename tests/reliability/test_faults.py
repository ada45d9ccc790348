"""Faults with randomised timing; after each kind, nothing is left behind."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nsbox
from nsbox.cgroup import CGroup
from tests.conftest import HostState
from tests.reliability.conftest import Record, size
from tests.reliability.test_soak import _nsbox_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups here need root")


@pytest.fixture
def clean_host() -> Iterator[None]:
    """The host's processes, fds, mounts and our cgroups are the same after the test."""
    before, cgroups = HostState(), _nsbox_cgroups()
    yield
    before.assert_unchanged()
    assert _nsbox_cgroups() == cgroups


def _interrupt_after(delay: float) -> threading.Timer:
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_keyboard_interrupt_at_random_moments(clean_host: None, report: list[Record]) -> None:
    """SIGINT at a random moment of enter, run or exit never leaves a process, fd, mount or
    cgroup behind."""
    rng = random.Random(1234)
    rounds = size(150, 1000)
    interrupted = 0
    delivered = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        delivered.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        for i in range(rounds):
            delivered.clear()
            finished = False
            try:
                timer = _interrupt_after(rng.uniform(0, 0.006))
                cgroup = CGroup(pids_max=20) if i % 4 == 0 else None
                with nsbox.Container(cgroup=cgroup) as c:
                    c.run(["true"])
                    c.run(["sh", "-c", "sleep 0.001"])
                finished = True
                timer.join()
                while not delivered.is_set():  # let a late signal land here, inside the try
                    time.sleep(0.0005)
            except KeyboardInterrupt:
                interrupted += not finished
                timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    report.append(Record("KeyboardInterrupt at a random moment of enter / run / exit",
                         rounds, f"{interrupted} landed inside nsbox; nothing left behind"))
    assert interrupted > rounds // 10  # the faults really landed inside


FAULTS: dict[str, Callable[[nsbox.Container], None]] = {}


def fault(name: str) -> Callable[[Callable[[nsbox.Container], None]],
                                 Callable[[nsbox.Container], None]]:
    def register(fn: Callable[[nsbox.Container], None]) -> Callable[[nsbox.Container], None]:
        FAULTS[name] = fn
        return fn
    return register


@fault("payload SIGKILLed at a random moment")
def _sigkill(c: nsbox.Container) -> None:
    p = c.spawn(["sh", "-c", "sleep 5 & sleep 5"])
    time.sleep(random.uniform(0, 0.02))
    p.kill()
    assert p.wait() == -signal.SIGKILL


@fault("payload OOM-killed")
def _oom(c: nsbox.Container) -> None:
    result = c.run(["python3", "-c", "import os; os.urandom(200 * 2**20)"])
    assert result.oom_killed


@fault("payload fork-bombs into its pids limit")
def _fork_bomb(c: nsbox.Container) -> None:
    bomb = c.spawn(["sh", "-c", "b() { b | b & }; b"], stderr=nsbox.DEVNULL)
    time.sleep(random.uniform(0.05, 0.2))
    # The kernel's own count: a listing of cgroup.procs can include tasks already exiting.
    pids = c.stats().pids_current
    assert pids is not None and pids <= 40
    bomb.kill()


@fault("payload ignores SIGTERM; timeout escalates to SIGKILL")
def _ignores_term(c: nsbox.Container) -> None:
    with pytest.raises(nsbox.TimeoutExpired):
        c.run(["sh", "-c", "trap '' TERM; sleep 5"], timeout=random.uniform(0.05, 0.2))


@fault("container frozen at teardown")
def _frozen(c: nsbox.Container) -> None:
    c.spawn(["sh", "-c", "while :; do :; done"])
    time.sleep(random.uniform(0, 0.05))
    c.freeze()


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(name: str, clean_host: None, report: list[Record]) -> None:
    """Each fault, repeated with random timing, ends with the container torn down cleanly."""
    rounds = size(8, 100)
    for _ in range(rounds):
        with nsbox.Container(cgroup=CGroup(memory_max="64M", swap_max=0, pids_max=40)) as c:
            FAULTS[name](c)
    report.append(Record(name, rounds, "torn down, nothing left behind"))


def test_full_upper_layer_is_enospc_inside_only(tmp_path: Path, clean_host: None,
                                                report: list[Record]) -> None:
    """An upper layer on a full 8 MiB tmpfs gives ENOSPC to the writer inside; the container
    keeps working and the host's filesystems are unaffected."""
    space = tmp_path / "nsbox-small"
    space.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "nsbox-small", str(space)],
                   check=True)
    try:
        rounds = size(3, 20)
        for _ in range(rounds):
            free_before = shutil.disk_usage("/").free
            upper = space / "upper"
            with nsbox.Container(rootfs=nsbox.OverlayRootfs.host(upper=upper)) as c:
                fill = c.run(["sh", "-c", "dd if=/dev/zero of=/var/nsbox-fill bs=1M count=64"],
                             text=True)
                assert fill.returncode != 0 and "No space left" in fill.stderr
                assert c.run(["sh", "-c", "rm /var/nsbox-fill && echo ok"],
                             text=True).stdout == "ok\n"
            assert abs(shutil.disk_usage("/").free - free_before) < 32 * 2**20
            shutil.rmtree(upper)
            for leftover in space.iterdir():
                shutil.rmtree(leftover)
    finally:
        subprocess.run(["umount", str(space)], check=True)
    report.append(Record("upper layer's filesystem fills up (ENOSPC inside)", rounds,
                         "ENOSPC for the writer, container still works, host unaffected"))
