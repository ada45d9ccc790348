"""Integration tests for nsbox.cgroup.CGroup on the real kernel (cgroup v1 or v2), as root.

Every process here is started by the test itself with ``subprocess.Popen``, blocked on a
pipe until it has been moved into the cgroup (``cg.add``), then released. Every cgroup is
named ``nsbox-<our pid>-...``; the autouse fixture checks none is left after each test.
Lines starting with ``MEASURED`` are printed for the record (run with ``-s`` to see them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nsbox.cgroup import CGroup, CGroupStats, detect
from nsbox.cgroup._base import Fs
from nsbox.cgroup._v1 import ALWAYS, MANAGED
from nsbox.errors import CGroupError, ConfigError, LifecycleError, UnsupportedError

INFO = detect()
PREFIX = f"nsbox-{os.getpid()}-"

pytestmark = [
    pytest.mark.cgroup,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups needs root"),
    pytest.mark.skipif(INFO.version is None, reason="no cgroup hierarchy is mounted"),
]

Spawn = Callable[[str], "subprocess.Popen[bytes]"]


def nsbox_parents() -> list[Path]:
    """The default parent directories nsbox creates its cgroups in."""
    if INFO.version == "v2":
        assert INFO.v2_mount is not None
        return [INFO.v2_mount / "nsbox"]
    return sorted({m / "nsbox" for c, m in INFO.v1_mounts.items() if c in MANAGED})


def ours() -> list[Path]:
    """Cgroups this test process created (by name) that still exist."""
    return [p for parent in nsbox_parents() if parent.is_dir()
            for p in parent.iterdir() if p.name.startswith(PREFIX)]


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Fail a test that leaves any of its cgroups behind."""
    assert ours() == []
    yield
    assert ours() == [], "the test left cgroups behind"


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``sh -c SCRIPT`` blocked until :func:`release`; reap everything at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["sh", "-c", "read _ ; " + script], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()  # only reached if a test failed before its cgroup killed it
        proc.wait(timeout=60)
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()


def release(proc: subprocess.Popen[bytes]) -> None:
    """Let a process started by ``spawn`` run its script."""
    assert proc.stdin is not None
    proc.stdin.write(b"\n")
    proc.stdin.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (generous: the v2 lane is emulated)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def has_swap() -> bool:
    """Whether the machine has swap (then the OOM test must forbid it)."""
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) > 1


def limit_file(cg: CGroup, v1: tuple[str, str], v2: str) -> Path:
    """The kernel file holding a limit: ``(controller, file)`` on v1, ``file`` on v2."""
    if cg.version == "v1":
        return cg.paths[v1[0]] / v1[1]
    return cg.paths["unified"] / v2


def test_oom_kill_is_counted(spawn: Spawn) -> None:
    """A process allocating 200 MiB under memory_max=64M is OOM-killed and oom_kills rises."""
    with CGroup(memory_max="64M", swap_max=0 if has_swap() else None) as cg:
        before = cg.oom_kills()
        proc = spawn("head -c 200M /dev/zero | tail")  # tail holds the line-less input
        cg.add(proc.pid)
        release(proc)
        status = proc.wait(timeout=300)
        after = cg.oom_kills()
        stats = cg.stats()
        print(f"MEASURED oom ({cg.version}): status {status}, oom_kills {before} -> {after}, "
              f"peak {stats.memory_peak}, oom_events {stats.oom_events}")
        assert status == 128 + signal.SIGKILL  # sh reports tail's SIGKILL
        assert after >= before + 1
        assert stats.oom_kills == after
        assert stats.memory_peak is None or stats.memory_peak <= 64 * 2**20 + 2**20
        if cg.version == "v2":
            assert stats.oom_events is not None and stats.oom_events >= 1


