"""What this kernel and this process can do for a root filesystem, asked once."""

from __future__ import annotations

import functools
import os

from .._native import mounts as native
from ..errors import UnsupportedError

# statfs f_type values (linux/magic.h) of the filesystems an upper layer is checked against.
OVERLAYFS_MAGIC = 0x794C7630
TMPFS_MAGIC = 0x01021994
FS_NAMES = {
    OVERLAYFS_MAGIC: "overlayfs", TMPFS_MAGIC: "tmpfs", 0xEF53: "ext4", 0x58465342: "xfs",
    0x9123683E: "btrfs", 0x6969: "nfs", 0x65735546: "fuse", 0x73717368: "squashfs",
    0xE0F5E1E2: "erofs", 0x9660: "iso9660", 0x4D44: "vfat", 0x2011BAB0: "exfat",
    0x5346544E: "ntfs", 0x858458F6: "ramfs", 0x517B: "smb", 0xFE534D42: "smb2",
    0x01021997: "9p", 0x9FA0: "proc", 0x62656572: "sysfs",
}

#: Filesystems overlayfs cannot write an upper layer to, and why.
UPPER_REFUSED = {
    OVERLAYFS_MAGIC: "an overlay cannot be the upper layer of another overlay",
    0x73717368: "squashfs is read-only", 0xE0F5E1E2: "erofs is read-only",
    0x9660: "iso9660 is read-only",
    0x4D44: "vfat has no xattrs, no whiteouts and no file ownership",
    0x2011BAB0: "exfat has no xattrs, no whiteouts and no file ownership",
    0x6969: "NFS lacks the xattr and whiteout support overlayfs needs in an upper layer",
    0x517B: "SMB lacks the xattr and whiteout support overlayfs needs in an upper layer",
    0xFE534D42: "SMB lacks the xattr and whiteout support overlayfs needs in an upper layer",
    0x9FA0: "proc is not a place for files", 0x62656572: "sysfs is not a place for files",
}

# The kernel features PivotRoot uses: openat2 (5.6), the new mount API (5.2), mount_setattr
# (5.12); an overlay inside a user namespace (5.11); user xattrs on tmpfs (6.6).
PIVOT_ROOT_KERNEL = (5, 12)
USERNS_OVERLAY_KERNEL = (5, 11)
TMPFS_USER_XATTR_KERNEL = (6, 6)


@functools.cache
def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    release = os.uname().release
    numbers = [int("".join(ch for ch in part if ch.isdigit()) or 0)
               for part in release.split(".")[:2]]
    return numbers[0], numbers[1] if len(numbers) > 1 else 0


def require_kernel(version: tuple[int, int], feature: str) -> None:
    """Raise :class:`UnsupportedError` naming ``feature`` on a kernel older than ``version``."""
    if kernel_version() < version:
        have = ".".join(map(str, kernel_version()))
        need = ".".join(map(str, version))
        raise UnsupportedError(f"{feature} needs Linux {need} or later; this kernel is {have}")


@functools.cache
def in_initial_user_namespace() -> bool:
    """Whether this process is in the host's user namespace (its uid map is the identity)."""
    try:
        with open("/proc/self/uid_map") as f:
            lines = f.read().split()
    except OSError:
        return True
    return lines == ["0", "0", "4294967295"]


def fs_type(path: str) -> tuple[int, str]:
    """(statfs magic, name) of the filesystem holding ``path``."""
    magic = native.fs_magic(os.fsencode(path))
    return magic, FS_NAMES.get(magic, hex(magic))


def upper_refusal(magic: int, *, userxattr: bool, kernel: tuple[int, int]) -> str | None:
    """Why overlayfs cannot put an upper layer on a filesystem of type ``magic``, or None."""
    if magic in UPPER_REFUSED:
        return UPPER_REFUSED[magic]
    if magic == TMPFS_MAGIC and userxattr and kernel < TMPFS_USER_XATTR_KERNEL:
        return ("tmpfs has user xattrs only from Linux 6.6, and an overlay in a user namespace "
                "keeps its whiteouts and opaque directories in them")
    return None


def mount_points() -> list[str]:
    """The mount points of this process's mount namespace (/proc/self/mountinfo)."""
    with open("/proc/self/mountinfo") as f:
        fields = [line.split(" ", 5) for line in f]
    # Spaces and other odd characters are written as octal escapes (\040).
    return [row[4].encode("latin-1").decode("unicode_escape") for row in fields if len(row) > 4]

