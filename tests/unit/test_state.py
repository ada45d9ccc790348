"""The state directory's records: where they go, in this process and in a forked one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nsbox import state


def _owner_dir(pid: int) -> str:
    return f"{pid}-{state._start_time(pid)}"


def test_a_record_is_in_place_when_record_returns(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The record file names the resource before record() returns, and forget() removes it."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path))
    mine = tmp_path / "owners" / _owner_dir(os.getpid())
    state.record("dir", "/tmp/nsbox-somewhere")
    assert [p.read_text() for p in mine.iterdir()] == ["/tmp/nsbox-somewhere"]
    state.forget("dir", "/tmp/nsbox-somewhere")
    assert list(mine.iterdir()) == []


def test_another_state_directory_is_checked_even_after_one_was_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner directory is remembered per state directory: switching to a world-writable
    one later in the process is still refused."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path / "good"))
    state.record("dir", "/tmp/nsbox-first")
    state.forget("dir", "/tmp/nsbox-first")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    hostile.chmod(0o777)
    monkeypatch.setenv("NSBOX_STATE_DIR", str(hostile))
    with pytest.raises(state.UnsupportedError, match="state directory"):
        state.record("dir", "/tmp/nsbox-second")
    assert not (hostile / "owners").exists()


FORKER = """
    import os, signal, sys
    from nsbox import state
    state.record("dir", "/tmp/nsbox-parent")
    state.forget("dir", "/tmp/nsbox-parent")  # the parent's directory is empty at the fork
    # A lock held by another thread of the parent at fork time must not hang the child.
    state._lock.acquire()
    child = os.fork()
    if child == 0:
        signal.alarm(20)  # if it does hang, it does not outlive the test
        state.record("dir", "/tmp/nsbox-child")
        print(os.getpid(), flush=True)
        sys.exit(0)  # a normal exit: the parent's atexit handlers run in the child too
    state._lock.release()
    os.waitpid(child, 0)
    state.record("dir", "/tmp/nsbox-parent-again")  # its directory is still there
    print("ok", flush=True)
    os._exit(0)  # keep the directory for the test to look at
"""


def test_a_forked_child_records_in_a_directory_of_its_own(tmp_path: Path) -> None:
    """After fork, the child's records go to its own pid's directory, its exit leaves the
    parent's directory alone, and a lock held at fork time does not block the child."""
    env = {**os.environ, "NSBOX_STATE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FORKER)], env=env,
                          capture_output=True, text=True, timeout=30, check=True)
    child_pid, ok = proc.stdout.split()
    assert ok == "ok"
    owners = {p.name: sorted(r.read_text() for r in p.iterdir())
              for p in (tmp_path / "owners").iterdir()}
    parent = [name for name in owners if not name.startswith(f"{child_pid}-")]
    child = [name for name in owners if name.startswith(f"{child_pid}-")]
    assert [owners[name] for name in parent] == [["/tmp/nsbox-parent-again"]]
    assert [owners[name] for name in child] == [["/tmp/nsbox-child"]]


def test_an_empty_record_of_a_dead_owner_is_not_a_leftover(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record is created, then written: an owner that died in between had not made the
    resource yet, so gc has nothing to release for it (and must not read '' as a path)."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path))
    dead = tmp_path / "owners" / "999999999-0"  # no such pid: an owner that is gone
    dead.mkdir(parents=True)
    (dead / "cgroup-0000000000000000").write_text("")
    (dead / "dir-1111111111111111").write_text("/tmp/nsbox-left-behind")
    assert [(item.kind, item.path) for item in state.leftovers()] == [
        ("dir", "/tmp/nsbox-left-behind")]
