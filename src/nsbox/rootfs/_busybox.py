"""A minimal root filesystem from a static busybox, for examples, tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

from ..errors import ConfigError, UnsupportedError

_PT_INTERP = 3


def _is_static(path: str) -> bool:
    """Whether the ELF executable at ``path`` has no program interpreter (a dynamic loader)."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only; others: ask the loader
            return False
        endian = "<" if header[5] == 1 else ">"
        phoff, = struct.unpack_from(endian + "Q", header, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", header, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(endian + "I", f.read(4))
            if p_type == _PT_INTERP:
                return False
    return True


def make_busybox_tree(dest: str | os.PathLike[str], busybox: str | None = None) -> str:
    """Build a minimal root filesystem at ``dest`` (a new or empty directory); return its path.

    It holds a static busybox as ``/bin/busybox`` with a link for each of its applets in
    ``/bin`` (``sh``, ``ls``, ``cat``...), an ``/etc/passwd`` and ``/etc/group`` with root and
    nobody, and the empty directories a container mounts on.

    Args:
        busybox: the busybox to copy (default: ``busybox`` on PATH, which must be static:
            Debian's ``busybox-static``).

    Raises:
        UnsupportedError: no busybox, or a dynamically linked one.
        ConfigError: ``dest`` exists and is not an empty directory.
    """
    program = busybox or shutil.which("busybox")
    if program is None:
        raise UnsupportedError("no busybox on PATH: install a static one "
                               "(Debian: apt-get install busybox-static)")
    if not _is_static(program):
        raise UnsupportedError(f"{program} is dynamically linked and would not run alone in a "
                               "root filesystem: install busybox-static")
    root = os.path.abspath(os.fspath(dest))
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise ConfigError(f"{root!r} exists and is not an empty directory")
    applets = subprocess.run([program, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for name, mode in (("", 0o755), ("bin", 0o755), ("etc", 0o755), ("root", 0o700),
                       ("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                       ("run", 0o755)):
        path = os.path.join(root, name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    shutil.copy(program, os.path.join(root, "bin", "busybox"))
    os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return root
