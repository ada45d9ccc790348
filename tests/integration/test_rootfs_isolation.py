"""PivotRoot on the real kernel: nothing of the host is reachable from inside, by any path."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

import nsbox
from nsbox.rootfs import Bind, OverlayRootfs, PivotRoot, make_busybox_tree
from tests.rootfs_helpers import mountinfo_rows, tree_checksum


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file only the host has."""
    path = tmp_path / f"secret-{uuid.uuid4().hex}"
    path.write_text("host-only\n")
    return path


# Every path to the host file a process inside could try, then every fd of every process.
PROBE = r"""
S="$1"
for p in "$S" "../../../../../../../../..$S" "/proc/1/root$S" "/proc/self/root$S" \
         "/proc/1/cwd$S" "/proc/self/cwd/../../../../../..$S" "/proc/1/root/../../..$S"; do
    cat "$p" 2>/dev/null && echo "LEAK $p"
done
for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do
    [ -d "$f" ] && [ "$(readlink "$f")" != / ] && echo "DIR $f -> $(readlink "$f")"
    cat "$f$S" 2>/dev/null && echo "LEAK $f$S"
done
find / -path /proc -prune -o -name "$(basename "$S")" -print 2>/dev/null | sed 's/^/FOUND /'
echo done
"""


def test_host_file_is_unreachable_by_every_path(base: str, secret: Path, clean: None) -> None:
    """A file only on the host cannot be read by absolute path, '..' chains, /proc/*/root,
    /proc/*/cwd or any process's fds, while the same probe finds it without a new root."""
    with nsbox.Container(rootfs=None) as control:  # the host's filesystem
        found = control.run(["sh", "-c", PROBE, "sh", str(secret)], text=True).stdout
    assert f"LEAK {secret}" in found  # the probe does detect a reachable file

    with nsbox.Container(rootfs=OverlayRootfs([base])) as c:
        sleeper = c.spawn(["sleep", "30"])  # one more process whose fds are probed
        try:
            out = c.run(["sh", "-c", PROBE, "sh", str(secret)], text=True).stdout
        finally:
            sleeper.kill()
            sleeper.wait()
    assert out.splitlines() == ["done"]
    assert secret.read_text() == "host-only\n"


