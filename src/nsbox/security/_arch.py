"""This machine's architecture, as libseccomp and as Docker's profiles (Go) name it."""

from __future__ import annotations

import functools
import os
import platform

_MACHINE = {"x86_64": "x86_64", "amd64": "x86_64", "i386": "x86", "i686": "x86",
            "aarch64": "aarch64", "arm64": "aarch64", "armv7l": "arm", "armv6l": "arm",
            "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
            "mips64": "mips64", "loongarch64": "loongarch64"}
_GO = {"x86_64": "amd64", "x86": "386", "aarch64": "arm64", "arm": "arm", "ppc64le": "ppc64le",
       "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64",
       "loongarch64": "loong64"}
#: The 32-bit (and x32) ABIs the kernel of each architecture also runs, as Docker's archMap.
SUB_ARCHITECTURES = {"x86_64": ("x86",), "aarch64": ("arm",), "s390x": ("s390",),
                     "mips64": ("mips", "mips64n32")}


@functools.cache
def native_arch() -> str:
    """libseccomp's name of this machine's architecture (``x86_64``, ``aarch64``, ...)."""
    machine = platform.machine()
    return _MACHINE.get(machine, machine)


def go_arch() -> str:
    """The same, as Docker's ``includes.arches`` names it (``amd64``, ``arm64``, ...)."""
    return _GO.get(native_arch(), native_arch())


@functools.cache
def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    parts = os.uname().release.split(".")
    digits = ["".join(c for c in p if c.isdigit()) or "0" for p in parts[:2]]
    return int(digits[0]), int(digits[1]) if len(digits) > 1 else 0
