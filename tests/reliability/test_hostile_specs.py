"""Hostile specs: random values of every type for every public spec field.

Whatever is thrown at a constructor, the only exceptions are ConfigError / UnsupportedError,
nothing hangs, and nothing is created (construction never touches the kernel).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsbox
from nsbox.cgroup import CGroup
from nsbox.errors import ConfigError, UnsupportedError

EXAMPLES = int(os.environ.get("NSBOX_HYPOTHESIS_EXAMPLES", "150"))
ALLOWED = (ConfigError, UnsupportedError)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80),
    st.binary(max_size=40), st.sampled_from(["", "max", "0", "-1", "1.5G", "12ZB", "../..",
                                             "/", "\0", "nsbox", "a" * 300, "0-1,3", "é"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=8)

NAMESPACE_FIELDS = ["user", "pid", "net", "uts", "ipc", "mount", "cgroup", "time", "uid_map",
                    "gid_map", "monotonic_offset", "boottime_offset"]
CONTAINER_FIELDS = ["hostname", "domainname", "env", "cwd", "user", "group", "groups",
                    "rlimits"]
CGROUP_FIELDS = ["memory_max", "memory_high", "swap_max", "cpu_max", "cpu_weight",
                 "cpuset_cpus", "cpuset_mems", "pids_max", "io_weight", "io_max", "parent",
                 "name", "teardown_timeout"]

hostile = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def _only_allowed(make: Any) -> None:
    with contextlib.suppress(*ALLOWED):
        make()


@hostile
@given(st.dictionaries(st.sampled_from(NAMESPACE_FIELDS), values, max_size=4))
def test_namespaces(fields: dict[str, Any]) -> None:
    """Namespaces(**random) raises only ConfigError/UnsupportedError."""
    _only_allowed(lambda: nsbox.Namespaces(**fields))


@hostile
@given(st.tuples(values, values, values), st.lists(st.text(max_size=12), max_size=3))
def test_id_maps_and_joins(args: tuple[Any, Any, Any], names: list[str]) -> None:
    """IdMap, Join and Namespaces.of with random values raise only ConfigError."""
    _only_allowed(lambda: nsbox.IdMap(*args))
    _only_allowed(lambda: nsbox.Join(args[0]))
    _only_allowed(lambda: nsbox.Namespaces.of(*names))


@hostile
@given(st.dictionaries(st.sampled_from(CONTAINER_FIELDS), values, max_size=4))
def test_container_options(fields: dict[str, Any]) -> None:
    """Container(**random) raises only ConfigError/UnsupportedError and starts nothing."""
    _only_allowed(lambda: nsbox.Container(**fields))


@hostile
@given(st.dictionaries(st.sampled_from(CGROUP_FIELDS), values, max_size=4))
def test_cgroup_limits(fields: dict[str, Any]) -> None:
    """CGroup(**random) raises only ConfigError/UnsupportedError and creates nothing."""
    _only_allowed(lambda: CGroup(**fields))


@pytest.fixture(scope="module")
def live() -> Any:
    with nsbox.Container() as c:
        yield c


@hostile
@given(values, st.dictionaries(st.sampled_from(["env", "cwd", "user", "group"]), values,
                               max_size=3))
def test_run_arguments(live: nsbox.Container, args: Any, options: dict[str, Any]) -> None:
    """run(random args, random options) raises only ConfigError before starting anything,
    or runs (and fails like a program would)."""
    try:
        live.run(args, timeout=10, **options)
    except ALLOWED:
        pass
    except (FileNotFoundError, PermissionError, nsbox.SpawnError):
        pass  # a well-formed request for a program that is not there


@hostile
@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from(
    ["run", "check", "gc", "--", "--share", "net", "-e", "A=b", "--cwd", "-t", "x"])),
    max_size=6))
def test_cli_arguments(argv: list[str]) -> None:
    """Random command lines end in an exit status, never an unexpected exception."""
    from nsbox.cli import main

    if argv[:1] == ["gc"] and "--dry-run" not in argv:
        argv = [*argv, "--dry-run"]  # never release anything from a fuzz run
    if argv[:1] == ["run"] and ("-t" in argv or "--tty" in argv):
        return  # a tty session would attach the test's terminal
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    assert isinstance(code, int)


ROOTFS_FIELDS = ["proc", "dev", "sys", "mounts", "masked_paths", "readonly_paths", "readonly"]
SECURITY_FIELDS = ["cap_add", "cap_drop", "seccomp", "no_new_privs", "oom_score_adj",
                   "protect_system_paths", "rootfs"]


@hostile
@given(values, values, st.dictionaries(st.sampled_from(ROOTFS_FIELDS), values, max_size=3))
def test_rootfs_specs(lower: Any, upper: Any, fields: dict[str, Any]) -> None:
    """OverlayRootfs, PivotRoot, Bind and Tmpfs with random values raise only ConfigError or
    UnsupportedError, and create nothing (construction does not touch the filesystem)."""
    _only_allowed(lambda: nsbox.OverlayRootfs(lower, upper=upper))
    _only_allowed(lambda: nsbox.PivotRoot(lower, **fields))
    _only_allowed(lambda: nsbox.Bind(lower, upper))
    _only_allowed(lambda: nsbox.Tmpfs(lower, size=upper))


@hostile
@given(st.dictionaries(st.sampled_from(SECURITY_FIELDS), values, max_size=3), values)
def test_security_specs(fields: dict[str, Any], profile: Any) -> None:
    """Container security options and SeccompProfile.from_oci with random values raise only
    ConfigError or UnsupportedError."""
    _only_allowed(lambda: nsbox.Container(**fields))
    _only_allowed(lambda: nsbox.SeccompProfile.from_oci(profile))
