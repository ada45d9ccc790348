"""The cgroup v1 (legacy hierarchies) backend.

One directory per hierarchy, all at the same path relative to each hierarchy's root. A cgroup
joins the hierarchies of :data:`ALWAYS` and those its limits need (:data:`MANAGED` are the
candidates) and leaves the others (devices, net_cls, name=systemd, ...) alone; a process keeps
the cgroup of whoever started it in a hierarchy not joined. Co-mounted controllers
(``cpu,cpuacct``) share a directory.

Differences from v2 that this module hides:

* ``swap_max`` is written as ``memory.memsw.limit_in_bytes`` = memory + swap, and the kernel
  insists that memory <= memsw at every moment, so the two are written in a safe order.
* ``memory_high`` becomes ``memory.soft_limit_in_bytes`` (reclaim under global pressure only).
* ``cpu_weight`` becomes ``cpu.shares`` (see :func:`~nsbox.cgroup._units.weight_to_shares`).
* A new cpuset cgroup starts with no CPUs and no memory nodes; nsbox copies its parent's.
* Counters such as ``oom_kill`` are not hierarchical; nsbox sums them over child cgroups.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

import attrs

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
from ._detect import CGroupInfo, kernel_path, parse_proc_self_cgroup
from ._spec import CONTROLLER_OF, Limits
from ._stats import CGroupStats, Placement, parse_flat_keyed, parse_pressure
from ._units import weight_to_blkio_weight, weight_to_shares

#: The v1 controllers whose hierarchies an nsbox cgroup may join.
MANAGED = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio")

#: The hierarchies every nsbox cgroup joins (when mounted), whatever its limits: memory,
#: cpuacct and pids because stats() and the OOM count read them, freezer because teardown
#: freezes before it kills (a fork bomb cannot outrun that loop). cpu, cpuset and blkio are
#: joined for a limit that needs them: each hierarchy costs every cgroup a mkdir, a state
#: record, a placement write per process, a membership scan and an rmdir.
ALWAYS = ("memory", "cpuacct", "pids", "freezer")

#: v2 controller names that v1 spells differently.
V1_NAME = {"io": "blkio"}

ROOT_HELP = ("cgroup v1 hierarchies are writable only by root (there is no safe delegation "
             "on v1); run as root, or on a cgroup v2 machine with a delegated sub-tree")

_THROTTLE = {"rbps": "read_bps_device", "wbps": "write_bps_device",
             "riops": "read_iops_device", "wiops": "write_iops_device"}


@attrs.frozen
class V1Context:
    """What the v1 write plan needs to know about the live cgroup.

    Attributes:
        current_memory_limit: ``memory.limit_in_bytes`` now (orders memory vs memsw writes).
        has_memsw: whether ``memory.memsw.limit_in_bytes`` exists (swap accounting).
        io_weight_file: ``blkio.weight`` or ``blkio.bfq.weight``, whichever exists.
        parent_cpus: the parent's ``cpuset.cpus`` (restored when ``cpuset_cpus`` is unset).
        parent_mems: the parent's ``cpuset.mems``.
    """

    current_memory_limit: int = 2**63 - 1
    has_memsw: bool = False
    io_weight_file: str | None = None
    parent_cpus: str = ""
    parent_mems: str = ""


def _v1_size(size: int | None) -> str:
    return "-1" if size is None else str(size)


def v1_writes(old: Limits, new: Limits, names: tuple[str, ...],
              ctx: V1Context) -> list[tuple[str, str, str, str]]:
    """The files to write, in order, to apply the limits ``names`` of ``new`` on cgroup v1.

    Args:
        old: the limits in force now.
        new: the limits wanted.
        names: which limits to write.
        ctx: facts about the live cgroup.

    Returns:
        ``(limit name, controller, file name, value)`` tuples.

    Raises:
        UnsupportedError: a limit v1 cannot express here (swap without accounting, swap
            without a memory limit, io_weight without a proportional I/O scheduler).
    """
    writes: list[tuple[str, str, str, str]] = []
    if "memory_max" in names or "swap_max" in names:
        mem, swap = new.memory_max, new.swap_max
        if swap is not None and not ctx.has_memsw:
            raise UnsupportedError("swap_max on cgroup v1 needs memory.memsw.limit_in_bytes, "
                                   "which exists only with swap accounting (boot the kernel "
                                   "with swapaccount=1)")
        if swap is not None and mem is None:
            raise UnsupportedError("swap_max on cgroup v1 needs memory_max too: v1 limits "
                                   "memory+swap together (memory.memsw.limit_in_bytes)")
        mem_write = ("memory_max", "memory", "memory.limit_in_bytes", _v1_size(mem))
        if ctx.has_memsw and (swap is not None or old.swap_max is not None
                              or "swap_max" in names):
            memsw = None if swap is None or mem is None else mem + swap
            memsw_write = ("swap_max", "memory", "memory.memsw.limit_in_bytes", _v1_size(memsw))
            # The kernel keeps memory <= memsw at all times: raise memsw before memory when it
            # stays above the current memory limit, else lower memory first.
            if memsw is None or memsw >= ctx.current_memory_limit:
                writes += [memsw_write, mem_write]
            else:
                writes += [mem_write, memsw_write]
        elif "memory_max" in names:
            writes.append(mem_write)
    for name in names:
        if name == "memory_high":
            writes.append((name, "memory", "memory.soft_limit_in_bytes",
                           _v1_size(new.memory_high)))
        elif name == "cpu_max":
            cpu = new.cpu_max
            # Lift the quota first: a new period must never be checked against an old quota.
            writes.append((name, "cpu", "cpu.cfs_quota_us", "-1"))
            if cpu is not None:
                writes.append((name, "cpu", "cpu.cfs_period_us", str(cpu.period_us)))
                writes.append((name, "cpu", "cpu.cfs_quota_us", str(cpu.quota_us)))
        elif name == "cpu_weight":
            shares = weight_to_shares(new.cpu_weight) if new.cpu_weight else 1024
            writes.append((name, "cpu", "cpu.shares", str(shares)))
        elif name == "cpuset_cpus":
            writes.append((name, "cpuset", "cpuset.cpus", new.cpuset_cpus or ctx.parent_cpus))
        elif name == "cpuset_mems":
            writes.append((name, "cpuset", "cpuset.mems", new.cpuset_mems or ctx.parent_mems))
        elif name == "pids_max":
            writes.append((name, "pids", "pids.max",
                           "max" if new.pids_max is None else str(new.pids_max)))
        elif name == "io_weight":
            if ctx.io_weight_file is None:
                raise UnsupportedError("io_weight on cgroup v1 needs blkio.weight (CFQ) or "
                                       "blkio.bfq.weight (the BFQ I/O scheduler); neither "
                                       "exists here")
            default = "500" if ctx.io_weight_file == "blkio.weight" else "100"
            value = str(weight_to_blkio_weight(new.io_weight)) if new.io_weight else default
            writes.append((name, "blkio", ctx.io_weight_file, value))
        elif name == "io_max":
            for device in sorted(set(old.io_max) - set(new.io_max)):
                for file in _THROTTLE.values():
                    writes.append((name, "blkio", f"blkio.throttle.{file}", f"{device} 0"))
            for device, lim in sorted(new.io_max.items()):
                for key, file in _THROTTLE.items():
                    value = getattr(lim, key)
                    # 0 removes the rule: v1's spelling of "unlimited".
                    writes.append((name, "blkio", f"blkio.throttle.{file}",
                                   f"{device} {value or 0}"))
    return writes


class V1Backend(Backend):
    """A cgroup present in every joined v1 hierarchy."""

    version = "v1"

    def __init__(self, *, fs: Fs, info: CGroupInfo, parent: PurePosixPath, name: str,
                 create_parent: bool, controllers: Iterable[str] = ALWAYS) -> None:
        super().__init__(fs=fs, relpath=parent / name)
        self.info = info
        self.parent = parent
        self.create_parent = create_parent
        # Joined controller → our directory in its hierarchy.
        self.controller_dirs: dict[str, Path] = {}
        # One entry per joined hierarchy (co-mounted controllers share a mount), in the
        # order joined: mount → our directory.
        self.dirs: dict[Path, Path] = {}
        self._register(self._unjoined(controllers))

    def _unjoined(self, controllers: Iterable[str]) -> dict[str, Path]:
        """Controller → our directory, for the mounted hierarchies of ``controllers`` (v1
        names) not joined yet; with the other managed controllers co-mounted there."""
        mounts = self.info.v1_mounts
        wanted = {mounts[c] for c in controllers if c in mounts}
        rel = str(self.relpath).lstrip("/")
        return {c: mounts[c] / rel for c in MANAGED
                if mounts.get(c) in wanted and c not in self.controller_dirs}

    def _register(self, joined: Mapping[str, Path]) -> None:
        for controller, directory in joined.items():
            self.controller_dirs[controller] = directory
            self.dirs.setdefault(self.info.v1_mounts[controller], directory)

    @property
    def paths(self) -> Mapping[str, Path]:
        """Controller → directory, for every joined controller."""
        return dict(self.controller_dirs)

    def shared_parents(self) -> list[Path]:
        """The default ``nsbox`` parent in every joined hierarchy."""
        return [self._parent_dir(m) for m in self.dirs] if self.create_parent else []

    def _parent_dir(self, mount: Path) -> Path:
        return mount / str(self.parent).lstrip("/")

    # -- creation and limits -------------------------------------------------------------

    def _check_controllers(self, names: tuple[str, ...]) -> None:
        for name in names:
            controller = _controller_of(name)
            if controller not in self.info.v1_mounts:
                raise UnsupportedError(f"{name} needs the cgroup v1 '{controller}' controller, "
                                       "which is not mounted on this machine")

    def _ensure_parents(self, mounts: Iterable[Path]) -> None:
        mounts = list(mounts)
        for mount in mounts:
            parent_dir = self._parent_dir(mount)
            if self.fs.is_dir(parent_dir):
                continue
            if not self.create_parent:
                raise ConfigError(f"parent={str(self.parent)!r}: {parent_dir} does not exist "
                                  "(on cgroup v1 the parent must exist in every hierarchy nsbox "
                                  f"joins: {', '.join(sorted(self.controller_dirs))})")
            try:
                self.fs.mkdir(parent_dir)
            except FileExistsError:
                pass
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise UnsupportedError(f"cannot create {parent_dir}: {err.strerror}; "
                                           f"{ROOT_HELP}") from err
                raise error(err, "creating the nsbox parent cgroup", parent_dir) from err
        cpuset = self.controller_dirs.get("cpuset")
        if cpuset is not None and self.create_parent and self.info.v1_mounts["cpuset"] in mounts:
            # Our shared parent: give it its own parent's CPUs and nodes once, or nothing
            # below it could hold a process (a v1 cpuset cgroup starts empty).
            self._inherit_cpuset(cpuset.parent, only_if_empty=True)

    def _inherit_cpuset(self, directory: Path, *, only_if_empty: bool,
                        cpus: str | None = None, mems: str | None = None) -> None:
        for file, wanted in (("cpuset.cpus", cpus), ("cpuset.mems", mems)):
            path = directory / file
            if only_if_empty and (read_opt(self.fs, path) or "").strip():
                continue
            value = wanted or (read_opt(self.fs, directory.parent / file) or "").strip()
            try:
                self.fs.write(path, value)
            except OSError as err:
                raise error(err, f"writing {value!r} to {file}", path) from err

    def _mkdir(self, directory: Path) -> None:
        try:
            try:
                self.fs.mkdir(directory)
            except FileNotFoundError:
                # No shared parent: the first cgroup in this hierarchy, or another process
                # has just pruned it. Make it and try once more.
                self._ensure_parents(m for m, d in self.dirs.items() if d == directory)
                self.fs.mkdir(directory)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise UnsupportedError(f"cannot create {directory}: {err.strerror}; "
                                       f"{ROOT_HELP}") from err
            raise error(err, "creating cgroup", directory) from err

    def create(self, limits: Limits) -> None:
        """Create the directory in :data:`ALWAYS`'s hierarchies and those the limits need,
        and write the limits; undo on failure."""
        given = limits.given()
        self._check_controllers(given)
        self._register(self._unjoined(_controller_of(n) for n in given))
        if "cpuset" in self.controller_dirs:
            # A shared parent must have CPUs before our cpuset can: check it first. Elsewhere
            # a missing parent shows up as ENOENT from our mkdir, which then makes it.
            self._ensure_parents(self.dirs)
        created: list[Path] = []
        try:
            for directory in self.dirs.values():
                self._mkdir(directory)
                created.append(directory)
            cpuset = self.controller_dirs.get("cpuset")
            if cpuset is not None:
                self._inherit_cpuset(cpuset, only_if_empty=False, cpus=limits.cpuset_cpus,
                                     mems=limits.cpuset_mems)
            rest = tuple(n for n in given if n not in ("cpuset_cpus", "cpuset_mems"))
            self._write_limits(Limits(), limits, rest, fresh=True)
        except BaseException:
            for directory in reversed(created):
                with contextlib.suppress(OSError):
                    self.fs.rmdir(directory)
            raise

    def _context(self, names: tuple[str, ...], fresh: bool) -> V1Context:
        memory = self.controller_dirs.get("memory")
        blkio = self.controller_dirs.get("blkio")
        cpuset = self.controller_dirs.get("cpuset")
        current = 2**63 - 1  # where a new v1 memory cgroup starts: limits are not inherited
        if memory is not None and not fresh and ("memory_max" in names or "swap_max" in names):
            current = read_int(self.fs, memory / "memory.limit_in_bytes") or current
        weight_file = None
        if blkio is not None:
            weight_file = next((f for f in ("blkio.weight", "blkio.bfq.weight")
                                if self.fs.exists(blkio / f)), None)
        parent_cpus = parent_mems = ""
        if cpuset is not None and ("cpuset_cpus" in names or "cpuset_mems" in names):
            parent_cpus = (read_opt(self.fs, cpuset.parent / "cpuset.cpus") or "").strip()
            parent_mems = (read_opt(self.fs, cpuset.parent / "cpuset.mems") or "").strip()
        return V1Context(
            current_memory_limit=current,
            has_memsw=memory is not None and self.fs.exists(memory / "memory.memsw.limit_in_bytes"),
            io_weight_file=weight_file, parent_cpus=parent_cpus, parent_mems=parent_mems)

    def join(self, controllers: frozenset[str], timeout: float) -> None:
        """Join the hierarchies of ``controllers`` (v2 names) this live cgroup is not in yet:
        make its directory there and move its processes, and those of its children, in."""
        joining = self._unjoined(V1_NAME.get(c, c) for c in controllers)
        if not joining:
            return
        new = list(dict.fromkeys(joining.values()))
        self._ensure_parents(self.info.v1_mounts[c] for c in joining)
        old = list(self.dirs.values())
        for directory in new:
            self._mkdir(directory)
            # Joined as soon as it exists, so that teardown removes it whatever happens next.
            self._register({c: d for c, d in joining.items() if d == directory})
        if "cpuset" in joining:  # a new v1 cpuset cgroup has no CPUs to run a process on
            self._inherit_cpuset(joining["cpuset"], only_if_empty=False)
        self._move_threads(old, new, timeout)

    def _move_threads(self, old: list[Path], new: list[Path], timeout: float) -> None:
        # By thread (the tasks files), not by process: a process whose main thread has exited
        # is not listed in cgroup.procs of where its other threads go. A thread created
        # meanwhile starts where its creator is, so a few rounds catch every one.
        deadline = time.monotonic() + timeout
        while True:
            members = self._threads(old)
            missing = [(d, tid) for d in new for tid in sorted(members - self._threads([d]))]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise CGroupError(errno.EBUSY, f"threads {sorted({t for _, t in missing})} "
                                  f"could not be moved in within {timeout} s", str(new[0]))
            for directory, tid in missing:
                try:
                    self.fs.write(directory / "tasks", str(tid))
                except ProcessLookupError:
                    pass  # it has exited
                except OSError as err:
                    raise error(err, f"moving thread {tid}", directory / "tasks") from err

    def _threads(self, tops: list[Path]) -> set[int]:
        return {tid for top in tops for d in walk_dirs(self.fs, top)
                for tid in read_pids(self.fs, d / "tasks")}

    def apply(self, old: Limits, new: Limits, names: tuple[str, ...]) -> None:
        """Write the named limits in the v1 files, in a safe order.

        A limit being lifted in a hierarchy this cgroup is not in is skipped: nothing there
        limits it. One being set there must have been joined first (:meth:`join`).
        """
        self._write_limits(old, new, names, fresh=False)

    def _write_limits(self, old: Limits, new: Limits, names: tuple[str, ...], *,
                      fresh: bool) -> None:
        given = new.given()
        names = tuple(n for n in names
                      if n in given or _controller_of(n) in self.controller_dirs)
        self._check_controllers(names)
        for name, controller, file, value in v1_writes(old, new, names,
                                                       self._context(names, fresh)):
            assert controller in self.controller_dirs, f"{name}: join {controller} first"
            path = self.controller_dirs[controller] / file
            try:
                self.fs.write(path, value)
            except FileNotFoundError as err:  # written without O_CREAT: the file is missing
                raise UnsupportedError(f"{name} needs {file}, which this kernel does not "
                                       "provide") from err
            except OSError as err:
                raise error(err, f"setting {name}: writing {value!r} to {file}", path) from err

    # -- processes -----------------------------------------------------------------------

    def add(self, pid: int) -> None:
        """Write the pid into ``cgroup.procs`` of every joined hierarchy."""
        for directory in self.dirs.values():
            path = directory / "cgroup.procs"
            try:
                self.fs.write(path, str(pid))
            except OSError as err:
                raise error(err, f"adding pid {pid}", path) from err

    def procs(self, recursive: bool) -> list[int]:
        """The union of ``cgroup.procs`` over the joined hierarchies (and children)."""
        pids: set[int] = set()
        for directory in self.dirs.values():
            dirs = walk_dirs(self.fs, directory) if recursive else iter([directory])
            for d in dirs:
                pids.update(read_pids(self.fs, d / "cgroup.procs"))
        return sorted(pids)

    def _is_member(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                paths = parse_proc_self_cgroup(f.read())
        except OSError:
            return False
        for controllers, path in paths.items():
            for controller in controllers & set(self.controller_dirs):
                top = kernel_path(self.info.v1_roots.get(controller, "/"), self.relpath)
                if under(path, top):
                    return True
        return False

    def signal_all(self, sig: int) -> None:
        """Signal every member once, pinned by pidfd."""
        for pid in self.procs(recursive=True):
            signal_member(pid, sig, self._is_member)

    # -- freezer -------------------------------------------------------------------------

    def _freezer(self) -> Path:
        freezer = self.controller_dirs.get("freezer")
        if freezer is None:
            raise UnsupportedError("freezing on cgroup v1 needs the freezer controller, which "
                                   "is not mounted on this machine")
        return freezer

    def _state(self) -> str:
        return (read_opt(self.fs, self._freezer() / "freezer.state") or "").strip()

    def freeze(self, timeout: float) -> None:
        """Write FROZEN and poll ``freezer.state`` until it reads FROZEN (not FREEZING)."""
        path = self._freezer() / "freezer.state"
        try:
            self.fs.write(path, "FROZEN")
        except OSError as err:
            raise error(err, "freezing", path) from err
        if not wait_until(lambda: self._state() == "FROZEN", timeout):
            self.thaw()
            raise CGroupError(errno.ETIMEDOUT, f"processes did not freeze within {timeout} s "
                              "(uninterruptible sleep?); thawed again", str(path))

    def thaw(self) -> None:
        """Write THAWED."""
        path = self._freezer() / "freezer.state"
        try:
            self.fs.write(path, "THAWED")
        except OSError as err:
            raise error(err, "thawing", path) from err

    def frozen(self) -> bool:
        """``freezer.state`` reads FROZEN."""
        return self._state() == "FROZEN"

    # -- teardown ------------------------------------------------------------------------

    def kill_all(self, timeout: float, restore_freeze: bool) -> None:
        """Freeze, SIGKILL every member, thaw; repeat until no process is left.

        Freezing first stops a fork bomb from outrunning the kill loop: frozen tasks cannot
        fork, and on v1 a SIGKILLed frozen task dies only once thawed, hence the thaw.
        """
        deadline = time.monotonic() + timeout
        has_freezer = "freezer" in self.controller_dirs and self.fs.is_dir(self._freezer())
        was_frozen = has_freezer and self.frozen()
        while self.procs(recursive=True):
            if time.monotonic() >= deadline:
                parent_frozen = has_freezer and (read_opt(
                    self.fs, self._freezer() / "freezer.parent_freezing") or "").strip() == "1"
                hint = ("a parent cgroup is frozen: thaw it first" if parent_frozen
                        else "uninterruptible sleep?")
                raise CGroupError(errno.EBUSY, f"processes {self.procs(recursive=True)} "
                                  f"survived SIGKILL for {timeout} s ({hint})",
                                  str(next(iter(self.dirs.values()))))
            if has_freezer:
                # Frozen tasks cannot fork; if freezing times out, signal anyway and retry.
                with contextlib.suppress(CGroupError):
                    self.freeze(min(0.5, max(0.01, deadline - time.monotonic())))
            self.signal_all(signal.SIGKILL)
            if has_freezer:
                self.thaw()
            wait_until(lambda: not self.procs(recursive=True), 0.1)
        if restore_freeze and was_frozen:
            self.freeze(timeout)

    def remove(self, deadline: float) -> None:
        """rmdir in every hierarchy, children first."""
        for directory in self.dirs.values():
            remove_tree(self.fs, directory, deadline)

    # -- statistics ----------------------------------------------------------------------

    def stats(self) -> CGroupStats:
        """Read memory.*, cpuacct.*, cpu.stat, pids.current, memory.oom_control, PSI."""
        memory = self.controller_dirs.get("memory")
        cpu = self.controller_dirs.get("cpu")
        cpuacct = self.controller_dirs.get("cpuacct")
        pids = self.controller_dirs.get("pids")
        blkio = self.controller_dirs.get("blkio")
        fs = self.fs
        usage = user = system = None
        if cpuacct is not None:
            usage = read_int(fs, cpuacct / "cpuacct.usage")
            user = read_int(fs, cpuacct / "cpuacct.usage_user")
            system = read_int(fs, cpuacct / "cpuacct.usage_sys")
            if user is None or system is None:
                # Older kernels: only clock ticks in cpuacct.stat.
                ticks = parse_flat_keyed(read_opt(fs, cpuacct / "cpuacct.stat") or "")
                tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
                user = ticks["user"] * tick_ns if "user" in ticks else None
                system = ticks["system"] * tick_ns if "system" in ticks else None
        throttling = parse_flat_keyed(read_opt(fs, cpu / "cpu.stat") or "") if cpu else {}
        if cpu is None and "cpu" in self.info.v1_mounts:
            # Not in the cpu hierarchy, as without a CPU limit: no quota to be throttled by.
            throttling = dict.fromkeys(("nr_periods", "nr_throttled", "throttled_time"), 0)
        mem_current = read_int(fs, memory / "memory.usage_in_bytes") if memory else None
        memsw = read_int(fs, memory / "memory.memsw.usage_in_bytes") if memory else None

        def pressure(directory: Path | None, name: str) -> str:
            return (read_opt(fs, directory / f"{name}.pressure") or "") if directory else ""

        return CGroupStats(
            memory_current=mem_current,
            memory_peak=read_int(fs, memory / "memory.max_usage_in_bytes") if memory else None,
            swap_current=(memsw - mem_current if memsw is not None and mem_current is not None
                          else None),
            cpu_usage_ns=usage,
            cpu_user_ns=user,
            cpu_system_ns=system,
            cpu_nr_periods=throttling.get("nr_periods"),
            cpu_nr_throttled=throttling.get("nr_throttled"),
            cpu_throttled_ns=throttling.get("throttled_time"),
            pids_current=read_int(fs, pids / "pids.current") if pids else None,
            oom_events=None,
            oom_kills=self.oom_kills() if memory else None,
            cpu_pressure=parse_pressure(pressure(cpu, "cpu")),
            memory_pressure=parse_pressure(pressure(memory, "memory")),
            io_pressure=parse_pressure(pressure(blkio, "io")),
        )

    def oom_kills(self) -> int:
        """``oom_kill`` of ``memory.oom_control``, summed over this cgroup and its children
        (v1 counts each kill only in the victim's own cgroup)."""
        memory = self.controller_dirs.get("memory")
        if memory is None:
            return 0
        return sum(parse_flat_keyed(read_opt(self.fs, d / "memory.oom_control") or "")
                   .get("oom_kill", 0) for d in walk_dirs(self.fs, memory))

    # -- placement and nesting ------------------------------------------------------------

    def open_placement(self) -> Placement:
        """One ``cgroup.procs`` fd per joined hierarchy."""
        return Placement(clone_into_fd=None, procs_fds=self._open_procs(list(self.dirs.values())))

    def extend_placement(self, placement: Placement) -> Placement:
        """``placement`` and fds for the hierarchies joined since it was opened (which come
        last in :attr:`dirs`)."""
        joined_since = list(self.dirs.values())[len(placement.procs_fds):]
        if not joined_since:
            return placement
        return Placement(clone_into_fd=None,
                         procs_fds=placement.procs_fds + self._open_procs(joined_since))

    def _open_procs(self, directories: list[Path]) -> tuple[int, ...]:
        fds: list[int] = []
        try:
            for directory in directories:
                fds.append(os.open(directory / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except OSError as err:
            for fd in fds:
                os.close(fd)
            raise error(err, "opening cgroup.procs", directory) from err
        return tuple(fds)

    def child(self, name: str) -> V1Backend:
        """A backend for ``<this>/<name>`` in the same hierarchies (it may join more)."""
        return V1Backend(fs=self.fs, info=self.info, parent=self.relpath, name=name,
                         create_parent=False, controllers=tuple(self.controller_dirs))


def _controller_of(name: str) -> str:
    """The v1 controller of the limit ``name``."""
    return V1_NAME.get(CONTROLLER_OF[name], CONTROLLER_OF[name])
