"""OverlayRootfs on the real kernel: copy-on-write isolation, diff, commit, many layers."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import nsbox
from nsbox import CGroup, state
from nsbox._native import mounts as native
from nsbox.rootfs import OverlayRootfs, PivotRoot, make_busybox_tree
from tests.rootfs_helpers import make_layer, mountinfo_rows, rootfs_temp_dirs, tree_checksum


@pytest.fixture
def app(tmp_path: Path) -> str:
    """A second layer with files to create, modify, delete and rename over."""
    return make_layer(tmp_path / "app", {
        "srv/keep": "keep\n", "srv/modify-me": "old\n", "srv/delete-me": "bye\n",
        "srv/rename-me": "moving\n", "srv/dir-rm/a": "a\n", "srv/dir-rm/b": "b\n",
        "srv/opq/a": "a\n", "srv/opq/b": "b\n", "srv/chmod-me": None,
    })


CHANGES = """
    set -e
    echo new > /srv/new
    echo more >> /srv/modify-me
    rm /srv/delete-me
    mv /srv/rename-me /srv/renamed
    rm -r /srv/dir-rm
    rm -r /srv/opq && mkdir /srv/opq && echo fresh > /srv/opq/new
    chmod 700 /srv/chmod-me
"""


def test_two_containers_on_the_same_lowers_see_only_their_own_writes(base: str, app: str,
                                                                     clean: None) -> None:
    """Two containers run at once over the same layers; each sees its own writes only, and
    the lower layers are byte-for-byte unchanged afterwards."""
    sums = tree_checksum(base), tree_checksum(app)
    with nsbox.Container(rootfs=OverlayRootfs([base, app])) as one, \
         nsbox.Container(rootfs=OverlayRootfs([base, app])) as two:
        for c, name in ((one, "one"), (two, "two")):
            c.run(["sh", "-c", f"echo {name} > /srv/who; echo {name} >> /srv/keep; "
                   "rm /srv/delete-me"], check=True)
        for c, name in ((one, "one"), (two, "two")):
            out = c.run(["sh", "-c", "cat /srv/who /srv/keep; ls /srv"], text=True).stdout
            assert out.split("\n")[:3] == [name, "keep", name]
            assert "delete-me" not in out
    assert (tree_checksum(base), tree_checksum(app)) == sums
    assert Path(app, "srv/delete-me").read_text() == "bye\n"


def test_diff_reports_exactly_the_changes(base: str, app: str, clean: None) -> None:
    """diff() lists created, modified, deleted and renamed paths, a directory replaced by an
    empty one (opaque) and a chmod of a directory, and nothing else."""
    fs = OverlayRootfs([base, app])
    with PivotRoot(fs) as root:
        with nsbox.Container(root) as c:
            c.run(["sh", "-c", CHANGES], check=True)
            changes = {(ch.kind, ch.path) for ch in fs.diff()}
        assert fs.diff() == sorted(fs.diff())
    assert changes == {
        ("added", "/srv/new"), ("modified", "/srv/modify-me"), ("deleted", "/srv/delete-me"),
        ("deleted", "/srv/rename-me"), ("added", "/srv/renamed"), ("deleted", "/srv/dir-rm"),
        ("deleted", "/srv/opq/a"), ("deleted", "/srv/opq/b"), ("added", "/srv/opq/new"),
        ("modified", "/srv/chmod-me"),
    }
    with pytest.raises(nsbox.LifecycleError, match="throwaway upper"):
        fs.diff()  # the throwaway upper layer went with the PivotRoot


def test_commit_makes_a_layer_the_next_container_sees(base: str, app: str, tmp_path: Path,
                                                      clean: None) -> None:
    """commit() turns the upper layer into a plain layer, whiteouts included; a container on
    top of it sees every change, deletions too."""
    fs = OverlayRootfs([base, app])
    with PivotRoot(fs) as root:
        with nsbox.Container(root) as c:
            c.run(["sh", "-c", CHANGES], check=True)
        layer = fs.commit(tmp_path / "layer")
    whiteout = os.lstat(os.path.join(layer, "srv/delete-me"))
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    with nsbox.Container(rootfs=OverlayRootfs([base, app, layer])) as c:
        out = c.run(["sh", "-c", "cd /srv && ls -A . opq && cat new modify-me renamed opq/new "
                     "&& stat -c %a chmod-me"], text=True, check=True).stdout
    assert out.split("\n") == [".:", "chmod-me", "keep", "modify-me", "new", "opq", "renamed",
                               "", "opq:", "new", "new", "old", "more", "moving", "fresh", "700",
                               ""]


def test_a_hundred_layers_mount_and_run(base: str, tmp_path: Path, clean: None) -> None:
    """A rootfs of 101 layers mounts (short layer names keep the options small) and runs;
    the topmost copy of a file wins."""
    layers = [base] + [make_layer(tmp_path / f"l{i}", {f"layers/{i}": "", "shared": f"{i}\n"})
                       for i in range(100)]
    with nsbox.Container(rootfs=OverlayRootfs(layers)) as c:
        out = c.run(["sh", "-c", "ls /layers | wc -l; cat /shared"], text=True).stdout
        rows = mountinfo_rows(c.run(["cat", "/proc/self/mountinfo"], text=True).stdout)
    assert out.split() == ["100", "99"]
    assert any(p == "/" and t == "overlay" for _, p, t, _ in rows)


@pytest.mark.parametrize("name_length", [4, 60])
def test_the_mount2_fallback_mounts_a_hundred_layers_too(base: str, tmp_path: Path,
                                                         name_length: int, clean: None) -> None:
    """The classic mount(2) option string, used before Linux 6.8, also mounts 101 layers:
    by paths relative to their directory, or by short symlinks when even those are long."""
    layers = [base] + [make_layer(tmp_path / f"{i:0{name_length}}", {"shared": f"{i}\n"})
                       for i in range(100)]
    root = PivotRoot(OverlayRootfs(layers))
    root._legacy_overlay = True
    with nsbox.Container(root) as c:
        out = c.run(["sh", "-c", "cat /shared; grep ' / / ' /proc/self/mountinfo"],
                    text=True).stdout
    top, mount_line = out.split("\n", 1)
    assert top == "99"
    assert "lowerdir=" in mount_line and "lowerdir+" not in mount_line
    assert ("lowerdir=l/100:l/99:" in mount_line) == (name_length == 60)


def test_overlay_alone_mounts_at_path_and_cleans_up(base: str, clean: None) -> None:
    """Entered alone (as root) the merged view is at .path, writes land in the upper layer
    only, and on exit the mount and the directories are gone."""
    sums = tree_checksum(base)
    with OverlayRootfs([base]) as fs:
        path = fs.path
        assert os.path.basename(os.path.dirname(path)).startswith("nsbox-overlay-")
        with open("/proc/self/mountinfo") as f:
            assert (path, "overlay", "nsbox-overlay") in {
                (p, t, s) for _, p, t, s in mountinfo_rows(f.read())}
        Path(path, "bin/busybox").unlink()
        Path(path, "hello").write_text("hi\n")
        assert [str(ch) for ch in fs.diff()] == ["D /bin/busybox", "A /hello"]
    assert not os.path.exists(path)
    assert tree_checksum(base) == sums


def test_an_entered_overlay_is_bound_into_containers(base: str, clean: None) -> None:
    """A mounted OverlayRootfs given to containers is their root, shared: what one writes,
    the next sees, and diff() shows it after they are gone."""
    with OverlayRootfs([base]) as fs:
        with nsbox.Container(PivotRoot(fs)) as c:
            c.run(["sh", "-c", "echo kept > /kept"], check=True)
        with nsbox.Container(PivotRoot(fs)) as c:
            assert c.run(["cat", "/kept"], text=True).stdout == "kept\n"
        assert [str(ch) for ch in fs.diff()] == ["A /kept"]


def test_a_kept_upper_layer_outlives_the_container(base: str, tmp_path: Path,
                                                   clean: None) -> None:
    """upper= keeps the writes in that directory after the container and the rootfs are
    gone, and a later rootfs on the same upper layer starts from them."""
    upper = tmp_path / "upper"
    with nsbox.Container(rootfs=OverlayRootfs([base], upper=upper)) as c:
        c.run(["sh", "-c", "echo 1 > /counter; rm /etc/group"], check=True)
    assert (upper / "counter").read_text() == "1\n"
    fs = OverlayRootfs([base], upper=upper)
    assert [str(ch) for ch in fs.diff()] == ["A /counter", "D /etc/group"]
    with nsbox.Container(rootfs=fs) as c:
        out = c.run(["sh", "-c", "cat /counter; ls /etc"], text=True).stdout
    assert out == "1\npasswd\n"


def test_an_upper_layer_in_use_is_refused_to_a_second_mount(base: str, tmp_path: Path,
                                                            clean: None) -> None:
    """While a container uses an upper layer, a second container on it (the same PivotRoot,
    or another OverlayRootfs with the same upper=) is refused; after it, it is free again."""
    upper = tmp_path / "upper"
    with PivotRoot(OverlayRootfs([base], upper=upper)) as root:
        with nsbox.Container(root):
            for other in (root, OverlayRootfs([base], upper=upper)):
                with pytest.raises(nsbox.LifecycleError, match="in use"), \
                     nsbox.Container(other):
                    pass
        with nsbox.Container(root) as c:  # released on teardown
            assert c.run(["true"]).returncode == 0


def test_host_rootfs_runs_host_programs_and_keeps_writes_inside(tmp_path: Path,
                                                                clean: None) -> None:
    """OverlayRootfs.host(): host programs run, writes stay in the container, and /tmp and
    /run are the container's own (a host file in /tmp is not there)."""
    probe = f"/etc/nsbox-host-probe-{os.getpid()}-{time.monotonic_ns()}"
    (tmp_path / "host-file").write_text("host\n")
    fs = OverlayRootfs.host()
    with PivotRoot(fs) as root, nsbox.Container(root) as c:
        out = c.run(["sh", "-c", f"echo inside > {probe} && cat {probe}; ls -A /tmp /run; "
                     f"cat {tmp_path}/host-file 2>/dev/null || echo no-host-tmp; "
                     "python3 -c 'print(6 * 7)'"], text=True, check=True).stdout
        diff = [str(ch) for ch in fs.diff()]
        rows = mountinfo_rows(c.run(["cat", "/proc/self/mountinfo"], text=True).stdout)
    assert out.split() == ["inside", "/run:", "/tmp:", "no-host-tmp", "42"]
    assert f"A {probe}" in diff
    assert not os.path.exists(probe)
    assert {(p, t) for _, p, t, _ in rows} >= {("/", "overlay"), ("/tmp", "tmpfs"),
                                               ("/run", "tmpfs")}