def test_cpu_max_limits_share(spawn: Spawn) -> None:
    """A busy loop under cpu_max=0.2 gets about a fifth of a CPU by the cgroup's own counter."""
    with CGroup(cpu_max=0.2) as cg:
        proc = spawn("while :; do :; done")
        cg.add(proc.pid)
        release(proc)
        time.sleep(0.3)  # let it run into the quota
        first, t0 = cg.stats(), time.monotonic()
        time.sleep(2.0)
        second, t1 = cg.stats(), time.monotonic()
        assert first.cpu_usage_ns is not None and second.cpu_usage_ns is not None
        share = (second.cpu_usage_ns - first.cpu_usage_ns) / ((t1 - t0) * 1e9)
        print(f"MEASURED cpu share under cpu_max=0.2 ({cg.version}): {share:.3f}")
        assert 0.1 <= share <= 0.3
        assert (second.cpu_nr_throttled or 0) > 0
        assert (second.cpu_throttled_ns or 0) > 0


def test_fork_bomb_is_capped_and_killable(spawn: Spawn) -> None:
    """A fork bomb under pids_max=32 never exceeds 32 tasks, and the cgroup still dies cleanly."""
    # Bounded (depth 9, 30 s) so that even outside a cgroup it would end on its own.
    bomb = "b() { if [ $1 -gt 0 ]; then b $(($1-1)) & b $(($1-1)) & fi; sleep 30; }; b 9"
    with CGroup(pids_max=32) as cg:
        proc = spawn(bomb)
        cg.add(proc.pid)
        release(proc)
        seen: list[int] = []
        refused = limit_file(cg, ("pids", "pids.events"), "pids.events")
        wait_for(lambda: "max 0" not in refused.read_text(), timeout=120)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            seen.append(cg.stats().pids_current or 0)
        print(f"MEASURED fork bomb ({cg.version}): max pids {max(seen)}, "
              f"{refused.read_text().strip()}")
        assert max(seen) <= 32
        assert "max 0" not in refused.read_text()  # the kernel refused forks
        started = time.monotonic()
        cg.kill()
        print(f"MEASURED kill of fork bomb: {time.monotonic() - started:.3f} s")
        assert cg.procs() == []
    # The first shell may have died of a refused fork (dash exits then) or of the kill.
    proc.wait(timeout=60)


def test_freeze_stops_and_thaw_resumes(spawn: Spawn, tmp_path: Path) -> None:
    """Freezing stops a counter from advancing; thawing lets it advance again."""
    counter = tmp_path / "counter"
    counter.touch()
    with CGroup() as cg:
        proc = spawn(f"while :; do printf x >> {counter}; done")
        cg.add(proc.pid)
        release(proc)
        assert wait_for(lambda: counter.stat().st_size > 0)
        assert not cg.frozen
        started = time.monotonic()
        cg.freeze()
        print(f"MEASURED freeze latency ({cg.version}): "
              f"{(time.monotonic() - started) * 1000:.2f} ms")
        assert cg.frozen
        size = counter.stat().st_size
        time.sleep(0.5)
        assert counter.stat().st_size == size
        cg.thaw()
        assert wait_for(lambda: counter.stat().st_size > size)
        assert not cg.frozen


@pytest.mark.parametrize("case", ["running", "frozen", "ignoring-sigterm", "forking"])
def test_teardown_kills_everything(spawn: Spawn, case: str) -> None:
    """Leaving kills processes that run, are frozen, ignore SIGTERM or fork, and removes all."""
    scripts = {
        "running": "sleep 1000 & while :; do :; done",
        "frozen": "sleep 1000 & while :; do :; done",
        "ignoring-sigterm": "trap '' TERM; while :; do sleep 1; done",
        # Paced: dash exits when a fork fails, so it must not hit a limit before teardown.
        "forking": "while :; do sleep 1000 & sleep 0.002; done",
    }
    with CGroup() as cg:
        proc = spawn(scripts[case])
        cg.add(proc.pid)
        release(proc)
        assert wait_for(lambda: len(cg.procs()) >= 2)
        paths = list(cg.paths.values())
        if case == "frozen":
            cg.freeze()
        if case == "ignoring-sigterm":
            cg.kill(signal.SIGTERM)
            time.sleep(0.2)
            assert proc.poll() is None
        started = time.monotonic()
    print(f"MEASURED teardown ({case}, {INFO.version}): {time.monotonic() - started:.3f} s")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not any(p.exists() for p in paths)


