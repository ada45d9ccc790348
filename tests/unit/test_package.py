"""The package surface: exports, the compiled extension, the command line parser."""

from __future__ import annotations

import subprocess
import sys

import nsbox
from nsbox import _native


def test_all_lists_the_public_names() -> None:
    """__all__ matches the public names of the package, sorted, each importable."""
    public = {name for name in dir(nsbox) if not name.startswith("_") and name[0].isupper()}
    assert public <= set(nsbox.__all__)
    for name in nsbox.__all__:
        assert hasattr(nsbox, name)


def test_extension_steps_have_names() -> None:
    """Every step number the C side reports has a name; unknown numbers say so."""
    assert _native.step_name(1) == "signals"
    assert _native.step_name(10_000) == "unknown"


def test_init_program_is_static_and_sealed() -> None:
    """The init program is built beside the extension and served from a sealed memfd."""
    import fcntl
    import os

    assert os.access(_native.INIT_BINARY, os.X_OK)
    fd = _native.init_program_fd()
    assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
    assert fd == _native.init_program_fd()


def test_cli_usage_error_without_command() -> None:
    """`nsbox run` without a command exits 2 with a message."""
    proc = subprocess.run([sys.executable, "-m", "nsbox", "run"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2 and "give a command" in proc.stderr


def test_import_loads_each_part_when_first_used() -> None:
    """`import nsbox` imports none of its modules; a container without a cgroup never loads
    nsbox.cgroup (what `nsbox run` pays for at start); subpackages stay reachable."""
    code = ("import sys, nsbox\n"
            "print(sorted(m for m in sys.modules if m.startswith('nsbox.')))\n"
            "nsbox.Container, nsbox.Namespaces, nsbox.ConfigError\n"
            "print('nsbox.cgroup' in sys.modules)\n"
            "print(nsbox.cgroup.detect is nsbox.cgroup._detect.detect)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["[]", "False", "True"]
    assert set(nsbox._SOURCE) == set(nsbox.__all__) - {"__version__"}
    assert not hasattr(nsbox, "no_such_name")
