"""Helpers of the rootfs tests: layer trees, their checksums, nsbox's temporary directories."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping

#: The prefixes of the temporary directories nsbox.rootfs makes.
ROOTFS_TEMP_PREFIXES = ("nsbox-overlay-", "nsbox-work-")


def rootfs_temp_dirs() -> set[str]:
    """nsbox.rootfs's directories in the temporary directory now."""
    return {name for name in os.listdir(tempfile.gettempdir())
            if name.startswith(ROOTFS_TEMP_PREFIXES)}


def make_layer(root: str | os.PathLike[str], files: Mapping[str, str | None]) -> str:
    """A layer directory: each path maps to its text, or None for a directory."""
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    for rel, content in files.items():
        path = os.path.join(root, rel.lstrip("/"))
        if content is None:
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
    return root


def tree_checksum(root: str | os.PathLike[str]) -> str:
    """A digest of a tree: names, types, modes, owners, sizes, contents, link targets, devices."""
    digest = hashlib.sha256()
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)}|{st.st_mode:o}|{st.st_uid}|"
                          f"{st.st_gid}|{st.st_size}|{st.st_rdev}|{st.st_mtime_ns}".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def mountinfo_rows(text: str) -> list[tuple[str, str, str, str]]:
    """(root, mount point, fstype, source) of each line of a mountinfo text."""
    rows = []
    for line in text.splitlines():
        left, right = line.split(" - ", 1)
        fields = left.split()
        fstype, source = right.split()[:2]
        rows.append((fields[3], fields[4], fstype, source))
    return rows
