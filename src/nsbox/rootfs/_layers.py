"""The overlayfs on-disk format, read: whiteouts, opaque directories, and a stack of layers.

A layer directory holds files as they are, plus two markers (Documentation/filesystems/
overlayfs.rst): a *whiteout*, a character device 0/0 (or, in layers made for nested overlays,
an empty file with an ``overlay.whiteout`` xattr), deletes the name in the layers below; an
*opaque* directory (xattr ``overlay.opaque`` = ``y``) hides the contents of the directories of
the same name below. The xattrs are ``trusted.overlay.*``, or ``user.overlay.*`` for an overlay
mounted with ``userxattr`` (in a user namespace); both are read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def overlay_xattr(path: str, name: str) -> bytes | None:
    """The value of overlayfs's xattr ``name`` (``opaque``, ``whiteout``...) on path, or None."""
    for prefix in XATTR_PREFIXES:
        try:
            return os.getxattr(path, prefix + name, follow_symlinks=False)
        except OSError:
            continue  # absent, unsupported, or trusted.* without privileges
    return None


def is_overlay_xattr(name: str) -> bool:
    """Whether an xattr name belongs to overlayfs (never copied into a new layer)."""
    return name.startswith(XATTR_PREFIXES)


def is_whiteout(path: str, st: os.stat_result) -> bool:
    """Whether the entry at ``path`` (lstat ``st``) is a whiteout."""
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return (stat.S_ISREG(st.st_mode) and st.st_size == 0
            and overlay_xattr(path, "whiteout") is not None)


def is_opaque(path: str) -> bool:
    """Whether the directory at ``path`` hides the directories of its name in lower layers."""
    return overlay_xattr(path, "opaque") == b"y"


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def split(rel: str) -> tuple[str, str]:
    """("a/b", "c") for "a/b/c"; ("", "c") for "c"."""
    parent, _, name = rel.rpartition("/")
    return parent, name


class LayerStack:
    """What a stack of layers shows when overlaid (without an upper layer), read on demand.

    Args:
        layers: layer directories, top first (as overlayfs orders them).
    """

    def __init__(self, layers: Sequence[str]) -> None:
        self.layers = tuple(layers)
        self._dirs: dict[str, tuple[str, ...] | None] = {}

    def _directory_layers(self, rel: str) -> tuple[str, ...] | None:
        """The layers whose ``rel`` merges into the visible directory ``rel``; None if ``rel``
        is not a directory in the merged view."""
        if rel in self._dirs:
            return self._dirs[rel]
        if rel == "":
            candidates: tuple[str, ...] | None = self.layers
        else:
            parent, _ = split(rel)
            candidates = self._directory_layers(parent)
        found: list[str] = []
        for layer in candidates or ():
            path = os.path.join(layer, rel)
            st = _lstat(path)
            if st is None:
                continue
            if is_whiteout(path, st):
                break
            if not stat.S_ISDIR(st.st_mode):
                if not found:
                    self._dirs[rel] = None
                    return None
                break  # a file below a directory is hidden by it
            found.append(layer)
            if is_opaque(path):
                break
        result = tuple(found) or None
        self._dirs[rel] = result
        return result

    def lookup(self, rel: str) -> os.stat_result | None:
        """The lstat of ``rel`` ("etc/hosts") as the merged view shows it, or None."""
        parent, _ = split(rel)
        for layer in self._directory_layers(parent) or ():
            path = os.path.join(layer, rel)
            st = _lstat(path)
            if st is None:
                continue
            return None if is_whiteout(path, st) else st
        return None

    def names(self, rel: str) -> set[str]:
        """The names the merged view lists in directory ``rel`` (empty if not a directory)."""
        seen: dict[str, bool] = {}
        for layer in self._directory_layers(rel) or ():
            with os.scandir(os.path.join(layer, rel)) as entries:
                for entry in entries:
                    if entry.name not in seen:
                        st = entry.stat(follow_symlinks=False)
                        seen[entry.name] = is_whiteout(entry.path, st)
        return {name for name, whiteout in seen.items() if not whiteout}
