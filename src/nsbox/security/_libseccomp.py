"""libseccomp, loaded at run time (cffi ABI mode): nsbox builds without its headers, and runs
without it as long as no seccomp filter is asked for.

Only the parent uses it: it turns a resolved profile into a classic BPF program that the C
child hands to the kernel (csrc/security.c).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..errors import ConfigError, UnsupportedError

#: The library's file name; one ABI (2) since libseccomp 2.0.
LIBRARY = "libseccomp.so.2"
INSTALL_HINT = ("seccomp filters are built with libseccomp, which is not installed: "
                "`apt install libseccomp2` (Debian, Ubuntu), `dnf install libseccomp` (Fedora), "
                "`apk add libseccomp` (Alpine); or pass seccomp=None to run without a filter")


# seccomp.h's values: stable parts of libseccomp's ABI.
_NR_SCMP_ERROR = -1
_ACTION_BASE = {"kill_process": 0x80000000, "kill_thread": 0x00000000, "trap": 0x00030000,
                "errno": 0x00050000, "trace": 0x7FF00000, "log": 0x7FFC0000,
                "allow": 0x7FFF0000}
_OPS = {"ne": 1, "lt": 2, "le": 3, "eq": 4, "ge": 5, "gt": 6, "masked_eq": 7}
_ATTR_OPTIMIZE = 8        # SCMP_FLTATR_CTL_OPTIMIZE: 2 = a binary tree of syscalls (2.5+)
_ATTR_ACT_BADARCH = 2     # SCMP_FLTATR_ACT_BADARCH
_EPERM = 1


@attrs.frozen
class Library:
    """The loaded library and its version."""

    ffi: Any
    lib: Any
    libc: Any
    version: tuple[int, int, int]


_lock = threading.Lock()


@functools.cache
def _ffi() -> Any:
    try:
        # Generated at install time by _ffi_build.py (imported by name: it has no types).
        return importlib.import_module("nsbox.security._seccomp_ffi").ffi
    except ImportError:  # a source tree that was never built: parse the declarations now
        from cffi import FFI

        from ._ffi_build import CDEF

        ffi = FFI()
        ffi.cdef(CDEF)
        return ffi


@functools.cache
def _load() -> Library:
    ffi = _ffi()
    try:
        lib = ffi.dlopen(LIBRARY)
    except OSError as exc:
        raise UnsupportedError(INSTALL_HINT) from exc
    v = lib.seccomp_version()
    version = (int(v.major), int(v.minor), int(v.micro))
    if version < (2, 4, 0):
        raise UnsupportedError(f"nsbox needs libseccomp 2.4 or later; this is "
                               f"{'.'.join(map(str, version))}: upgrade libseccomp2")
    return Library(ffi, lib, ffi.dlopen(None), version)


def load() -> Library:
    """The library, loaded once.

    Raises:
        UnsupportedError: it is not installed (with how to install it), or is too old.
    """
    with _lock:
        return _load()


def available() -> bool:
    """Whether libseccomp can be loaded."""
    try:
        load()
    except UnsupportedError:
        return False
    return True


def unknown_syscalls(names: Iterable[str]) -> list[str]:
    """The names libseccomp knows on no architecture; [] when libseccomp is not there."""
    try:
        library = load()
    except UnsupportedError:
        return []
    return [n for n in names if library.lib.seccomp_syscall_resolve_name(n.encode())
            == _NR_SCMP_ERROR]


@functools.cache
def native_syscall_names() -> tuple[str, ...]:
    """Every syscall name of this architecture that libseccomp knows."""
    library = load()
    native = library.lib.seccomp_arch_native()
    names = []
    for number in range(1024):
        ptr = library.lib.seccomp_syscall_resolve_num_arch(native, number)
        if ptr != library.ffi.NULL:
            names.append(library.ffi.string(ptr).decode())
            library.libc.free(ptr)
    return tuple(names)


def close_matches(name: str) -> list[str]:
    """Known syscall names close to ``name``, for an error message."""
    import difflib  # only for this error message: not worth its import in every CLI run

    return difflib.get_close_matches(name, native_syscall_names(), n=3, cutoff=0.75)


def action_value(action: str, errno: int | None) -> int:
    """libseccomp's 32-bit action for an nsbox action."""
    if action == "errno":
        return _ACTION_BASE["errno"] | ((_EPERM if errno is None else errno) & 0xFFFF)
    if action == "trace":
        return _ACTION_BASE["trace"] | ((errno or 0) & 0xFFFF)
    return _ACTION_BASE[action]


@attrs.frozen
class PlainRule:
    """A rule resolved for one container on this machine: no conditions left but the args."""

    names: tuple[str, ...]
    action: int
    args: tuple[tuple[int, str, int, int], ...]  # (index, op, value, mask)


def compile_bpf(default_action: int, architectures: Sequence[str],
                rules: Sequence[PlainRule]) -> bytes:
    """The classic BPF program of a filter, as ``struct sock_filter`` bytes.

    Syscall names libseccomp does not know are skipped (a profile may be newer than it).

    Raises:
        UnsupportedError: libseccomp is missing.
        ConfigError: libseccomp refused a rule or an architecture.
    """
    library = load()
    ffi, lib = library.ffi, library.lib
    ctx = lib.seccomp_init(default_action)
    if ctx == ffi.NULL:
        raise ConfigError(f"libseccomp refused the default action {default_action:#x}")
    try:
        lib.seccomp_attr_set(ctx, _ATTR_OPTIMIZE, 2)  # best effort: older versions lack it
        # A syscall of an ABI the filter does not cover kills the whole process, not a thread.
        lib.seccomp_attr_set(ctx, _ATTR_ACT_BADARCH, _ACTION_BASE["kill_process"])
        for arch in architectures:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and -rc != 17:  # EEXIST: the native one
                raise ConfigError(f"libseccomp refused architecture {arch!r}: "
                                  f"{os.strerror(-rc)}")
        for rule in rules:
            if rule.action == default_action:
                continue  # libseccomp refuses rules that change nothing
            conditions = ffi.new("struct scmp_arg_cmp[]", max(1, len(rule.args)))
            for i, (index, op, value, mask) in enumerate(rule.args):
                conditions[i].arg = index
                conditions[i].op = _OPS[op]
                # masked_eq compares (arg & datum_a) with datum_b.
                conditions[i].datum_a = mask if op == "masked_eq" else value
                conditions[i].datum_b = value if op == "masked_eq" else 0
            for name in rule.names:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == _NR_SCMP_ERROR:
                    continue
                rc = lib.seccomp_rule_add_array(ctx, rule.action, number, len(rule.args),
                                                conditions)
                if rc < 0:
                    raise ConfigError(f"libseccomp refused the rule for {name!r}: "
                                      f"{os.strerror(-rc)}")
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _export(lib: Any, ctx: Any) -> bytes:
    # seccomp_export_bpf writes to an fd (libseccomp 2.5 has no in-memory export): a memfd
    # never blocks, whatever the size of the program.
    fd = os.memfd_create("nsbox-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise ConfigError(f"libseccomp could not export the filter: {os.strerror(-rc)}")
        size = os.lseek(fd, 0, os.SEEK_CUR)
        program = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    if not program or len(program) % 8:
        raise ConfigError(f"libseccomp exported a malformed filter of {len(program)} bytes")
    if len(program) // 8 > 4096:
        raise ConfigError(f"the seccomp filter has {len(program) // 8} instructions; the "
                          "kernel takes at most 4096: use fewer rules")
    return program
