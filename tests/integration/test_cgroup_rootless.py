"""Integration tests for CGroup run by an unprivileged user (uid 65534), set up by root.

On cgroup v1 nsbox must refuse clearly (there is no safe delegation). On cgroup v2 the test
builds a delegated sub-tree the way systemd does for ``Delegate=yes`` (a cgroup chowned to the
user, with the user's process in a leaf below it) and checks that nsbox finds and uses a
``nsbox`` sibling of that leaf. The ``rootless_python`` fixture comes from tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from nsbox.cgroup import detect

INFO = detect()
UID = 65534
PREFIX = f"nsbox-{os.getpid()}-"

pytestmark = [pytest.mark.cgroup,
              pytest.mark.skipif(os.geteuid() != 0, reason="setting up the user needs root")]

ENTER = """
    import json
    from nsbox.cgroup import CGroup
    from nsbox.errors import UnsupportedError
    try:
        with CGroup(memory_max="64M") as cg:
            result = "entered " + str(cg.relpath)
    except UnsupportedError as err:
        result = "unsupported: " + str(err)
    print(json.dumps(result))
"""


def run_as_user(rootless_python: list[str], code: str) -> object:
    """Run ``code`` as the unprivileged user; return the JSON it prints last."""
    proc = subprocess.run([*rootless_python, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(INFO.version != "v1", reason="cgroup v1 only")
def test_v1_rootless_is_unsupported(rootless_python: list[str]) -> None:
    """Without root, v1 raises UnsupportedError explaining that v1 needs root."""
    result = run_as_user(rootless_python, ENTER)
    assert isinstance(result, str) and result.startswith("unsupported: ")
    assert "root" in result


@pytest.mark.skipif(INFO.version != "v2", reason="cgroup v2 only")
def test_v2_rootless_without_delegation_is_unsupported(rootless_python: list[str]) -> None:
    """Without a delegated sub-tree, v2 raises UnsupportedError naming systemd-run Delegate."""
    result = run_as_user(rootless_python, ENTER)
    assert isinstance(result, str) and result.startswith("unsupported: ")
    assert "Delegate=yes" in result


DELEGATED = """
    import json, os, subprocess, sys
    from nsbox.cgroup import CGroup
    sys.stdin.readline()  # wait until root has moved us into the delegated leaf
    own = open("/proc/self/cgroup").read().strip()
    with CGroup(memory_max="32M", pids_max=8) as cg:
        sleeper = subprocess.Popen(["sleep", "1000"])
        cg.add(sleeper.pid)
        unified = cg.paths["unified"]
        result = {"own": own, "relpath": str(cg.relpath), "procs": cg.procs(),
                  "parent_uid": os.stat(unified.parent).st_uid,
                  "sleeper": sleeper.pid,
                  "memory_max": (unified / "memory.max").read_text().strip(),
                  "pids_max": (unified / "pids.max").read_text().strip()}
    result["status"] = sleeper.wait()
    result["left"] = unified.exists()
    print(json.dumps(result))
"""


@pytest.mark.skipif(INFO.version != "v2", reason="cgroup v2 only")
def test_v2_rootless_uses_a_sibling_in_the_delegated_tree(rootless_python: list[str]) -> None:
    """A user whose own leaf sits in a delegated cgroup gets limits in a 'nsbox' sibling."""
    assert INFO.v2_mount is not None
    delegated = INFO.v2_mount / f"{PREFIX}delegated"
    leaf = delegated / f"{PREFIX}leaf"
    delegated.mkdir()
    try:
        leaf.mkdir()
        # What systemd chowns for Delegate=yes: the directory and the files that delegate.
        for path in (delegated, delegated / "cgroup.procs", delegated / "cgroup.subtree_control",
                     delegated / "cgroup.threads", leaf, leaf / "cgroup.procs",
                     leaf / "cgroup.subtree_control", leaf / "cgroup.threads"):
            os.chown(path, UID, UID)
        proc = subprocess.Popen([*rootless_python, "-c", textwrap.dedent(DELEGATED)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            (leaf / "cgroup.procs").write_text(str(proc.pid))
            out, err = proc.communicate("\n", timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, f"{out}\n{err}"
        result = json.loads(out.strip().splitlines()[-1])
        assert result["own"] == f"0::/{delegated.name}/{leaf.name}"
        parent, name = result["relpath"].rsplit("/", 1)
        assert parent == f"/{delegated.name}/nsbox"
        assert name.startswith("nsbox-")
        assert result["procs"] == [result["sleeper"]]
        assert result["memory_max"] == str(32 * 2**20)
        assert result["pids_max"] == "8"
        assert result["status"] == -9
        assert result["left"] is False
        assert result["parent_uid"] == UID  # the shared parent nsbox made is the user's
        assert not (delegated / "nsbox").exists()  # and pruned once empty
    finally:
        for path in (delegated / "nsbox", leaf, delegated):
            if path.exists():
                path.rmdir()
    assert not Path(delegated).exists()
