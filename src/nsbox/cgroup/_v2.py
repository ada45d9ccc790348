"""The cgroup v2 (unified hierarchy) backend.

One directory per cgroup. Two kernel rules shape it:

* Controllers reach a cgroup only if every ancestor enables them in ``cgroup.subtree_control``.
  We enable what we need along the path from the hierarchy root down to our parent, and
  never disable anything (other cgroups may rely on it).
* "No internal processes": a non-root cgroup that enables controllers for its children may
  not hold processes itself. Our parent therefore never holds processes; a cgroup that gets a
  child (``cg.child()``) must be empty of processes when the child is created, if the child
  needs controllers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ..errors import CGroupError, ConfigError, UnsupportedError
from ._base import (
    Backend,
    Fs,
    error,
    read_int,
    read_opt,
    read_pids,
    remove_tree,
    signal_member,
    under,
    wait_until,
    walk_dirs,
)
from ._detect import CGroupInfo, cgroup_of, kernel_path
from ._spec import CONTROLLER_OF, Limits
from ._stats import CGroupStats, Placement, parse_flat_keyed, parse_pressure

#: Controllers enabled when available even if no limit needs them, for the statistics
#: (memory.current, memory.events, pids.current, cpu.stat throttling).
WANTED = frozenset({"memory", "pids", "cpu"})

_IO_KEYS = ("rbps", "wbps", "riops", "wiops")

DELEGATION_HELP = (
    "without root, cgroup v2 needs a delegated sub-tree you own whose parent of your own "
    "cgroup holds no processes: run Python under `systemd-run --user --scope -p Delegate=yes "
    "python3 ...` (nsbox then uses a 'nsbox' sibling of that scope), or pass parent= a cgroup "
    "directory you can write"
)


def _value(size: int | None) -> str:
    return "max" if size is None else str(size)


def v2_writes(old: Limits, new: Limits, names: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """The files to write, in order, to apply the limits ``names`` of ``new``.

    Args:
        old: the limits in force now (to reset ``io_max`` devices that were dropped).
        new: the limits wanted.
        names: which limits to write.

    Returns:
        ``(limit name, file name, value)`` triples.
    """
    writes: list[tuple[str, str, str]] = []
    for name in names:
        if name == "memory_max":
            writes.append((name, "memory.max", _value(new.memory_max)))
        elif name == "memory_high":
            writes.append((name, "memory.high", _value(new.memory_high)))
        elif name == "swap_max":
            writes.append((name, "memory.swap.max", _value(new.swap_max)))
        elif name == "cpu_max":
            cpu = new.cpu_max
            writes.append((name, "cpu.max", "max" if cpu is None else
                           f"{cpu.quota_us} {cpu.period_us}"))
        elif name == "cpu_weight":
            writes.append((name, "cpu.weight", str(new.cpu_weight or 100)))
        elif name == "cpuset_cpus":
            # An empty list means "inherit the parent's effective CPUs".
            writes.append((name, "cpuset.cpus", new.cpuset_cpus or ""))
        elif name == "cpuset_mems":
            writes.append((name, "cpuset.mems", new.cpuset_mems or ""))
        elif name == "pids_max":
            writes.append((name, "pids.max", _value(new.pids_max)))
        elif name == "io_weight":
            writes.append((name, "io.weight", f"default {new.io_weight or 100}"))
        elif name == "io_max":
            for device in sorted(set(old.io_max) - set(new.io_max)):
                writes.append((name, "io.max", device + "".join(f" {k}=max" for k in _IO_KEYS)))
            for device, lim in sorted(new.io_max.items()):
                fields = "".join(f" {k}={_value(getattr(lim, k))}" for k in _IO_KEYS)
                writes.append((name, "io.max", device + fields))
    return writes


def own_relpath(info: CGroupInfo, kernel_path_of_self: str | None) -> PurePosixPath | None:
    """Our cgroup as a path relative to the v2 mount point, if it is inside the mount."""
    if kernel_path_of_self is None:
        return None
    root = info.v2_root.rstrip("/")
    if root and not under(kernel_path_of_self, root):
        return None
    return PurePosixPath("/" + kernel_path_of_self[len(root):].lstrip("/"))


def resolve_parent(
    info: CGroupInfo, parent: PurePosixPath | None, fs: Fs, own: PurePosixPath | None,
) -> tuple[PurePosixPath, bool]:
    """Choose the directory under which nsbox creates its cgroup.

    Args:
        info: the detection result (``info.v2_mount`` must be set).
        parent: the caller's choice, relative to the mount point, or ``None`` for the default.
        fs: the file-system seam.
        own: our own cgroup relative to the mount point (from ``/proc/self/cgroup``).

    Returns:
        ``(parent path, whether nsbox may create it)``.

    Raises:
        ConfigError: the caller's parent does not exist or is not writable.
        UnsupportedError: no default parent is usable (no root, no delegation).
    """
    assert info.v2_mount is not None
    mount = info.v2_mount
    if parent is not None:
        directory = mount / str(parent).lstrip("/")
        if not fs.is_dir(directory):
            raise ConfigError(f"parent={str(parent)!r}: {directory} is not a cgroup directory")
        if not fs.writable(directory) or not fs.writable(directory / "cgroup.procs"):
            raise ConfigError(f"parent={str(parent)!r}: {directory} is not writable by this "
                              f"user (uid {os.geteuid()}); {DELEGATION_HELP}")
        return parent, False
    # Root (or whoever owns the hierarchy root): a shared "nsbox" directory under the root,
    # next to the machine's own slices, whatever cgroup we were started in.
    if fs.writable(mount) and fs.writable(mount / "cgroup.subtree_control"):
        return PurePosixPath("/nsbox"), True
    # Delegated: we are in a cgroup with processes (ourselves), so by the no-internal-process
    # rule we cannot give it children with controllers. Its parent, if we own it and it holds
    # no processes (a systemd slice, typically), can take a "nsbox" child beside us.
    if own is not None and own != PurePosixPath("/"):
        above = own.parent
        directory = mount / str(above).lstrip("/")
        if (fs.writable(directory) and fs.writable(directory / "cgroup.procs")
                and fs.writable(directory / "cgroup.subtree_control")
                and not read_pids(fs, directory / "cgroup.procs")):
            return above / "nsbox", True
    raise UnsupportedError(f"no usable cgroup v2 parent for nsbox at {mount}: {DELEGATION_HELP}")


class V2Backend(Backend):
    """A cgroup in the unified hierarchy."""

    version = "v2"

    def __init__(self, *, fs: Fs, info: CGroupInfo, parent: PurePosixPath, name: str,
                 create_parent: bool) -> None:
        super().__init__(fs=fs, relpath=parent / name)
        assert info.v2_mount is not None
        self.info = info
        self.mount = info.v2_mount
        self.parent = parent
        self.create_parent = create_parent
        self.dir = self._abs(self.relpath)

    def shared_parents(self) -> list[Path]:
        """The default ``nsbox`` parent, when nsbox made it."""
        return [self._abs(self.parent)] if self.create_parent else []

    def _abs(self, rel: PurePosixPath) -> Path:
        return self.mount / str(rel).lstrip("/")

    @property
    def paths(self) -> Mapping[str, Path]:
        """``{"unified": directory}``."""
        return {"unified": self.dir}

    # -- creation and limits -------------------------------------------------------------

    def _controllers_of(self, directory: Path, file: str) -> set[str]:
        text = read_opt(self.fs, directory / file)
        return set(text.split()) if text else set()

    def _enable(self, needed: frozenset[str], wanted: frozenset[str]) -> None:
        """Enable controllers in ``cgroup.subtree_control`` from the root down to our parent.

        A needed controller that cannot be enabled raises; a wanted one is skipped quietly.
        """
        chain = [self.parent, *self.parent.parents][::-1]  # "/" first
        for controller in sorted(needed | wanted):
            for rel in chain:
                directory = self._abs(rel)
                if controller in self._controllers_of(directory, "cgroup.subtree_control"):
                    continue
                if controller not in self._controllers_of(directory, "cgroup.controllers"):
                    if controller in needed:
                        limits = sorted(n for n, c in CONTROLLER_OF.items() if c == controller)
                        raise UnsupportedError(
                            f"the cgroup v2 '{controller}' controller (needed by "
                            f"{', '.join(limits)}) is not available in {directory}; "
                            + ("ask the owner of the parent cgroup to delegate it"
                               if rel != PurePosixPath("/") else "the kernel lacks it"))
                    break
                try:
                    self.fs.write(directory / "cgroup.subtree_control", f"+{controller}")
                except OSError as err:
                    if controller not in needed:
                        break
                    if err.errno in (errno.EACCES, errno.EPERM):
                        raise UnsupportedError(
                            f"cannot enable the '{controller}' controller in {directory}: "
                            f"{err.strerror}; {DELEGATION_HELP}") from err
                    hint = ("the no-internal-processes rule: a cgroup holding processes "
                            "cannot enable controllers for children; use a parent without "
                            "processes" if err.errno == errno.EBUSY else "")
                    raise error(err, f"enabling the '{controller}' controller", directory,
                                hint) from err

    def create(self, limits: Limits) -> None:
        """Create the cgroup: parent, controllers, directory, limits; undo on failure."""
        parent_dir = self._abs(self.parent)
        if self.create_parent and not self.fs.is_dir(parent_dir):
            try:
                self.fs.mkdir(parent_dir)
            except FileExistsError:
                pass
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise UnsupportedError(f"cannot create {parent_dir}: {err.strerror}; "
                                           f"{DELEGATION_HELP}") from err
                raise error(err, "creating the nsbox parent cgroup", parent_dir) from err
        self._enable(limits.controllers(), WANTED)
        try:
            self.fs.mkdir(self.dir)
        except OSError as err:
            raise error(err, "creating cgroup", self.dir) from err
        try:
            self.apply(Limits(), limits, limits.given())
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rmdir(self.dir)
            raise

    def join(self, controllers: frozenset[str], timeout: float) -> None:
        """Nothing to do: one hierarchy, whose controllers :meth:`apply` enables as needed."""

    def apply(self, old: Limits, new: Limits, names: tuple[str, ...]) -> None:
        """Write limits; enables their controllers first (a live ``set`` may need a new one)."""
        self._enable(new.controllers(names), frozenset())
        for name, file, value in v2_writes(old, new, names):
            path = self.dir / file
            if not self.fs.exists(path):
                raise UnsupportedError(f"{name} needs {path.name}, which this kernel does not "
                                       "provide (feature or controller missing)")
            try:
                self.fs.write(path, value)
            except OSError as err:
                raise error(err, f"setting {name}: writing {value!r} to {file}", path) from err

    # -- processes -----------------------------------------------------------------------

    def add(self, pid: int) -> None:
        """Write the pid to ``cgroup.procs``."""
        path = self.dir / "cgroup.procs"
        try:
            self.fs.write(path, str(pid))
        except OSError as err:
            hint = ("this cgroup has children with controllers, so by the no-internal-"
                    "processes rule it cannot hold processes; add it to a child"
                    if err.errno == errno.EBUSY else "")
            raise error(err, f"adding pid {pid}", path, hint) from err

    def procs(self, recursive: bool) -> list[int]:
        """Read ``cgroup.procs`` here (and below)."""
        dirs = walk_dirs(self.fs, self.dir) if recursive else iter([self.dir])
        return sorted({pid for d in dirs for pid in read_pids(self.fs, d / "cgroup.procs")})

    def _is_member(self, pid: int) -> bool:
        return under(cgroup_of(pid, ""), kernel_path(self.info.v2_root, self.relpath))

    def signal_all(self, sig: int) -> None:
        """Signal every member, pinned by pidfd."""
        for pid in self.procs(recursive=True):
            signal_member(pid, sig, self._is_member)

    # -- cgroup.events ---------------------------------------------------------------------

    def _events(self) -> dict[str, int]:
        return parse_flat_keyed(read_opt(self.fs, self.dir / "cgroup.events") or "")

    def _wait_event(self, key: str, value: int, timeout: float) -> bool:
        """Wait until ``cgroup.events`` shows ``key value``.

        The kernel notifies pollers of ``cgroup.events`` (POLLPRI) whenever it changes, so
        we sleep in poll(2) instead of spinning; a 50 ms cap re-reads in case a change slips
        between read and poll.
        """
        deadline = time.monotonic() + timeout
        try:
            fd = os.open(self.dir / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return wait_until(lambda: self._events().get(key) == value, timeout)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            while True:
                text = os.pread(fd, 4096, 0).decode()
                if parse_flat_keyed(text).get(key) == value:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                poller.poll(min(remaining, 0.05) * 1000)
        finally:
            os.close(fd)

    # -- freezer -------------------------------------------------------------------------

    def freeze(self, timeout: float) -> None:
        """Write 1 to ``cgroup.freeze`` and wait for ``frozen 1``."""
        path = self.dir / "cgroup.freeze"
        try:
            self.fs.write(path, "1")
        except FileNotFoundError as err:
            raise UnsupportedError("freezing needs cgroup.freeze (Linux 5.2)") from err
        except OSError as err:
            raise error(err, "freezing", path) from err
        if not self._wait_event("frozen", 1, timeout):
            self.thaw()
            raise CGroupError(errno.ETIMEDOUT, f"processes did not freeze within {timeout} s; "
                              "thawed again", str(path))

    def thaw(self) -> None:
        """Write 0 to ``cgroup.freeze``."""
        path = self.dir / "cgroup.freeze"
        try:
            self.fs.write(path, "0")
        except OSError as err:
            raise error(err, "thawing", path) from err

    def frozen(self) -> bool:
        """``frozen 1`` in ``cgroup.events``."""
        return self._events().get("frozen") == 1

    # -- teardown ------------------------------------------------------------------------

    def kill_all(self, timeout: float, restore_freeze: bool) -> None:
        """``cgroup.kill`` (Linux 5.14) when present; else freeze, SIGKILL each, thaw, repeat.

        cgroup.kill is atomic against forks and recursive, so one write suffices; then we
        wait for ``populated 0``, which covers the whole sub-tree.
        """
        deadline = time.monotonic() + timeout
        kill_file = self.dir / "cgroup.kill"
        if not self.fs.is_dir(self.dir):
            return
        if self.fs.exists(kill_file):
            while self._events().get("populated", 0):
                try:
                    self.fs.write(kill_file, "1")
                except FileNotFoundError:
                    return
                except OSError as err:
                    raise error(err, "killing the cgroup's processes", kill_file) from err
                if self._wait_event("populated", 0, max(0.0, deadline - time.monotonic())):
                    return
                if time.monotonic() >= deadline:
                    self._raise_survivors(timeout)
            return
        was_frozen = self.frozen()
        while self.procs(recursive=True):
            if time.monotonic() >= deadline:
                self._raise_survivors(timeout)
            # Frozen tasks cannot fork; if freezing times out, signal anyway: a fatal
            # signal also reaches tasks that failed to freeze.
            with contextlib.suppress(CGroupError):
                self.freeze(min(0.5, max(0.01, deadline - time.monotonic())))
            self.signal_all(signal.SIGKILL)
            self.thaw()
            wait_until(lambda: not self.procs(recursive=True), 0.1)
        if restore_freeze and was_frozen:
            self.freeze(timeout)

    def _raise_survivors(self, timeout: float) -> None:
        raise CGroupError(errno.EBUSY, f"processes {self.procs(recursive=True)} survived "
                          f"SIGKILL for {timeout} s (uninterruptible sleep?)", str(self.dir))

    def remove(self, deadline: float) -> None:
        """rmdir children first, then this cgroup."""
        remove_tree(self.fs, self.dir, deadline)

    # -- statistics ----------------------------------------------------------------------

    def stats(self) -> CGroupStats:
        """Read memory.*, cpu.stat, pids.current, memory.events and the PSI files."""
        d = self.dir
        cpu = parse_flat_keyed(read_opt(self.fs, d / "cpu.stat") or "")
        events = parse_flat_keyed(read_opt(self.fs, d / "memory.events") or "")

        def ns(key: str) -> int | None:
            return cpu[key] * 1000 if key in cpu else None

        return CGroupStats(
            memory_current=read_int(self.fs, d / "memory.current"),
            memory_peak=read_int(self.fs, d / "memory.peak"),
            swap_current=read_int(self.fs, d / "memory.swap.current"),
            cpu_usage_ns=ns("usage_usec"),
            cpu_user_ns=ns("user_usec"),
            cpu_system_ns=ns("system_usec"),
            cpu_nr_periods=cpu.get("nr_periods"),
            cpu_nr_throttled=cpu.get("nr_throttled"),
            cpu_throttled_ns=ns("throttled_usec"),
            pids_current=read_int(self.fs, d / "pids.current"),
            oom_events=events.get("oom"),
            oom_kills=events.get("oom_kill"),
            cpu_pressure=parse_pressure(read_opt(self.fs, d / "cpu.pressure") or ""),
            memory_pressure=parse_pressure(read_opt(self.fs, d / "memory.pressure") or ""),
            io_pressure=parse_pressure(read_opt(self.fs, d / "io.pressure") or ""),
        )

    def oom_kills(self) -> int:
        """``oom_kill`` of ``memory.events`` (hierarchical); 0 without the memory controller."""
        events = parse_flat_keyed(read_opt(self.fs, self.dir / "memory.events") or "")
        return events.get("oom_kill", 0)

    # -- placement and nesting ------------------------------------------------------------

    def open_placement(self) -> Placement:
        """The directory fd for ``clone3(CLONE_INTO_CGROUP)``."""
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise error(err, "opening the cgroup directory", self.dir) from err
        return Placement(clone_into_fd=fd, procs_fds=())

    def child(self, name: str) -> V2Backend:
        """A backend for ``<this>/<name>``."""
        return V2Backend(fs=self.fs, info=self.info, parent=self.relpath, name=name,
                         create_parent=False)
