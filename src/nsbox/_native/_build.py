"""Build script: the cffi extension ``nsbox._native._nsbox`` and the ``nsbox-init`` program.

Used by setup.py at install time (API mode, out of line); needs only gcc and Python's headers.
"""

from __future__ import annotations

import os
from typing import Any

from cffi import FFI

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
INIT_BINARY_NAME = "nsbox-init"

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


def build_init_binary(compiler: Any, output: str, build_temp: str) -> None:
    """Compile csrc/init.c into a static executable at ``output`` (dynamic if static fails)."""
    objects = compiler.compile([_relative(os.path.join(CSRC, "init.c"))], output_dir=build_temp,
                               extra_postargs=["-O2", "-std=gnu11", *WARNINGS])
    out_dir, name = os.path.split(output)
    try:
        # Static: no dynamic loader work at each container start, and no libc needed inside.
        compiler.link_executable(objects, name, output_dir=out_dir,
                                 extra_postargs=["-static", "-s"])
    except Exception:
        compiler.link_executable(objects, name, output_dir=out_dir)


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
