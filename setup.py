"""Build hooks that pyproject.toml cannot express: the cffi extension and the init binary."""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src", "nsbox", "_native"))
from _build import INIT_BINARY_NAME, build_init_binary  # noqa: E402 - after the path


class BuildExtWithInit(build_ext):
    """Also link the container's PID 1 as a standalone executable beside the extension.

    The init runs in every container for its whole life, so it must not be a fork of the
    (large) Python process: it is a tiny static program that the C child executes.
    """

    def run(self) -> None:
        super().run()
        ext_path = self.get_ext_fullpath("nsbox._native._nsbox")
        build_init_binary(self.compiler, os.path.join(os.path.dirname(ext_path), INIT_BINARY_NAME),
                          build_temp=self.build_temp)


setup(
    cffi_modules=["src/nsbox/_native/_build.py:ffibuilder",
                  "src/nsbox/security/_ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithInit},
)