def test_body_exception_propagates_and_cleans_up(spawn: Spawn) -> None:
    """An exception in the body comes out unchanged, and the cgroup is still torn down."""
    with pytest.raises(ZeroDivisionError), CGroup() as cg:
        proc = spawn("sleep 1000")
        cg.add(proc.pid)
        release(proc)
        paths = list(cg.paths.values())
        _ = 1 / 0
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not any(p.exists() for p in paths)


@pytest.mark.parametrize(
    "kwargs",
    [{"memory_max": "12ZB"}, {"memory_max": -5}, {"pids_max": True}, {"cpu_max": 0},
     {"cpu_weight": 0}, {"cpuset_cpus": "0-"}, {"cpuset_cpus": "4096"}, {"parent": "../.."}],
)
def test_bad_input_creates_nothing(kwargs: dict[str, object]) -> None:
    """Invalid limits raise ConfigError on construction and no directory appears."""
    before = {p for parent in nsbox_parents() if parent.is_dir() for p in parent.iterdir()}
    with pytest.raises(ConfigError):
        CGroup(name=f"{os.getpid()}-bad", **kwargs)  # type: ignore[arg-type]
    after = {p for parent in nsbox_parents() if parent.is_dir() for p in parent.iterdir()}
    assert not {p for p in after - before if p.name.startswith(PREFIX)}


def test_live_limit_change() -> None:
    """set() on a live cgroup rewrites the kernel's files and the object's attributes."""
    with CGroup(memory_max="64M", pids_max=10, cpu_max=0.5) as cg:
        memory = limit_file(cg, ("memory", "memory.limit_in_bytes"), "memory.max")
        pids = limit_file(cg, ("pids", "pids.max"), "pids.max")
        assert int(memory.read_text()) == 64 * 2**20
        cg.set(memory_max="128M", pids_max=None, cpu_max=(25_000, 50_000), cpu_weight=200)
        assert int(memory.read_text()) == 128 * 2**20
        assert pids.read_text().strip() == "max"
        assert cg.memory_max == 128 * 2**20 and cg.pids_max is None
        if cg.version == "v1":
            cpu = cg.paths["cpu"]
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "50000"
            assert (cpu / "cpu.shares").read_text().strip() == "5219"  # 2 + 199*262142//9999
        else:
            unified = cg.paths["unified"]
            assert (unified / "cpu.max").read_text().strip() == "25000 50000"
            assert (unified / "cpu.weight").read_text().strip() == "200"
        cg.set(memory_max=None)
        assert memory.read_text().strip() in ("max", str(2**63 - 4096))
        with pytest.raises(ConfigError):
            cg.set(memory_max="lots")


def test_lifecycle_is_single_use() -> None:
    """A CGroup cannot be entered twice, and its live operations fail after leaving."""
    cg = CGroup()
    with cg, pytest.raises(LifecycleError):
        cg.__enter__()
    with pytest.raises(LifecycleError):
        cg.__enter__()
    with pytest.raises(LifecycleError):
        cg.procs()


def test_naming_and_default_parent() -> None:
    """nsbox names its cgroup nsbox-<pid>-<hex> under the shared nsbox parent."""
    with CGroup() as cg:
        assert cg.relpath.parent.name == "nsbox"
        assert cg.relpath.name.startswith(PREFIX)
        assert len(cg.relpath.name) == len(PREFIX) + 8
        for path in cg.paths.values():
            assert path.is_dir() and path.parent.name == "nsbox"
    with CGroup(name=f"{os.getpid()}-named") as cg:
        assert cg.relpath.name == f"{PREFIX}named"
        with pytest.raises(CGroupError) as info:
            CGroup(name=f"{os.getpid()}-named").__enter__()
        assert info.value.errno == errno.EEXIST


