"""Unit tests for CGroup's construction-time validation and its unentered lifecycle.

Nothing here touches a cgroup: every check happens before the kernel is involved.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath
from typing import Any

import attrs
import pytest

import nsbox.cgroup
from nsbox.cgroup import CGroup, CpuMax, IOMax, Limits
from nsbox.cgroup._spec import LIMIT_NAMES, _online
from nsbox.errors import ConfigError, LifecycleError


def test_exports() -> None:
    """The package exports exactly its documented public names."""
    assert sorted(nsbox.cgroup.__all__) == sorted(
        ["CGroup", "CGroupInfo", "CGroupStats", "CpuMax", "IOMax", "Limits", "Placement",
         "Pressure", "PressureLine", "detect", "format_size", "parse_size"])
    for name in nsbox.cgroup.__all__:
        assert hasattr(nsbox.cgroup, name)


def test_limits_are_normalised_on_construction() -> None:
    """Human units and shorthand become kernel units when the CGroup is built."""
    cg = CGroup(memory_max="256M", memory_high="1.5G", swap_max=0, cpu_max=0.5,
                cpu_weight=200, pids_max=32, cpuset_cpus="0", cpuset_mems="0")
    assert cg.memory_max == 256 * 2**20
    assert cg.memory_high == 3 * 2**29
    assert cg.swap_max == 0
    assert cg.cpu_max == CpuMax(quota_us=50_000, period_us=100_000)
    assert cg.cpu_max.cpus == 0.5
    assert cg.cpu_weight == 200
    assert cg.pids_max == 32
    assert cg.cpuset_cpus == "0"
    assert cg.limits.given() == ("memory_max", "memory_high", "swap_max", "cpu_max",
                                 "cpu_weight", "cpuset_cpus", "cpuset_mems", "pids_max")


def test_defaults_are_unlimited() -> None:
    """A CGroup with no arguments sets no limit at all."""
    cg = CGroup()
    assert cg.limits == Limits()
    assert cg.limits.given() == ()
    assert all(getattr(cg, n) in (None, {}) for n in LIMIT_NAMES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.2, CpuMax(20_000, 100_000)), (2, CpuMax(200_000, 100_000)),
     ((50_000, 200_000), CpuMax(50_000, 200_000)), (CpuMax(5000, 10_000), CpuMax(5000, 10_000)),
     ("max", None), (None, None)],
)
def test_cpu_max_forms(value: Any, expected: CpuMax | None) -> None:
    """cpu_max accepts CPUs as a number, a (quota, period) tuple, a CpuMax, or unlimited."""
    assert CGroup(cpu_max=value).cpu_max == expected


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"memory_max": "12ZB"}, "units K, M, G"),
        ({"memory_max": -1}, "negative"),
        ({"memory_max": True}, "is not a size"),
        ({"memory_high": "lots"}, "is not a size"),
        ({"swap_max": 1.5}, "is not a size"),
        ({"cpu_max": 0}, "positive"),
        ({"cpu_max": -0.5}, "positive"),
        ({"cpu_max": True}, "not accepted"),
        ({"cpu_max": float("nan")}, "positive"),
        ({"cpu_max": 0.001}, "quota"),
        ({"cpu_max": (1000, 10)}, "period"),
        ({"cpu_max": (1000,)}, "quota_us, period_us"),
        ({"cpu_max": "half"}, "not accepted"),
        ({"cpu_weight": 0}, "1 to 10000"),
        ({"cpu_weight": 10001}, "1 to 10000"),
        ({"cpu_weight": 1.0}, "1 to 10000"),
        ({"cpu_weight": True}, "1 to 10000"),
        ({"pids_max": -1}, "negative"),
        ({"pids_max": "many"}, "int >= 0"),
        ({"pids_max": False}, "int >= 0"),
        ({"cpuset_cpus": "0-"}, "0-1,3"),
        ({"cpuset_cpus": 0}, "not a string"),
        ({"cpuset_mems": "x"}, "0-1,3"),
        ({"io_weight": 0}, "1 to 10000"),
        ({"io_max": {"8:0": {"rbps": "fast"}}}, "is not a size"),
        ({"io_max": {"8:0": {"bps": 1}}}, "unknown keys"),
        ({"io_max": {"8:0": {"riops": 0}}}, "iops"),
        ({"io_max": {"8:0": {"wbps": 0}}}, "> 0"),
        ({"io_max": {"sda": {"wbps": 1}}}, "not 'MAJ:MIN'"),
        ({"io_max": {"/dev/null": {"wbps": 1}}}, "not a block device"),
        ({"io_max": ["8:0"]}, "mapping"),
        ({"parent": "../etc"}, "leaves the cgroup hierarchy"),
        ({"parent": "nsbox/../../x"}, "leaves the cgroup hierarchy"),
        ({"parent": 3}, "relative to the cgroup hierarchy root"),
        ({"name": "a/b"}, "letters, digits"),
        ({"name": ""}, "letters, digits"),
        ({"name": ".."}, "letters, digits"),
        ({"teardown_timeout": 0}, "positive"),
    ],
)
def test_bad_input_raises_config_error(kwargs: dict[str, Any], fragment: str) -> None:
    """Every invalid limit raises ConfigError on construction, with a message saying why."""
    with pytest.raises(ConfigError, match=None) as info:
        CGroup(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cpuset_rejects_cpus_this_machine_lacks() -> None:
    """A CPU beyond the online ones is refused on construction."""
    online = _online("cpu")
    if online is None:
        pytest.skip("/sys/devices/system/cpu/online is not readable here")
    missing = max(online) + 1
    with pytest.raises(ConfigError, match=f"CPU {missing} does not exist"):
        CGroup(cpuset_cpus=f"0,{missing}")


def test_cpuset_is_normalised() -> None:
    """cpuset lists are stored in canonical form."""
    online = _online("cpu") or frozenset({0})
    text = ",".join(str(c) for c in sorted(online, reverse=True))
    assert CGroup(cpuset_cpus=text).cpuset_cpus == nsbox.cgroup._units.format_cpu_list(online)


def test_io_max_resolves_devices() -> None:
    """io_max keys become MAJ:MIN, block device paths included; values become IOMax."""
    cg = CGroup(io_max={"8:16": {"rbps": "1M", "wiops": 100}})
    assert dict(cg.io_max) == {"8:16": IOMax(rbps=2**20, wiops=100)}
    block = next((f"/dev/{d}" for d in sorted(os.listdir("/sys/block"))
                  if os.path.exists(f"/dev/{d}")
                  and stat.S_ISBLK(os.stat(f"/dev/{d}").st_mode)), None)
    if block is not None:
        st = os.stat(block)
        key = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        assert set(CGroup(io_max={block: IOMax(wbps="10M")}).io_max) == {key}


def test_parent_path_is_normalised() -> None:
    """A parent string is kept as an absolute path relative to the hierarchy root."""
    assert CGroup(parent="nsbox/inner/").parent == PurePosixPath("/nsbox/inner")
    assert CGroup(parent="/system.slice").parent == PurePosixPath("/system.slice")


def test_limits_cannot_be_assigned_directly() -> None:
    """Assigning a limit attribute is refused, pointing at set(), so no change goes unapplied."""
    cg = CGroup(memory_max="1G")
    with pytest.raises(AttributeError, match="set"):
        cg.memory_max = 5


def test_set_before_enter_updates_the_spec() -> None:
    """set() on an unentered CGroup validates and records the new limits."""
    cg = CGroup(memory_max="1G")
    cg.set(memory_max="128M", pids_max=10)
    assert cg.memory_max == 128 * 2**20
    assert cg.pids_max == 10


def test_set_validates_everything_before_changing_anything() -> None:
    """A bad value in set() raises ConfigError and leaves every limit as it was."""
    cg = CGroup(memory_max="1G", pids_max=5)
    with pytest.raises(ConfigError):
        cg.set(pids_max=10, memory_max="12ZB")
    assert (cg.memory_max, cg.pids_max) == (2**30, 5)
    with pytest.raises(ConfigError, match="unknown limits"):
        cg.set(memroy_max="1G")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "use",
    [lambda cg: cg.add(1), lambda cg: cg.procs(), lambda cg: cg.stats(),
     lambda cg: cg.freeze(), lambda cg: cg.thaw(), lambda cg: cg.frozen,
     lambda cg: cg.placement(), lambda cg: cg.kill(), lambda cg: cg.oom_kills(),
     lambda cg: cg.paths, lambda cg: cg.relpath],
)
def test_live_operations_need_an_entered_cgroup(use: Any) -> None:
    """Operations on the live cgroup raise LifecycleError before entering."""
    with pytest.raises(LifecycleError, match="entered"):
        use(CGroup())


def test_close_before_enter_uses_it_up() -> None:
    """Closing an unentered CGroup makes it unusable, without touching the kernel."""
    cg = CGroup()
    cg.close()
    with pytest.raises(LifecycleError):
        cg.__enter__()


def test_child_carries_limits_and_parent() -> None:
    """child() builds an unentered CGroup nested in this one, with its own limits."""
    parent = CGroup(memory_max="1G", teardown_timeout=7)
    child = parent.child(name="inner", memory_max="64M")
    assert child.parent is parent
    assert child.name == "inner"
    assert child.memory_max == 64 * 2**20
    assert child.teardown_timeout == 7
    with pytest.raises(LifecycleError, match="parent CGroup must be entered"):
        child.__enter__()
    assert child._state.value == "new"  # not used up: it can be entered once parent is


def test_limits_value_is_frozen_and_comparable() -> None:
    """Limits is an immutable value: equal when the limits are, and not assignable."""
    assert Limits(memory_max="1G") == Limits(memory_max=2**30)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Limits().memory_max = 1  # type: ignore[misc]
