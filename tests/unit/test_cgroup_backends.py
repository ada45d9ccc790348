"""Unit tests for the v1 and v2 backends: write plans, parent choice, creation and rollback.

These run without privileges against a FAKE cgroup tree in ``tmp_path``: :class:`FakeFs`
imitates what cgroupfs does on mkdir (interface files appear), on rmdir (a directory full of
interface files can be removed, one with children cannot), on ``cgroup.subtree_control``
(``+ctrl`` needs the controller in ``cgroup.controllers``) and for the v1 memory/memsw
invariant (memory <= memsw at all times). The real kernel is exercised by
``tests/integration/test_cgroup_kernel.py``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nsbox.cgroup import CGroup, CGroupInfo, CpuMax, IOMax, Limits
from nsbox.cgroup import _cgroup as cgroup_module
from nsbox.cgroup._base import Fs
from nsbox.cgroup._v1 import ALWAYS, V1Backend, V1Context, v1_writes
from nsbox.cgroup._v2 import V2Backend, resolve_parent, v2_writes
from nsbox.errors import ConfigError, LifecycleError, UnsupportedError

UNLIMITED = 9223372036854771712  # what v1 prints for -1 (page-aligned 2**63-1)

V2_FILES = {
    "memory": {"memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
               "memory.current": "0", "memory.peak": "0",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.max": "", "io.weight": "default 100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
}
V1_FILES = {
    "memory": {"memory.limit_in_bytes": str(UNLIMITED), "memory.soft_limit_in_bytes":
               str(UNLIMITED), "memory.memsw.limit_in_bytes": str(UNLIMITED),
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.usage_user": "0", "cpuacct.usage_sys": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
}


class FakeFs(Fs):
    """A fake cgroupfs over ordinary directories (see the module docstring)."""

    def __init__(self, version: str, mounts: dict[Path, str] | None = None) -> None:
        self.version = version
        self.mounts = mounts or {}  # v1: mount point -> controller
        self.readonly: set[Path] = set()
        self.writes: list[tuple[str, str]] = []

    def _populate(self, path: Path) -> None:
        files = {"cgroup.procs": ""}
        if self.version == "v2":
            # Interface files of every controller the root has; cgroup.controllers itself is
            # computed on read from the parent, as the kernel does (see read()).
            root = next(p for p in [path, *path.parents] if (p / "cgroup.procs").exists()
                        and not (p.parent / "cgroup.subtree_control").exists())
            available = (root / "cgroup.controllers").read_text().split()
            files.update({"cgroup.controllers": "", "cgroup.subtree_control":
                          "", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0",
                          "cgroup.kill": "", "cpu.stat": "usage_usec 0\n"})
            for controller in available:
                files.update(V2_FILES.get(controller, {}))
        else:
            mount = next(m for m in self.mounts if path.is_relative_to(m))
            files.update(V1_FILES[self.mounts[mount]])
        for name, text in files.items():
            (path / name).write_text(text)

    def mkdir(self, path: Path) -> None:
        if path.parent in self.readonly:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        os.mkdir(path)
        self._populate(path)

    def read(self, path: Path) -> str:
        if (self.version == "v2" and path.name == "cgroup.controllers"
                and (path.parent.parent / "cgroup.subtree_control").exists()):
            return (path.parent.parent / "cgroup.subtree_control").read_text()
        return super().read(path)

    def rmdir(self, path: Path) -> None:
        if any(p.is_dir() for p in path.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        if (path / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        shutil.rmtree(path)

    def write(self, path: Path, value: str) -> None:
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
        self.writes.append((path.name, value))
        if path.name == "cgroup.subtree_control":
            controller = value.lstrip("+")
            if controller not in self.read(path.parent / "cgroup.controllers").split():
                raise OSError(errno.ENOENT, "No such file or directory", str(path))
            enabled = path.read_text().split()
            path.write_text(" ".join(sorted({*enabled, controller})))
            return
        if path.name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            number = UNLIMITED if value == "-1" else int(value)
            mem = int((path.parent / "memory.limit_in_bytes").read_text())
            memsw = int((path.parent / "memory.memsw.limit_in_bytes").read_text())
            if path.name == "memory.limit_in_bytes" and number > memsw:
                raise OSError(errno.EINVAL, "Invalid argument", str(path))
            if path.name == "memory.memsw.limit_in_bytes" and number < mem:
                raise OSError(errno.EINVAL, "Invalid argument", str(path))
            value = str(number)
        path.write_text(value)

    def writable(self, path: Path) -> bool:
        # A read-only cgroup: its directory and the interface files in it.
        return path not in self.readonly and not (path.is_file() and path.parent in self.readonly)


def v2_tree(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> tuple[
        FakeFs, CGroupInfo]:
    """A fake v2 root: every controller in cgroup.controllers, none enabled yet."""
    root = tmp_path / "cgroup2"
    root.mkdir()
    for name, text in {"cgroup.controllers": controllers, "cgroup.subtree_control": "",
                       "cgroup.procs": "1\n"}.items():
        (root / name).write_text(text)
    info = CGroupInfo(mode="unified", version="v2", v2_mount=root,
                      v2_controllers=frozenset(controllers.split()),
                      controllers=frozenset(controllers.split()))
    return FakeFs("v2"), info


def v1_tree(tmp_path: Path, controllers: tuple[str, ...] = tuple(V1_FILES)) -> tuple[
        FakeFs, CGroupInfo]:
    """A fake v1 layout: one hierarchy per controller, root files as the kernel has them."""
    mounts: dict[Path, str] = {}
    for controller in controllers:
        mount = tmp_path / controller
        mount.mkdir()
        mounts[mount] = controller
        (mount / "cgroup.procs").write_text("1\n")
        for name, text in V1_FILES[controller].items():
            (mount / name).write_text(text)
        if controller == "cpuset":
            (mount / "cpuset.cpus").write_text("0-3\n")
            (mount / "cpuset.mems").write_text("0\n")
    info = CGroupInfo(mode="legacy", version="v1",
                      v1_mounts={c: m for m, c in mounts.items()},
                      v1_roots={c: "/" for c in controllers}, controllers=frozenset(controllers))
    return FakeFs("v1", mounts), info


# -- v2 -----------------------------------------------------------------------------------


def test_v2_writes_plan() -> None:
    """Each v2 limit maps to its file and value; io_max resets devices that were dropped."""
    old = Limits(io_max={"8:0": {"rbps": 1}})
    new = Limits(memory_max="64M", swap_max=0, cpu_max=(50_000, 200_000), cpu_weight=None,
                 pids_max=None, io_weight=500, io_max={"8:16": IOMax(wbps="1M", riops=10)})
    plan = v2_writes(old, new, ("memory_max", "swap_max", "cpu_max", "cpu_weight", "pids_max",
                                "io_weight", "io_max", "memory_high", "cpuset_cpus"))
    assert [(f, v) for _, f, v in plan] == [
        ("memory.max", str(64 * 2**20)), ("memory.swap.max", "0"),
        ("cpu.max", "50000 200000"), ("cpu.weight", "100"), ("pids.max", "max"),
        ("io.weight", "default 500"),
        ("io.max", "8:0 rbps=max wbps=max riops=max wiops=max"),
        ("io.max", "8:16 rbps=max wbps=1048576 riops=10 wiops=max"),
        ("memory.high", "max"), ("cpuset.cpus", ""),
    ]


def test_v2_create_enables_controllers_and_writes_limits(tmp_path: Path) -> None:
    """Creating a v2 cgroup makes /nsbox, enables needed controllers down to it, and writes."""
    fs, info = v2_tree(tmp_path)
    backend = V2Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    backend.create(Limits(memory_max="64M", pids_max=7, io_max={"8:0": {"wbps": "1M"}}))
    root = info.v2_mount
    assert root is not None
    assert set((root / "cgroup.subtree_control").read_text().split()) == {
        "cpu", "io", "memory", "pids"}  # cpuset: not needed, so not enabled
    assert (root / "nsbox/nsbox-t/memory.max").read_text() == str(64 * 2**20)
    assert (root / "nsbox/nsbox-t/pids.max").read_text() == "7"
    assert backend.paths == {"unified": root / "nsbox/nsbox-t"}
    backend.remove(deadline=0)
    assert not (root / "nsbox/nsbox-t").exists()
    assert (root / "nsbox").is_dir()  # the shared parent stays


def test_v2_missing_controller_is_unsupported_and_creates_nothing(tmp_path: Path) -> None:
    """A limit whose controller the root lacks raises UnsupportedError naming it."""
    fs, info = v2_tree(tmp_path, controllers="memory pids")
    backend = V2Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    with pytest.raises(UnsupportedError, match="'cpu' controller"):
        backend.create(Limits(cpu_max=0.5))
    assert not backend.dir.exists()


def test_v2_missing_file_rolls_back(tmp_path: Path) -> None:
    """A limit file the kernel lacks (no swap accounting) raises and removes the new cgroup."""
    fs, info = v2_tree(tmp_path)
    backend = V2Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    original = fs._populate

    def without_swap(path: Path) -> None:
        original(path)
        (path / "memory.swap.max").unlink(missing_ok=True)

    fs._populate = without_swap  # type: ignore[method-assign]
    with pytest.raises(UnsupportedError, match=r"memory\.swap\.max"):
        backend.create(Limits(memory_max="64M", swap_max=0))
    assert not backend.dir.exists()


def test_v2_child_of_cgroup_with_processes_explains_the_rule(tmp_path: Path) -> None:
    """A child needing controllers under a cgroup that holds processes cites the v2 rule."""
    fs, info = v2_tree(tmp_path)
    parent = V2Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-p",
                       create_parent=True)
    parent.create(Limits())
    (parent.dir / "cgroup.procs").write_text("42\n")
    real_write = fs.write

    def busy(path: Path, value: str) -> None:
        if path == parent.dir / "cgroup.subtree_control":
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        real_write(path, value)

    fs.write = busy  # type: ignore[method-assign]
    with pytest.raises(OSError, match="no-internal-processes"):
        parent.child("nsbox-c").create(Limits(memory_max="1M"))
    parent.child("nsbox-c2").create(Limits())  # no controller needed: allowed


def test_v2_default_parent_as_root(tmp_path: Path) -> None:
    """With a writable hierarchy root the default parent is /nsbox, created by nsbox."""
    fs, info = v2_tree(tmp_path)
    own = PurePosixPath("/test.slice/test.scope")
    assert resolve_parent(info, None, fs, own) == (PurePosixPath("/nsbox"), True)


def test_v2_default_parent_delegated_sibling(tmp_path: Path) -> None:
    """Rootless, nsbox uses a 'nsbox' sibling of its own cgroup when it owns the empty parent."""
    fs, info = v2_tree(tmp_path)
    root = info.v2_mount
    assert root is not None
    slice_dir = root / "user.slice/app.slice"
    (slice_dir / "run.scope").mkdir(parents=True)
    for d in (root / "user.slice", slice_dir, slice_dir / "run.scope"):
        for name in ("cgroup.procs", "cgroup.subtree_control"):
            (d / name).write_text("")
    (slice_dir / "run.scope/cgroup.procs").write_text("1234\n")
    fs.readonly = {root, root / "user.slice"}
    own = PurePosixPath("/user.slice/app.slice/run.scope")
    assert resolve_parent(info, None, fs, own) == (
        PurePosixPath("/user.slice/app.slice/nsbox"), True)
    (slice_dir / "cgroup.procs").write_text("99\n")  # an internal process: not usable
    with pytest.raises(UnsupportedError, match="systemd-run --user --scope -p Delegate=yes"):
        resolve_parent(info, None, fs, own)


def test_v2_explicit_parent_must_exist_and_be_writable(tmp_path: Path) -> None:
    """parent= must name an existing, writable cgroup; otherwise ConfigError."""
    fs, info = v2_tree(tmp_path)
    root = info.v2_mount
    assert root is not None
    with pytest.raises(ConfigError, match="not a cgroup directory"):
        resolve_parent(info, PurePosixPath("/missing"), fs, None)
    (root / "system.slice").mkdir()
    (root / "system.slice/cgroup.procs").write_text("")
    assert resolve_parent(info, PurePosixPath("/system.slice"), fs, None) == (
        PurePosixPath("/system.slice"), False)
    fs.readonly = {root / "system.slice"}
    with pytest.raises(ConfigError, match="not writable"):
        resolve_parent(info, PurePosixPath("/system.slice"), fs, None)


# -- v1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mem", "swap", "current", "order"),
    [
        (64 * 2**20, 0, UNLIMITED, ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]),
        (2**30, 0, 64 * 2**20, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
        (None, None, 64 * 2**20, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
    ],
)
def test_v1_memory_and_memsw_order(mem: int | None, swap: int | None, current: int,
                                   order: list[str]) -> None:
    """memsw is raised before memory and memory lowered before memsw, keeping mem <= memsw."""
    plan = v1_writes(Limits(swap_max=0), Limits(memory_max=mem, swap_max=swap),
                     ("memory_max", "swap_max"),
                     V1Context(current_memory_limit=current, has_memsw=True))
    assert [f for _, _, f, _ in plan] == order
    values = {f: v for _, _, f, v in plan}
    if mem is not None and swap is not None:
        assert values["memory.memsw.limit_in_bytes"] == str(mem + swap)


def test_v1_writes_plan() -> None:
    """v1 spells each limit in its own files: soft limit, CFS quota, shares, blkio throttle."""
    new = Limits(memory_high="1G", cpu_max=0.25, cpu_weight=100, pids_max=9, io_weight=100,
                 io_max={"8:0": {"rbps": "1M"}})
    ctx = V1Context(io_weight_file="blkio.weight", parent_cpus="0-3")
    plan = v1_writes(Limits(), new, ("memory_high", "cpu_max", "cpu_weight", "pids_max",
                                     "io_weight", "io_max", "cpuset_cpus"), ctx)
    assert [(f, v) for _, _, f, v in plan] == [
        ("memory.soft_limit_in_bytes", str(2**30)),
        ("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "25000"),
        ("cpu.shares", "2597"), ("pids.max", "9"), ("blkio.weight", "19"),
        ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio.throttle.write_bps_device", "8:0 0"),
        ("blkio.throttle.read_iops_device", "8:0 0"),
        ("blkio.throttle.write_iops_device", "8:0 0"),
        ("cpuset.cpus", "0-3"),
    ]


@pytest.mark.parametrize(
    ("limits", "ctx", "fragment"),
    [
        (Limits(memory_max="1G", swap_max=0), V1Context(has_memsw=False), "swapaccount=1"),
        (Limits(swap_max=0), V1Context(has_memsw=True), "needs memory_max too"),
        (Limits(io_weight=10), V1Context(), "blkio.weight"),
    ],
)
def test_v1_inexpressible_limits_are_unsupported(limits: Limits, ctx: V1Context,
                                                 fragment: str) -> None:
    """Limits v1 cannot express raise UnsupportedError saying what is missing."""
    with pytest.raises(UnsupportedError, match=fragment):
        v1_writes(Limits(), limits, limits.given(), ctx)


def test_v1_create_joins_hierarchies_and_inherits_cpuset(tmp_path: Path) -> None:
    """A v1 cgroup appears in the hierarchies it always joins and those its limits need (not
    blkio here); cpuset gets its parent's CPUs."""
    fs, info = v1_tree(tmp_path)
    backend = V1Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    backend.create(Limits(memory_max="64M", swap_max=0, cpu_max=0.5, cpuset_mems="0"))
    assert set(backend.paths) == {*ALWAYS, "cpu", "cpuset"}
    assert not (tmp_path / "blkio/nsbox").exists()
    assert (tmp_path / "cpuset/nsbox/cpuset.cpus").read_text() == "0-3"
    assert (tmp_path / "cpuset/nsbox/nsbox-t/cpuset.cpus").read_text() == "0-3"
    memory = tmp_path / "memory/nsbox/nsbox-t"
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 * 2**20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(64 * 2**20)
    assert (tmp_path / "cpu/nsbox/nsbox-t/cpu.cfs_quota_us").read_text() == "50000"
    # Raising memory above the current memsw only works in the right order.
    backend.apply(Limits(memory_max="64M", swap_max=0), Limits(memory_max="1G", swap_max="1G"),
                  ("memory_max",))
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(2 * 2**30)
    backend.remove(deadline=0)
    assert not any(p.name == "nsbox-t" for p in tmp_path.rglob("nsbox-t"))


