"""Where the C child will mount a root filesystem: which user namespace, which root."""

from __future__ import annotations

import os

import attrs

from ..namespaces import CLONE_FLAGS, Namespaces
from ._kernel import in_initial_user_namespace


@attrs.frozen
class ChildContext:
    """What the rootfs needs to know about the container's child before it mounts.

    Attributes:
        userns: the child mounts inside a user namespace other than the host's, so an overlay
            needs ``userxattr`` and the kernel's unprivileged-overlay rules apply.
        root_ids: the host (uid, gid) of root inside, when it is not this process's: the
            directories nsbox makes for the child are given to it.
    """

    userns: bool
    root_ids: tuple[int, int] | None = None


def _host_id_of_root(id_map: bytes) -> int | None:
    for line in id_map.decode().splitlines():
        inside, outside, count = (int(n) for n in line.split())
        if inside <= 0 < inside + count:
            return outside - inside
    return None


def child_context(namespaces: Namespaces, new_ns: int, uid_map: bytes | None,
                  gid_map: bytes | None) -> ChildContext:
    """The context of a container's init from its namespace flags and id maps."""
    new_user = bool(new_ns & CLONE_FLAGS["user"])
    joined_user = any(name == "user" for name, _ in namespaces.joins())
    root_ids = None
    if new_user and uid_map and gid_map:
        uid, gid = _host_id_of_root(uid_map), _host_id_of_root(gid_map)
        if uid is not None and gid is not None and (uid, gid) != (os.geteuid(), os.getegid()):
            root_ids = (uid, gid)
    return ChildContext(new_user or joined_user or not in_initial_user_namespace(), root_ids)
