"""Spec validation, without privileges or kernel calls: pure Python logic."""

from __future__ import annotations

import os

import pytest

import nsbox
from nsbox.namespaces import CLONE_FLAGS


def test_default_namespaces_are_new_except_time() -> None:
    """By default every namespace but time is new (user only when not root)."""
    ns = nsbox.Namespaces()
    expected = {"pid", "net", "uts", "ipc", "mount", "cgroup"} | (
        {"user"} if os.geteuid() != 0 else set())
    assert ns.new_flags() == sum(CLONE_FLAGS[n] for n in expected)


def test_of_names_exactly_the_new_namespaces() -> None:
    """Namespaces.of creates the named kinds and shares the others."""
    ns = nsbox.Namespaces.of("pid", "uts")
    assert ns.net is False and ns.pid is True and ns.uts is True


def test_joins_come_user_first() -> None:
    """Joined namespaces are listed with the user namespace first."""
    ns = nsbox.Namespaces(net=nsbox.Join(1), user=nsbox.Join("/proc/1/ns/user"))
    assert next(name for name, _ in ns.joins()) == "user"
    assert nsbox.Join(42).path("mount") == "/proc/42/ns/mnt"


def test_id_maps_render_as_the_kernel_wants() -> None:
    """uid/gid maps render as 'inside outside count' lines."""
    ns = nsbox.Namespaces(user=True, uid_map=[nsbox.IdMap(0, os.geteuid())],
                          gid_map=[nsbox.IdMap(0, os.getegid())])
    uid_map, _, deny = ns.id_maps()
    assert uid_map == f"0 {os.geteuid()} 1\n".encode()
    assert deny is (os.geteuid() != 0)


def test_time_offsets_render_with_nanoseconds() -> None:
    """Clock offsets become 'clock seconds nanoseconds' lines."""
    ns = nsbox.Namespaces(time=True, monotonic_offset=1.5, boottime_offset=-2.25)
    assert ns.timens_offsets() == b"monotonic 1 500000000\nboottime -3 750000000\n"


@pytest.mark.parametrize("bad", [
    {"uid_map": nsbox.IdMap(0, 0)},
    {"uid_map": []},
    {"uid_map": "0 0 1"},
    {"pid": 1},
    {"time": "yes"},
    {"monotonic_offset": "soon", "time": True},
    {"boottime_offset": 2**50, "time": True},
])
def test_invalid_namespaces(bad: dict[str, object]) -> None:
    """Wrong types and values raise ConfigError naming the field."""
    with pytest.raises(nsbox.ConfigError):
        nsbox.Namespaces(user=True, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [(1, 2, 0), (2**32, 0, 1), (0, 2**32 - 10, 20), (True, 0, 1)])
def test_invalid_id_maps(bad: tuple[int, int, int]) -> None:
    """Ids out of range, zero counts and bools are refused."""
    with pytest.raises(nsbox.ConfigError):
        nsbox.IdMap(*bad)


def test_config_error_is_a_value_error() -> None:
    """ConfigError can be caught as ValueError."""
    assert issubclass(nsbox.ConfigError, ValueError)


def test_container_environment_defaults() -> None:
    """The environment is clean: PATH, HOME, HOSTNAME and `container`, plus the user's."""
    options = nsbox.ContainerOptions(env={"A": "1"}, user=1000)
    env = options.environment({"B": "2"})
    assert env["HOME"] == "/" and env["A"] == "1" and env["B"] == "2"
    assert env["PATH"].startswith("/usr/local/sbin") and env["container"] == "nsbox"


def test_rlimits_by_name() -> None:
    """rlimits map names to resource numbers, with soft and hard."""
    import resource

    options = nsbox.ContainerOptions(rlimits={"nofile": (10, 20), "core": 0})
    assert sorted(options.rlimit_triples()) == sorted(
        [(resource.RLIMIT_NOFILE, 10, 20), (resource.RLIMIT_CORE, 0, 0)])
