"""Container.call_with(fork=True): the caller, forked, runs the function inside the container."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import time

import pytest

import nsbox
from nsbox.cgroup import CGroup

from ..conftest import HostState, run_rootless

PR_GET_DUMPABLE = 3


def _fork_call(container: nsbox.Container, fn, *args, **options):  # type: ignore[no-untyped-def]
    return container.call_with(fn, args, fork=True, **options)


def _status(field: str) -> str:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(field)


def _identity() -> dict[str, object]:
    return {
        "pid": os.getpid(), "uid": os.getuid(), "hostname": os.uname().nodename,
        "cgroup": open("/proc/self/cgroup").read(), "cwd": os.getcwd(),
        "env": dict(os.environ), "processes": sorted(int(p) for p in os.listdir("/proc")
                                                     if p.isdigit()),
    }


def test_the_fork_runs_inside_like_any_process_of_the_container() -> None:
    """Same pid namespace, hostname, cgroup namespace, user, cwd and environment as a run."""
    with nsbox.Container(user=1000, cwd="/tmp", env={"WHO": "inside"}) as c:
        inside = _fork_call(c, _identity)
        assert inside["pid"] != os.getpid() and inside["pid"] > 1
        assert inside["processes"] == [1, inside["pid"]], inside  # the init and itself
        assert inside["uid"] == 1000
        assert inside["hostname"] == "nsbox"
        assert inside["cwd"] == "/tmp"
        assert inside["env"]["WHO"] == "inside" and "PYTEST_CURRENT_TEST" not in inside["env"]
        assert inside["cgroup"] == c.run(["cat", "/proc/self/cgroup"], text=True).stdout


def test_nothing_is_pickled_but_the_result() -> None:
    """A lambda over a lock (unpicklable, even for cloudpickle) runs; values come back."""
    lock = threading.Lock()
    with nsbox.Container() as c:
        assert _fork_call(c, lambda: (lock.locked(), os.uname().nodename)) == (False, "nsbox")
        assert _fork_call(c, sorted, {3, 1, 2}) == [1, 2, 3]
        with pytest.raises(nsbox.errors.CallError, match="could not be pickled"):
            _fork_call(c, threading.Lock)


def test_exception_comes_back_with_remote_traceback() -> None:
    with nsbox.Container() as c, pytest.raises(ValueError, match="invalid literal") as info:
        _fork_call(c, int, "not a number")
    cause = info.value.__cause__
    assert isinstance(cause, nsbox.errors.RemoteTraceback)
    assert "ValueError" in cause.text


def test_the_fork_is_locked_like_the_container_and_holds_no_host_fd() -> None:
    """Capabilities, no_new_privs and seccomp as a process run there; non-dumpable; only
    stdio and its two pipes open."""
    def locks() -> dict[str, object]:
        libc = ctypes.CDLL(None, use_errno=True)
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # listdir's own fd, closed by now
                fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        return {"caps": _status("CapEff"), "bounding": _status("CapBnd"),
                "nnp": _status("NoNewPrivs"), "seccomp": _status("Seccomp"),
                "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), "fds": fds}

    with nsbox.Container() as c:
        inside = _fork_call(c, locks)
        status = c.run(["grep", "-E", "^(CapEff|CapBnd|NoNewPrivs|Seccomp):",
                        "/proc/self/status"], text=True).stdout
    for field in ("caps", "bounding", "nnp", "seccomp"):
        assert f"{inside[field]}\n" in status.replace("\t", ""), (field, inside, status)
    assert inside["seccomp"] == "2" and inside["nnp"] == "1"
    assert inside["dumpable"] == 0
    extra = {fd: target for fd, target in inside["fds"].items() if fd > 2}  # type: ignore[union-attr]
    # The report pipe was closed before the call; the reply pipe stays, and ctypes' libc.
    assert [target for target in extra.values() if target.startswith("pipe:")], extra
    assert len(extra) <= 2, extra


def _read_fork_memory() -> str:
    # Another process of the container (a child of the fork: same user, same namespaces)
    # tries to read the fork's environment: refused because the fork is not dumpable.
    probe = subprocess.run(["cat", f"/proc/{os.getpid()}/environ"], capture_output=True,
                           text=True)
    return "refused" if probe.returncode else "read"


def test_processes_of_the_container_cannot_read_the_fork() -> None:
    """The fork is a copy of the host's Python: no container process may read its memory.
    With CAP_SYS_PTRACE granted, the same probe succeeds (so the test can fail)."""
    with nsbox.Container() as c:
        assert _fork_call(c, _read_fork_memory) == "refused"
    with nsbox.Container(cap_add=["SYS_PTRACE"]) as c:
        assert _fork_call(c, _read_fork_memory) == "read"


def test_memory_limited_fork_is_reported_as_oom() -> None:
    with nsbox.Container(cgroup=CGroup(memory_max="64M")) as c:
        with pytest.raises(nsbox.errors.CallError) as info:
            _fork_call(c, lambda: len(os.urandom(300 * 2**20)))
        assert info.value.oom_killed is True


def test_timeout_kills_the_fork_and_what_it_started() -> None:
    state = HostState()
    with nsbox.Container() as c:
        def sleeper() -> None:
            subprocess.Popen(["sleep", "600"])
            time.sleep(600)

        start = time.monotonic()
        with pytest.raises(nsbox.TimeoutExpired):
            _fork_call(c, sleeper, timeout=1.0)
        assert time.monotonic() - start < 15
        assert c.run(["sh", "-c", "pgrep sleep || echo none"], text=True).stdout == "none\n"
    state.assert_unchanged()


def test_refused_while_other_threads_exist() -> None:
    """With a second thread the fork mode refuses, and nothing is started."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    with nsbox.Container() as c:
        thread.start()
        try:
            with pytest.raises(nsbox.UnsupportedError, match=r"single-threaded.*2 threads"):
                _fork_call(c, os.getpid)
        finally:
            stop.set()
            thread.join()
        assert len(c.run(["ps", "-e", "-o", "pid="], text=True).stdout.split()) == 2
        assert _fork_call(c, lambda: 7) == 7  # alone again, it works


def test_a_failed_step_is_a_precise_spawn_error() -> None:
    """Entering fails at chdir: FileNotFoundError naming the step, as for a run."""
    with nsbox.Container(cwd="/no/such/dir") as c:
        with pytest.raises(FileNotFoundError) as info:
            _fork_call(c, os.getpid)
        assert isinstance(info.value, nsbox.SpawnError) and info.value.step == "chdir"
        assert c.run(["true"], cwd="/").returncode == 0


def test_rootless_fork_call(rootless_python: list[str]) -> None:
    """Without root: the fork joins the user namespace too and runs as root in it."""
    result = run_rootless(rootless_python, """
        import json, os, nsbox
        with nsbox.Container() as c:
            uid, name = c.call_with(lambda: (os.getuid(), os.uname().nodename), fork=True)
        print(json.dumps([os.getuid(), uid, name]))
    """)
    assert result[0] != 0 and result[1:] == [0, "nsbox"]
