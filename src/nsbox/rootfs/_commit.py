"""``OverlayRootfs.commit``: an upper layer copied into a plain layer directory.

The copy keeps data, modes, owners, times, hard links, device nodes and xattrs (but
overlayfs's own), and whiteouts as whiteouts (character devices 0/0, which even an
unprivileged user may create since Linux 5.8). An opaque directory becomes an ordinary
directory plus one whiteout per name it hid, so the new layer needs no ``trusted.`` or ``user.``
xattr and works the same under a rootful or a rootless overlay.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Sequence

from ._layers import LayerStack, is_opaque, is_overlay_xattr, is_whiteout


def make_whiteout(path: str) -> None:
    """Create an overlayfs whiteout at ``path``."""
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if is_overlay_xattr(name):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError as exc:
            # trusted.* and security.* need privileges; a filesystem may lack xattrs.
            if exc.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    with contextlib.suppress(PermissionError):  # another owner needs root; keep ours then
        os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def commit(upper: str, lowers: Sequence[str], dest: str) -> None:
    """Copy the upper layer ``upper`` (over ``lowers``, top first) into the new directory
    ``dest``, as a layer that can go on top of ``lowers``."""
    old = LayerStack(lowers)
    links: dict[tuple[int, int], str] = {}

    def copy_dir(rel: str, hidden: bool) -> None:
        src_dir = os.path.join(upper, rel)
        dst_dir = os.path.join(dest, rel)
        with os.scandir(src_dir) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        if hidden:
            for name in sorted(old.names(rel) - {e.name for e in entries}):
                make_whiteout(os.path.join(dst_dir, name))
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            src, dst = entry.path, os.path.join(dst_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if is_whiteout(src, st):
                make_whiteout(dst)
                continue
            if stat.S_ISDIR(mode):
                os.mkdir(dst, 0o700)
                copy_dir(path, hidden or is_opaque(src))  # sets its metadata when done
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], dst)
                    continue
                shutil.copyfile(src, dst, follow_symlinks=False)
                links[key] = dst
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dst, 0o600)
            elif stat.S_ISSOCK(mode):
                continue  # a socket is a live object, not content: a layer has none
            else:
                os.mknod(dst, mode, st.st_rdev)
            _copy_metadata(src, dst, st)
        _copy_metadata(src_dir, dst_dir, os.lstat(src_dir))

    copy_dir("", is_opaque(upper))
