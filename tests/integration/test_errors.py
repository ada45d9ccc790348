"""Failures before exec and bad input become precise exceptions and change nothing."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

import pytest

import nsbox
from tests.conftest import HostState


def test_missing_program_is_file_not_found(container: nsbox.Container) -> None:
    """A program that does not exist raises FileNotFoundError naming it, like subprocess."""
    with pytest.raises(FileNotFoundError) as info:
        container.run(["no-such-program-nsbox"])
    assert isinstance(info.value, nsbox.SpawnError)
    assert info.value.step == "exec"
    assert info.value.filename == "no-such-program-nsbox"
    with pytest.raises(FileNotFoundError):
        container.run(["/no/such/path"])


def test_not_executable_is_permission_error(container: nsbox.Container,
                                            tmp_path: os.PathLike[str]) -> None:
    """A file without the execute bit raises PermissionError with its path."""
    script = os.path.join(tmp_path, "script")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(script, stat.S_IRUSR)
    with nsbox.Container(rootfs=None) as c, pytest.raises(PermissionError) as info:
        c.run([script])  # the host's filesystem, where the script is
    assert info.value.errno == errno.EACCES and info.value.filename == script


def test_failed_step_is_named(container: nsbox.Container) -> None:
    """A setup step that fails is named by SpawnError.step, with the path it worked on."""
    with pytest.raises(nsbox.SpawnError) as info:
        container.run(["true"], cwd="/no/such/dir")
    assert info.value.step == "chdir"
    assert info.value.detail == "/no/such/dir"
    assert "chdir failed" in str(info.value)


def test_a_failed_spawn_leaves_nothing(host_state: HostState) -> None:
    """After a failed exec, no child, fd or mount is left behind."""
    with nsbox.Container() as c, pytest.raises(FileNotFoundError):
        c.run(["no-such-program-nsbox"])


BAD_INPUTS: list[tuple[str, Callable[[], Any]]] = [
    ("unknown namespace", lambda: nsbox.Namespaces.of("pid", "bogus")),
    ("namespace value", lambda: nsbox.Namespaces(pid="yes")),  # type: ignore[arg-type]
    ("overlapping uid map", lambda: nsbox.Namespaces(
        user=True, uid_map=[nsbox.IdMap(0, 1000, 10), nsbox.IdMap(5, 2000, 10)])),
    ("negative id", lambda: nsbox.IdMap(-1, 0)),
    ("offset without time ns", lambda: nsbox.Namespaces(monotonic_offset=5)),
    ("hostname too long", lambda: nsbox.Container(hostname="x" * 65)),
    ("env with NUL", lambda: nsbox.Container(env={"A": "b\0c"})),
    ("env name with =", lambda: nsbox.Container(env={"A=B": "c"})),
    ("relative cwd", lambda: nsbox.Container(cwd="tmp")),
    ("unknown rlimit", lambda: nsbox.Container(rlimits={"bananas": 1})),
    ("soft above hard", lambda: nsbox.Container(rlimits={"nofile": (10, 5)})),
    ("bad part", lambda: nsbox.Container("not a part")),
    ("bad join", lambda: nsbox.Join(-5)),
]


@pytest.mark.parametrize(("what", "make"), BAD_INPUTS, ids=[w for w, _ in BAD_INPUTS])
def test_bad_specs_raise_config_error(what: str, make: Callable[[], Any],
                                      host_state: HostState) -> None:
    """Each invalid spec raises ConfigError (also a ValueError) before touching the kernel."""
    with pytest.raises(nsbox.ConfigError):
        make()


@pytest.mark.parametrize("args", [[], "ls -l", ["ls", "a\0b"], [""]])
def test_bad_args_raise_config_error(container: nsbox.Container, args: Any) -> None:
    """Empty args, a string instead of a list, NUL bytes: ConfigError, nothing started."""
    before = HostState()
    with pytest.raises(nsbox.ConfigError):
        container.run(args)
    before.assert_unchanged()


def test_bad_run_env_raises_config_error(container: nsbox.Container) -> None:
    """A per-run env with NUL bytes is refused before anything starts."""
    with pytest.raises(nsbox.ConfigError):
        container.run(["true"], env={"A": "\0"})


def test_config_error_message_says_what_is_accepted() -> None:
    """The message names the field and what it accepts."""
    with pytest.raises(nsbox.ConfigError, match="1 to 64 bytes"):
        nsbox.Container(hostname="")


def test_container_is_single_use() -> None:
    """Entering a container twice raises LifecycleError; so does spawning after exit."""
    c = nsbox.Container()
    with c:
        pass
    with pytest.raises(nsbox.LifecycleError):
        c.__enter__()
    with pytest.raises(nsbox.LifecycleError):
        c.run(["true"])
