"""Hazardous materials: the only module that touches the cffi extension's ``ffi`` and ``lib``.

Everything else in nsbox describes a process as a :class:`ProcessSpec` and calls
:func:`spawn`; this module turns the spec into one C ``struct nsbox_spec`` (keeping every buffer
alive for the duration of the call), runs ``nsbox_spawn`` with the GIL released, and turns a
failure record into a precise exception.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import struct
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import SpawnError, UnsupportedError, spawn_error
from .mounts import (
    RootfsSpec,
    _cstr,  # one C-string helper for both structs
    rootfs_to_c,
)

try:
    from . import _nsbox  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "nsbox's compiled extension is missing or stale; reinstall with "
        "`pip install --force-reinstall --no-binary nsbox nsbox` (needs gcc and Python headers)"
    ) from exc

_ffi: Any = _nsbox.ffi
_lib: Any = _nsbox.lib

ABI_VERSION = 1
if _lib.NSBOX_ABI_VERSION != ABI_VERSION:  # pragma: no cover - only on a broken install
    raise ImportError(
        f"nsbox's compiled extension has ABI {_lib.NSBOX_ABI_VERSION}, this Python code expects "
        f"{ABI_VERSION}: reinstall nsbox so both come from the same version"
    )

CLONE_NEWNS: int = _lib.CLONE_NEWNS
CLONE_NEWUTS: int = _lib.CLONE_NEWUTS
CLONE_NEWIPC: int = _lib.CLONE_NEWIPC
CLONE_NEWUSER: int = _lib.CLONE_NEWUSER
CLONE_NEWPID: int = _lib.CLONE_NEWPID
CLONE_NEWNET: int = _lib.CLONE_NEWNET
CLONE_NEWCGROUP: int = _lib.CLONE_NEWCGROUP
CLONE_NEWTIME: int = _lib.NSBOX_CLONE_NEWTIME

INIT_BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nsbox-init")

# Hints appended to errors where the errno alone misleads (bubblewrap's mount_strerror idea).
_HINTS: dict[tuple[str, int], str] = {
    ("clone", errno.EPERM): "creating these namespaces needs root, or a user namespace",
    ("clone", errno.ENOSPC): "a namespace limit in /proc/sys/user/max_*_namespaces was reached",
    ("clone", errno.EINVAL): "the kernel does not support one of the requested namespaces",
    ("setns", errno.EINVAL): "the namespace to join is not of the expected type",
    ("setns", errno.ESRCH): "the container's init has exited",
    ("fork", errno.ENOMEM): "the container's pid namespace has no init any more (it exited)",
    ("uid-map", errno.EPERM): "an unprivileged user can map only its own uid (one line)",
    ("gid-map", errno.EPERM): "an unprivileged user can map only its own gid (one line)",
    ("oom-score-adj", errno.EACCES): "lowering oom_score_adj needs CAP_SYS_RESOURCE on the "
                                     "host (raising it never does)",
    ("capabilities", errno.EPERM): "nsbox's own process does not hold this capability, so it "
                                   "cannot grant it (cap_add)",
    ("seccomp", errno.EINVAL): "the kernel refused the filter: is it built with "
                               "CONFIG_SECCOMP_FILTER? seccomp=None runs without one",
    ("seccomp", errno.EACCES): "installing a filter needs no_new_privs or CAP_SYS_ADMIN",
}


@attrs.frozen(kw_only=True)
class ProcessSpec:
    """Everything the C child needs to start one process. Internal: built by nsbox itself."""

    argv: Sequence[bytes]
    path: bytes
    envp: Sequence[bytes] = ()
    search_path: bytes | None = None
    exec_fd: int = -1
    new_ns: int = 0
    join_pidfd: int = -1
    join_pidfd_flags: int = 0
    join_fds: Sequence[int] = ()
    uid_map: bytes | None = None
    gid_map: bytes | None = None
    deny_setgroups: bool = False
    timens_offsets: bytes | None = None
    cgroup_fd: int = -1
    cgroup_procs_fds: Sequence[int] = ()
    make_mounts_private: bool = False
    mount_proc: bool = False
    hostname: bytes | None = None
    domainname: bytes | None = None
    loopback_up: bool = False
    rlimits: Sequence[tuple[int, int, int]] = ()
    new_session: bool = False
    controlling_tty: bool = False
    cwd: bytes | None = None
    uid: int = -1
    gid: int = -1
    groups: Sequence[int] | None = None
    fds: Sequence[tuple[int, int]] = ()
    # Security (csrc/security.c); capability sets are masks by capability number.
    oom_score_adj: int | None = None
    protect_system_paths: bool = False
    cap_bounding: int | None = None      # None: leave every capability set as it is
    cap_permitted: int = 0
    cap_effective: int = 0
    cap_inheritable: int = 0
    cap_ambient: int = 0
    cap_required: int = 0
    no_new_privs: bool = False
    seccomp_bpf: bytes | None = None
    seccomp_flags: int = 0
    # The new root and its mount plan (PivotRoot; mounts.py, csrc/mounts.c), or None.
    rootfs: RootfsSpec | None = None
    # (detached tree fd, destination) to attach after joining, in a mount namespace of its own.
    attach: Sequence[tuple[int, bytes]] = ()


@attrs.frozen
class Spawned:
    pid: int
    pidfd: int


def _cstr_array(keep: list[Any], values: Sequence[bytes]) -> Any:
    items = [_cstr(keep, v) for v in values]
    array = _ffi.new("char *[]", [*items, _ffi.NULL])
    keep.append(array)
    return array


def _int_array(keep: list[Any], ctype: str, values: Sequence[int]) -> Any:
    if not values:
        return _ffi.NULL
    array = _ffi.new(f"{ctype}[]", list(values))
    keep.append(array)
    return array


def _to_c(spec: ProcessSpec, keep: list[Any]) -> Any:
    c = _ffi.new("struct nsbox_spec *")
    keep.append(c)
    c.new_ns = spec.new_ns
    c.join_pidfd = spec.join_pidfd
    c.join_pidfd_flags = spec.join_pidfd_flags
    c.join_fds = _int_array(keep, "int", spec.join_fds)
    c.n_join_fds = len(spec.join_fds)
    c.uid_map = _cstr(keep, spec.uid_map)
    c.gid_map = _cstr(keep, spec.gid_map)
    c.deny_setgroups = spec.deny_setgroups
    c.timens_offsets = _cstr(keep, spec.timens_offsets)
    c.cgroup_fd = spec.cgroup_fd
    c.cgroup_procs_fds = _int_array(keep, "int", spec.cgroup_procs_fds)
    c.n_cgroup_procs_fds = len(spec.cgroup_procs_fds)
    c.make_mounts_private = spec.make_mounts_private
    c.mount_proc = spec.mount_proc
    c.hostname = _cstr(keep, spec.hostname)
    c.domainname = _cstr(keep, spec.domainname)
    c.loopback_up = spec.loopback_up
    if spec.rlimits:
        rl = _ffi.new("struct nsbox_rlimit[]", len(spec.rlimits))
        keep.append(rl)
        for i, (resource, soft, hard) in enumerate(spec.rlimits):
            rl[i].resource, rl[i].soft, rl[i].hard = resource, soft, hard
        c.rlimits = rl
    c.n_rlimits = len(spec.rlimits)
    c.new_session = spec.new_session
    c.controlling_tty = spec.controlling_tty
    c.cwd = _cstr(keep, spec.cwd)
    c.uid = spec.uid
    c.gid = spec.gid
    c.set_groups = spec.groups is not None
    c.groups = _int_array(keep, "unsigned int", spec.groups or ())
    c.n_groups = len(spec.groups or ())
    fdmap = _ffi.new("struct nsbox_fdmap[]", max(1, len(spec.fds)))
    keep.append(fdmap)
    for i, (src, dst) in enumerate(spec.fds):
        fdmap[i].src, fdmap[i].dst = src, dst
    c.fds = fdmap
    c.n_fds = len(spec.fds)
    c.exec_fd = spec.exec_fd
    c.path = _cstr(keep, spec.path)
    c.search_path = _cstr(keep, spec.search_path)
    c.argv = _cstr_array(keep, spec.argv)
    c.envp = _cstr_array(keep, spec.envp)
    c.set_oom_score_adj = spec.oom_score_adj is not None
    c.oom_score_adj = spec.oom_score_adj or 0
    c.protect_system_paths = spec.protect_system_paths
    c.set_caps = spec.cap_bounding is not None
    c.cap_bounding = spec.cap_bounding or 0
    c.cap_permitted = spec.cap_permitted
    c.cap_effective = spec.cap_effective
    c.cap_inheritable = spec.cap_inheritable
    c.cap_ambient = spec.cap_ambient
    c.cap_required = spec.cap_required
    c.no_new_privs = spec.no_new_privs
    if spec.seccomp_bpf is not None:
        bpf = _ffi.new("unsigned char[]", spec.seccomp_bpf)
        keep.append(bpf)
        c.seccomp_bpf = bpf
        c.seccomp_bpf_len = len(spec.seccomp_bpf)
    c.seccomp_flags = spec.seccomp_flags
    c.rootfs = rootfs_to_c(keep, spec.rootfs)
    c.attach_fds = _int_array(keep, "int", [fd for fd, _ in spec.attach])
    c.attach_dests = _cstr_array(keep, [dest for _, dest in spec.attach])
    c.n_attach = len(spec.attach)
    return c


def has_clone3() -> bool:
    """Whether the kernel has clone3 (and so CLONE_INTO_CGROUP on 5.7+)."""
    return bool(_lib.nsbox_has_clone3())


def step_name(step: int) -> str:
    """The name of a setup step, as the C side calls it."""
    return str(_ffi.string(_lib.nsbox_step_name(step)).decode())


class Slot:
    """Where nsbox_spawn writes the new process's pid and pidfd, allocated before the call.

    A KeyboardInterrupt (any Python signal handler) can strike at any bytecode after the C
    call returns and before its result is stored somewhere. The C side fills this slot without
    running Python, so whoever holds the slot can still find, kill and reap the process.
    """

    def __init__(self) -> None:
        self._result: Any = _ffi.new("struct nsbox_result *")
        self._result.pid = -1
        self._result.pidfd = -1

    @property
    def pid(self) -> int:
        """The pid of the started process, or -1."""
        return int(self._result.pid)

    @property
    def pidfd(self) -> int:
        """Its pidfd, or -1."""
        return int(self._result.pidfd)

    def claim(self) -> Spawned | None:
        """The process started into this slot, once; None if none (or already claimed)."""
        if self._result.pid <= 0:
            return None
        spawned = Spawned(pid=self.pid, pidfd=self.pidfd)
        self._result.pid = self._result.pidfd = -1
        return spawned


def spawn(spec: ProcessSpec, slot: Slot | None = None) -> Spawned:
    """Start the process ``spec`` describes.

    Args:
        slot: where the C side records the process as soon as it exists; pass one when an
            interruption between the call and storing its result must not lose the process.

    Raises:
        SpawnError: a step failed (``FileNotFoundError``/``PermissionError`` subclasses for those
            errnos); the child, if one was created, has been reaped.
    """
    keep: list[Any] = []
    c_spec = _to_c(spec, keep)
    result = (slot or Slot())._result
    if _lib.nsbox_spawn(c_spec, result) != 0:
        step = step_name(result.step)
        detail = _ffi.string(result.detail).decode(errors="replace")
        raise spawn_error(step, result.err, detail, _HINTS.get((step, result.err), ""))
    pidfd = result.pidfd
    if pidfd < 0:  # pragma: no cover - kernels before 5.3
        raise UnsupportedError("nsbox needs pidfds (Linux 5.3 or later)")
    return Spawned(pid=result.pid, pidfd=pidfd)


def clone_readonly(path: str) -> int:
    """A detached, recursive, read-only copy of the host's ``path`` (needs root): an fd."""
    fd = _lib.nsbox_clone_readonly(os.fsencode(path))
    if fd < 0:
        raise OSError(-fd, f"cannot make a read-only copy of {path}: {os.strerror(-fd)}", path)
    return int(fd)


