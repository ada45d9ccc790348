"""Container.call: Python callables run inside the container and their outcome comes back."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

import nsbox
from nsbox.cgroup import CGroup


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