def test_placement_fds(spawn: Spawn) -> None:
    """placement() hands out the v2 directory fd or the v1 cgroup.procs fds, closed on exit."""
    with CGroup() as cg:
        placement = cg.placement()
        assert placement is cg.placement()
        if cg.version == "v2":
            assert placement.procs_fds == ()
            assert placement.clone_into_fd is not None
            assert os.path.samestat(os.fstat(placement.clone_into_fd),
                                    os.stat(cg.paths["unified"]))
            assert os.get_inheritable(placement.clone_into_fd) is False
            fds = [placement.clone_into_fd]
        else:
            assert placement.clone_into_fd is None
            assert len(placement.procs_fds) == len(set(cg.paths.values()))
            proc = spawn("sleep 1000")
            for fd in placement.procs_fds:
                assert os.get_inheritable(fd) is False
                os.write(fd, str(proc.pid).encode())  # what the C spawn code does
            assert cg.procs() == [proc.pid]
            fds = list(placement.procs_fds)
    for fd in fds:
        with pytest.raises(OSError) as info:
            os.fstat(fd)
        assert info.value.errno == errno.EBADF


def test_stats_reflect_usage(spawn: Spawn) -> None:
    """stats() reports the memory, CPU and tasks of what runs inside."""
    with CGroup(memory_max="256M") as cg:
        proc = spawn('x=$(head -c 30000000 /dev/zero | tr "\\0" a); sleep 1000')
        cg.add(proc.pid)
        release(proc)
        assert wait_for(lambda: (cg.stats().memory_current or 0) > 20 * 2**20, timeout=120)
        stats = cg.stats()
        assert isinstance(stats, CGroupStats)
        assert stats.memory_peak is None or stats.memory_peak >= stats.memory_current  # type: ignore[operator]
        assert (stats.cpu_usage_ns or 0) > 0
        assert stats.cpu_user_ns is not None and stats.cpu_system_ns is not None
        assert stats.pids_current is not None and stats.pids_current >= 2
        assert stats.oom_kills == 0
        pressure_file = cg.paths.get("unified", Path("/nonexistent")) / "memory.pressure"
        if pressure_file.exists():
            assert stats.memory_pressure is not None
            assert stats.memory_pressure.some.total_us >= 0


def test_cpuset_pins_processes(spawn: Spawn) -> None:
    """cpuset_cpus restricts where the processes inside may run."""
    with CGroup(cpuset_cpus="0") as cg:
        proc = spawn("sleep 1000")
        cg.add(proc.pid)
        with open(f"/proc/{proc.pid}/status") as f:
            allowed = next(line for line in f if line.startswith("Cpus_allowed_list"))
        assert allowed.split()[-1] == "0"


def test_io_limits() -> None:
    """io_max is written for a real block device; io_weight works or names what is missing."""
    block = next((f"/dev/{d}" for d in sorted(os.listdir("/sys/block"))
                  if not d.startswith(("loop", "ram", "zram")) and os.path.exists(f"/dev/{d}")),
                 None)
    if block is None:
        pytest.skip("no block device to limit")
    st = os.stat(block)
    device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    with CGroup(io_max={block: {"rbps": "1M", "wiops": 50}}) as cg:
        if cg.version == "v2":
            text = (cg.paths["unified"] / "io.max").read_text()
            assert f"{device} rbps=1048576 wbps=max riops=max wiops=50" in text
        else:
            blkio = cg.paths["blkio"]
            assert f"{device} 1048576" in (blkio / "blkio.throttle.read_bps_device").read_text()
            assert f"{device} 50" in (blkio / "blkio.throttle.write_iops_device").read_text()
        cg.set(io_max=None)
        try:
            cg.set(io_weight=500)
        except UnsupportedError as err:
            assert "weight" in str(err)


