"""Hazardous materials: the mount plan of a new root as C structs, and the parent's mount calls.

``nsbox.rootfs`` decides what to mount; this module only mirrors ``struct nsbox_rootfs``,
``struct nsbox_overlay`` (with its upper layer in memory, ``UpperTmpfs``) and ``struct
nsbox_mount`` (csrc/nsbox.h) as plain frozen records, converts them for the C child (keeping
every buffer alive through the spawn), and wraps the three calls the parent makes itself for
an overlay used alone: mount, unmount, statfs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import NsboxError
from . import _nsbox  # type: ignore[attr-defined]

_ffi: Any = _nsbox.ffi
_lib: Any = _nsbox.lib

OP_FS: int = _lib.NSBOX_MOUNT_FS
OP_BIND: int = _lib.NSBOX_MOUNT_BIND
OP_DEVICE: int = _lib.NSBOX_MOUNT_DEVICE
OP_SYMLINK: int = _lib.NSBOX_MOUNT_SYMLINK
OP_MASK: int = _lib.NSBOX_MOUNT_MASK
OP_READONLY: int = _lib.NSBOX_MOUNT_READONLY

RDONLY: int = _lib.NSBOX_MOUNT_RDONLY
NOSUID: int = _lib.NSBOX_MOUNT_NOSUID
NODEV: int = _lib.NSBOX_MOUNT_NODEV
NOEXEC: int = _lib.NSBOX_MOUNT_NOEXEC
BIND_ON_EPERM: int = _lib.NSBOX_MOUNT_BIND_ON_EPERM
SOURCE_IN_ROOT: int = _lib.NSBOX_MOUNT_SOURCE_IN_ROOT

#: fsconfig options: (key, value) pairs; a None value sets a flag.
Options = Sequence[tuple[bytes, bytes | None]]


def _option_tuple(options: Options) -> tuple[tuple[bytes, bytes | None], ...]:
    return tuple(options)


@attrs.frozen(kw_only=True, cache_hash=True)  # hashed as a key of the conversion cache
class MountStep:
    """One ``struct nsbox_mount``: a step of the plan, done by the child in order."""

    op: int
    dest: bytes
    flags: int = 0
    source: bytes | None = None
    fstype: bytes | None = None
    options: Options = attrs.field(default=(), converter=_option_tuple)
    mode: int = 0
    major: int = 0
    minor: int = 0


@attrs.frozen(kw_only=True)
class UpperTmpfs:
    """A throwaway upper layer in memory: the tmpfs the child mounts and makes ``upper``,
    ``work`` and the root's mount point in (the overlay's names are then relative to it)."""

    options: Options
    upper_mode: int
    upper_uid: int = -1   # -1: the child's own
    upper_gid: int = -1


@attrs.frozen(kw_only=True)
class OverlaySpec:
    """One ``struct nsbox_overlay``; ``lowers`` top layer first, as overlayfs orders them."""

    lowers: Sequence[bytes]
    lower_names: Sequence[bytes]
    upper: bytes
    work: bytes
    upper_name: bytes
    options: Options = ()
    layers_dir: bytes | None = None
    legacy_data: bytes = b""
    legacy_only: bool = False
    upper_tmpfs: UpperTmpfs | None = None


@attrs.frozen(kw_only=True)
class RootfsSpec:
    """One ``struct nsbox_rootfs``: the root (an overlay or a bind), the plan, read-only or not."""

    root: bytes
    bind_source: bytes | None = None
    overlay: OverlaySpec | None = None
    mounts: Sequence[MountStep] = ()
    readonly: bool = False
    become_root: bool = False


def _cstr(keep: list[Any], value: bytes | None) -> Any:
    if value is None:
        return _ffi.NULL
    buf = _ffi.new("char[]", value)
    keep.append(buf)
    return buf


def _cstrs(keep: list[Any], values: Sequence[bytes | None]) -> Any:
    array = _ffi.new("char *[]", [_cstr(keep, v) for v in values] or [_ffi.NULL])
    keep.append(array)
    return array


def _options(keep: list[Any], options: Options) -> tuple[Any, int]:
    flat: list[bytes | None] = []
    for key, value in options:
        flat += [key, value]
    return _cstrs(keep, flat), len(options)


def _overlay_to_c(keep: list[Any], spec: OverlaySpec) -> Any:
    c = _ffi.new("struct nsbox_overlay *")
    keep.append(c)
    c.lowers = _cstrs(keep, list(spec.lowers))
    c.lower_names = _cstrs(keep, list(spec.lower_names))
    c.n_lowers = len(spec.lowers)
    c.upper = _cstr(keep, spec.upper)
    c.work = _cstr(keep, spec.work)
    c.upper_name = _cstr(keep, spec.upper_name)
    c.options, c.n_options = _options(keep, spec.options)
    c.layers_dir = _cstr(keep, spec.layers_dir)
    c.legacy_data = _cstr(keep, spec.legacy_data)
    c.legacy_only = spec.legacy_only
    tmpfs = spec.upper_tmpfs
    if tmpfs is not None:
        c.tmpfs_options, c.n_tmpfs_options = _options(keep, tmpfs.options)
        c.upper_mode = tmpfs.upper_mode
        c.upper_uid, c.upper_gid = tmpfs.upper_uid, tmpfs.upper_gid
    return c


@attrs.frozen
class _CSteps:
    """A converted plan: the ``struct nsbox_mount`` array and the buffers it points into."""

    array: Any
    buffers: list[Any]


_converted: dict[tuple[MountStep, ...], _CSteps] = {}


def _steps_to_c(mounts: tuple[MountStep, ...]) -> _CSteps:
    # Plans repeat (the fixed parts are the same objects every time, see rootfs/_plan.py),
    # and converting 30-odd steps costs more than the rest of a spec. The C side only reads
    # them (const), so one conversion serves every container, in any thread; a caller keeps
    # what it got alive for its spawn even if the cache drops it meanwhile.
    found = _converted.get(mounts)
    if found is not None:
        return found
    buffers: list[Any] = []
    array = _ffi.new("struct nsbox_mount[]", max(1, len(mounts)))
    for i, step in enumerate(mounts):
        m = array[i]
        m.op, m.flags, m.mode, m.major, m.minor = (step.op, step.flags, step.mode, step.major,
                                                   step.minor)
        m.dest = _cstr(buffers, step.dest)
        m.source = _cstr(buffers, step.source)
        m.fstype = _cstr(buffers, step.fstype)
        m.options, m.n_options = _options(buffers, step.options)
    converted = _CSteps(array, buffers)
    if len(_converted) >= 64:  # plans with per-container paths: keep the cache small
        _converted.clear()
    _converted[mounts] = converted
    return converted


def rootfs_to_c(keep: list[Any], spec: RootfsSpec | None) -> Any:
    """A ``struct nsbox_rootfs *`` for ``spec`` (NULL for None); its buffers go to ``keep``."""
    if spec is None:
        return _ffi.NULL
    c = _ffi.new("struct nsbox_rootfs *")
    keep.append(c)
    c.root = _cstr(keep, spec.root)
    c.bind_source = _cstr(keep, spec.bind_source)
    c.overlay = _overlay_to_c(keep, spec.overlay) if spec.overlay is not None else _ffi.NULL
    steps = _steps_to_c(tuple(spec.mounts))
    keep.append(steps)
    c.mounts = steps.array
    c.n_mounts = len(spec.mounts)
    c.readonly = spec.readonly
    c.become_root = spec.become_root
    return c


class MountError(NsboxError, OSError):
    """The overlay could not be mounted: ``errno``, and in ``filename`` what the kernel refused
    (a layer, the upper directory, or the target with the kernel's explanation)."""


def mount_overlay(spec: OverlaySpec, target: bytes) -> None:
    """Mount the overlay ``spec`` on ``target`` in the caller's mount namespace (needs root).

    Raises:
        MountError: the kernel refused; ``filename`` names the part it refused.
    """
    keep: list[Any] = []
    c_spec = _overlay_to_c(keep, spec)
    result = _ffi.new("struct nsbox_result *")
    if _lib.nsbox_overlay_mount(c_spec, target, result) != 0:
        detail = _ffi.string(result.detail).decode(errors="replace")
        raise MountError(result.err, os.strerror(result.err), detail)


def umount(target: bytes) -> int:
    """Detach the mount at ``target`` (MNT_DETACH, not following a symlink); 0 or an errno."""
    return int(_lib.nsbox_umount(target))


def fs_magic(path: bytes) -> int:
    """The filesystem type of ``path`` (statfs ``f_type``).

    Raises:
        OSError: statfs failed.
    """
    value = int(_lib.nsbox_fs_magic(path))
    if value < 0:
        raise OSError(-value, os.strerror(-value), os.fsdecode(path))
    return value
