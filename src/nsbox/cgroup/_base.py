"""What both backends share: the file-system seam, the backend interface, and teardown helpers.

Every kernel file access goes through :class:`Fs`, a thin layer over ``os``. Unit tests
replace it with a fake tree in a temporary directory (cgroupfs creates interface files on
``mkdir`` and lets ``rmdir`` remove a directory full of them; a fake has to imitate that).
"""

from __future__ import annotations

import abc
import errno
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import ClassVar

from .. import state
from ..errors import CGroupError
from ._spec import Limits
from ._stats import CGroupStats, Placement

#: How long teardown keeps killing, and then keeps retrying rmdir, by default.
DEFAULT_TEARDOWN_TIMEOUT = 5.0


class Fs:
    """The kernel file operations the backends use; the real cgroupfs by default."""

    def mkdir(self, path: Path) -> None:
        """Create a cgroup directory (the kernel populates it with interface files).

        An ``nsbox-...`` directory is recorded in the state directory first, so ``nsbox gc``
        can remove it if this process dies before it does.
        """
        owned = path.name.startswith("nsbox-")
        if owned:
            state.record("cgroup", path)
        try:
            os.mkdir(path, 0o755)
        except BaseException:
            if owned:
                state.forget("cgroup", path)
            raise

    def rmdir(self, path: Path) -> None:
        """Remove an empty cgroup directory (interface files do not count)."""
        os.rmdir(path)
        state.forget("cgroup", path)

    def read(self, path: Path) -> str:
        """Read a whole interface file."""
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()

    def write(self, path: Path, value: str) -> None:
        """Write ``value`` to an interface file in one ``write(2)``.

        cgroupfs parses each write on its own, so the value must not be split; and the file
        must never be created (no ``O_CREAT``): a missing file means a missing feature.
        """
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, path: Path) -> bool:
        """Whether a file or directory exists."""
        return os.path.lexists(path)

    def is_dir(self, path: Path) -> bool:
        """Whether ``path`` is a directory (not following a final symlink)."""
        return os.path.isdir(path) and not os.path.islink(path)

    def subdirs(self, path: Path) -> list[str]:
        """Names of the child cgroups of a cgroup directory."""
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))

    def writable(self, path: Path) -> bool:
        """Whether this process may write ``path`` (``access(2)`` with the real ids)."""
        return os.access(path, os.W_OK)


REAL_FS = Fs()


def error(err: OSError, action: str, path: Path, hint: str = "") -> CGroupError:
    """Turn an ``OSError`` from a cgroup file into a :class:`CGroupError` naming the action.

    Args:
        err: the original error.
        action: what was being done (``"writing '64M' to memory.max"``).
        path: the file or directory.
        hint: an explanation of the likely cause, appended to the message.

    Returns:
        The error to raise (``from err``).
    """
    message = f"{action}: {err.strerror or err}"
    if hint:
        message += f" ({hint})"
    return CGroupError(err.errno or errno.EIO, message, str(path))


def read_opt(fs: Fs, path: Path) -> str | None:
    """Read an interface file that may be absent or unsupported; ``None`` then."""
    try:
        return fs.read(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL,
                         errno.EACCES, errno.EPERM):
            return None
        raise error(err, "reading", path) from err


def read_int(fs: Fs, path: Path) -> int | None:
    """Read a file holding one integer; ``None`` if absent or not an integer (``max``)."""
    text = read_opt(fs, path)
    if text is None:
        return None
    try:
        return int(text.split()[0]) if text.split() else None
    except ValueError:
        return None


def read_pids(fs: Fs, path: Path) -> list[int]:
    """The pids in a ``cgroup.procs`` file; empty if the cgroup is gone."""
    text = read_opt(fs, path)
    return [int(line) for line in text.split()] if text else []


def walk_dirs(fs: Fs, top: Path) -> Iterator[Path]:
    """Yield ``top`` and every cgroup below it, children before their parent."""
    try:
        names = fs.subdirs(top)
    except FileNotFoundError:
        return
    except OSError as err:
        raise error(err, "listing child cgroups", top) from err
    for name in names:
        yield from walk_dirs(fs, top / name)
    yield top