def test_a_containers_own_throwaway_upper_layer_is_in_its_memory(
        base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: None) -> None:
    """An OverlayRootfs the container enters itself keeps its throwaway upper layer in a tmpfs
    of the container's mount namespace: nothing is made or recorded on the host, the writes
    stay for the container's life, and upper_dir, diff() and commit() say where it is."""
    recorded: list[tuple[str, str]] = []
    record = state.record
    monkeypatch.setattr(state, "record", lambda kind, path: (
        recorded.append((kind, os.fspath(path))), record(kind, path))[-1])
    before = rootfs_temp_dirs()
    fs = OverlayRootfs([base])
    with nsbox.Container(rootfs=fs) as c:
        c.run(["sh", "-c", "echo x > /f; rm /etc/passwd"], check=True)
        out = c.run(["sh", "-c", "cat /f; ls /etc; grep ' / / ' /proc/self/mountinfo; "
                     "grep -c nsbox-upper /proc/self/mountinfo"], text=True).stdout
        assert rootfs_temp_dirs() == before
        for use in (lambda: fs.upper_dir, fs.diff, lambda: fs.commit(tmp_path / "layer")):
            with pytest.raises(nsbox.LifecycleError, match="memory of the container"):
                use()
        with pytest.raises(nsbox.LifecycleError, match="in use"), nsbox.Container(c.rootfs):
            pass
    assert recorded == []
    assert not (tmp_path / "layer").exists()
    cat, etc, root_mount, upper_mounts = out.splitlines()
    assert (cat, etc) == ("x", "group")
    assert " overlay nsbox-overlay " in root_mount and ",upperdir=upper," in root_mount
    assert upper_mounts == "0"  # the tmpfs is held by the overlay only, mounted nowhere
    assert os.path.exists(os.path.join(base, "etc/passwd"))
    with pytest.raises(nsbox.LifecycleError, match="exists only while"):
        fs.diff()  # gone with the container