class ForkEntry:
    """The fork mode of ``Container.call``: a spec made C once, in the caller, for its forks.

    Both forks are copies of the caller, so the struct and its buffers are theirs too. Each
    method returns on success; on failure the C side writes a report to ``report_fd`` (read it
    with :func:`report_error`) and exits.
    """

    def __init__(self, spec: ProcessSpec) -> None:
        self._keep: list[Any] = []
        self._spec = _to_c(spec, self._keep)

    def join(self, report_fd: int) -> None:
        """In the first fork: join the container's cgroup and namespaces."""
        _lib.nsbox_fork_join(self._spec, report_fd)

    def enter(self, report_fd: int, reply_fd: int, parent: int) -> None:
        """In the second fork: become the container's process; close every other host fd."""
        _lib.nsbox_fork_enter(self._spec, report_fd, reply_fd, parent)


# struct nsbox_report of csrc/internal.h: kind, step, errno, pid, detail.
_REPORT = struct.Struct("=4i240s")
_REPORT_ERROR = 2


def report_error(data: bytes) -> SpawnError | None:
    """The error a child reported on its report pipe (all of it, read to EOF), or None."""
    if len(data) < _REPORT.size:
        return None
    kind, step_number, err, _pid, raw = _REPORT.unpack_from(data)
    if kind != _REPORT_ERROR:
        return None
    step = step_name(step_number)
    detail = raw.split(b"\0", 1)[0].decode(errors="replace")
    return spawn_error(step, err, detail, _HINTS.get((step, err), ""))


_init_lock = threading.Lock()


@functools.cache
def _sealed_init_fd() -> int:
    # The container can see its init as /proc/1/exe; were that the file on the host's disk, a
    # root process inside could overwrite it (CVE-2019-5736). A sealed memfd copy cannot be.
    with open(INIT_BINARY, "rb") as f:
        program = f.read()
    fd = os.memfd_create("nsbox-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, program)
    seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def init_program_fd() -> int:
    """An fd of the sealed in-memory copy of ``nsbox-init``, created once per process."""
    with _init_lock:
        return _sealed_init_fd()
