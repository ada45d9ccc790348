"""Build script: the cffi extension ``nsbox._native._nsbox`` and the ``nsbox-init`` program.

Used by setup.py at install time (API mode, out of line); needs only gcc and Python's headers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cffi import FFI
from setuptools.errors import CompileError, LinkError

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
INIT_BINARY_NAME = "nsbox-init"

log = logging.getLogger(__name__)

# Kernel constants the C compiler fills in (cffi's "..." values), so they never go stale.
KERNEL_CONSTANTS = """
#define CLONE_NEWNS ...
#define CLONE_NEWUTS ...
#define CLONE_NEWIPC ...
#define CLONE_NEWUSER ...
#define CLONE_NEWPID ...
#define CLONE_NEWNET ...
#define CLONE_NEWCGROUP ...
#define NSBOX_CLONE_NEWTIME ...
"""

WARNINGS = ["-Wall", "-Wextra", "-Wno-unused-parameter"]
INIT_CFLAGS = ["-O2", "-std=gnu11", *WARNINGS]


def _relative(path: str) -> str:
    # setuptools wants source paths relative to the project root it runs from.
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def make_ffibuilder() -> FFI:
    """The FFI for the extension: nsbox.h is the cdef, our C files are the sources."""
    builder = FFI()
    with open(os.path.join(CSRC, "nsbox.h")) as header:
        builder.cdef(header.read() + KERNEL_CONSTANTS)
    builder.set_source(
        "nsbox._native._nsbox",
        '#include "internal.h"\n#include <sched.h>\n',
        sources=[_relative(os.path.join(CSRC, name))
                 for name in ("spawn.c", "child.c", "security.c", "mounts.c")],
        include_dirs=[_relative(CSRC)],
        extra_compile_args=["-O2", "-std=gnu11", *WARNINGS],
    )
    return builder


def _init_source() -> str:
    return _relative(os.path.join(CSRC, "init.c"))


def build_init_binary(compiler: Any, output: str, build_temp: str) -> None:
    """Compile csrc/init.c into a static executable at ``output``: without libc where
    csrc/init_syscalls.h knows the architecture (x86_64, aarch64), else against glibc."""
    try:
        _build_init_without_libc(compiler, output, build_temp)
    except CompileError:  # init_syscalls.h stops the compiler on other architectures
        log.warning("nsbox-init: no raw syscalls for this architecture, linking against glibc")
        _build_init_with_glibc(compiler, output, build_temp)


def _build_init_without_libc(compiler: Any, output: str, build_temp: str) -> None:
    # Static glibc's own start-up costs every container 0.6-0.9 ms in a VM (its cpuid probes
    # trap to the hypervisor); the init's whole work is a few syscalls. No stack protector:
    # its canary lives in thread-local storage, which only libc sets up.
    objects = compiler.compile([_init_source()], output_dir=build_temp, extra_postargs=[
        *INIT_CFLAGS, "-ffreestanding", "-fno-stack-protector"])
    out_dir, name = os.path.split(output)
    compiler.link_executable(objects, name, output_dir=out_dir,
                             extra_postargs=["-nostdlib", "-static", "-s"])


def _build_init_with_glibc(compiler: Any, output: str, build_temp: str) -> None:
    objects = compiler.compile([_init_source()], output_dir=build_temp,
                               macros=[("NSBOX_INIT_LIBC", None)], extra_postargs=INIT_CFLAGS)
    out_dir, name = os.path.split(output)
    try:
        # Static: no dynamic loader work at each container start, and no libc needed inside.
        compiler.link_executable(objects, name, output_dir=out_dir,
                                 extra_postargs=["-static", "-s"])
    except LinkError:
        compiler.link_executable(objects, name, output_dir=out_dir)


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