def test_the_default_root_keeps_every_write_off_the_host(clean: None) -> None:
    """Container()'s default root (the host's / under an upper layer in memory) is the root of
    every process of the container, the init's included: a write to /etc is seen inside and
    through /proc/<init>/root, never on the host, and / has the host's mode and owner."""
    probe = f"/etc/nsbox-default-probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with nsbox.Container() as c:
            assert c.rootfs is not None and isinstance(c.rootfs.rootfs, OverlayRootfs)
            out = c.run(["sh", "-c", f"echo inside > {probe}; cat {probe}; "
                         "stat -c '%a %u %g' /"], text=True, check=True).stdout
            assert c._init is not None
            with open(f"/proc/{c._init.pid}/root{probe}") as f:
                through_init = f.read()
            with open(f"/proc/{c._init.pid}/mountinfo") as f:
                init_root = [(p, t) for _, p, t, _ in mountinfo_rows(f.read()) if p == "/"]
            assert not os.path.exists(probe)
        host_root = os.stat("/")
        assert out.split("\n", 1) == [
            "inside", f"{stat.S_IMODE(host_root.st_mode):o} {host_root.st_uid} "
                      f"{host_root.st_gid}\n"]
        assert through_init == "inside\n"
        assert init_root == [("/", "overlay")]
    finally:
        if os.path.exists(probe):  # only if the test failed: do not leave it on the host
            os.unlink(probe)