def backoff(start: float = 0.0005, limit: float = 0.02) -> Iterator[float]:
    """Sleep intervals for polling: short at first (freezing usually takes microseconds),
    doubling up to ``limit`` so a slow kernel is not hammered."""
    delay = start
    while True:
        yield delay
        delay = min(delay * 2, limit)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` with :func:`backoff` sleeps until it holds or ``timeout`` passes.

    Returns:
        Whether the predicate held.
    """
    deadline = time.monotonic() + timeout
    for delay in backoff():
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return predicate()
        time.sleep(min(delay, remaining))
    raise AssertionError("unreachable")  # pragma: no cover


def remove_tree(fs: Fs, top: Path, deadline: float) -> None:
    """rmdir ``top`` and every cgroup below it, children first.

    The kernel answers EBUSY while a killed task has not finished exiting (or a css is still
    being released), so EBUSY is retried with short sleeps until ``deadline``.

    Raises:
        CGroupError: a directory stayed busy past the deadline, or rmdir failed otherwise.
    """
    for path in walk_dirs(fs, top):
        for delay in backoff(0.001, 0.05):
            try:
                fs.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                    hint = ("it still holds processes or child cgroups; processes in "
                            "uninterruptible sleep (D state) cannot die until their I/O ends"
                            if err.errno == errno.EBUSY else "")
                    raise error(err, "removing cgroup", path, hint) from err
                time.sleep(delay)


def signal_member(pid: int, sig: int, is_member: Callable[[int], bool]) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the process listed in our cgroup.

    A pid read from ``cgroup.procs`` can exit and be reused by an unrelated process before
    we signal it. A pidfd pins the process: after ``pidfd_open`` the membership check reads
    the cgroup of exactly the process the pidfd refers to, and the signal goes to it.

    Args:
        pid: the process.
        sig: the signal number.
        is_member: whether the process is (still) in the cgroup.

    Returns:
        Whether the signal was sent.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        pidfd = -1  # Linux < 5.3: fall back to kill(2) after the same check.
    try:
        if not is_member(pid):
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def under(path: str | None, top: str) -> bool:
    """Whether the cgroup path ``path`` is ``top`` or below it."""
    return path is not None and (path == top or path.startswith(top.rstrip("/") + "/"))


class Backend(abc.ABC):
    """One cgroup on one cgroup version: the interface :class:`~nsbox.cgroup.CGroup` drives.

    A backend is created for a path and does nothing until :meth:`create`. Limits arrive as
    a validated :class:`Limits`; the backend turns them into its version's files.
    """

    version: ClassVar[str]

    def __init__(self, *, fs: Fs, relpath: PurePosixPath) -> None:
        self.fs = fs
        self.relpath = relpath

    @property
    @abc.abstractmethod
    def paths(self) -> Mapping[str, Path]:
        """Directory per controller (v1) or ``{"unified": directory}`` (v2)."""

    @abc.abstractmethod
    def create(self, limits: Limits) -> None:
        """Create the directory (and the shared parent if needed) and write the limits.

        Leaves nothing behind if it fails.

        Raises:
            UnsupportedError: a limit needs a controller or file this machine lacks.
            ConfigError: the parent does not exist or is not writable.
            CGroupError: the kernel refused.
        """

    @abc.abstractmethod
    def apply(self, old: Limits, new: Limits, names: tuple[str, ...]) -> None:
        """Write the limits named in ``names`` (from ``new``) to the live cgroup."""

    @abc.abstractmethod
    def join(self, controllers: frozenset[str], timeout: float) -> None:
        """Make ``controllers`` usable on the live cgroup before a limit of theirs is written
        (v1: join their hierarchies, moving the cgroup's processes in within ``timeout``)."""

    def extend_placement(self, placement: Placement) -> Placement:
        """``placement``, with fds for what :meth:`join` added since it was opened."""
        return placement

    @abc.abstractmethod
    def add(self, pid: int) -> None:
        """Move a process (its whole thread group) into the cgroup."""

    @abc.abstractmethod
    def procs(self, recursive: bool) -> list[int]:
        """The pids in the cgroup (and its children when ``recursive``), sorted."""

    @abc.abstractmethod
    def freeze(self, timeout: float) -> None:
        """Freeze every process and return once all are frozen."""

    @abc.abstractmethod
    def thaw(self) -> None:
        """Let frozen processes run again."""

    @abc.abstractmethod
    def frozen(self) -> bool:
        """Whether the cgroup is (completely) frozen."""

    @abc.abstractmethod
    def signal_all(self, sig: int) -> None:
        """Send ``sig`` once to every process in the cgroup and its children."""

    @abc.abstractmethod
    def kill_all(self, timeout: float, restore_freeze: bool) -> None:
        """SIGKILL every process in the cgroup and its children, and wait until none is left.

        Raises:
            CGroupError: processes remained after ``timeout`` seconds.
        """

    @abc.abstractmethod
    def remove(self, deadline: float) -> None:
        """rmdir the cgroup and its children (which must hold no process)."""

    def shared_parents(self) -> list[Path]:
        """The default parent directories nsbox made for its cgroups (none for a chosen one)."""
        return []

    def prune_shared_parents(self) -> None:
        """Remove the shared parent where nothing else is left in it.

        Another process's cgroup below it keeps it (EBUSY); one being made meanwhile finds it
        gone and makes it again (CGroup retries its creation).
        """
        for directory in self.shared_parents():
            try:
                self.fs.rmdir(directory)
            except OSError as err:
                if err.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                    raise error(err, "removing the nsbox parent cgroup", directory) from err

    @abc.abstractmethod
    def stats(self) -> CGroupStats:
        """Read the counters."""

    @abc.abstractmethod
    def oom_kills(self) -> int:
        """How many processes the OOM killer killed because of this cgroup's limits."""

    @abc.abstractmethod
    def open_placement(self) -> Placement:
        """Open the file descriptors the spawn code uses to place a child."""

    @abc.abstractmethod
    def child(self, name: str) -> Backend:
        """A backend for a child cgroup ``name`` of this one (not yet created)."""

    def destroy(self, timeout: float) -> None:
        """Kill everything inside, then remove the directories; bounded by ``timeout`` twice.

        Raises:
            CGroupError: processes survived, or a directory stayed busy.
        """
        if self._remove_if_empty():
            return
        self.kill_all(timeout, restore_freeze=False)
        self.remove(time.monotonic() + timeout)

    def _remove_if_empty(self) -> bool:
        # The usual end: every process has exited and there is no child cgroup, so one rmdir
        # per directory is all it takes. The kernel refuses (EBUSY) a directory that still
        # holds either, and then the full kill-and-retry path takes over, where it stopped.
        for directory in dict.fromkeys(self.paths.values()):
            try:
                self.fs.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        return True
