"""``PivotRoot``: a container's new root and the mount plan the C child applies inside it."""

from __future__ import annotations

import os
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import attrs
from typing_extensions import Self

from .._native.mounts import RootfsSpec
from ..errors import ConfigError, LifecycleError
from ..namespaces import CLONE_FLAGS, Namespaces
from . import _plan
from ._context import ChildContext, child_context
from ._kernel import PIVOT_ROOT_KERNEL, require_kernel
from ._mounts import Bind, Tmpfs
from ._overlay import OverlayRootfs
from ._paths import check_not_over_proc, container_path, host_path

#: What :meth:`OverlayRootfs.host` gets besides /proc, /dev and /sys: its own /run and /tmp.
HOST_OWN_TMPFS = (Tmpfs("/run", mode=0o755), Tmpfs("/tmp", mode=0o1777))


def _to_rootfs(value: Any) -> OverlayRootfs | str:
    if isinstance(value, OverlayRootfs):
        return value
    path = host_path(value, "the rootfs")
    if not os.path.isdir(path):
        raise ConfigError(f"the rootfs {path!r} is not a directory")
    return os.path.realpath(path)


def _to_mounts(value: Any) -> tuple[Bind | Tmpfs, ...]:
    if isinstance(value, (Bind, Tmpfs)):
        value = [value]
    items = tuple(value)
    for item in items:
        if not isinstance(item, (Bind, Tmpfs)):
            raise ConfigError(f"PivotRoot mounts are nsbox.Bind or nsbox.Tmpfs, not {item!r}")
        check_not_over_proc(item.target)
    return items