def test_an_upper_layer_in_memory_has_the_top_layers_mode_and_owner(base: str, tmp_path: Path,
                                                                   clean: None) -> None:
    """The merged root of an upper layer in memory shows the top layer's mode (set-group-ID
    bit included) and owner, as the upper layer nsbox makes on disk does."""
    top = make_layer(tmp_path / "top", {"top": "1\n"})
    os.chown(top, 4321, 8765)
    os.chmod(top, 0o2751)
    with nsbox.Container(rootfs=OverlayRootfs([base, top])) as c:
        out = c.run(["stat", "-c", "%a %u %g", "/"], text=True, check=True).stdout
    assert out == "2751 4321 8765\n"


def test_writes_to_an_upper_layer_in_memory_are_charged_to_the_containers_cgroup(
        base: str, clean: None) -> None:
    """The tmpfs pages of an upper layer in memory count as the container's memory, so its
    memory cgroup bounds how much it can write to its root filesystem."""
    with nsbox.Container(rootfs=OverlayRootfs([base]), cgroup=CGroup(memory_max="256M")) as c:
        before = c.stats().memory_current
        c.run(["dd", "if=/dev/zero", "of=/big", "bs=1M", "count=32"], check=True)
        after = c.stats().memory_current
    assert before is not None and after is not None
    # Nearly all 32 MiB: what was charged before (dd's own pages, page cache) may be freed.
    assert after - before >= 28 * 2**20


