"""Which cgroup hierarchies this machine has, and which one nsbox uses.

Read from ``/proc/self/mountinfo`` (what is mounted where), ``/proc/cgroups`` (the v1
controller names the kernel knows) and the cgroup2 root's ``cgroup.controllers``. The answer
is cached: mounts of cgroup hierarchies do not change while a program runs.

The parsing is split from the reading so that unit tests can feed it the text of other
machines (pure v1, pure v2, hybrid, co-mounted ``cpu,cpuacct``, no cgroups at all).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Literal

import attrs

from ..errors import UnsupportedError

Mode = Literal["unified", "legacy", "hybrid", "none"]
Version = Literal["v1", "v2"]

# Mount options of a v1 cgroup mount that are not controller names.
_NOT_CONTROLLERS = frozenset(
    {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods",
     "nosuid", "nodev", "noexec", "relatime", "noatime"}
)

# The v1 controllers we know, for when /proc/cgroups cannot be read.
_KNOWN_V1 = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
     "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"}
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@attrs.frozen
class Mount:
    """One line of ``/proc/self/mountinfo`` that mounts a cgroup hierarchy.

    Attributes:
        root: the path inside the hierarchy that is mounted (``/`` unless it is a bind mount
            of a sub-tree, as inside some containers).
        mount_point: where it is mounted.
        fstype: ``cgroup`` (v1) or ``cgroup2``.
        options: the super-block options (for v1 they name the controllers).
    """

    root: str
    mount_point: Path
    fstype: str
    options: frozenset[str]


@attrs.frozen
class CGroupInfo:
    """What :func:`detect` found.

    Attributes:
        mode: ``"unified"`` (only cgroup v2), ``"legacy"`` (only v1), ``"hybrid"`` (v1
            controllers and a cgroup2 mount side by side) or ``"none"``.
        version: the backend nsbox uses: ``"v2"`` when no v1 controller hierarchy is mounted
            and a cgroup2 is, ``"v1"`` when any v1 controller is mounted (in hybrid mode the
            controllers that matter live in v1), ``None`` when there are no cgroups.
        v1_mounts: v1 controller name → mount point of its hierarchy (co-mounted controllers,
            such as ``cpu,cpuacct``, share one).
        v1_roots: v1 controller name → the hierarchy path mounted there (``/`` normally).
        v2_mount: where the cgroup2 hierarchy is mounted, if anywhere.
        v2_root: the cgroup2 path mounted there (``/`` normally).
        v2_controllers: the controllers the cgroup2 root offers (its ``cgroup.controllers``).
        controllers: the controllers usable through the chosen backend.
    """

    mode: Mode
    version: Version | None
    v1_mounts: Mapping[str, Path] = attrs.field(factory=dict)
    v1_roots: Mapping[str, str] = attrs.field(factory=dict)
    v2_mount: Path | None = None
    v2_root: str = "/"
    v2_controllers: frozenset[str] = frozenset()
    controllers: frozenset[str] = frozenset()

    def require(self, controller: str, *, needed_for: str) -> None:
        """Raise unless ``controller`` is usable.

        Args:
            controller: a controller name (``"memory"``, ``"cpu"``, ...).
            needed_for: what needs it, for the message (``"memory_max"``).

        Raises:
            UnsupportedError: the controller is not available; the message names it.
        """
        if self.version is None:
            raise UnsupportedError(
                f"{needed_for} needs cgroups, and none are mounted on this machine "
                "(mount cgroup2 at /sys/fs/cgroup, or the v1 hierarchies)"
            )
        if controller not in self.controllers:
            where = (
                f"{self.v2_mount}/cgroup.controllers" if self.version == "v2"
                else "/proc/self/mountinfo (no v1 hierarchy has it mounted)"
            )
            raise UnsupportedError(
                f"{needed_for} needs the cgroup {self.version} '{controller}' controller, which "
                f"this machine does not offer (see {where})"
            )


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Pick the cgroup mounts out of the text of ``/proc/<pid>/mountinfo``.

    Args:
        text: the file's content.

    Returns:
        The cgroup and cgroup2 mounts, in file order.
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(
            root=_unescape(fields[3]),
            mount_point=Path(_unescape(fields[4])),
            fstype=tail[0],
            options=frozenset(tail[2].split(",")),
        ))
    return mounts


def parse_proc_cgroups(text: str) -> frozenset[str]:
    """The enabled v1 controller names listed in ``/proc/cgroups``.

    Args:
        text: the file's content.

    Returns:
        Controller names whose ``enabled`` column is 1.
    """
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "1":
            names.add(parts[0])
    return frozenset(names)


def build_info(
    mounts: list[Mount],
    known_controllers: frozenset[str],
    read_v2_controllers: Callable[[Path], frozenset[str]],
) -> CGroupInfo:
    """Decide the mode and backend from parsed mounts.

    Args:
        mounts: the cgroup mounts, from :func:`parse_mountinfo`.
        known_controllers: v1 controller names the kernel knows.
        read_v2_controllers: reads the controllers a cgroup2 mount point offers.

    Returns:
        The detection result.
    """
    v1_mounts: dict[str, Path] = {}
    v1_roots: dict[str, str] = {}
    v2: Mount | None = None
    for mount in mounts:
        if mount.fstype == "cgroup2":
            # Prefer a mount of the whole hierarchy over a bind mount of a sub-tree.
            if v2 is None or (v2.root != "/" and mount.root == "/"):
                v2 = mount
            continue
        controllers = {o for o in mount.options if o in known_controllers} - _NOT_CONTROLLERS
        for controller in sorted(controllers):
            if controller not in v1_mounts or (v1_roots[controller] != "/" and mount.root == "/"):
                v1_mounts[controller] = mount.mount_point
                v1_roots[controller] = mount.root
    v2_controllers = read_v2_controllers(v2.mount_point) if v2 is not None else frozenset()
    if v1_mounts:
        mode: Mode = "hybrid" if v2 is not None else "legacy"
        return CGroupInfo(mode=mode, version="v1", v1_mounts=v1_mounts, v1_roots=v1_roots,
                          v2_mount=v2.mount_point if v2 else None,
                          v2_root=v2.root if v2 else "/", v2_controllers=v2_controllers,
                          controllers=frozenset(v1_mounts))
    if v2 is not None:
        return CGroupInfo(mode="unified", version="v2", v2_mount=v2.mount_point, v2_root=v2.root,
                          v2_controllers=v2_controllers, controllers=v2_controllers)
    return CGroupInfo(mode="none", version=None)


def _read_v2_controllers(mount_point: Path) -> frozenset[str]:
    try:
        return frozenset((mount_point / "cgroup.controllers").read_text().split())
    except OSError:
        return frozenset()


def _read_known_controllers() -> frozenset[str]:
    try:
        with open("/proc/cgroups") as f:
            names = parse_proc_cgroups(f.read())
    except OSError:
        return _KNOWN_V1
    return names or _KNOWN_V1


@functools.cache
def detect() -> CGroupInfo:
    """Find the cgroup hierarchies of this machine and the backend nsbox uses (cached).

    Call ``detect.cache_clear()`` after mounting or unmounting a hierarchy.

    Returns:
        A :class:`CGroupInfo`: mode, backend version, mount points, controllers.
    """
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
    except OSError:
        mounts = []
    return build_info(mounts, _read_known_controllers(), _read_v2_controllers)


def parse_proc_self_cgroup(text: str) -> dict[frozenset[str], str]:
    """Parse ``/proc/<pid>/cgroup``: the hierarchy (by its controller set) → the path in it.

    Args:
        text: the file's content.

    Returns:
        Controller set → path; the cgroup v2 line has the empty set as its key, named v1
        hierarchies keep their ``name=...`` entry in the set.
    """
    paths: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            controllers = frozenset(c for c in parts[1].split(",") if c)
            paths[controllers] = parts[2]
    return paths


def cgroup_of(pid: int | str, controller: str) -> str | None:
    """The cgroup path of a process in the hierarchy of ``controller`` (``""`` for v2).

    Args:
        pid: a process id, or ``"self"``.
        controller: a v1 controller name, or ``""`` for the cgroup v2 hierarchy.

    Returns:
        The path as the kernel prints it in ``/proc/<pid>/cgroup``, or ``None`` if the
        process is gone or is not in that hierarchy.
    """
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return None
    for controllers, path in parse_proc_self_cgroup(text).items():
        if (controller in controllers) if controller else not controllers:
            return path
    return None


def kernel_path(root: str, relpath: PurePosixPath) -> str:
    """The path ``/proc/<pid>/cgroup`` shows for ``relpath`` of a mount whose root is ``root``.

    Args:
        root: the mounted hierarchy path (the mountinfo ``root`` field).
        relpath: a path relative to the mount point, starting with ``/``.

    Returns:
        The joined path.
    """
    return os.path.normpath(os.path.join(root, str(relpath).lstrip("/"))) if root != "/" else str(
        relpath)
