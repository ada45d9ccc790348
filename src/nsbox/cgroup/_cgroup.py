"""``CGroup``: one context manager over the cgroup v1 and v2 backends."""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import re
import signal as _signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self, TypeAlias, Unpack  # noqa: UP035 - Python 3.9

from .._interrupts import deferred
from ..errors import CGroupError, ConfigError, LifecycleError, UnsupportedError
from ._base import DEFAULT_TEARDOWN_TIMEOUT, REAL_FS, Backend, Fs
from ._detect import CGroupInfo, cgroup_of, detect
from ._spec import (
    LIMIT_NAMES,
    CpuMax,
    IOMax,
    LimitChanges,
    Limits,
    to_cpu_max,
    to_cpu_weight,
    to_cpuset_cpus,
    to_cpuset_mems,
    to_io_max,
    to_io_weight,
    to_memory_high,
    to_memory_max,
    to_pids_max,
    to_swap_max,
)
from ._stats import CGroupStats, Placement

if TYPE_CHECKING:
    from ..process import Args, CompletedProcess, Process, StdioSpec

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")

ParentInput: TypeAlias = "str | PurePosixPath | CGroup | None"


class _State(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    CLOSED = "closed"


def _to_parent(value: ParentInput) -> PurePosixPath | CGroup | None:
    if value is None or isinstance(value, CGroup):
        return value
    if not isinstance(value, (str, PurePosixPath)):
        raise ConfigError(f"parent: {value!r} is not a path relative to the cgroup hierarchy "
                          "root, a CGroup, or None")
    text = str(value)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts or "\0" in text:
        raise ConfigError(f"parent={text!r} leaves the cgroup hierarchy; give a path relative "
                          "to its root, such as 'nsbox' or 'system.slice/my.service'")
    return PurePosixPath("/", *parts)


def _to_name(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(f"name: {value!r} must be 1-201 characters of letters, digits, '_', "
                          "'.' and '-', starting with a letter or digit (nsbox adds 'nsbox-')")
    return value


def _to_timeout(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"teardown_timeout: {value!r} is not a positive number of seconds")
    return float(value)


def _frozen_after_init(instance: object, attribute: attrs.Attribute[object],
                       value: object) -> object:
    raise AttributeError(f"{attribute.name} cannot be assigned; use CGroup.set("
                         f"{attribute.name}=...), which also updates a live cgroup")


_pruned_at_exit: set[Backend] = set()
_prune_lock = threading.Lock()


def _prune_at_exit(backend: Backend) -> None:
    # The shared nsbox/ parent is removed when this process exits, if nothing else is left in
    # it: pruning it at every cgroup's teardown would make this process's own threads race
    # each other for it. Another process pruning it meanwhile is what _create retries for.
    if not backend.shared_parents():
        return
    with _prune_lock:
        if not _pruned_at_exit:
            atexit.register(_prune_shared_parents)
        _pruned_at_exit.add(backend)


def _prune_shared_parents() -> None:
    seen: set[Path] = set()
    for backend in _pruned_at_exit:
        if set(backend.shared_parents()) <= seen:
            continue
        seen.update(backend.shared_parents())
        with contextlib.suppress(Exception):
            backend.prune_shared_parents()


@attrs.define(kw_only=True, eq=False)
class CGroup:
    """A cgroup with limits, as a single-use context manager.

    Entering creates ``nsbox-<pid>-<random>`` (or ``nsbox-<name>``) under the parent and
    writes the limits; leaving kills every process left in it and its children, removes the
    directories and closes the placement file descriptors, whatever happened in the body.

    Limits are validated on construction (:class:`~nsbox.errors.ConfigError`, nothing touched).
    ``None`` means unlimited (the kernel default) for each of them.

    Args:
        memory_max: hard memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``):
            bytes, or ``"512K"``, ``"256M"``, ``"1.5G"`` (powers of 1024), or ``"max"``.
        memory_high: throttling threshold (v2 ``memory.high``); on v1 the soft limit
            (``memory.soft_limit_in_bytes``), which only acts under global memory pressure.
        swap_max: swap the group may use (v2 ``memory.swap.max``). On v1 written as
            ``memory.memsw.limit_in_bytes = memory_max + swap_max``, so it needs memory_max.
        cpu_max: CPU bandwidth: a number of CPUs (``0.5`` is 50 ms per 100 ms period), or
            ``(quota_us, period_us)``, or a :class:`CpuMax`.
        cpu_weight: relative CPU share, 1..10000 (default 100); on v1 converted to
            ``cpu.shares``.
        cpuset_cpus: the CPUs the group may run on, like ``"0-1,3"``; must exist here.
        cpuset_mems: the memory nodes, same syntax.
        pids_max: the most tasks (processes and threads) the group may hold.
        io_weight: relative I/O share, 1..10000 (v2 ``io.weight``; v1 ``blkio.weight``).
        io_max: per-device limits: ``{"8:0": IOMax(wbps="10M")}`` or ``{"/dev/sda":
            {"riops": 100}}`` (paths resolved to ``MAJ:MIN`` now).
        parent: where to create the cgroup: ``None`` for nsbox's default (see
            ``docs/cgroups.md``), a path relative to the hierarchy root (it must exist and be
            writable), or an entered ``CGroup`` to nest in.
        name: the directory becomes ``nsbox-<name>`` (it must not exist yet); by default
            ``nsbox-<pid>-<8 hex digits>``.
        teardown_timeout: how long leaving keeps killing, then keeps retrying rmdir, before
            raising :class:`~nsbox.errors.CGroupError` (seconds, each).

    Raises:
        ConfigError: on construction, for any invalid argument.
    """

    memory_max: int | None = attrs.field(default=None, converter=to_memory_max,
                                         on_setattr=_frozen_after_init)
    memory_high: int | None = attrs.field(default=None, converter=to_memory_high,
                                          on_setattr=_frozen_after_init)
    swap_max: int | None = attrs.field(default=None, converter=to_swap_max,
                                       on_setattr=_frozen_after_init)
    cpu_max: CpuMax | None = attrs.field(default=None, converter=to_cpu_max,
                                         on_setattr=_frozen_after_init)
    cpu_weight: int | None = attrs.field(default=None, converter=to_cpu_weight,
                                         on_setattr=_frozen_after_init)
    cpuset_cpus: str | None = attrs.field(default=None, converter=to_cpuset_cpus,
                                          on_setattr=_frozen_after_init)
    cpuset_mems: str | None = attrs.field(default=None, converter=to_cpuset_mems,
                                          on_setattr=_frozen_after_init)
    pids_max: int | None = attrs.field(default=None, converter=to_pids_max,
                                       on_setattr=_frozen_after_init)
    io_weight: int | None = attrs.field(default=None, converter=to_io_weight,
                                        on_setattr=_frozen_after_init)
    io_max: Mapping[str, IOMax] = attrs.field(factory=dict, converter=to_io_max,
                                              on_setattr=_frozen_after_init)
    parent: PurePosixPath | CGroup | None = attrs.field(default=None, converter=_to_parent,
                                                        on_setattr=_frozen_after_init)
    name: str | None = attrs.field(default=None, converter=_to_name,
                                   on_setattr=_frozen_after_init)
    teardown_timeout: float = attrs.field(default=DEFAULT_TEARDOWN_TIMEOUT,
                                          converter=_to_timeout)

    _state: _State = attrs.field(default=_State.NEW, init=False)
    _backend: Backend | None = attrs.field(default=None, init=False)
    _placement: Placement | None = attrs.field(default=None, init=False)
    _children: list[CGroup] = attrs.field(factory=list, init=False)
    _processes: set[Process] = attrs.field(factory=set, init=False)
    _fs: Fs = attrs.field(default=REAL_FS, init=False)

    # -- spec ---------------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The limits as one immutable value."""
        return Limits(**{n: getattr(self, n) for n in LIMIT_NAMES})

    def set(self, **changes: Unpack[LimitChanges]) -> None:
        """Change limits; on a live cgroup they take effect at once.

        Only the named limits are written; ``None`` makes one unlimited. All values are
        validated before anything is written, and the attributes of this object follow.
        Example: ``cg.set(memory_max="128M", cpu_max=None)``.

        Args:
            **changes: any of the limit arguments of :class:`CGroup`.

        Raises:
            ConfigError: a value is invalid (nothing is written).
            UnsupportedError: a limit needs a controller or file this machine lacks.
            CGroupError: the kernel refused a value (e.g. memory_max below current usage on
                v1); limits written before it stay in force.
            LifecycleError: the cgroup has been left.
        """
        unknown = set(changes) - set(LIMIT_NAMES)
        if unknown:
            raise ConfigError(f"set: unknown limits {sorted(unknown)}; known: "
                              f"{', '.join(LIMIT_NAMES)}")
        if self._state is _State.CLOSED:
            raise LifecycleError("set() on a CGroup that has been left")
        current = self.limits
        new = attrs.evolve(current, **changes)  # validates every value before any write
        for name in (n for n in LIMIT_NAMES if n in changes):
            # One limit at a time, so that if the kernel refuses one, the attributes still
            # tell exactly what is in force.
            if self._backend is not None:
                if name in new.given():
                    self._join(new.controllers((name,)))
                self._backend.apply(current, new, (name,))
            object.__setattr__(self, name, getattr(new, name))
            current = attrs.evolve(current, **{name: getattr(new, name)})

    # -- lifecycle ----------------------------------------------------------------------

    def _make_backend(self, info: CGroupInfo) -> Backend:
        dirname = f"nsbox-{self.name}" if self.name else \
            f"nsbox-{os.getpid()}-{os.urandom(4).hex()}"
        if isinstance(self.parent, CGroup):
            assert self.parent._backend is not None  # checked by __enter__
            return self.parent._backend.child(dirname)
        # Only the backend this machine uses is imported.
        if info.version == "v2":
            from . import _v2

            own = _v2.own_relpath(info, cgroup_of("self", ""))
            parent, create = _v2.resolve_parent(info, self.parent, self._fs, own)
            return _v2.V2Backend(fs=self._fs, info=info, parent=parent, name=dirname,
                                 create_parent=create)
        if info.version == "v1":
            from . import _v1

            parent = self.parent or PurePosixPath("/nsbox")
            return _v1.V1Backend(fs=self._fs, info=info, parent=parent, name=dirname,
                                 create_parent=self.parent is None)
        raise UnsupportedError("this machine has no cgroup hierarchy mounted (neither cgroup2 "
                               "nor v1 controllers in /proc/self/mountinfo)")

    def __enter__(self) -> Self:
        """Create the cgroup, write the limits and open the placement fds.

        Raises:
            LifecycleError: entered before (a CGroup is single-use).
            UnsupportedError: no cgroups, a missing controller, or no permission.
            ConfigError: the parent does not exist or is not writable.
            CGroupError: the kernel refused.
        """
        if self._state is not _State.NEW:
            raise LifecycleError("a CGroup can be entered only once; create a new one")
        if isinstance(self.parent, CGroup) and self.parent._state is not _State.ACTIVE:
            raise LifecycleError("the parent CGroup must be entered before its child")
        # Whatever happens now, this object is used up: a failed enter cannot be retried.
        self._state = _State.CLOSED
        if isinstance(self.parent, CGroup):
            self.parent._join(self.limits.controllers())  # before we make our directory in it
        backend = self._make_backend(detect())
        with deferred():  # Ctrl-C must not strike between creating and recording
            self._create(backend)
            try:
                self._placement = backend.open_placement()
            except BaseException:
                backend.destroy(self.teardown_timeout)
                raise
            self._backend = backend
            self._state = _State.ACTIVE
            if isinstance(self.parent, CGroup):
                self.parent._children.append(self)
        return self

    def _join(self, controllers: frozenset[str]) -> None:
        # On v1 a cgroup is only in the hierarchies it needed so far: a new limit (here or in a
        # new child) may need one more. The whole tree of CGroups joins it, parents first, so
        # that no process of a child escapes a limit its parent gets there later.
        top = self
        while isinstance(top.parent, CGroup):
            top = top.parent
        with deferred():  # a directory made must be known to teardown before Ctrl-C strikes
            top._join_tree(controllers)

    def _join_tree(self, controllers: frozenset[str]) -> None:
        backend = self._live("set()")
        backend.join(controllers, self.teardown_timeout)
        assert self._placement is not None
        self._placement = backend.extend_placement(self._placement)
        for child in self._children:
            child._join_tree(controllers)

    def _create(self, backend: Backend) -> None:
        # Another process may prune the shared parent while we make our directory in it (a
        # file of it is then missing, whatever the step): when it has vanished, start again.
        for attempt in range(5):
            try:
                backend.create(self.limits)
                break
            except (CGroupError, UnsupportedError):
                parents = backend.shared_parents()
                if attempt == 4 or not parents or all(p.is_dir() for p in parents):
                    raise
        _prune_at_exit(backend)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Kill what is left, remove the directories, close the fds. Never swallows ``exc``.

        Raises:
            CGroupError: teardown failed and the body raised nothing (if it did, the
                teardown error is added to its notes instead of replacing it).
        """
        try:
            self.close()
        except Exception as cleanup:
            if exc is None:
                raise
            if hasattr(exc, "add_note"):
                exc.add_note(f"while leaving the CGroup: {cleanup!r}")

    def close(self) -> None:
        """Tear down now (what leaving the ``with`` block does); idempotent.

        Raises:
            CGroupError: processes survived SIGKILL or a directory stayed busy past
                ``teardown_timeout``; the fds are closed regardless.
        """
        if self._state is not _State.ACTIVE:
            self._state = _State.CLOSED
            return
        with deferred():  # a half-done teardown would leave the directory behind
            self._close()

    def _close(self) -> None:
        self._state = _State.CLOSED
        backend, placement = self._backend, self._placement
        self._placement = None
        try:
            for child in list(reversed(self._children)):  # close() edits the list
                # Closing a child removes it first; our destroy then finds nothing left there.
                # A failure here is not lost: our own destroy below retries and reports.
                with contextlib.suppress(Exception):
                    child.close()
            self._children.clear()
            assert backend is not None
            backend.destroy(self.teardown_timeout)
            for process in list(self._processes):
                process.wait()  # killed by destroy; they are our children to reap
        finally:
            if placement is not None:
                fds = ([placement.clone_into_fd] if placement.clone_into_fd is not None
                       else []) + list(placement.procs_fds)
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if isinstance(self.parent, CGroup) and self in self.parent._children:
                self.parent._children.remove(self)

    def _live(self, what: str) -> Backend:
        if self._state is _State.NEW:
            raise LifecycleError(f"{what} needs an entered CGroup (use it in a with block)")
        if self._state is _State.CLOSED or self._backend is None:
            raise LifecycleError(f"{what} on a CGroup that has been left")
        return self._backend

    # -- identity -----------------------------------------------------------------------

    @property
    def version(self) -> str:
        """``"v1"`` or ``"v2"``: the backend in use (or that would be used, before entering).

        Raises:
            UnsupportedError: there are no cgroups on this machine.
        """
        if self._backend is not None:
            return self._backend.version
        info = detect()
        if info.version is None:
            raise UnsupportedError("this machine has no cgroup hierarchy mounted")
        return info.version

    @property
    def relpath(self) -> PurePosixPath:
        """The cgroup's path relative to the hierarchy root, as in ``/proc/<pid>/cgroup``
        (the same in every v1 hierarchy), e.g. ``/nsbox/nsbox-1234-89abcdef``.

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("relpath").relpath

    @property
    def paths(self) -> Mapping[str, Path]:
        """The directories: on v1 controller name → directory in its hierarchy; on v2
        ``{"unified": directory}``.

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("paths").paths

    # -- processes ----------------------------------------------------------------------

    def placement(self) -> Placement:
        """The fds the spawn code uses to start a process inside this cgroup.

        Returns:
            v2: ``clone_into_fd`` for ``clone3(CLONE_INTO_CGROUP)``; v1: ``procs_fds`` to
            write the new pid into. Owned by this object, valid until it is left.

        Raises:
            LifecycleError: not entered, or already left.
        """
        self._live("placement()")
        assert self._placement is not None
        return self._placement

    def add(self, pid: int) -> None:
        """Move a running process (with all its threads) into the cgroup.

        Args:
            pid: the process id.

        Raises:
            CGroupError: the kernel refused (``errno`` ESRCH if the process is gone).
            LifecycleError: not entered, or already left.
        """
        self._live("add()").add(pid)

    def procs(self, recursive: bool = True) -> list[int]:
        """The processes in the cgroup.

        Args:
            recursive: include the processes of child cgroups.

        Returns:
            Sorted pids (thread-group ids), as seen from our pid namespace.

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("procs()").procs(recursive)

    def kill(self, signal: int = _signal.SIGKILL, timeout: float | None = None) -> None:
        """Signal every process in the cgroup and its children.

        With SIGKILL this kills them all, safe against forking (v2 ``cgroup.kill``; else
        freeze, kill, thaw until empty) and waits until none is left; the freezer state is
        kept. Other signals are sent once to each process and not waited for.

        Args:
            signal: the signal number.
            timeout: for SIGKILL, how long to wait (default ``teardown_timeout``).

        Raises:
            CGroupError: SIGKILLed processes remained after ``timeout``.
            LifecycleError: not entered, or already left.
        """
        backend = self._live("kill()")
        if signal == _signal.SIGKILL:
            backend.kill_all(self.teardown_timeout if timeout is None else timeout,
                             restore_freeze=True)
        else:
            backend.signal_all(signal)

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup (and its children)
        because of its memory limits; compare before and after to detect an OOM kill.

        Returns:
            The count; 0 without a memory controller.

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("oom_kills()").oom_kills()

    def stats(self) -> CGroupStats:
        """Read the cgroup's counters.

        Returns:
            A snapshot; fields the kernel lacks are ``None``.

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("stats()").stats()

    # -- freezer ------------------------------------------------------------------------

    def freeze(self, timeout: float = 10.0) -> None:
        """Stop every process in the cgroup; returns once all are frozen.

        Args:
            timeout: seconds to wait for the kernel to freeze everything.

        Raises:
            CGroupError: not frozen in time (the cgroup is thawed again).
            UnsupportedError: no freezer (v1 freezer controller, v2 ``cgroup.freeze``).
            LifecycleError: not entered, or already left.
        """
        self._live("freeze()").freeze(timeout)

    def thaw(self) -> None:
        """Let frozen processes run again.

        Raises:
            LifecycleError: not entered, or already left.
        """
        self._live("thaw()").thaw()

    @property
    def frozen(self) -> bool:
        """Whether every process is frozen (``False`` while freezing is in progress).

        Raises:
            LifecycleError: not entered, or already left.
        """
        return self._live("frozen").frozen()

    # -- nesting ------------------------------------------------------------------------

    def oom_check(self) -> Callable[[], bool]:
        """A function telling whether an OOM kill happened here since this call.

        The kernel counts OOM kills per cgroup, not per process: a process that died of
        SIGKILL while the count went up is taken to be the one the OOM killer chose.
        """
        return self._oom_check_since(self.oom_kills())

    def _oom_check_since(self, baseline: int) -> Callable[[], bool]:
        def oom_killed() -> bool:
            try:
                return self.oom_kills() > baseline
            except LifecycleError:  # reaped after teardown: the count is gone with the cgroup
                return False

        return oom_killed

    def spawn(self, args: Args, *, stdin: StdioSpec = None, stdout: StdioSpec = None,
              stderr: StdioSpec = None, env: Mapping[str, str] | None = None,
              cwd: str | None = None) -> Process:
        """Start a process inside this cgroup, with no namespaces: ``systemd-run --scope``.

        The process is in the cgroup before it executes anything. It inherits the caller's
        environment unless ``env`` is given; stdio as in :meth:`nsbox.Container.spawn`.
        Leaving the cgroup kills and reaps it.

        Raises:
            LifecycleError: the cgroup is not entered.
            FileNotFoundError, PermissionError, SpawnError: as for a container process.
        """
        from .._launch import launch

        placement = self.placement()
        process = launch(
            args, env=dict(os.environ) if env is None else env, stdin=stdin, stdout=stdout,
            stderr=stderr, cwd=cwd, oom_check=self.oom_check(),
            cgroup_fd=-1 if placement.clone_into_fd is None else placement.clone_into_fd,
            cgroup_procs_fds=placement.procs_fds)
        self._processes.add(process)
        process._on_reaped = self._processes.discard
        return process

    def run(self, args: Args, *, input: bytes | str | None = None, capture_output: bool = True,
            text: bool = False, timeout: float | None = None, check: bool = False,
            **options: Any) -> CompletedProcess:
        """Run a command inside this cgroup and wait for it, like ``subprocess.run``.

        ``result.oom_killed`` tells whether the cgroup's OOM killer ended it. ``options`` are
        those of :meth:`spawn`; output is captured by default.
        """
        from ..process import PIPE, collect

        if isinstance(input, str):
            input = input.encode()
        if input is not None:
            options["stdin"] = PIPE
        if capture_output:
            options.setdefault("stdout", PIPE)
            options.setdefault("stderr", PIPE)
        return collect(self.spawn(args, **options), input, timeout, text, check)

    def child(self, name: str | None = None, **limits: Unpack[LimitChanges]) -> CGroup:
        """A new, not yet entered, CGroup nested in this one.

        Enter it (inside this one's ``with``) to create it. Leaving this cgroup also tears
        down its children. On v2, a cgroup whose children need controllers must hold no
        processes itself (the no-internal-processes rule): put processes in the leaves.

        Args:
            name: the child's name (``nsbox-<name>``), or ``None`` for a unique one.
            **limits: the child's limits.

        Returns:
            The child CGroup.

        Raises:
            ConfigError: an invalid argument.
        """
        return CGroup(parent=self, name=name, teardown_timeout=self.teardown_timeout,
                      **limits)

    def __repr__(self) -> str:
        given = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.limits.given())
        where = f" at {self._backend.relpath}" if self._backend is not None else ""
        return f"<CGroup {self._state.value}{where}{': ' if given else ''}{given}>"
