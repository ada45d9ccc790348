"""The mount plan on the real kernel: binds, tmpfs, read-only, and errors that name the step."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import nsbox
from nsbox.rootfs import Bind, OverlayRootfs, PivotRoot, Tmpfs, make_busybox_tree
from tests.rootfs_helpers import mountinfo_rows


@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted below it (made for the test, removed after)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "file").write_text("top\n")
    subprocess.run(["mount", "-t", "tmpfs", "nsbox-test-sub", str(src / "sub")], check=True)
    try:
        (src / "sub" / "file").write_text("sub\n")
        yield src
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def test_readonly_bind_cannot_be_written_even_through_submounts(
        base: str, tree_with_submount: Path, tmp_path: Path, clean: None) -> None:
    """A read-only bind is read-only with the filesystems mounted below it; a read-write bind
    of the same tree writes through to the host."""
    src = tree_with_submount
    rw = tmp_path / "rw"
    rw.mkdir()
    plan = PivotRoot(OverlayRootfs([base]), mounts=[Bind(src, "/ro", readonly=True),
                                                     Bind(rw, "/rw")])
    script = """
        cat /ro/file /ro/sub/file
        for f in /ro/new /ro/sub/new /ro/file; do
            echo x >> $f 2>/dev/null || echo "refused $f"
        done
        mount -o remount,rw /ro/sub 2>/dev/null && echo x > /ro/sub/new2 && echo "remounted"
        echo written > /rw/new
    """
    with nsbox.Container(plan) as c:
        out = c.run(["sh", "-c", script], text=True).stdout
        rows = mountinfo_rows(c.run(["cat", "/proc/self/mountinfo"], text=True).stdout)
    assert out.splitlines() == ["top", "sub", "refused /ro/new", "refused /ro/sub/new",
                                "refused /ro/file"]
    assert sorted(os.listdir(src)) == ["file", "sub"] and os.listdir(src / "sub") == ["file"]
    assert (rw / "new").read_text() == "written\n"
    assert {p for _, p, _, _ in rows} >= {"/ro", "/ro/sub", "/rw"}


def test_tmpfs_gets_its_size_and_mode(base: str, clean: None) -> None:
    """A Tmpfs is mounted with its size limit and root mode; writing past the size fails."""
    plan = PivotRoot(OverlayRootfs([base]), mounts=[Tmpfs("/scratch", size="1M", mode=0o1777)])
    with nsbox.Container(plan) as c:
        out = c.run(["sh", "-c", "stat -c %a /scratch; df -k /scratch | tail -1; "
                     "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null "
                     "|| echo full"], text=True).stdout.splitlines()
    assert out[0] == "1777"
    assert out[1].split()[1] == "1024"
    assert out[2] == "full"


def test_readonly_root_keeps_its_mounts_writable(base: str, tmp_path: Path,
                                                 clean: None) -> None:
    """readonly=True makes / read-only while a tmpfs and /dev/shm on it stay writable."""
    plan = PivotRoot(OverlayRootfs([base]), readonly=True, mounts=[Tmpfs("/tmp")])
    with nsbox.Container(plan) as c:
        out = c.run(["sh", "-c", "touch /x 2>/dev/null || echo ro; touch /tmp/x /dev/shm/x "
                     "&& echo rw"], text=True).stdout
    assert out == "ro\nrw\n"


def test_a_failed_mount_names_the_step_and_the_path(tmp_path: Path, clean: None) -> None:
    """A mount the kernel refuses raises SpawnError with step 'mount' and the destination
    as detail, before anything of the container runs, leaving nothing behind."""
    tree = make_busybox_tree(tmp_path / "tree")
    (tmp_path / "dir").mkdir()
    plan = PivotRoot(tree, mounts=[Bind(tmp_path / "dir", "/etc/passwd")])
    with pytest.raises(nsbox.SpawnError) as info, nsbox.Container(plan):
        pass
    assert (info.value.step, info.value.detail) == ("mount", "/etc/passwd")
    assert info.value.errno in (errno.EINVAL, errno.ENOTDIR)  # a directory onto a file
    assert "mount failed" in str(info.value) and "/etc/passwd" in str(info.value)


def test_an_overlay_failure_names_the_overlay_step(base: str, tmp_path: Path,
                                                   clean: None) -> None:
    """A lower layer that disappears before the container starts fails at step 'overlay',
    naming that layer."""
    gone = tmp_path / "gone"
    gone.mkdir()
    fs = OverlayRootfs([gone, base])
    gone.rmdir()
    with pytest.raises(nsbox.SpawnError) as info, nsbox.Container(rootfs=fs):
        pass
    assert (info.value.step, info.value.detail) == ("overlay", str(gone))
    assert isinstance(info.value, FileNotFoundError)


def test_upper_on_an_overlay_is_unsupported(base: str, clean: None) -> None:
    """An upper layer on an overlay is refused on construction with UnsupportedError."""
    with OverlayRootfs([base]) as fs, \
         pytest.raises(nsbox.UnsupportedError, match="overlay cannot be the upper"):
        OverlayRootfs([base], upper=os.path.join(fs.path, "tmp", "upper"))


def test_a_rootfs_needs_a_new_mount_namespace(base: str, clean: None) -> None:
    """A rootfs with the host's mount namespace, or joining a live one, is a ConfigError."""
    with pytest.raises(nsbox.ConfigError, match="mount namespace"):
        nsbox.Container(nsbox.Namespaces(mount=False), rootfs=OverlayRootfs([base]))
    with nsbox.Namespaces() as ns, pytest.raises(nsbox.ConfigError, match="mount namespace"), \
         nsbox.Container(ns, rootfs=OverlayRootfs([base])):
        pass


def test_cleanup_never_removes_through_a_mount(tmp_path: Path, clean: None) -> None:
    """nsbox's tree removal stops at a filesystem mounted below the tree instead of deleting
    what that filesystem holds."""
    from nsbox.rootfs._files import remove_tree

    top = tmp_path / "nsbox-overlay-test"
    (top / "merged").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "nsbox-test-cleanup", str(top / "merged")],
                   check=True)
    try:
        (top / "merged" / "precious").write_text("keep\n")
        with pytest.raises(OSError) as info:
            remove_tree(str(top))
        assert info.value.errno == errno.EBUSY
        assert (top / "merged" / "precious").read_text() == "keep\n"
    finally:
        subprocess.run(["umount", str(top / "merged")], check=True)
    remove_tree(str(top))
    assert not top.exists()
