"""`nsbox gc` after the owning process was SIGKILLed: everything it held is released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nsbox
from nsbox import state

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups here need root")

HOLDER = """
    import sys, time
    import nsbox
    from nsbox.cgroup import CGroup
    cg = CGroup(memory_max="64M")
    cg.__enter__()
    c = nsbox.Container(cgroup=CGroup(pids_max=50))
    c.__enter__()
    c.spawn(["sleep", "300"])
    print(" ".join(str(p) for p in [*cg.paths.values(), *c.cgroup.paths.values()]), flush=True)
    time.sleep(300)
"""


def _run_holder(state_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "NSBOX_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    paths = proc.stdout.readline().split()
    assert paths, "the holder did not start"
    return proc, paths


def test_gc_releases_what_a_killed_owner_held(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """After SIGKILL of the owner, gc --dry-run lists its cgroups, gc removes them, and a live
    owner's resources are left alone."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path))
    victim, victim_paths = _run_holder(tmp_path)
    survivor, survivor_paths = _run_holder(tmp_path)
    try:
        assert all(Path(p).is_dir() for p in victim_paths + survivor_paths)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        time.sleep(0.2)  # the container's init notices its owner is gone and exits
        planned = state.gc(dry_run=True)
        # The cgroups, and the container's throwaway root filesystem directory (as root).
        assert {i.path for i in planned if i.kind == "cgroup"} == set(victim_paths)
        assert all(Path(i.path).exists() for i in planned)
        released = state.gc()
        assert released == planned
        assert not any(Path(i.path).exists() for i in released)
        assert all(Path(p).is_dir() for p in survivor_paths)
        assert state.gc() == []
    finally:
        survivor.send_signal(signal.SIGKILL)
        survivor.wait()
        state.gc()
    assert not any(Path(p).exists() for p in survivor_paths)
    assert list((tmp_path / "owners").iterdir()) == []


def test_gc_never_touches_what_nsbox_did_not_create(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A record of a dead owner naming a path that is not nsbox-... is dropped, not acted on."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path))
    precious = tmp_path / "precious"
    precious.mkdir()
    dead_owner = tmp_path / "owners" / "999999999-1"
    dead_owner.mkdir(parents=True)
    (dead_owner / "dir-0123456789abcdef").write_text(str(precious))
    assert state.gc() == []
    assert precious.is_dir() and not dead_owner.exists()


def test_cli_gc_dry_run(tmp_path: Path) -> None:
    """`nsbox gc --dry-run` exits 0 and lists nothing when nothing was left."""
    env = {**os.environ, "NSBOX_STATE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "nsbox", "gc", "--dry-run"], env=env,
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_gc_reads_a_record_its_owner_died_while_writing(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A record an older nsbox left half-renamed (its owner killed between the write and the
    rename) is still honoured after an upgrade."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path / "state"))
    leftover = tmp_path / "nsbox-overlay-halfway"
    (leftover / "upper").mkdir(parents=True)
    dead_owner = tmp_path / "state" / "owners" / "999999999-1"
    dead_owner.mkdir(parents=True)
    (dead_owner / ".dir-0123456789abcdef.140000").write_text(str(leftover))
    assert [item.path for item in state.gc()] == [str(leftover)]
    assert not leftover.exists() and not dead_owner.exists()


@pytest.mark.parametrize("hostile", ["world-writable", "symlink"])
def test_state_directory_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         hostile: str) -> None:
    """A state directory others can write to, or a symlink planted there, is refused before
    anything is recorded in it."""
    top = tmp_path / "state"
    if hostile == "world-writable":
        top.mkdir()
        top.chmod(0o777)
    else:
        (tmp_path / "elsewhere").mkdir()
        top.symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("NSBOX_STATE_DIR", str(top))
    with pytest.raises(nsbox.UnsupportedError, match="state directory"):
        state.record("dir", "/tmp/nsbox-never-made")
    assert not (tmp_path / "elsewhere" / "owners").exists()
