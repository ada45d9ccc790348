"""The escape suite, part two: attacks that need the container to have its own root
filesystem (a busybox tree), as root and rootless. Each asserts that the attack fails and that
the host is unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_escapes import run_driver

HERE = os.path.dirname(os.path.abspath(__file__))
ENOENT = 2


@pytest.fixture(scope="session")
def attacker() -> Iterator[str]:
    """tests/security/attacker.c, compiled static, in a directory everyone can read."""
    directory = tempfile.mkdtemp(prefix="nsbox-attacker-")
    os.chmod(directory, 0o755)
    binary = os.path.join(directory, "attacker")
    proc = subprocess.run(["gcc", "-static", "-O1", "-o", binary,
                           os.path.join(HERE, "attacker.c")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, f"gcc (scripts/bootstrap installs it) failed: {proc.stderr}"
    os.chmod(binary, 0o755)
    yield binary
    shutil.rmtree(directory)


@pytest.fixture
def secret() -> Iterator[Path]:
    """A file only the host has, readable by anyone: were it reachable, an attack would read
    it (so a refusal is ENOENT, never EACCES)."""
    directory = Path(tempfile.mkdtemp(prefix="nsbox-secret-"))
    os.chmod(directory, 0o755)
    path = directory / "secret"
    path.write_text("host-only\n")
    os.chmod(path, 0o644)
    yield path
    shutil.rmtree(directory)


def _scratch() -> str:
    directory = tempfile.mkdtemp(prefix="nsbox-escape-rootfs-")
    os.chmod(directory, 0o777)
    return directory


def test_chroot_trick_reaches_no_host_file(mode: str, rootless_python: list[str],
                                           attacker: str, secret: Path,
                                           host_state: object) -> None:
    """chroot into a subdirectory, fchdir back out through a kept fd, climb '..' and chroot
    there: the root reached is the container's, and no host file is found on the way (nor
    through /proc/1/root or /proc/self/root); without a new root the same program reads it."""
    scratch = _scratch()
    try:
        result = run_driver(mode, rootless_python, f"""
            import json, os, shutil, nsbox
            from nsbox.rootfs import OverlayRootfs, make_busybox_tree
            tree = make_busybox_tree(os.path.join({scratch!r}, "tree-" + str(os.getuid())))
            shutil.copy({attacker!r}, os.path.join(tree, "bin", "attacker"))
            with nsbox.Container(rootfs=OverlayRootfs([tree])) as c:
                inside = c.run(["/bin/attacker", "chroot", {str(secret)!r}], text=True)
            with nsbox.Container(rootfs=None) as c:  # the control: the host's filesystem
                control = c.run([{attacker!r}, "chroot", {str(secret)!r}], text=True)
            print(json.dumps({{"inside": [inside.returncode, inside.stdout, inside.stderr],
                               "control": [control.returncode, control.stdout]}}))
        """)
    finally:
        shutil.rmtree(scratch)
    code, out, err = result["inside"]
    assert code == 0, err
    inside = json.loads(out)
    assert (inside["chroot"], inside["fchdir"], inside["chroot_dot"]) == (0, 0, 0)
    assert inside["cwd"] == "/"
    for route in ("before", "proc1_root", "self_root", "after", "after_climb"):
        assert inside[route] == ENOENT, (route, inside)
    assert json.loads(result["control"][1])["before"] == 0  # the probe does see host files
    assert secret.read_text() == "host-only\n"


def test_kernel_files_with_a_root_filesystem(mode: str, rootless_python: list[str],
                                             host_state: object) -> None:
    """In a container with its own root: /proc/keys, /proc/timer_list and /sys/firmware read
    empty, /proc/sys and /sys cannot be written or remounted, pivot_root and mount fail."""
    script = r"""
        for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do
            [ -e "$f" ] && echo "$f $(head -c 100 "$f" | wc -c)"
        done
        echo "/sys/firmware $(ls /sys/firmware | wc -l)"
        echo 7 > /proc/sys/kernel/printk_ratelimit 2>/dev/null && echo "WROTE sysctl"
        mount -o remount,rw /sys 2>/dev/null && echo "REMOUNTED sys"
        mount -o remount,rw,bind /proc/sys 2>/dev/null && echo "REMOUNTED proc/sys"
        mount -t tmpfs none /mnt 2>/dev/null && echo "MOUNTED"
        mkdir -p /old && pivot_root / /old 2>/dev/null && echo "PIVOTED"
        echo done
    """
    with open("/proc/sys/kernel/printk_ratelimit") as f:
        sysctl_before = f.read()
    scratch = _scratch()
    try:
        result = run_driver(mode, rootless_python, f"""
            import json, os, nsbox
            from nsbox.rootfs import OverlayRootfs, make_busybox_tree
            tree = make_busybox_tree(os.path.join({scratch!r}, "tree-" + str(os.getuid())))
            with nsbox.Container(rootfs=OverlayRootfs([tree])) as c:
                r = c.run(["sh", "-c", {script!r}], text=True)
            print(json.dumps([r.returncode, r.stdout, r.stderr]))
        """)
    finally:
        shutil.rmtree(scratch)
    code, out, err = result
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == "done"
    assert "/sys/firmware 0" in lines
    for line in lines[:-1]:  # "PATH SIZE" of the masked files: all empty; nothing else
        path, size = line.rsplit(" ", 1)
        assert path.startswith(("/proc/", "/sys/")) and size == "0", line
    with open("/proc/sys/kernel/printk_ratelimit") as f:
        assert f.read() == sysctl_before


def test_symlink_swap_on_a_bind_destination(mode: str, rootless_python: list[str],
                                            secret: Path, host_state: object) -> None:
    """CVE-2021-30465 class: while containers start with a bind mount on /data, another
    process keeps exchanging /data in the rootfs with a symlink to a host directory. Every
    start either mounts the volume inside the container or is refused; no host directory is
    mounted on or changed, and the host file is never readable inside."""
    scratch = _scratch()
    host_dir = str(secret.parent)
    try:
        result = run_driver(mode, rootless_python, f"""
            import ctypes, json, os, threading, nsbox
            from nsbox.rootfs import Bind, PivotRoot, make_busybox_tree
            base = os.path.join({scratch!r}, "run-" + str(os.getuid()))
            tree = make_busybox_tree(os.path.join(base, "tree"))
            volume = os.path.join(base, "volume")
            os.makedirs(volume)
            with open(os.path.join(volume, "vol-file"), "w") as f:
                f.write("volume\\n")
            data, link = os.path.join(tree, "data"), os.path.join(tree, "data-link")
            os.mkdir(data)
            os.symlink({host_dir!r}, link)
            libc = ctypes.CDLL(None, use_errno=True)
            stop = threading.Event()
            swaps = [0]
            def swap():  # renameat2(RENAME_EXCHANGE): /data is a directory, then a symlink
                while not stop.is_set():
                    if libc.renameat2(-100, data.encode(), -100, link.encode(), 2) == 0:
                        swaps[0] += 1
            with open("/proc/self/mountinfo") as f:
                mounts_before = f.read()
            swapper = threading.Thread(target=swap)
            swapper.start()
            outcomes = []
            try:
                for _ in range(30):
                    try:
                        with nsbox.Container(rootfs=PivotRoot(tree, mounts=[
                                Bind(volume, "/data", readonly=True)])) as c:
                            r = c.run(["sh", "-c", "cat /data/vol-file; cat {secret}; "
                                       "cat /data/secret"], text=True)
                        outcomes.append(["ran", r.stdout])
                    except nsbox.NsboxError as exc:
                        outcomes.append(["refused", type(exc).__name__ + ": " + str(exc)])
            finally:
                stop.set()
                swapper.join()
            with open("/proc/self/mountinfo") as f:
                mounts_after = f.read()
            print(json.dumps({{"outcomes": outcomes, "swaps": swaps[0],
                               "mounts_unchanged": mounts_before == mounts_after}}))
        """)
    finally:
        shutil.rmtree(scratch)
    assert result["swaps"] > 0 and result["mounts_unchanged"] is True
    outcomes = result["outcomes"]
    assert any(kind == "ran" for kind, _ in outcomes), outcomes
    for kind, text in outcomes:
        assert "host-only" not in text, outcomes
        # A run sees the volume, or nothing: when the swap renames the mount point after the
        # container started, the kernel detaches the bind in the container's namespace.
        assert kind == "refused" or text in ("volume\n", ""), outcomes
    assert sorted(os.listdir(secret.parent)) == ["secret"]
    assert secret.read_text() == "host-only\n"
