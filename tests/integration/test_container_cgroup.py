"""A Container with a CGroup, and CGroup.run alone: placement, OOM, freezer, stats, teardown.

Runs here on cgroup v1 and in CI's cgroup v2 lane (../shared/tools/cgroup2-vm).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import nsbox
from nsbox.cgroup import CGroup, detect

pytestmark = [pytest.mark.cgroup,
              pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups needs root")]

HOG = ["python3", "-c", "import os; os.urandom(200 * 2**20)"]


def _cgroup_of(pid: int) -> str:
    """The process's cgroup in the memory hierarchy (v1) or the unified one (v2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.strip().split(":", 2) for line in f]
    wanted = "memory" if detect().version == "v1" else ""
    return next(path for _, ctrls, path in lines if wanted in ctrls.split(",") or ctrls == wanted)


def _nsbox_cgroup_dirs() -> set[str]:
    info = detect()
    roots = [info.v2_mount] if info.version == "v2" else list(info.v1_mounts.values())
    found = set()
    for root in roots:
        parent = Path(root) / "nsbox"
        if parent.is_dir():
            found |= {str(p) for p in parent.iterdir() if p.name.startswith(f"nsbox-{os.getpid()}")}
    return found


def test_every_process_is_in_the_cgroup_before_it_runs() -> None:
    """The init and each run are inside the container's cgroup from their first instruction."""
    with nsbox.Container(cgroup=CGroup(pids_max=100)) as c:
        assert c.cgroup is not None
        expected = str(c.cgroup.relpath)
        assert _cgroup_of(c.init_pid) == expected
        # The process reads its own cgroup as its first act: placement came before exec.
        sleeper = c.spawn(["sleep", "30"])
        try:
            assert _cgroup_of(sleeper.pid) == expected
            assert set(c.cgroup.procs()) >= {c.init_pid, sleeper.pid}
        finally:
            sleeper.kill()
            sleeper.wait()
        inside = c.run(["cat", "/proc/self/cgroup"], text=True).stdout
        assert all(line.endswith(":/") for line in inside.split()), inside


def test_oom_kill_is_reported_as_oom_not_as_sigkill() -> None:
    """A process exceeding memory_max is reported oom_killed; a plain SIGKILL is not."""
    with nsbox.Container(cgroup=CGroup(memory_max="64M", swap_max=0)) as c:
        result = c.run(HOG)
        assert result.returncode == -signal.SIGKILL and result.oom_killed is True
        plain = c.run(["sh", "-c", "kill -KILL $$"])
        assert plain.returncode == -signal.SIGKILL and plain.oom_killed is False
        with pytest.raises(nsbox.CalledProcessError) as info:
            c.run(HOG, check=True)
        assert info.value.oom_killed and "OOM" in str(info.value)
        assert c.stats().oom_kills >= 2


# PID 1 ignores SIGKILL sent from inside its namespace; the kernel's own, at the CPU-time
# hard limit, is a SIGKILL that has nothing to do with memory.
CPU_KILLED = {"args": ["sh", "-c", "while :; do :; done"], "rlimits": {"cpu": 1}}


def test_one_shot_run_reports_oom_against_the_right_baseline() -> None:
    """nsbox.run's command is the first process of the cgroup it makes, so its OOM count
    starts at zero; in a cgroup the caller entered, kills counted before it do not count."""
    hog = nsbox.run(HOG, cgroup=CGroup(memory_max="64M", swap_max=0))
    assert hog.returncode == -signal.SIGKILL and hog.oom_killed is True
    plain = nsbox.run(cgroup=CGroup(memory_max="64M"), **CPU_KILLED)
    assert plain.returncode == -signal.SIGKILL and plain.oom_killed is False
    with CGroup(memory_max="64M", swap_max=0) as cg:
        assert nsbox.run(HOG, cgroup=cg).oom_killed is True
        assert cg.oom_kills() >= 1
        later = nsbox.run(cgroup=cg, **CPU_KILLED)
        assert later.returncode == -signal.SIGKILL and later.oom_killed is False


