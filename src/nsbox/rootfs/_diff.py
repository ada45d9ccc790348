"""``OverlayRootfs.diff``: what the upper layer changed, compared with the lower layers."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Literal

import attrs

from ._layers import LayerStack, is_opaque, is_whiteout

ChangeKind = Literal["added", "modified", "deleted"]
_LETTERS = {"added": "A", "modified": "C", "deleted": "D"}


@attrs.frozen(order=True)
class Change:
    """One change of a container's filesystem, as ``docker diff`` lists them.

    Attributes:
        path: the path inside the container (``/etc/hosts``).
        kind: ``"added"``, ``"modified"`` or ``"deleted"``. A deleted directory is listed
            alone (its contents went with it); an added directory is listed with what is in it.

    .. versionadded:: 0.1
    """

    path: str
    kind: ChangeKind

    def __str__(self) -> str:
        return f"{_LETTERS[self.kind]} {self.path}"


def _same_metadata(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)


def diff(upper: str, lowers: Sequence[str]) -> list[Change]:
    """The changes recorded in ``upper`` over ``lowers`` (top first), sorted by path.

    Only the upper layer is walked (so a diff over the host's ``/`` costs what was written,
    not the size of the host). A file or directory present in the upper layer and in the
    lower view is *modified* (a directory only when its mode or owner changed: directories are
    copied up just to hold a changed file); one absent below is *added*; a whiteout, or a
    name hidden by an opaque directory, is *deleted*. A renamed file is the deletion of its
    old name and the addition of its new one: that is what the layer records.
    """
    old = LayerStack(lowers)
    changes: list[Change] = []

    def added_tree(rel: str) -> None:
        with os.scandir(os.path.join(upper, rel)) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                if is_whiteout(entry.path, st):
                    continue
                changes.append(Change("/" + path, "added"))
                if stat.S_ISDIR(st.st_mode):
                    added_tree(path)

    def walk(rel: str, hidden: bool) -> None:
        # `hidden`: this directory (or one above it) is opaque, so nothing of the lower
        # directories of this name shows: whatever they held and the upper does not is gone.
        with os.scandir(os.path.join(upper, rel)) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        if hidden:
            present = {e.name for e in entries}
            for name in sorted(old.names(rel) - present):
                changes.append(Change(f"/{rel}/{name}" if rel else f"/{name}", "deleted"))
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            before = old.lookup(path)
            if is_whiteout(entry.path, st):
                if before is not None:
                    changes.append(Change("/" + path, "deleted"))
                continue
            if before is None:
                changes.append(Change("/" + path, "added"))
                if stat.S_ISDIR(st.st_mode):
                    added_tree(path)
            elif stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(before.st_mode):
                if not _same_metadata(st, before):
                    changes.append(Change("/" + path, "modified"))
                walk(path, hidden or is_opaque(entry.path))
            else:
                changes.append(Change("/" + path, "modified"))
                if stat.S_ISDIR(st.st_mode):
                    added_tree(path)  # a file replaced by a directory: all inside is new

    walk("", is_opaque(upper))
    return sorted(changes)
