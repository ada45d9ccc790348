"""The rootfs suite as an unprivileged user: overlay and pivot_root inside a user namespace."""

from __future__ import annotations

from tests.conftest import run_rootless

# Run first in every snippet: a busybox tree and a host-only file in a directory of the user's
# own, and a listing of nsbox's temporary directories to compare with at the end.
PRELUDE = """
import hashlib, json, os, shutil, stat, tempfile
import nsbox
from nsbox.rootfs import Bind, OverlayRootfs, PivotRoot, make_busybox_tree

def nsbox_dirs():
    return sorted(n for n in os.listdir(tempfile.gettempdir())
                  if n.startswith(("nsbox-overlay-", "nsbox-work-")))

def checksum(root):
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            h.update(f"{p}{st.st_mode}{st.st_size}{st.st_mtime_ns}".encode())
    return h.hexdigest()

before_dirs = nsbox_dirs()
work = tempfile.mkdtemp(prefix="rootless-test-")
base = make_busybox_tree(os.path.join(work, "base"))
secret = os.path.join(work, "secret")
with open(secret, "w") as f:
    f.write("host-only")
"""
EPILOGUE = """
shutil.rmtree(work)
result["dirs_left"] = sorted(set(nsbox_dirs()) - set(before_dirs))
print(json.dumps(result))
"""


def _run(rootless_python: list[str], body: str) -> dict[str, object]:
    result = run_rootless(rootless_python, PRELUDE + body + EPILOGUE)
    assert isinstance(result, dict)
    assert result.pop("dirs_left") == []
    return result


def test_rootless_overlay_root_is_isolated_and_diffed(rootless_python: list[str]) -> None:
    """Unprivileged: the overlay is mounted with userxattr in the container's user namespace,
    the host file is unreachable, devices work, writes (an opaque directory too) show in
    diff(), lowers are unchanged."""
    result = _run(rootless_python, """
sums = checksum(base)
fs = OverlayRootfs([base])
with PivotRoot(fs) as root, nsbox.Container(root) as c:
    out = c.run(["sh", "-c", f'''
        id -u
        cat {secret} /proc/1/root{secret} 2>/dev/null || echo unreachable
        echo x > /dev/null && head -c 2 /dev/zero | wc -c
        touch /sys/x 2>/dev/null || echo sys-ro
        echo new > /new; rm -r /etc && mkdir /etc && echo f > /etc/f
        grep " / / " /proc/self/mountinfo
    '''], text=True).stdout.splitlines()
    diff = [str(ch) for ch in fs.diff()]
    xattrs = os.listxattr(os.path.join(fs.upper_dir, "etc"))
result = {"out": out, "diff": diff, "same": checksum(base) == sums, "xattrs": xattrs}
""")
    uid, unreachable, two, sys_ro, mount_line = result["out"]  # type: ignore[misc]
    assert (uid, unreachable, two, sys_ro) == ("0", "unreachable", "2", "sys-ro")
    assert " overlay nsbox-overlay " in mount_line and "userxattr" in mount_line
    assert result["diff"] == ["A /etc/f", "D /etc/group", "D /etc/passwd", "A /new"]
    assert "user.overlay.opaque" in result["xattrs"]  # type: ignore[operator]
    assert result["same"] is True


def test_rootless_throwaway_upper_layer_in_the_containers_memory(
        rootless_python: list[str]) -> None:
    """Unprivileged: an OverlayRootfs the container enters itself gets its upper layer in a
    tmpfs of the container's user and mount namespaces (with userxattr; whiteouts work), and
    diff() says it is out of reach; nothing is left in the temporary directory."""
    result = _run(rootless_python, """
fs = OverlayRootfs([base])
with nsbox.Container(rootfs=fs) as c:
    c.run(["sh", "-c", "rm /etc/passwd; echo x > /x"], check=True)
    out = c.run(["cat", "/x"], text=True).stdout
    listing = c.run(["ls", "/etc"], text=True).stdout.split()
    mount_line = c.run(["grep", " / / ", "/proc/self/mountinfo"], text=True).stdout
    try:
        fs.diff()
        error = ""
    except nsbox.LifecycleError as exc:
        error = str(exc)
result = {"out": out, "etc": listing, "mount": mount_line, "error": error,
          "same": os.path.exists(os.path.join(base, "etc", "passwd"))}
""")
    assert result["out"] == "x\n" and result["etc"] == ["group"]
    mount_line = result["mount"]
    assert isinstance(mount_line, str)
    assert "userxattr" in mount_line and ",upperdir=upper," in mount_line
    assert "memory of the container" in str(result["error"])
    assert result["same"] is True


def test_rootless_commit_keeps_whiteouts_for_the_next_container(
        rootless_python: list[str]) -> None:
    """Unprivileged: commit() writes whiteouts (0/0 devices) without root, and a container on
    the new layer sees the deletion and the addition."""
    result = _run(rootless_python, """
fs = OverlayRootfs([base])
with PivotRoot(fs) as root:
    with nsbox.Container(root) as c:
        c.run(["sh", "-c", "rm /etc/passwd; echo hi > /etc/hi"], check=True)
    layer = fs.commit(os.path.join(work, "layer"))
st = os.lstat(os.path.join(layer, "etc", "passwd"))
with nsbox.Container(rootfs=OverlayRootfs([base, layer])) as c:
    out = c.run(["ls", "/etc"], text=True).stdout.split()
result = {"whiteout": stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, "etc": out}
""")
    assert result == {"whiteout": True, "etc": ["group", "hi"]}


def test_rootless_readonly_bind_and_clear_refusals(rootless_python: list[str]) -> None:
    """Unprivileged: a read-only bind refuses writes; mounting alone and host() give a clear
    UnsupportedError instead of a kernel errno."""
    result = _run(rootless_python, """
data = os.path.join(work, "data")
os.mkdir(data)
plan = PivotRoot(OverlayRootfs([base]), mounts=[Bind(data, "/data", readonly=True)])
with nsbox.Container(plan) as c:
    ro = c.run(["sh", "-c", "touch /data/x 2>/dev/null || echo refused"], text=True).stdout
errors = {}
with OverlayRootfs([base]) as fs:
    try:
        fs.path
    except nsbox.UnsupportedError as exc:
        errors["alone"] = str(exc)
try:
    with nsbox.Container(rootfs=OverlayRootfs.host()):
        pass
except nsbox.UnsupportedError as exc:
    errors["host"] = str(exc)
result = {"ro": ro, "data": os.listdir(data), "errors": errors}
""")
    assert result["ro"] == "refused\n" and result["data"] == []
    errors = result["errors"]
    assert isinstance(errors, dict)
    assert "needs root" in errors["alone"]
    assert "mounted below it" in errors["host"]