def _cpu_ns(c: nsbox.Container) -> int:
    usage = c.stats().cpu_usage_ns
    assert usage is not None
    return usage


def test_freeze_thaw_and_stats() -> None:
    """A frozen busy loop uses no CPU, thawed it uses CPU again; stats report usage."""
    with nsbox.Container(cgroup=CGroup(cpu_max=0.5)) as c:
        busy = c.spawn(["sh", "-c", "while :; do :; done"])
        try:
            time.sleep(0.3)
            c.freeze()
            assert c.frozen
            frozen_at = _cpu_ns(c)
            time.sleep(0.3)
            assert _cpu_ns(c) == frozen_at
            c.thaw()
            assert not c.frozen
            time.sleep(0.3)
            assert _cpu_ns(c) > frozen_at + 50_000_000  # about 150 ms at half a CPU
            stats = c.stats()
            assert stats.pids_current is not None and stats.pids_current >= 2
        finally:
            busy.kill()
            busy.wait()


def test_frozen_container_tears_down_and_leaves_no_cgroup() -> None:
    """Leaving a frozen container with running processes removes its cgroup."""
    with nsbox.Container(cgroup=CGroup()) as c:
        c.spawn(["sh", "-c", "sleep 60 & sleep 60"])
        c.freeze()
    assert _nsbox_cgroup_dirs() == set()


def test_a_cgroup_entered_by_the_caller_stays_the_callers() -> None:
    """A CGroup entered outside the container outlives it and can be reused."""
    with CGroup(pids_max=50) as cg:
        with nsbox.Container(cg) as c:
            c.run(["true"], check=True)
        assert cg.procs() == []
        with nsbox.Container(cg) as c:
            assert c.run(["true"]).returncode == 0
    assert _nsbox_cgroup_dirs() == set()


def test_fork_bomb_stays_under_pids_max() -> None:
    """A fork bomb in a container with pids_max=32 stays at 32 and the container is killable."""
    with nsbox.Container(cgroup=CGroup(pids_max=32)) as c:
        bomb = c.spawn(["sh", "-c", "b() { b | b & }; b"], stderr=nsbox.DEVNULL)
        time.sleep(1)
        pids = c.stats().pids_current  # the kernel's count; a listing may hold exiting tasks
        assert pids is not None and pids <= 32
        bomb.kill()
    assert _nsbox_cgroup_dirs() == set()


def test_cgroup_run_alone_limits_any_process() -> None:
    """CGroup.run starts a process inside the cgroup without namespaces, OOM reported."""
    with CGroup(memory_max="64M", swap_max=0) as cg:
        same_host = cg.run(["hostname"], text=True).stdout.strip()
        assert same_host == os.uname().nodename
        assert cg.run(HOG).oom_killed is True
        sleeper = cg.spawn(["sleep", "60"])
    assert sleeper.returncode == -signal.SIGKILL
    assert _nsbox_cgroup_dirs() == set()


def test_shared_parent_is_pruned_when_its_process_exits() -> None:
    """Eight threads making and leaving cgroups all succeed, and when their process exits the
    shared parent it made is removed."""
    churn = """
import threading
from nsbox.cgroup import CGroup
errors = []
parents = set()
def churn():
    try:
        for _ in range(25):
            with CGroup(pids_max=10) as cg:
                assert cg.procs() == []
                parents.update(str(p.parent) for p in cg.paths.values())
    except BaseException as exc:
        errors.append(exc)
threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors[:3]
print(" ".join(sorted(parents)))
"""
    import subprocess
    import sys

    used = subprocess.run([sys.executable, "-c", churn], check=True, timeout=120,
                          capture_output=True, text=True).stdout.split()
    assert used and all(Path(p).name == "nsbox" for p in used)
    # This test process holds no cgroup now (and on v1 the churn's cgroups were in fewer
    # hierarchies than earlier tests used): only another nsbox user could keep these.
    left = {p: sorted(c.name for c in Path(p).iterdir() if c.is_dir())
            for p in used if Path(p).exists()}
    assert left == {}

