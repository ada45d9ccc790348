"""The mount plan of a new root, as the steps the C child performs in order.

The defaults follow runc's (references.md): a /proc of the container's pid namespace, a minimal
/dev, a read-only /sys, then the user's mounts, then runc's masked and read-only paths, last so
that nothing mounted before can uncover them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from .._native import mounts as native
from .._native.mounts import MountStep
from ._mounts import Bind, Tmpfs

#: runc's default masked paths: kernel files a container must not read.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
#: runc's default read-only paths: kernel files a container must not write.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: The device nodes of a minimal /dev: (name, major, minor), all mode 0666.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_LOCKED = native.NOSUID | native.NODEV | native.NOEXEC


def _fs(dest: str, fstype: str, options: Iterable[tuple[str, str | None]], flags: int,
        fallback_source: str | None = None) -> MountStep:
    return MountStep(op=native.OP_FS, dest=dest.encode(), fstype=fstype.encode(),
                     options=tuple((k.encode(), v.encode() if v is not None else None)
                                   for k, v in options),
                     flags=flags | (native.BIND_ON_EPERM if fallback_source else 0),
                     source=fallback_source.encode() if fallback_source else None)


# The fixed parts of the plan are made once: the same step objects in every plan let the
# C conversion of a plan be cached (mounts.py).

@functools.cache
def proc_steps() -> tuple[MountStep, ...]:
    """/proc of the container's own pid namespace."""
    return (_fs("/proc", "proc", [("source", "nsbox-proc")], _LOCKED),)


@functools.cache
def dev_steps() -> tuple[MountStep, ...]:
    """A minimal /dev: a tmpfs with the usual device nodes (made by mknod; where a user
    namespace forbids that, the host's are bound), a private devpts, /dev/shm."""
    steps = [_fs("/dev", "tmpfs", [("source", "nsbox-dev"), ("mode", "755"),
                                   ("size", "65536k")], native.NOSUID)]
    for name, major, minor in DEVICES:
        steps.append(MountStep(op=native.OP_DEVICE, dest=f"/dev/{name}".encode(), mode=0o666,
                               major=major, minor=minor, flags=native.BIND_ON_EPERM,
                               source=f"/dev/{name}".encode()))
    for name, target in _DEV_LINKS:
        steps.append(MountStep(op=native.OP_SYMLINK, dest=f"/dev/{name}".encode(),
                               source=target.encode()))
    steps.append(_fs("/dev/pts", "devpts", [("source", "nsbox-devpts"), ("newinstance", None),
                                            ("ptmxmode", "0666"), ("mode", "0620")],
                     native.NOSUID | native.NOEXEC))
    steps.append(_fs("/dev/shm", "tmpfs", [("source", "nsbox-shm"), ("mode", "1777"),
                                           ("size", "65536k")], _LOCKED))
    return tuple(steps)


@functools.cache
def sys_steps() -> tuple[MountStep, ...]:
    """A read-only /sys (where a user namespace may not mount one: the host's, read-only)."""
    return (_fs("/sys", "sysfs", [("source", "nsbox-sysfs")], native.RDONLY | _LOCKED,
                fallback_source="/sys"),)


def user_steps(mounts: Sequence[Bind | Tmpfs]) -> list[MountStep]:
    """The user's binds and tmpfs mounts, in their order."""
    steps = []
    for mount in mounts:
        if isinstance(mount, Bind):
            steps.append(MountStep(op=native.OP_BIND, dest=mount.target.encode(),
                                   source=mount.source.encode(),
                                   flags=native.RDONLY if mount.readonly else 0))
        else:
            steps.append(MountStep(op=native.OP_FS, dest=mount.target.encode(),
                                   fstype=b"tmpfs", options=mount.options(),
                                   flags=native.NOSUID | native.NODEV))
    return steps


@functools.lru_cache(maxsize=16)
def protection_steps(masked: tuple[str, ...], readonly: tuple[str, ...],
                     own_dev_null: bool) -> tuple[MountStep, ...]:
    """runc's masked paths (hidden) and read-only paths; those the kernel lacks are skipped.
    Files are hidden under the container's own /dev/null where the plan made one."""
    where = native.SOURCE_IN_ROOT if own_dev_null else 0
    masks = (MountStep(op=native.OP_MASK, dest=path.encode(), source=b"/dev/null",
                       options=((b"source", b"nsbox-mask"), (b"mode", b"555")),
                       flags=_LOCKED | where)
             for path in masked)
    read_only = (MountStep(op=native.OP_READONLY, dest=path.encode(), flags=_LOCKED)
                 for path in readonly)
    return (*masks, *read_only)