@pytest.mark.parametrize("entered_by", ["you", "the container"])
def test_root_mapped_to_a_uid_range_owns_its_upper_layer(entered_by: str,
                                                         clean: None) -> None:
    """With root inside mapped to uid 100000 (IdMap.range), the overlay is mounted in the
    user namespace: root inside writes, and the upper layer is owned by 100000 outside (on
    disk, when you enter the PivotRoot; in the container's memory, when it does)."""
    work = tempfile.mkdtemp(prefix="nsbox-test-range-")  # not below pytest's 0700 tmp
    try:
        os.chmod(work, 0o755)
        base = make_busybox_tree(os.path.join(work, "base"))
        subprocess.run(["chown", "-R", "100000:100000", base], check=True)
        ns = nsbox.Namespaces(user=True, uid_map=[nsbox.IdMap.range(100000)],
                              gid_map=[nsbox.IdMap.range(100000)])
        fs = OverlayRootfs([base])
        root = PivotRoot(fs)
        with contextlib.ExitStack() as stack:
            if entered_by == "you":
                stack.enter_context(root)
            c = stack.enter_context(nsbox.Container(ns, root))
            out = c.run(["sh", "-c", "id -u; echo x > /f; echo y >> /etc/passwd; "
                         "cat /proc/1/uid_map; stat -c %u /"], text=True,
                        check=True).stdout.split()
            if entered_by == "you":
                owners = {os.stat(os.path.join(fs.upper_dir, p)).st_uid
                          for p in ("f", "etc/passwd")}
                assert owners == {100000}
                assert [str(ch) for ch in fs.diff()] == ["C /etc/passwd", "A /f"]
        assert out == ["0", "0", "100000", "65536", "0"]
    finally:
        shutil.rmtree(work)


@pytest.mark.parametrize("legacy", [False, True])
def test_layer_paths_with_commas_colons_and_backslashes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        legacy: bool, clean: None) -> None:
    """Layers and the temporary directory may have ',', ':', ' ' and '\\' in their paths,
    in a container and mounted alone, through "lowerdir+" and through mount(2)."""
    odd = tmp_path / "a,b:c d\\e"
    odd.mkdir()
    base = make_busybox_tree(odd / "base")
    layer = make_layer(odd / "l,1:x", {"f": "top\n"})
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    root = PivotRoot(OverlayRootfs([base, layer]))
    root._legacy_overlay = legacy
    with nsbox.Container(root) as c:
        assert c.run(["cat", "/f"], text=True).stdout == "top\n"
    fs = OverlayRootfs([base, layer])
    with fs._for_containers():
        merged = os.fsencode(fs._merged_dir())
        native.mount_overlay(fs._spec(relative=False, userxattr=False, legacy_only=legacy),
                             merged)
        try:
            assert Path(os.fsdecode(merged), "f").read_text() == "top\n"
        finally:
            assert native.umount(merged) == 0
    assert sorted(os.listdir(odd)) == ["base", "l,1:x"]  # no nsbox-overlay-* left there


def test_a_killed_owner_leaves_only_what_gc_releases(base: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      clean: None) -> None:
    """An owner SIGKILLed with an overlay mounted alone leaves its mount and directory
    recorded in the state directory, and nsbox's gc detaches and removes both."""
    monkeypatch.setenv("NSBOX_STATE_DIR", str(tmp_path / "state"))
    code = ("import sys, nsbox; fs = nsbox.OverlayRootfs([sys.argv[1]]).__enter__(); "
            "print(fs.path, flush=True); sys.stdin.read()")
    owner = subprocess.Popen([sys.executable, "-c", code, base], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None and owner.stdin is not None
    path = owner.stdout.readline().strip()
    owner.kill()
    owner.wait()
    owner.stdin.close()
    owner.stdout.close()
    with open("/proc/self/mountinfo") as f:
        assert path in {p for _, p, _, _ in mountinfo_rows(f.read())}  # left behind
    released = {(item.kind, item.path) for item in state.gc()}
    assert released == {("mount", path), ("dir", os.path.dirname(path))}
    assert not os.path.exists(os.path.dirname(path))