def _to_paths(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(container_path(p, "a masked or read-only path") for p in value)


def _flag(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"PivotRoot.{attribute.name} must be True or False, not {value!r}")


@attrs.define(eq=False, repr=False)
class PivotRoot:
    """A container's new root and its mount plan, applied by the container's first process
    before anything of the container runs.

    The rootfs is mounted in the container's own mount namespace, the plan's mounts go inside
    it, then ``pivot_root`` makes it ``/`` and the old root is detached: nothing of the host
    stays reachable, by any path or fd. Every destination is resolved inside the new root, so
    a symlink in the rootfs cannot send a mount out of it. As a context manager it prepares an
    :class:`OverlayRootfs` for containers (without mounting it in your namespace); a
    :class:`Container` given it unentered enters it, and leaves it on teardown (a throwaway
    upper layer then lives in that container's memory: see :class:`OverlayRootfs`).

    Args:
        rootfs: an :class:`OverlayRootfs`, or a directory (bound as the root; mount points the
            plan needs, like ``/proc``, are created in it if missing).
        proc: mount a /proc of the container's pid namespace.
        dev: a minimal /dev: null, zero, full, random, urandom, tty, a private devpts with
            ptmx, and /dev/shm.
        sys: mount /sys read-only (False: no /sys).
        mounts: :class:`Bind` and :class:`Tmpfs` mounts, applied in order after those.
        masked_paths: hidden inside (runc's list by default: /proc/kcore, /proc/keys, ...).
        readonly_paths: read-only inside (runc's: /proc/sys, /proc/sysrq-trigger, ...).
        readonly: make the root itself read-only (the mounts on it keep their own mode).

    Raises:
        ConfigError: on construction, for anything invalid.

    .. versionadded:: 0.1
    """

    rootfs: OverlayRootfs | str = attrs.field(converter=_to_rootfs)
    proc: bool = attrs.field(default=True, kw_only=True, validator=_flag)
    dev: bool = attrs.field(default=True, kw_only=True, validator=_flag)
    sys: bool = attrs.field(default=True, kw_only=True, validator=_flag)
    mounts: tuple[Bind | Tmpfs, ...] = attrs.field(default=(), kw_only=True,
                                                   converter=_to_mounts)
    masked_paths: tuple[str, ...] = attrs.field(default=_plan.MASKED_PATHS, kw_only=True,
                                                converter=_to_paths)
    readonly_paths: tuple[str, ...] = attrs.field(default=_plan.READONLY_PATHS, kw_only=True,
                                                  converter=_to_paths)
    readonly: bool = attrs.field(default=False, kw_only=True, validator=_flag)
    _stack: ExitStack | None = attrs.field(default=None, init=False)
    _legacy_overlay: bool = attrs.field(default=False, init=False)  # tests: mount(2) path

    def __attrs_post_init__(self) -> None:
        managed = {"/dev": self.dev, "/sys": self.sys}
        for mount in self.mounts:
            if managed.get(mount.target):
                raise ConfigError(f"{mount.target} is mounted by the plan already "
                                  f"(PivotRoot({mount.target[1:]}=False) to mount your own)")

    def __repr__(self) -> str:
        return f"<nsbox.PivotRoot rootfs={self.rootfs!r} mounts={list(self.mounts)!r}>"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def entered(self) -> bool:
        """Whether the rootfs is ready for containers (entered, by you or by a container)."""
        return self._stack is not None

    def __enter__(self) -> Self:
        """Prepare the rootfs: an unentered OverlayRootfs gets its directories (its mount is
        made by each container, in its own namespace).

        Raises:
            LifecycleError: entered before.
        """
        self._enter(None)
        return self

    def _enter(self, container: ChildContext | None) -> None:
        # ``container``: entered by that one container for itself, not by you (see
        # OverlayRootfs._for_containers).
        if self._stack is not None:
            raise LifecycleError("this PivotRoot is entered already")
        stack = ExitStack()
        try:
            if isinstance(self.rootfs, OverlayRootfs) and not self.rootfs.entered:
                stack.enter_context(self.rootfs._for_containers(
                    container, legacy_only=self._legacy_overlay))
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    # -- the plan ------------------------------------------------------------------------------

    def _steps(self) -> list[Any]:
        steps: list[Any] = []
        if self.proc:
            steps += _plan.proc_steps()
        if self.dev:
            steps += _plan.dev_steps()
        if self.sys:
            steps += _plan.sys_steps()
        own = HOST_OWN_TMPFS if isinstance(self.rootfs, OverlayRootfs) and self.rootfs.is_host \
            else ()
        steps += _plan.user_steps([*own, *self.mounts])
        steps += _plan.protection_steps(self.masked_paths, self.readonly_paths, self.dev)
        return steps

    def _for_container(self, stack: ExitStack, namespaces: Namespaces, new_ns: int,
                       uid_map: bytes | None, gid_map: bytes | None) -> RootfsSpec:
        """The rootfs spec of a container's init; enters this PivotRoot on ``stack`` if it is
        not entered.

        Raises:
            ConfigError: the container has no new mount namespace.
            UnsupportedError: the kernel lacks what the plan needs.
        """
        if not new_ns & CLONE_FLAGS["mount"]:
            raise ConfigError("a root filesystem needs a new mount namespace: "
                              "Namespaces(mount=True), not joined or shared")
        require_kernel(PIVOT_ROOT_KERNEL, "PivotRoot (openat2, the new mount API, "
                                          "mount_setattr)")
        ctx = child_context(namespaces, new_ns, uid_map, gid_map)
        if not self.entered:
            self._enter(ctx)
            stack.push(self)  # left on the container's teardown
        if isinstance(self.rootfs, OverlayRootfs) and not self.rootfs.mounted:
            self.rootfs._claim(stack)  # released when the container is torn down
        return self._spec(ctx)

    def _spec(self, ctx: ChildContext) -> RootfsSpec:
        rootfs = self.rootfs
        common: dict[str, Any] = {"mounts": self._steps(), "readonly": self.readonly,
                                  "become_root": ctx.root_ids is not None}
        if isinstance(rootfs, str):
            root = os.fsencode(rootfs)
            return RootfsSpec(root=root, bind_source=root, **common)
        if rootfs.mounted:  # entered alone as root: its merged view is bound
            root = os.fsencode(rootfs.path)
            return RootfsSpec(root=root, bind_source=root, **common)
        return RootfsSpec(root=os.fsencode(rootfs._child_root()),
                          overlay=rootfs._child_spec(ctx, legacy_only=self._legacy_overlay),
                          **common)


def as_pivot_root(value: Any) -> PivotRoot | None:
    """What ``Container(rootfs=...)`` accepts, as a PivotRoot (None stays None).

    Raises:
        ConfigError: not a PivotRoot, an OverlayRootfs or a directory.
    """
    if value is None or isinstance(value, PivotRoot):
        return value
    if isinstance(value, (OverlayRootfs, str, os.PathLike)):
        return PivotRoot(value)
    raise ConfigError(f"rootfs must be an nsbox.PivotRoot, an nsbox.OverlayRootfs or a "
                      f"directory, not {type(value).__name__}")
