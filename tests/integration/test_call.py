"""Container.call: Python callables run inside the container and their outcome comes back."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

import nsbox
from nsbox.cgroup import CGroup
from nsbox.rootfs import PivotRoot

from ..conftest import HostState, run_rootless


def test_return_values_of_several_types(container: nsbox.Container) -> None:
    """Results of several types come back equal; the call ran inside (pid and hostname)."""
    assert container.call(math.factorial, 20) == math.factorial(20)
    assert container.call(sorted, {3, 1, 2}) == [1, 2, 3]
    assert container.call(dict, a=1, b=[2, 3]) == {"a": 1, "b": [2, 3]}
    assert container.call(bytes, 3) == b"\0\0\0"
    assert container.call(os.uname).nodename == "nsbox"
    assert container.call(os.getpid) != os.getpid()


def test_exception_comes_back_with_remote_traceback(container: nsbox.Container) -> None:
    """An exception raised inside is raised here with its type and the remote traceback."""
    with pytest.raises(ValueError, match="invalid literal") as info:
        container.call(int, "not a number")
    cause = info.value.__cause__
    assert isinstance(cause, nsbox.errors.RemoteTraceback)
    assert "ValueError" in cause.text and "raised inside the container" in str(cause)


def test_closure_with_cloudpickle(container: nsbox.Container) -> None:
    """A closure over local state runs inside (cloudpickle is installed with the tests)."""
    factor = 7

    def times(x: int) -> tuple[int, str]:
        return x * factor, os.uname().nodename

    assert container.call(times, 6) == (42, "nsbox")


def test_unpicklable_result_is_a_clear_error(container: nsbox.Container) -> None:
    """A result that cannot be pickled raises CallError naming it."""
    with pytest.raises(nsbox.errors.CallError, match="could not be pickled"):
        container.call(threading.Lock)


def test_memory_limited_call_is_reported_as_oom() -> None:
    """A call that exceeds the container's memory limit raises CallError with oom_killed."""
    with nsbox.Container(cgroup=CGroup(memory_max="64M")) as c:
        with pytest.raises(nsbox.errors.CallError) as info:
            c.call(os.urandom, 300 * 2**20)
        assert info.value.oom_killed is True


def test_call_timeout_kills_it(container: nsbox.Container) -> None:
    """A call that runs past its timeout is killed and TimeoutExpired raised."""
    start = time.monotonic()
    with pytest.raises(nsbox.TimeoutExpired):
        container.call_with(time.sleep, (60,), timeout=0.5)
    assert time.monotonic() - start < 15
    assert container.run(["sh", "-c", "pgrep -f 'time[.]sleep' || echo none"],
                         text=True).stdout == "none\n"


def _python_facts() -> tuple[str, bool, str]:
    import sys

    try:
        with open(os.path.join(os.path.dirname(os.__file__), "nsbox-probe"), "w"):
            written = "written"
    except OSError as exc:
        written = os.strerror(exc.errno or 0)
    return sys.version, os.path.exists("/bin/busybox"), written


def test_call_in_a_root_without_python_lends_the_hosts(base: str) -> None:
    """A busybox root has no Python: the call's interpreter gets the host's, read-only, in a
    mount namespace of its own; the container's other processes see only empty mount points."""
    import sys

    state = HostState()
    with nsbox.Container(rootfs=PivotRoot(base)) as c:
        assert c.run(["test", "-e", sys.executable]).returncode == 1
        version, busybox, written = c.call(_python_facts)
        assert version == sys.version and busybox is True
        assert written == "Read-only file system"
        assert c.call(math.factorial, 5) == 120  # a second call gets its own copies
        # Empty mount points at most, nothing of the host's.
        listing = c.run(["sh", "-c", f"ls -A {os.path.dirname(os.__file__)} | wc -l; "
                                     f"[ -s {sys.executable} ] && echo host || echo none"],
                        text=True).stdout
        assert listing.split() == ["0", "none"]
    state.assert_unchanged()


def test_rootless_call_in_a_root_without_python(rootless_python: list[str]) -> None:
    """Without root the host's Python cannot be lent: a clear error naming fork=True, which
    works (the fork needs no interpreter on disk)."""
    result = run_rootless(rootless_python, """
        import json, os, shutil, tempfile, nsbox
        from nsbox.rootfs import PivotRoot, make_busybox_tree
        work = tempfile.mkdtemp(prefix="rootless-call-")
        root = make_busybox_tree(os.path.join(work, "root"))
        with nsbox.Container(rootfs=PivotRoot(root)) as c:
            try:
                c.call(os.getpid)
                error = ""
            except nsbox.UnsupportedError as exc:
                error = str(exc)
            inside = c.call_with(lambda: (os.getuid(), os.path.exists("/bin/busybox")),
                                 fork=True)
        shutil.rmtree(work)
        print(json.dumps([error, inside]))
    """)
    error, inside = result
    assert "lacks this Python" in error and "fork=True" in error
    assert inside == [0, True]
