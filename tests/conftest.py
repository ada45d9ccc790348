"""Shared fixtures: leak checks around every integration test, and the rootless runner."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nsbox
from nsbox import _native

UNPRIVILEGED_UID = 65534


def _children() -> set[int]:
    kids: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            kids.update(int(p) for p in f.read().split())
    return kids


def _fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the fd of the listing itself
            fds.add(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
    return fds


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split(" - ")[0].split(" ", 4)[4] for line in f)


class HostState:
    """What nsbox must leave as it found it: our children, our fds, the mount table."""

    def __init__(self) -> None:
        self.children = _children()
        self.fds = _fds()
        self.mounts = _mounts()

    def assert_unchanged(self) -> None:
        after = HostState()
        assert after.children == self.children, "child processes left behind"
        assert after.fds == self.fds, "file descriptors left open"
        assert after.mounts == self.mounts, "host mount table changed"


@pytest.fixture(scope="session", autouse=True)
def _warm_native() -> None:
    # The sealed copy of the init program is made once per process and kept: not a leak.
    _native.init_program_fd()


@pytest.fixture(autouse=True)
def _private_tempdir(monkeypatch: pytest.MonkeyPatch,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """nsbox's temporary directories go to a directory of this test's own, so that checks for
    leftovers see only what this test made, not another process's. Like /tmp it is
    world-writable and sticky, and reachable by ids a container maps root to."""
    tmp_path_factory.getbasetemp()  # pytest's own stays where it is
    private = tempfile.mkdtemp(prefix="nsbox-tests-", dir="/tmp")
    os.chmod(private, 0o1777)
    monkeypatch.setattr(tempfile, "tempdir", private)
    yield
    shutil.rmtree(private, ignore_errors=True)


@pytest.fixture
def host_state() -> Iterator[HostState]:
    """The host's state before the test; asserted unchanged after it."""
    state = HostState()
    yield state
    state.assert_unchanged()


@pytest.fixture
def container() -> Iterator[nsbox.Container]:
    """A running container with the default namespaces; checks that nothing leaks."""
    state = HostState()
    with nsbox.Container() as c:
        yield c
    state.assert_unchanged()


def _readable_by(uid: int, path: str) -> bool:
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                            "test", "-r", path], check=False)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def rootless_python() -> Iterator[list[str]]:
    """A command that runs Python as an unprivileged user with nsbox importable.

    A checkout may live below /root (mode 700), so the installed package and its dependencies
    are copied to a world-readable temporary directory, run by the venv's base interpreter
    (Debian's python3, which that user can execute).
    """
    if os.geteuid() != 0:
        yield [sys.executable]
        return
    base = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}",
            "--clear-groups", "--inh-caps=-all", "env", "-i", "PATH=/usr/bin:/bin"]
    interpreter = os.path.realpath(sys.executable)
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(nsbox.__file__)))
    if not _readable_by(UNPRIVILEGED_UID, interpreter):
        pytest.fail(f"{interpreter} is not readable by uid {UNPRIVILEGED_UID}: create the venv "
                    "from Debian's /usr/bin/python3 (see README)")
    import attrs
    import cffi
    import typing_extensions

    copy = Path(tempfile.mkdtemp(prefix="nsbox-rootless-", dir="/tmp"))
    os.chmod(copy, 0o755)
    roots = {package_dir, os.path.dirname(os.path.dirname(attrs.__file__)),
             os.path.dirname(os.path.dirname(cffi.__file__)),
             os.path.dirname(typing_extensions.__file__)}
    for name in ("nsbox", "attr", "attrs", "cffi", "typing_extensions.py"):
        for root in roots:
            src = os.path.join(root, name)
            if os.path.exists(src) and not os.path.exists(copy / name):
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, copy / name)
    for backend in Path(os.path.dirname(os.path.dirname(cffi.__file__))).glob("_cffi_backend*"):
        shutil.copy2(backend, copy / backend.name)
    subprocess.run(["chmod", "-R", "a+rX", str(copy)], check=True)
    yield [*base, f"PYTHONPATH={copy}", interpreter, "-s"]
    shutil.rmtree(copy)


def run_rootless(rootless_python: list[str], code: str, timeout: float = 60) -> Any:
    """Run ``code`` as the unprivileged user; it must print one JSON value as its last line."""
    proc = subprocess.run([*rootless_python, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"rootless run failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
