"""Unit tests for cgroup detection: parsing mountinfo, /proc/cgroups and /proc/<pid>/cgroup.

The inputs are texts copied in the shape of real machines (this host's hybrid layout, a pure
v2 systemd host, a v1 host with co-mounted cpu,cpuacct, a container's bind-mounted sub-tree).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from nsbox.cgroup import CGroupInfo, detect
from nsbox.cgroup._detect import (
    build_info,
    kernel_path,
    parse_mountinfo,
    parse_proc_cgroups,
    parse_proc_self_cgroup,
)
from nsbox.cgroup._v2 import own_relpath
from nsbox.errors import UnsupportedError

HYBRID = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

UNIFIED = """\
25 19 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

COMOUNTED = """\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:28 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
33 25 0:28 / /mnt/pids\\040all rw,nosuid - cgroup cgroup rw,pids
"""

PROC_CGROUPS = """\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
memory\t4\t20\t1
freezer\t6\t1\t1
pids\t8\t1\t1
net_cls\t0\t1\t0
"""

KNOWN = parse_proc_cgroups(PROC_CGROUPS)


def _controllers(found: frozenset[str]) -> Callable[[Path], frozenset[str]]:
    return lambda mount_point: found


def test_parse_proc_cgroups_keeps_enabled_controllers() -> None:
    """Only controllers whose enabled column is 1 count."""
    assert {"cpuset", "cpu", "cpuacct", "memory", "freezer", "pids"} == KNOWN


def test_hybrid_uses_v1() -> None:
    """v1 controllers next to a controller-less cgroup2 mount: hybrid mode, v1 backend."""
    info = build_info(parse_mountinfo(HYBRID), KNOWN, _controllers(frozenset({"hugetlb"})))
    assert info.mode == "hybrid"
    assert info.version == "v1"
    assert info.v1_mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert "systemd" not in info.v1_mounts and "name=systemd" not in info.v1_mounts
    assert info.v2_mount == Path("/sys/fs/cgroup/unified")
    assert info.v2_controllers == {"hugetlb"}
    assert info.controllers == {"cpu", "cpuacct", "memory", "freezer", "pids"}


def test_unified_uses_v2() -> None:
    """A lone cgroup2 mount means unified mode and the v2 backend with its controllers."""
    ctrls = frozenset({"cpu", "memory", "pids", "io", "cpuset"})
    info = build_info(parse_mountinfo(UNIFIED), KNOWN, _controllers(ctrls))
    assert (info.mode, info.version) == ("unified", "v2")
    assert info.v2_mount == Path("/sys/fs/cgroup")
    assert info.controllers == ctrls


def test_comounted_and_bind_mounted_hierarchies() -> None:
    """Co-mounted controllers share a mount; a whole-hierarchy mount beats a sub-tree bind."""
    info = build_info(parse_mountinfo(COMOUNTED), KNOWN, _controllers(frozenset()))
    assert (info.mode, info.version) == ("legacy", "v1")
    assert info.v1_mounts["cpu"] == info.v1_mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert info.v1_mounts["pids"] == Path("/mnt/pids all")  # \040 unescaped
    assert info.v1_roots["pids"] == "/"


def test_no_cgroups() -> None:
    """Without cgroup mounts the mode is none and requiring a controller explains it."""
    info = build_info([], KNOWN, _controllers(frozenset()))
    assert (info.mode, info.version) == ("none", None)
    with pytest.raises(UnsupportedError, match="none are mounted"):
        info.require("memory", needed_for="memory_max")


def test_require_names_the_missing_controller() -> None:
    """A missing controller raises UnsupportedError naming it and the limit that needs it."""
    info = CGroupInfo(mode="unified", version="v2", v2_mount=Path("/sys/fs/cgroup"),
                      controllers=frozenset({"memory"}))
    info.require("memory", needed_for="memory_max")
    with pytest.raises(UnsupportedError, match="pids_max needs the cgroup v2 'pids' controller"):
        info.require("pids", needed_for="pids_max")


def test_parse_proc_self_cgroup() -> None:
    """Each hierarchy's path is keyed by its controller set, v2 by the empty set."""
    text = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/test.slice/x.scope\n"
    paths = parse_proc_self_cgroup(text)
    assert paths[frozenset({"memory"})] == "/a/b"
    assert paths[frozenset({"cpu", "cpuacct"})] == "/c"
    assert paths[frozenset()] == "/test.slice/x.scope"


def test_own_relpath_strips_the_mount_root() -> None:
    """Our cgroup is made relative to the mounted sub-tree, or None if outside it."""
    info = CGroupInfo(mode="unified", version="v2", v2_mount=Path("/sys/fs/cgroup"), v2_root="/")
    assert own_relpath(info, "/user.slice/a.scope") == PurePosixPath("/user.slice/a.scope")
    sub = CGroupInfo(mode="unified", version="v2", v2_mount=Path("/sys/fs/cgroup"),
                     v2_root="/docker/abc")
    assert own_relpath(sub, "/docker/abc/inner") == PurePosixPath("/inner")
    assert own_relpath(sub, "/elsewhere") is None
    assert kernel_path("/docker/abc", PurePosixPath("/nsbox/x")) == "/docker/abc/nsbox/x"
    assert kernel_path("/", PurePosixPath("/nsbox/x")) == "/nsbox/x"


def test_detect_is_cached_and_consistent() -> None:
    """detect() returns the same cached object, consistent with its own fields."""
    first = detect()
    assert detect() is first
    if first.version == "v1":
        assert first.controllers == frozenset(first.v1_mounts)
    elif first.version == "v2":
        assert first.v2_mount is not None