def test_old_root_is_gone_from_mountinfo(base: str, clean: None) -> None:
    """Inside, the mount table holds only the new root and the plan's mounts: no host mount."""
    with open("/proc/self/mountinfo") as f:
        host = {point for _, point, _, _ in mountinfo_rows(f.read())}
    with nsbox.Container(rootfs=OverlayRootfs([base])) as c:
        rows = mountinfo_rows(c.run(["cat", "/proc/self/mountinfo"], text=True).stdout)
    points = {point for _, point, _, _ in rows}
    fstypes = {fstype for _, _, fstype, _ in rows}
    assert [(p, t) for _, p, t, _ in rows if p == "/"] == [("/", "overlay")]
    assert fstypes <= {"overlay", "proc", "tmpfs", "devpts", "sysfs", "devtmpfs"}
    leftovers = host - points - {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm"}
    assert leftovers and not leftovers & points  # the host has mounts; none is here
    assert not any(p.startswith(("/sys/fs/cgroup", "/mnt")) for p in points)


def test_plain_directory_rootfs_pivots_and_creates_mount_points(tmp_path: Path, secret: Path,
                                                                clean: None) -> None:
    """A directory as the rootfs is bound as the root; /proc, /dev and /sys are made in it."""
    tree = make_busybox_tree(tmp_path / "tree")
    for name in ("proc", "sys", "dev"):
        os.rmdir(os.path.join(tree, name))
    with nsbox.Container(PivotRoot(tree)) as c:
        out = c.run(["sh", "-c", f'cat /proc/1/comm; cat "{secret}" || echo unreachable; '
                     "echo written > /written"], text=True).stdout
    assert out == "nsbox-init\nunreachable\n"
    assert (tmp_path / "tree" / "written").read_text() == "written\n"
    assert all(os.path.isdir(os.path.join(tree, d)) for d in ("proc", "sys", "dev"))


def test_proc_dev_and_sys_are_the_containers(base: str, clean: None) -> None:
    """/proc lists only the container's processes, /dev has working nodes and a private
    devpts, /sys and /proc/sys are read-only, masked files read empty."""
    script = """
        ls /proc | grep -cE '^[0-9]+$'
        echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 5 /dev/urandom | wc -c
        [ -c /dev/pts/ptmx ] && readlink /dev/ptmx && ls /dev/pts
        echo shm > /dev/shm/f && cat /dev/shm/f
        touch /sys/nsbox 2>/dev/null || echo sys-ro
        echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo proc-sys-ro
        wc -c < /proc/keys
    """
    with nsbox.Container(rootfs=OverlayRootfs([base])) as c:
        out = c.run(["sh", "-c", script], text=True).stdout.split()
    nprocs, three, five, ptmx, *rest = out
    assert int(nprocs) <= 4 and three == "3" and five == "5" and ptmx == "pts/ptmx"
    assert rest[-4:] == ["shm", "sys-ro", "proc-sys-ro", "0"]
    assert "ptmx" in rest  # the private devpts has its own ptmx


def test_symlink_to_the_host_is_refused_as_a_mount_destination(tmp_path: Path,
                                                                clean: None) -> None:
    """A rootfs whose /etc is a symlink to a host directory (absolute or by '..') gets no
    mount there: the container is refused, the host directory untouched."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "hosts").write_text("the host's\n")
    source = tmp_path / "hosts"
    source.write_text("the container's\n")
    before = tree_checksum(victim)
    for target in (str(victim), "../../../../../../../../.." + str(victim)):
        tree = make_busybox_tree(tmp_path / f"evil-{uuid.uuid4().hex[:6]}")
        shutil.rmtree(os.path.join(tree, "etc"))
        os.symlink(target, os.path.join(tree, "etc"))
        plan = PivotRoot(tree, mounts=[Bind(source, "/etc/hosts")])
        with pytest.raises(nsbox.SpawnError) as info, nsbox.Container(plan):
            pass
        assert (info.value.step, info.value.detail) == ("mount", "/etc/hosts")
        assert tree_checksum(victim) == before


def test_magic_link_to_the_host_root_is_refused(tmp_path: Path, clean: None) -> None:
    """A rootfs symlink through /proc/self/root (a magic link, which would lead to the host's
    root before pivot_root) is refused, and nothing is created on the host."""
    probe = f"/etc/nsbox-escape-probe-{uuid.uuid4().hex}"
    tree = make_busybox_tree(tmp_path / "evil")
    os.rmdir(os.path.join(tree, "root"))
    os.symlink("/proc/self/root/etc", os.path.join(tree, "root"))
    source = tmp_path / "payload"
    source.write_text("payload\n")
    try:
        plan = PivotRoot(tree, mounts=[Bind(source, "/root/" + probe[5:])])
        with pytest.raises(nsbox.SpawnError) as info, nsbox.Container(plan):
            pass
        assert info.value.step == "mount"
        assert not os.path.exists(probe)
    finally:
        if os.path.exists(probe):  # only if the test failed: do not leave it on the host
            os.unlink(probe)


def test_symlink_inside_the_rootfs_is_followed_inside(tmp_path: Path, clean: None) -> None:
    """A symlink within the rootfs (/etc -> /realetc) is followed inside it: the mount lands
    at /realetc/hosts, seen through both names."""
    tree = make_busybox_tree(tmp_path / "tree")
    os.rename(os.path.join(tree, "etc"), os.path.join(tree, "realetc"))
    os.symlink("/realetc", os.path.join(tree, "etc"))
    source = tmp_path / "hosts"
    source.write_text("bound\n")
    with nsbox.Container(PivotRoot(tree, mounts=[Bind(source, "/etc/hosts")])) as c:
        out = c.run(["sh", "-c", "cat /etc/hosts /realetc/hosts"], text=True).stdout
    assert out == "bound\nbound\n"