def test_nested_children(spawn: Spawn) -> None:
    """child() nests a cgroup; leaving the parent also removes a child that was not left."""
    with CGroup(memory_max="256M") as parent:
        with parent.child(name=f"{os.getpid()}-inner", memory_max="64M") as inner:
            assert inner.relpath.parent == parent.relpath
            proc = spawn("sleep 1000")
            inner.add(proc.pid)
            assert parent.procs() == [proc.pid]
            assert parent.procs(recursive=False) == []
        assert proc.wait(timeout=60) == -signal.SIGKILL
        by_path = CGroup(parent=str(parent.relpath), name=f"{os.getpid()}-bypath")
        with by_path:
            assert by_path.relpath.parent == parent.relpath
        dangling = parent.child()
        dangling.__enter__()
        dangling_paths = list(dangling.paths.values())
        proc2 = spawn("sleep 1000")
        dangling.add(proc2.pid)
    assert proc2.wait(timeout=60) == -signal.SIGKILL
    assert not any(p.exists() for p in dangling_paths)
    with pytest.raises(LifecycleError):
        dangling.placement()


def test_explicit_parent_must_exist() -> None:
    """A parent path that does not exist is a ConfigError at enter, and nothing is created."""
    cg = CGroup(parent=f"nsbox/{PREFIX}missing")
    with pytest.raises(ConfigError, match=r"(does not exist|not a cgroup directory)"):
        cg.__enter__()


