"""What a fresh interpreter of this Python needs from the host, for a root that lacks it.

``Container.call`` starts ``sys.executable`` inside the container. A root filesystem of the
container's own (a busybox tree, a distribution image) may not have it, nor the libraries and
packages this process imports. Then, as root, the call's interpreter gets read-only copies of
the host's, in a mount namespace of its own: the container's other processes never see them.
Only mount points that the root lacks are created in it (empty files and directories).
"""

from __future__ import annotations

import functools
import os
import stat
import struct
import sys

# Never lent, even when on sys.path: they would cover the container's own.
_SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32",
                          "/lib64", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys",
                          "/tmp", "/usr", "/var"})
_PT_INTERP = 3


def _elf_interpreter(path: str) -> str | None:
    # The dynamic loader as the binary names it (PT_INTERP); 64-bit little-endian ELF only,
    # elsewhere None and the loader's directory comes from /proc/self/maps alone.
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            kind, _flags, offset, _vaddr, _paddr, size = struct.unpack_from(
                "<IIQQQQ", table, i * phentsize)
            if kind == _PT_INTERP:
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    return None


def _mapped_files() -> set[str]:
    files = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                path = fields[5].rstrip("\n")
                if not path.endswith(" (deleted)") and not path.startswith(("/dev/", "/memfd:")):
                    files.add(path)
    return files


def _link_chain(path: str) -> set[str]:
    # Every name met on the way from `path` to the file it finally names: lent as files, each
    # is that file, whichever of them the interpreter goes by.
    chain = set()
    for _hop in range(40):
        chain.add(path)
        if not os.path.islink(path):
            break
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return chain


@functools.cache
def needed_paths() -> tuple[str, ...]:
    """Host paths, as this process names them, that its interpreter needs: the executable and
    its venv's ``pyvenv.cfg``, the dynamic loader, the directories of every shared object it
    has mapped, and its import path."""
    wanted = _link_chain(os.path.abspath(sys.executable))
    config = os.path.join(sys.prefix, "pyvenv.cfg")
    if os.path.isfile(config):
        wanted.add(config)
    executable = os.path.realpath(sys.executable)
    loader = _elf_interpreter(executable)
    if loader:
        wanted |= _link_chain(loader)
    wanted |= {os.path.dirname(path) for path in _mapped_files() if path != executable}
    wanted |= {os.path.abspath(entry) for entry in sys.path
               if entry and os.path.exists(entry)}
    wanted -= _SYSTEM_DIRS
    # A path inside another one comes with it.
    kept: list[str] = []
    for path in sorted(wanted):
        if not any(path.startswith(parent.rstrip("/") + "/") for parent in kept):
            kept.append(path)
    return tuple(kept)


def exists_in(root: str, path: str) -> bool:
    """Whether ``path`` exists under ``root`` (e.g. ``/proc/PID/root``), following symlinks as
    the container would: an absolute target starts again at ``root``, never at the host's."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join([root, *resolved, part])
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > 40:
                return False
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return True


def missing_in(root: str) -> list[str]:
    """The needed paths that ``root`` lacks."""
    return [path for path in needed_paths() if not exists_in(root, path)]
