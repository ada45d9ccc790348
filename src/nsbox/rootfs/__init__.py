"""Root filesystems: ``OverlayRootfs`` (copy-on-write layers) and ``PivotRoot`` (the new root
and its mount plan), with the ``Bind`` and ``Tmpfs`` mounts a plan can add.

Modules, one job each: ``_paths`` (destinations, checked), ``_kernel`` (what the kernel can),
``_layers`` (the overlay format, read), ``_diff`` and ``_commit`` (what changed, and a new layer
from it), ``_overlay`` (OverlayRootfs), ``_mounts`` (Bind, Tmpfs), ``_plan`` (the steps of the
plan), ``_pivot`` (PivotRoot), ``_context`` (which user namespace the child mounts in),
``_files`` (nsbox's own directories), ``_busybox`` (a minimal tree for tests and examples).
The mounting itself is C: ``nsbox/_native/csrc/mounts.c``.
"""

from __future__ import annotations

import typing

from ._busybox import make_busybox_tree as make_busybox_tree
from ._mounts import Bind as Bind
from ._mounts import Tmpfs as Tmpfs
from ._overlay import OverlayRootfs as OverlayRootfs
from ._pivot import PivotRoot as PivotRoot
from ._pivot import as_pivot_root as as_pivot_root
from ._plan import MASKED_PATHS as MASKED_PATHS
from ._plan import READONLY_PATHS as READONLY_PATHS

__all__ = [
    "MASKED_PATHS",
    "READONLY_PATHS",
    "Bind",
    "Change",
    "OverlayRootfs",
    "PivotRoot",
    "Tmpfs",
    "as_pivot_root",
    "make_busybox_tree",
]

# Change comes with OverlayRootfs.diff(), which a container does not need: loaded on first use
# (PEP 562), like the names of the nsbox package itself.
if typing.TYPE_CHECKING:
    from ._diff import Change as Change
else:

    def __getattr__(name: str) -> type:
        if name == "Change":
            from ._diff import Change

            globals()["Change"] = Change
            return Change
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
