"""Processes joining a running container: what they share, and what they cannot be attacked by."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nsbox
from nsbox.cgroup import CGroup

ATTACKER = Path(__file__).parent / "scripts" / "ptrace_joiners.py"


def test_exec_shares_everything_with_the_first_process() -> None:
    """An exec'd process sees the first one's pid namespace, hostname, files, cgroup and limits,
    and is OOM-reported like the others."""
    cgroup = CGroup(memory_max="64M", swap_max=0)
    with nsbox.Container(cgroup=cgroup, hostname="shared", rlimits={"nofile": 200}) as c:
        first = c.spawn(["sh", "-c", "echo from-first > /tmp/nsbox-exec-file; exec sleep 60"])
        try:
            time.sleep(0.2)
            seen = c.exec(["sh", "-c", "hostname; cat /tmp/nsbox-exec-file; pgrep -x sleep; "
                                       "ulimit -n; cat /proc/self/cgroup | tail -n 1"],
                          stdout=nsbox.PIPE)
            out, _ = seen.communicate()
            hostname, content, sleeper, nofile, cgroup_line = out.decode().split()
            assert (hostname, content, nofile) == ("shared", "from-first", "200")
            assert int(sleeper) > 1 and cgroup_line.endswith(":/")
            hog = c.exec(["python3", "-c", "import os; os.urandom(200 * 2**20)"])
            hog.wait()
            assert hog.oom_killed
        finally:
            first.kill()
            first.wait()
        assert not os.path.exists("/tmp/nsbox-exec-file")  # written in the container's own /tmp


def test_joining_process_cannot_be_ptraced_or_overwritten() -> None:
    """While commands join a container, a root process inside cannot ptrace them or open their
    /proc/PID/exe for writing, and the host's Python binary stays unchanged."""
    interpreter = os.path.realpath(sys.executable)
    digest = hashlib.sha256(Path(interpreter).read_bytes()).hexdigest()
    with nsbox.Container() as c:
        # By source, not path: the checkout may be under /tmp, which the container has its own.
        attacker = c.spawn(["python3", "-c", ATTACKER.read_text(), "4"], stdout=nsbox.PIPE)
        deadline = time.monotonic() + 3.5
        runs = 0
        while time.monotonic() < deadline:
            c.run(["true"])
            runs += 1
        out, _ = attacker.communicate(timeout=30)
    candidates, attached, opened = map(int, out.split())
    assert runs > 5
    assert (attached, opened) == (0, 0), f"{candidates} joiners seen"
    assert hashlib.sha256(Path(interpreter).read_bytes()).hexdigest() == digest


def test_the_spawning_thread_goes_back_to_its_own_pid_namespace(
        container: nsbox.Container) -> None:
    """As root a process joins by being born in the container's pid namespace: the spawning
    thread enters it for its children and leaves it right after. Its next child (here,
    subprocess's) is the host's again, and so is every other thread's meanwhile."""
    own = os.readlink("/proc/self/ns/pid")
    found: list[str] = []

    def spawn_many() -> None:
        for _ in range(50):
            container.run(["true"])
        found.append(os.readlink("/proc/thread-self/ns/pid_for_children"))

    thread = threading.Thread(target=spawn_many)
    thread.start()
    while thread.is_alive():
        status = subprocess.run(["grep", "NSpid", "/proc/self/status"], capture_output=True,
                                text=True, check=True).stdout
        assert len(status.split()) == 2, status  # one pid: in the host's namespace only
    thread.join()
    assert found == [own]
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == own


def test_this_process_stays_dumpable_after_spawning_from_threads(
        container: nsbox.Container) -> None:
    """While a joining child starts, this process's memory is non-dumpable (the child shares
    it or copies its flag); the last spawn to finish restores the flag, however they overlap."""
    import ctypes

    libc = ctypes.CDLL(None)
    assert libc.prctl(3, 0, 0, 0, 0) == 1  # PR_GET_DUMPABLE

    def spawn_many() -> None:
        for _ in range(30):
            container.run(["true"])

    threads = [threading.Thread(target=spawn_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert libc.prctl(3, 0, 0, 0, 0) == 1