def test_v1_joins_co_mounted_controllers_together(tmp_path: Path) -> None:
    """Joining cpuacct where cpu shares its hierarchy (cpu,cpuacct) brings cpu along; nothing
    else is joined without a limit for it."""
    mounts = {"memory": tmp_path / "memory", "cpu": tmp_path / "cpu,cpuacct",
              "cpuacct": tmp_path / "cpu,cpuacct", "cpuset": tmp_path / "cpuset",
              "blkio": tmp_path / "blkio"}
    info = CGroupInfo(mode="legacy", version="v1", v1_mounts=mounts,
                      v1_roots=dict.fromkeys(mounts, "/"), controllers=frozenset(mounts))
    backend = V1Backend(fs=Fs(), info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    assert set(backend.paths) == {"memory", "cpu", "cpuacct"}
    assert list(backend.dirs) == [tmp_path / "memory", tmp_path / "cpu,cpuacct"]


def test_v1_unsupported_limit_leaves_nothing(tmp_path: Path) -> None:
    """A limit needing an unmounted controller fails before any directory is made."""
    fs, info = v1_tree(tmp_path, controllers=("memory", "freezer"))
    backend = V1Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    with pytest.raises(UnsupportedError, match="'pids' controller"):
        backend.create(Limits(pids_max=3))
    assert not list(tmp_path.rglob("nsbox-t"))


def test_v1_explicit_parent_must_exist(tmp_path: Path) -> None:
    """On v1 a parent= must exist in every joined hierarchy."""
    fs, info = v1_tree(tmp_path, controllers=("memory", "pids"))
    (tmp_path / "memory/mine").mkdir()
    backend = V1Backend(fs=fs, info=info, parent=PurePosixPath("/mine"), name="nsbox-t",
                        create_parent=False)
    with pytest.raises(ConfigError, match="does not exist"):
        backend.create(Limits())


def test_v1_without_permission_is_unsupported(tmp_path: Path) -> None:
    """Unprivileged users cannot create v1 cgroups: UnsupportedError explains it."""
    fs, info = v1_tree(tmp_path, controllers=("memory",))
    fs.readonly = {tmp_path / "memory"}
    backend = V1Backend(fs=fs, info=info, parent=PurePosixPath("/nsbox"), name="nsbox-t",
                        create_parent=True)
    with pytest.raises(UnsupportedError, match="only by root"):
        backend.create(Limits())


# -- CGroup over the fake tree --------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_lifecycle_on_fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       version: str) -> None:
    """CGroup creates, updates, places and removes through either backend, single use."""
    fs, info = v1_tree(tmp_path) if version == "v1" else v2_tree(tmp_path)
    monkeypatch.setattr(cgroup_module, "detect", lambda: info)
    cg = CGroup(memory_max="64M", name="t")
    object.__setattr__(cg, "_fs", fs)
    with cg:
        assert cg.version == version
        assert cg.relpath == PurePosixPath("/nsbox/nsbox-t")
        placement = cg.placement()
        assert (placement.clone_into_fd is None) == (version == "v1")
        assert len(placement.procs_fds) == (len(ALWAYS) if version == "v1" else 0)
        if version == "v1":
            assert cg.stats().cpu_nr_throttled == 0  # not in the cpu hierarchy: no quota
        cg.set(memory_max="128M", cpu_max=CpuMax(10_000, 50_000))
        assert cg.memory_max == 128 * 2**20
        if version == "v1":
            # The cpu limit joined the cpu hierarchy; the placement grew by its fd.
            assert set(cg.paths) == {*ALWAYS, "cpu"}
            assert cg.placement().procs_fds[:len(ALWAYS)] == placement.procs_fds
            placement = cg.placement()
            assert len(placement.procs_fds) == len(ALWAYS) + 1
            assert (cg.paths["cpu"] / "cpu.cfs_quota_us").read_text() == "10000"
            cg.set(io_weight=None, cpuset_cpus=None)  # lifting a limit joins nothing
            assert set(cg.paths) == {*ALWAYS, "cpu"}
        memory = cg.paths["memory" if version == "v1" else "unified"]
        expected = "memory.limit_in_bytes" if version == "v1" else "memory.max"
        assert (memory / expected).read_text() == str(128 * 2**20)
        assert cg.procs() == []
        assert cg.oom_kills() == 0
        stats = cg.stats()
        assert stats.memory_current == 0
        with pytest.raises(LifecycleError):
            cg.__enter__()
    assert not list(tmp_path.rglob("nsbox-t"))
    for fd in (placement.clone_into_fd, *placement.procs_fds):
        if fd is not None:
            with pytest.raises(OSError):
                os.fstat(fd)
    with pytest.raises(LifecycleError, match="has been left"):
        cg.stats()
    with pytest.raises(LifecycleError):
        cg.set(memory_max="1G")


def test_cgroup_exit_keeps_the_body_exception(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A teardown failure while the body raised is attached as a note, not substituted."""
    fs, info = v2_tree(tmp_path)
    monkeypatch.setattr(cgroup_module, "detect", lambda: info)
    cg = CGroup(name="t")
    object.__setattr__(cg, "_fs", fs)

    def stuck(path: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", str(path))

    with pytest.raises(KeyError) as info_exc, cg:
        fs.rmdir = stuck  # type: ignore[method-assign]
        raise KeyError("body")
    notes: Any = getattr(info_exc.value, "__notes__", [])
    assert any("while leaving the CGroup" in n for n in notes)
    shutil.rmtree(tmp_path)


def test_set_keeps_attributes_true_when_the_kernel_refuses(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """If the kernel refuses one limit in set(), the ones written before it show as changed."""
    fs, info = v2_tree(tmp_path)
    monkeypatch.setattr(cgroup_module, "detect", lambda: info)
    cg = CGroup(memory_max="64M", pids_max=5, name="t")
    object.__setattr__(cg, "_fs", fs)
    with cg:
        real_write = fs.write

        def refuse_pids(path: Path, value: str) -> None:
            if path.name == "pids.max":
                raise OSError(errno.EINVAL, "Invalid argument", str(path))
            real_write(path, value)

        fs.write = refuse_pids  # type: ignore[method-assign]
        with pytest.raises(OSError, match="setting pids_max"):
            cg.set(memory_max="128M", pids_max=10)
        assert (cg.memory_max, cg.pids_max) == (128 * 2**20, 5)
        fs.write = real_write  # type: ignore[method-assign]
