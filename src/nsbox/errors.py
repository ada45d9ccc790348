"""The exceptions nsbox raises.

::

    NsboxError
    ├── ConfigError (ValueError)         a spec is invalid; raised before the kernel is touched
    ├── UnsupportedError (RuntimeError)  the kernel or our privileges lack a feature
    ├── LifecycleError (RuntimeError)    an object used in the wrong state (entered twice, ...)
    ├── CGroupError (OSError)            a cgroup operation failed
    ├── SpawnError (OSError)             a container process failed before exec; names the step
    │   ├── SpawnFileNotFoundError (FileNotFoundError)
    │   └── SpawnPermissionError (PermissionError)
    ├── CallError (RuntimeError)         Container.call's process died without a result
    ├── TimeoutExpired (subprocess.TimeoutExpired)
    └── CalledProcessError (subprocess.CalledProcessError)
"""

from __future__ import annotations

import errno as _errno
import os
import subprocess
from collections.abc import Sequence

_Args = str | bytes | Sequence[str | bytes]


class NsboxError(Exception):
    """Base of every nsbox exception; never raised itself."""


class ConfigError(NsboxError, ValueError):
    """A spec is invalid. Raised on construction, before any syscall."""


class UnsupportedError(NsboxError, RuntimeError):
    """The kernel, the build or our privileges lack a feature; the message says how to get it."""


class LifecycleError(NsboxError, RuntimeError):
    """An object was used in a state that does not allow it (entered twice, used after exit)."""


class CGroupError(NsboxError, OSError):
    """A cgroup operation failed."""


class SpawnError(NsboxError, OSError):
    """A container process failed before it could execute its program.

    Attributes:
        step: the name of the setup step that failed (``"hostname"``, ``"setns"``, ...).
        errno: the errno the kernel returned.
        detail: the path or value the step was working on, if any.
    """

    def __init__(self, step: str, err: int, detail: str = "", hint: str = "") -> None:
        message = f"{step} failed: {_errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
        if detail:
            message += f": {detail!r}"
        if hint:
            message += f" — {hint}"
        super().__init__(err, message)
        self.step = step
        self.detail = detail
        self.filename = detail or None

    def __str__(self) -> str:
        return str(self.args[1])


class SpawnFileNotFoundError(SpawnError, FileNotFoundError):
    """The program to execute (or a path a step needed) does not exist."""


class SpawnPermissionError(SpawnError, PermissionError):
    """The kernel refused a step or the exec for lack of permission."""


def spawn_error(step: str, err: int, detail: str = "", hint: str = "") -> SpawnError:
    """The most specific SpawnError for ``err``, so ``except FileNotFoundError`` works."""
    if err == _errno.ENOENT:
        return SpawnFileNotFoundError(step, err, detail, hint)
    if err in (_errno.EPERM, _errno.EACCES):
        return SpawnPermissionError(step, err, detail, hint)
    return SpawnError(step, err, detail, hint)


class CallError(NsboxError, RuntimeError):
    """``Container.call`` got no result: the interpreter inside died or could not reply.

    Attributes:
        returncode: the exit status of the interpreter (negative for a signal).
        oom_killed: whether the cgroup's OOM killer ended it.
    """

    def __init__(self, message: str, returncode: int | None = None,
                 oom_killed: bool = False) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.oom_killed = oom_killed


class RemoteTraceback(Exception):
    """The traceback of an exception raised inside a container, attached as ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\n(raised inside the container)\n{self.text}"


class TimeoutExpired(NsboxError, subprocess.TimeoutExpired):
    """A process did not finish in time; it has been killed and reaped."""

    def __init__(self, cmd: _Args, timeout: float,
                 output: bytes | str | None = None, stderr: bytes | str | None = None) -> None:
        subprocess.TimeoutExpired.__init__(self, cmd, timeout, output, stderr)


class CalledProcessError(NsboxError, subprocess.CalledProcessError):
    """``check=True`` and the process exited with a non-zero status (or was killed)."""

    def __init__(self, returncode: int, cmd: _Args, output: bytes | str | None = None,
                 stderr: bytes | str | None = None, oom_killed: bool = False) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, cmd, output, stderr)
        self.oom_killed = oom_killed

    def __str__(self) -> str:
        text = subprocess.CalledProcessError.__str__(self)
        return text + " (killed by the cgroup's OOM killer)" if self.oom_killed else text