def test_kill_with_other_signals(spawn: Spawn) -> None:
    """kill(SIGTERM) reaches every process; ones that do not ignore it exit."""
    with CGroup() as cg:
        procs = [spawn("sleep 1000") for _ in range(3)]
        for proc in procs:
            cg.add(proc.pid)
        cg.kill(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(timeout=60) == -signal.SIGTERM
        assert wait_for(lambda: cg.procs() == [])


def test_add_of_a_gone_process_fails_cleanly(spawn: Spawn) -> None:
    """Adding a pid that has exited raises CGroupError with ESRCH."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    with CGroup() as cg, pytest.raises(CGroupError) as info:
        cg.add(proc.pid)
    assert info.value.errno == errno.ESRCH


class _WithoutCgroupKill(Fs):
    """The real cgroupfs, except that cgroup.kill looks absent (as before Linux 5.14)."""

    def exists(self, path: Path) -> bool:
        return path.name != "cgroup.kill" and super().exists(path)


@pytest.mark.skipif(INFO.version != "v2", reason="cgroup.kill exists only on v2")
def test_v2_teardown_without_cgroup_kill(spawn: Spawn) -> None:
    """Without cgroup.kill, v2 teardown falls back to freeze, SIGKILL each, thaw, and still
    kills a forking, frozen workload."""
    cg = CGroup(pids_max=64)
    object.__setattr__(cg, "_fs", _WithoutCgroupKill())  # private seam: hide one file
    with cg:
        proc = spawn("while :; do sleep 1000 & done")
        cg.add(proc.pid)
        release(proc)
        assert wait_for(lambda: len(cg.procs()) >= 8)
        cg.freeze()
        paths = list(cg.paths.values())
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not any(p.exists() for p in paths)


def _v1_path_of(pid: int, controller: str) -> str | None:
    """The cgroup of ``pid`` in the v1 hierarchy of ``controller``."""
    from nsbox.cgroup import _detect

    return _detect.cgroup_of(pid, controller)


def _threads(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def _allowed_cpus(tid: int) -> str:
    with open(f"/proc/{tid}/status") as f:
        return next(line for line in f if line.startswith("Cpus_allowed_list")).split()[-1]


v1_only = pytest.mark.skipif(INFO.version != "v1", reason="hierarchies are a cgroup v1 matter")


def _own_hierarchy(controller: str) -> bool:
    """Whether ``controller`` is mounted in a hierarchy no always-joined controller shares."""
    mount = INFO.v1_mounts.get(controller)
    return mount is not None and mount not in {INFO.v1_mounts.get(c) for c in ALWAYS}


needs_cpuset = pytest.mark.skipif(not _own_hierarchy("cpuset"),
                                  reason="needs a cpuset hierarchy of its own")


@v1_only
def test_v1_joins_only_the_hierarchies_it_needs() -> None:
    """Without limits a v1 cgroup is in the memory, cpuacct, pids and freezer hierarchies
    (and what shares them) only; a process it starts keeps our cgroup in the others."""
    mounted = {c: m for c, m in INFO.v1_mounts.items() if c in MANAGED}
    always = {c for c, m in mounted.items() if m in {mounted.get(a) for a in ALWAYS}}
    with CGroup() as cg:
        assert set(cg.paths) == always
        proc = cg.spawn(["sleep", "1000"])
        for controller in mounted:
            expected = str(cg.relpath) if controller in always else _v1_path_of("self",
                                                                                 controller)
            assert _v1_path_of(proc.pid, controller) == expected, controller
        stats = cg.stats()
        assert stats.cpu_usage_ns is not None and stats.pids_current == 1
        assert stats.memory_current is not None
        assert stats.cpu_nr_throttled == (None if "cpu" not in INFO.v1_mounts else 0)
    with CGroup(cpuset_cpus="0", io_weight=None) as cg:
        assert "cpuset" in cg.paths and "blkio" not in set(cg.paths) - always


@v1_only
@pytest.mark.parametrize(("controller", "limit"), [("cpu", {"cpu_max": 0.5}),
                                                   ("cpuset", {"cpuset_cpus": "0"})])
def test_v1_live_limit_joins_and_moves_every_thread(controller: str,
                                                    limit: dict[str, object]) -> None:
    """set() of a limit in a hierarchy not joined yet moves every thread of every process
    (a child cgroup's too) in, and later processes are placed there from the start."""
    if not _own_hierarchy(controller):
        pytest.skip(f"{controller} shares a hierarchy that every cgroup joins")
    threaded = ("import threading, time\n"
                "threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
                "time.sleep(1000)\n")
    with CGroup() as cg:
        proc = cg.spawn([sys.executable, "-c", threaded])
        assert wait_for(lambda: len(_threads(proc.pid)) == 2)
        # v1 refuses to narrow a parent's CPUs below a child's: no child for cpuset.
        with cg.child() if controller == "cpu" else contextlib.nullcontext() as inner:
            inner_proc = inner.spawn(["sleep", "1000"]) if inner else None
            cg.set(**limit)  # type: ignore[arg-type]
            assert controller in cg.paths
            for tid in _threads(proc.pid):
                assert _v1_path_of(tid, controller) == str(cg.relpath)
                if controller == "cpuset":
                    assert _allowed_cpus(tid) == "0"
            later = (inner or cg).spawn(["sleep", "1000"])
            assert _v1_path_of(later.pid, controller) == str((inner or cg).relpath)
            if inner is not None:
                assert _v1_path_of(inner_proc.pid, controller) == str(inner.relpath)
        paths = list(cg.paths.values())
    assert not any(p.exists() for p in paths)


@v1_only
@needs_cpuset
def test_v1_child_limit_makes_the_parent_join() -> None:
    """A child whose limit needs a hierarchy its parent is not in gets it: the parent joins."""
    with CGroup() as parent:
        assert "cpuset" not in parent.paths
        proc = parent.spawn(["sleep", "1000"])
        with parent.child(cpuset_cpus="0") as inner:
            assert inner.paths["cpuset"].parent == parent.paths["cpuset"]
            assert _v1_path_of(proc.pid, "cpuset") == str(parent.relpath)
            inner_proc = inner.spawn(["sleep", "1000"])
            assert _allowed_cpus(inner_proc.pid) == "0"
