"""The escape suite's harness: run an attack inside a default container, as root or rootless.

An attack is a Python snippet run by Debian's ``/usr/bin/python3`` inside the container (the
container has the host's files: no root filesystem of its own yet). It calls syscalls through
ctypes, by name (numbers resolved here with libseccomp, so nothing is x86-only), and prints one
JSON value as its last line. ``attack(snippet)`` returns that value; the container is started
in-process as root, or by the unprivileged user through ``run_rootless``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import nsbox
from nsbox.security import _libseccomp
from tests.conftest import HostState, run_rootless

#: Readable and executable by the unprivileged user too, inside and outside.
PY = "/usr/bin/python3"

SYSCALLS = (
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "name_to_handle_at",
    "open_by_handle_at", "mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "kill",
    "mknodat", "clone", "clone3", "chroot", "userfaultfd", "personality", "mkdirat", "reboot",
    "getcpu",
)

PRELUDE = '''
import ctypes, errno, json, os, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

def _arg(a):
    if a is None:
        return ctypes.c_void_p(None)
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    return ctypes.byref(a)

def sc(name, *args):
    """errno of the syscall `name` (0 if it succeeded)."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(NR[name]), *[_arg(a) for a in args])
    return ctypes.get_errno() if rc == -1 else 0

def oserr(fn, *args):
    """errno of a Python call (0 if it succeeded)."""
    try:
        fn(*args)
        return 0
    except OSError as exc:
        return exc.errno
'''


def syscall_numbers() -> dict[str, int]:
    """This machine's numbers of the syscalls the attacks make."""
    library = _libseccomp.load()
    return {name: int(library.lib.seccomp_syscall_resolve_name(name.encode()))
            for name in SYSCALLS}


def attack_code(snippet: str) -> str:
    """The whole program run inside: the prelude, the numbers, the snippet."""
    return (PRELUDE + f"NR = {json.dumps(syscall_numbers())}\n"
            + textwrap.dedent(snippet))


Attack = Callable[..., Any]


class Expr:
    """A container option given as Python source over ``nsbox``, for what has no literal
    repr (a SeccompProfile): evaluated here as root, written into the driver rootless."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __repr__(self) -> str:
        return self.source

    def value(self) -> Any:
        return eval(self.source, {"nsbox": nsbox})


@pytest.fixture(params=["root", "rootless"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each attack runs twice: as root, and as an unprivileged user (a user namespace)."""
    return str(request.param)


def run_attack(mode: str, rootless_python: Sequence[str], snippet: str,
               options: dict[str, Any] | None = None) -> Any:
    """Run ``snippet`` in a container with ``options`` (default: the defaults) in ``mode``."""
    code = attack_code(snippet)
    options = options or {}
    if mode == "root":
        values = {k: v.value() if isinstance(v, Expr) else v for k, v in options.items()}
        with nsbox.Container(**values) as c:
            result = c.run([PY, "-c", code], text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])
    driver = f"""
        import json, nsbox
        with nsbox.Container(**{options!r}) as c:
            r = c.run([{PY!r}, "-c", {code!r}], text=True)
        print(json.dumps({{"rc": r.returncode, "out": r.stdout, "err": r.stderr}}))
    """
    out = run_rootless(list(rootless_python), driver)
    assert out["rc"] == 0, out["err"]
    return json.loads(out["out"].strip().splitlines()[-1])


@pytest.fixture
def attack(mode: str, rootless_python: list[str]) -> Iterator[Attack]:
    """``attack(snippet, **container_options)``: the snippet's JSON result, from inside a
    container of ``mode``; afterwards the host has no new process, fd or mount of ours."""
    state = HostState()

    def run(snippet: str, **options: Any) -> Any:
        return run_attack(mode, rootless_python, snippet, options)

    yield run
    state.assert_unchanged()
