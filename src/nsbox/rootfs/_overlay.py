"""``OverlayRootfs``: read-only lower layers, one copy-on-write upper layer, the merged view."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from .. import state
from .._native import mounts as native
from ..errors import ConfigError, LifecycleError, UnsupportedError
from ._context import ChildContext
from ._files import make_temp_dir, release_temp_dir, remove_tree
from ._kernel import (
    TMPFS_USER_XATTR_KERNEL,
    USERNS_OVERLAY_KERNEL,
    fs_type,
    in_initial_user_namespace,
    kernel_version,
    mount_points,
    require_kernel,
    upper_refusal,
)
from ._paths import host_path, is_within

if TYPE_CHECKING:
    from ._diff import Change

#: overlayfs stacks at most this many lower layers (OVL_MAX_STACK).
MAX_LOWER_LAYERS = 500
_FSCONFIG_VALUE_MAX = 255  # fsconfig copies at most 256 bytes of a string value
_PAGE = 4096               # mount(2) copies at most a page of options
_LOWERDIR_ADD_KERNEL = (6, 8)
MERGED = "nsbox-merged"    # the mount point of the merged view, in the state directory
# An upper layer in memory: a tmpfs the container's first process mounts in its own mount
# namespace (its source says whose it is), with these names in it.
_TMPFS_SOURCE = "nsbox-upper"
_TMPFS_UPPER, _TMPFS_WORK, _TMPFS_MERGED = "upper", "work", "merged"


def _to_lower(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes, os.PathLike)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"lower must be a directory or a list of directories, "
                          f"not {value!r}") from None
    return tuple(host_path(item, "a lower layer") for item in items)


def _to_upper(value: Any) -> str | None:
    return None if value is None else host_path(value, "upper")


def _escape(path: str) -> str:
    """A path in mount(2)'s overlay options: ',' ':' and '\\' escaped with a backslash."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _mount_options(userxattr: bool) -> list[tuple[bytes, bytes | None]]:
    """The overlay's options besides its layers, as fsconfig (key, value) pairs."""
    options: list[tuple[bytes, bytes | None]] = [(b"source", b"nsbox-overlay")]
    if userxattr:
        # In a user namespace overlayfs keeps its marks in user.* xattrs, and refuses
        # redirect_dir and metacopy, which it then turns off itself.
        options.append((b"userxattr", None))
    else:
        # Off, whatever the kernel's defaults: an upper layer without redirects or
        # metadata-only copies is a plain layer that commit() can copy as it is.
        options += [(b"redirect_dir", b"off"), (b"metacopy", b"off")]
    return options


def _flags(options: list[tuple[bytes, bytes | None]]) -> str:
    """The options but the source, as mount(2) takes them."""
    return ",".join(k.decode() + (f"={v.decode()}" if v is not None else "")
                    for k, v in options[1:])


def _legacy_data(lowers: list[str], upper: str, work: str, flags: str) -> str:
    """mount(2)'s overlay option string (lowers top first)."""
    return (f"lowerdir={':'.join(_escape(n) for n in lowers)},upperdir={_escape(upper)},"
            f"workdir={_escape(work)},{flags}")


@attrs.define(eq=False, repr=False)
class OverlayRootfs:
    """Lower layers, a copy-on-write upper layer and the merged view of them (overlayfs).

    Used alone, entered as a context manager, the merged view is mounted at :attr:`path`
    (needs root: the mount is in your mount namespace) and unmounted on exit. Given to a
    :class:`Container` (directly, as ``rootfs=``, or in a :class:`PivotRoot`), it is mounted by
    the container's first process inside the container's own mount namespace, which is also
    what lets an unprivileged user use it (in the container's user namespace, Linux 5.11+).

    Args:
        lower: the lower layers, bottom to top: directories, never written. One directory may
            be given alone. At most 500 (overlayfs's limit); the mount options stay short
            however many there are.
        upper: a directory that keeps the container's writes (made if missing), for
            :meth:`diff`, :meth:`commit` or the next container. None: a throwaway upper layer,
            removed on exit. Where it lives depends on who enters the OverlayRootfs: entered
            by you (or the :class:`PivotRoot` holding it), in the temporary directory
            (``TMPDIR``), for :meth:`diff` and :meth:`commit` until you leave it; entered by
            the one :class:`Container` given it, in that container's memory (a tmpfs in its
            mount namespace, charged to its memory cgroup), gone with the container and out
            of reach of :meth:`diff` and :meth:`commit`.

    Raises:
        ConfigError: on construction: a lower layer missing or not a directory, too many, the
            same twice, or an upper layer overlapping a lower one.
        UnsupportedError: on construction, an upper layer on a filesystem overlayfs cannot
            write to (an overlay, a read-only or xattr-less one).

    .. versionadded:: 0.1
    """

    lower: tuple[str, ...] = attrs.field(converter=_to_lower)
    upper: str | None = attrs.field(default=None, converter=_to_upper, kw_only=True)
    _state: str = attrs.field(default="new", init=False)
    _stack: ExitStack = attrs.field(factory=ExitStack, init=False)
    _dir: str | None = attrs.field(default=None, init=False)
    _upper_dir: str | None = attrs.field(default=None, init=False)
    _work_dir: str | None = attrs.field(default=None, init=False)
    _mounted: bool = attrs.field(default=False, init=False)
    _in_memory: bool = attrs.field(default=False, init=False)  # upper layer: a container's tmpfs
    _in_use: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.lower:
            raise ConfigError("an OverlayRootfs needs at least one lower layer")
        if len(self.lower) > MAX_LOWER_LAYERS:
            raise ConfigError(f"{len(self.lower)} lower layers: overlayfs stacks at most "
                              f"{MAX_LOWER_LAYERS}")
        seen: set[tuple[int, int]] = set()
        for layer in self.lower:
            try:
                st = os.stat(layer)
            except FileNotFoundError:
                raise ConfigError(f"lower layer {layer!r} does not exist") from None
            except OSError as exc:
                raise ConfigError(f"lower layer {layer!r} cannot be used: {exc.strerror}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"lower layer {layer!r} is not a directory")
            if (st.st_dev, st.st_ino) in seen:
                raise ConfigError(f"lower layer {layer!r} is given twice")
            seen.add((st.st_dev, st.st_ino))
        if self.upper is not None:
            self._check_upper(self.upper, {os.path.realpath(layer) for layer in self.lower})

    def _check_upper(self, upper: str, lowers: set[str]) -> None:
        if os.path.exists(upper) and not os.path.isdir(upper):
            raise ConfigError(f"upper {upper!r} is not a directory")
        parent = os.path.dirname(upper)
        if not os.path.exists(upper) and not os.path.isdir(parent):
            raise ConfigError(f"upper {upper!r} does not exist, nor its parent directory")
        real = os.path.realpath(upper)
        for lower in lowers:
            if is_within(lower, real):
                raise ConfigError(f"upper {upper!r} contains the lower layer {lower!r}")
            if is_within(real, lower) and lower != "/":
                raise ConfigError(f"upper {upper!r} is inside the lower layer {lower!r}: it "
                                  "would show up in its own merged view")
        magic, name = fs_type(upper if os.path.exists(upper) else parent)
        reason = upper_refusal(magic, userxattr=False, kernel=kernel_version())
        if reason:
            raise UnsupportedError(f"upper {upper!r} is on {name}, which overlayfs cannot use "
                                   f"as an upper layer: {reason}")

    @classmethod
    def host(cls, upper: str | os.PathLike[str] | None = None) -> OverlayRootfs:
        """The host's ``/`` as the read-only lower layer, with a throwaway upper layer (in the
        container's memory when the container enters it, as ``Container()`` does).

        In a container (``Container(rootfs=OverlayRootfs.host())``) any host program runs and
        its writes never reach the host; /proc, /sys, /dev, /run and /tmp are the container's
        own, and filesystems mounted below ``/`` on the host (``/home`` on its own disk, ...)
        show as the empty directories they are mounted on.
        """
        return cls(["/"], upper=upper)

    # -- state ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<nsbox.OverlayRootfs {self._state} lower={list(self.lower)!r} "
                f"upper={self.upper!r}>")

    @property
    def is_host(self) -> bool:
        """Whether the only lower layer is the host's ``/`` (:meth:`host`)."""
        return self.lower == ("/",)

    @property
    def entered(self) -> bool:
        """Whether the layers are in place (entered, by you or by a container)."""
        return self._state == "entered"

    @property
    def mounted(self) -> bool:
        """Whether the merged view is mounted at :attr:`path` in your mount namespace."""
        return self._mounted

    @property
    def path(self) -> str:
        """Where the merged view is mounted, while entered alone as root.

        Raises:
            LifecycleError: not entered.
            UnsupportedError: entered without root, or by a container (or a PivotRoot): only
                containers mount it then, each in its own mount namespace.
        """
        if self._state != "entered":
            raise LifecycleError("the OverlayRootfs is not entered: use `with OverlayRootfs(...) "
                                 "as fs`, then fs.path")
        if not self._mounted:
            why = ("mounting it in your own mount namespace needs root" if os.geteuid() != 0
                   else "enter the OverlayRootfs alone (`with fs:`) to mount it at fs.path")
            raise UnsupportedError(f"the merged view is mounted only inside containers here: "
                                   f"{why}")
        assert self._dir is not None
        return os.path.join(self._dir, MERGED)

    @property
    def upper_dir(self) -> str:
        """The upper layer in use: ``upper``, or the throwaway one while entered.

        Raises:
            LifecycleError: a throwaway upper layer outside of the time it exists, or in the
                memory of the container that entered it.
        """
        if self.upper is not None:
            return self.upper
        if self._in_memory:
            raise LifecycleError(
                "the throwaway upper layer is in the memory of the container that entered "
                "this OverlayRootfs (a tmpfs in its mount namespace), out of reach from "
                "here; enter the OverlayRootfs or its PivotRoot yourself around the "
                "container (`with PivotRoot(fs):`) to put it in TMPDIR, or give upper= to "
                "keep it")
        if self._upper_dir is None:
            raise LifecycleError(
                "the throwaway upper layer exists only while the OverlayRootfs is entered; "
                "enter it yourself around the container (`with OverlayRootfs(...) as fs:`), "
                "or give upper= to keep it")
        return self._upper_dir

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Create the layers' directories and, as root, mount the merged view at :attr:`path`.

        Without root nothing is mounted in your namespace (the kernel allows it only in a
        user namespace): containers mount it for themselves, and :meth:`diff` and
        :meth:`commit` work as usual.

        Raises:
            LifecycleError: entered before.
            UnsupportedError: the temporary directory is on a filesystem overlayfs cannot use
                for the upper layer.
            MountError: (an OSError) the kernel refused the mount; ``filename`` says what.
        """
        self._start(mount=os.geteuid() == 0)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close()

    @contextlib.contextmanager
    def _for_containers(self, container: ChildContext | None = None, *,
                        legacy_only: bool = False) -> Iterator[Self]:
        """The layers for containers, without a mount in this namespace (a container mounts).

        ``container``: the context of the one container entering it for itself. Its throwaway
        upper layer then lives in that container's memory where the kernel allows, and
        nothing is made on the host: no one else can reach it, and no one needs to.
        """
        in_memory = container is not None and self._fits_in_memory(container, legacy_only)
        self._start(mount=False, in_memory=in_memory)
        try:
            yield self
        finally:
            self._close()

    def _start(self, mount: bool, in_memory: bool = False) -> None:
        if self._state != "new":
            raise LifecycleError(f"an OverlayRootfs can be entered once; this one is "
                                 f"{self._state}")
        self._in_memory = in_memory
        try:
            self._prepare()
            if mount:
                self._mount_here()
        except BaseException:
            self._stack.close()
            self._state = "closed"
            raise
        self._state = "entered"

    def _close(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        try:
            self._stack.close()
        finally:
            self._dir = self._upper_dir = self._work_dir = None
            self._mounted = self._in_memory = False

    def _fits_in_memory(self, ctx: ChildContext, legacy_only: bool) -> bool:
        """Whether the upper layer can be a tmpfs of the container's: a throwaway one, on a
        kernel whose tmpfs can hold it, with layers that go by their own paths (the shorter
        names are relative to a directory, or symlinks in the state directory)."""
        if self.upper is not None:
            return False
        if ctx.userns and kernel_version() < TMPFS_USER_XATTR_KERNEL:
            return False  # rootless overlays keep their marks in user xattrs: on tmpfs from 6.6
        lowers = list(reversed(self.lower))
        if legacy_only or kernel_version() < _LOWERDIR_ADD_KERNEL:
            data = _legacy_data(lowers, _TMPFS_UPPER, _TMPFS_WORK,
                                _flags(_mount_options(ctx.userns)))
            return len(data.encode()) < _PAGE
        return all(len(name.encode()) <= _FSCONFIG_VALUE_MAX for name in lowers)

    def _prepare(self) -> None:
        if self._in_memory:
            return  # the container's first process makes everything, in its own namespace
        state_dir = make_temp_dir("overlay")
        self._stack.callback(release_temp_dir, state_dir)
        self._dir = state_dir
        os.mkdir(os.path.join(state_dir, MERGED), 0o755)
        if self.upper is None:
            magic, name = fs_type(state_dir)
            reason = upper_refusal(magic, userxattr=False, kernel=kernel_version())
            if reason:
                raise UnsupportedError(
                    f"the throwaway upper layer would be in {state_dir}, on {name}: {reason}. "
                    "Set TMPDIR to a directory on ext4, xfs, btrfs or tmpfs, or give upper=")
            upper = os.path.join(state_dir, "upper")
            os.mkdir(upper)
            # The merged root shows the upper root's mode and owner: make them the top layer's.
            top = os.stat(self.lower[-1])
            with contextlib.suppress(PermissionError):  # without root, the upper stays ours
                os.chown(upper, top.st_uid, top.st_gid)
            os.chmod(upper, stat.S_IMODE(top.st_mode))
            self._upper_dir = upper
            self._work_dir = os.path.join(state_dir, "work")
            os.mkdir(self._work_dir, 0o700)
            return
        if not os.path.exists(self.upper):
            os.mkdir(self.upper, 0o755)
        self._upper_dir = self.upper
        upper_dev = os.stat(self.upper).st_dev
        if os.stat(state_dir).st_dev == upper_dev:
            work = os.path.join(state_dir, "work")
            os.mkdir(work, 0o700)
        else:  # the work directory must be on the upper layer's filesystem
            work = make_temp_dir("work", os.path.dirname(self.upper))
            self._stack.callback(release_temp_dir, work)
            if os.stat(work).st_dev != upper_dev:
                raise ConfigError(f"upper {self.upper!r} is a mount point: overlayfs needs a "
                                  "work directory beside it on the same filesystem; use a "
                                  "directory below it as the upper layer")
        self._work_dir = work

    def _claim(self, stack: ExitStack) -> None:
        """Hold the upper layer for one overlay mount until ``stack`` closes.

        overlayfs only warns when two mounts share an upper layer (without its index
        feature), and what follows is undefined: so nsbox takes an flock on the directory,
        which also stops another process of nsbox from using it at the same time.

        Raises:
            LifecycleError: the upper layer is in use.
        """
        if self._in_memory:  # a tmpfs of the container that entered this OverlayRootfs
            if self._in_use:
                raise LifecycleError(
                    "the throwaway upper layer of this OverlayRootfs is in use by the "
                    "container that entered it, in its memory. Give each running container "
                    "its own OverlayRootfs (they may share the lower layers)")
            self._in_use = True
            stack.callback(setattr, self, "_in_use", False)
            return
        fd = os.open(self.upper_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LifecycleError(
                f"the upper layer {self.upper_dir!r} is in use by another container or overlay "
                "mount; overlayfs corrupts an upper layer two mounts share. Give each running "
                "container its own OverlayRootfs (they may share the lower layers)") from None
        stack.callback(os.close, fd)

    def _mount_here(self) -> None:
        assert self._dir is not None
        self._claim(self._stack)
        merged = os.path.join(self._dir, MERGED)
        spec = self._spec(relative=False, userxattr=not in_initial_user_namespace())
        state.record("mount", merged)  # a host mount: nsbox gc detaches it if we die
        try:
            native.mount_overlay(spec, os.fsencode(merged))
        except BaseException:
            state.forget("mount", merged)
            raise
        self._mounted = True
        self._stack.callback(self._unmount, merged)

    @staticmethod
    def _unmount(merged: str) -> None:
        err = native.umount(os.fsencode(merged))
        if err:
            raise OSError(err, os.strerror(err), merged)
        state.forget("mount", merged)

    # -- for the C child -----------------------------------------------------------------------

    def _merged_dir(self) -> str:
        if self._dir is None:
            raise LifecycleError("the OverlayRootfs is not entered")
        return os.path.join(self._dir, MERGED)

    def _child_root(self) -> str:
        """Where the container's first process mounts the merged view: a directory in the
        state directory, or a name in the tmpfs of an upper layer in memory."""
        return _TMPFS_MERGED if self._in_memory else self._merged_dir()

    def _short_name(self, target: str, name: str, relative: bool) -> str:
        """A short path for ``target``: a symlink ``name`` in the state directory."""
        assert self._dir is not None
        link = os.path.join(self._dir, name)
        if not os.path.islink(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
        return name if relative else link

    def _spec(self, *, relative: bool, userxattr: bool, legacy_only: bool = False,
              upper_tmpfs: native.UpperTmpfs | None = None) -> native.OverlaySpec:
        """The overlay for the C side: for the child, names may be relative to a directory it
        changes into; for a mount from this process they are absolute.

        From Linux 6.8 each layer is its own fsconfig "lowerdir+" value (at most 255 bytes),
        so the paths go as they are. Before 6.8 (or with ``legacy_only``, for tests) they must
        all fit in one page of mount(2) options, tried in this order: the absolute paths; in
        the child, the paths relative to the layers' common directory; then a short symlink
        per layer in the state directory (made only then: on most disks a symlink costs a
        journal write, a quarter of a millisecond here).

        With ``upper_tmpfs`` (an upper layer in memory) there is no state directory: the
        layers go by their own paths (:meth:`_fits_in_memory` checked they fit), upper and
        work by their names in the tmpfs, which the child changes into.
        """
        options = _mount_options(userxattr)
        flags = _flags(options)
        legacy = legacy_only or kernel_version() < _LOWERDIR_ADD_KERNEL
        if upper_tmpfs is not None:
            layers_dir, lowers = None, list(reversed(self.lower))
            upper, work = _TMPFS_UPPER, _TMPFS_WORK
            upper_name = f"the upper layer ({_TMPFS_SOURCE}, a tmpfs in the container)"
        else:
            assert self._upper_dir is not None
            upper_name = self._upper_dir
            if legacy:
                layers_dir, lowers, upper, work = self._legacy_names(relative, flags)
            else:
                layers_dir, lowers, upper, work = self._lowerdir_add_names(relative)
        data = _legacy_data(lowers, upper, work, flags) if legacy else ""
        # overlayfs takes "lowerdir+" values as they are, but unescapes "upperdir" and
        # "workdir" (a backslash quotes the next character), as it does mount(2)'s string.
        upper, work = _escape(upper), _escape(work)
        if any(len(n.encode()) > _FSCONFIG_VALUE_MAX for n in (*lowers, upper, work)):
            raise ConfigError(f"the temporary directory {self._dir!r} has too long a path for "
                              "overlay options; set TMPDIR to a shorter one")
        return native.OverlaySpec(
            lowers=[os.fsencode(n) for n in lowers],
            lower_names=[os.fsencode(layer) for layer in reversed(self.lower)],
            upper=os.fsencode(upper), work=os.fsencode(work),
            upper_name=os.fsencode(upper_name), options=options,
            layers_dir=os.fsencode(layers_dir) if layers_dir is not None else None,
            legacy_data=data.encode(), legacy_only=legacy_only, upper_tmpfs=upper_tmpfs)

    def _lowerdir_add_names(self, relative: bool) -> tuple[str | None, list[str], str, str]:
        """(directory to change into, lowers top first, upper, work) for "lowerdir+"."""
        assert self._dir is not None and self._upper_dir is not None
        assert self._work_dir is not None
        lowers = [layer if len(layer.encode()) <= _FSCONFIG_VALUE_MAX
                  else self._short_name(layer, f"l/{i}", relative)
                  for i, layer in enumerate(self.lower)][::-1]
        upper, work = self._upper_dir, self._work_dir
        if relative and self.upper is None:  # both in the state directory: short names
            return self._dir, lowers, "upper", "work"
        return (self._dir if relative else None), lowers, upper, work

    def _legacy_names(self, relative: bool, flags: str) -> tuple[str | None, list[str], str, str]:
        """(directory to change into, lowers top first, upper, work) for mount(2)'s page."""
        assert self._dir is not None and self._upper_dir is not None
        assert self._work_dir is not None
        upper, work = self._upper_dir, self._work_dir

        def fits(lowers: list[str], up: str, wk: str) -> bool:
            return len(_legacy_data(lowers, up, wk, flags).encode()) < _PAGE

        absolute = list(reversed(self.lower))
        if fits(absolute, upper, work):
            return None, absolute, upper, work
        if relative:
            common = os.path.commonpath([*self.lower])
            near = [os.path.relpath(layer, common) for layer in absolute]
            if fits(near, upper, work):
                return common, near, upper, work
            links = [self._short_name(layer, f"l/{i}", True)
                     for i, layer in enumerate(self.lower)][::-1]
            up = "upper" if self.upper is None else self._short_name(upper, "u", True)
            wk = "work" if self.upper is None else self._short_name(work, "w", True)
            if fits(links, up, wk):
                return self._dir, links, up, wk
        else:
            links = [self._short_name(layer, f"l/{i}", False)
                     for i, layer in enumerate(self.lower)][::-1]
            if fits(links, upper, work):
                return None, links, upper, work
        raise UnsupportedError(f"{len(self.lower)} lower layers do not fit in one page of mount "
                               "options on this kernel (Linux 6.8 lifts the limit)")

    def _child_spec(self, ctx: ChildContext, *, legacy_only: bool = False) -> native.OverlaySpec:
        """The overlay the container's first process mounts, in its own namespaces."""
        if ctx.userns:
            require_kernel(USERNS_OVERLAY_KERNEL, "an overlay in a user namespace (rootless)")
            mounts = mount_points()
            for layer in self.lower:
                real = os.path.realpath(layer)
                below = sorted(m for m in mounts if m != real and is_within(m, real))
                if below:
                    raise UnsupportedError(
                        f"lower layer {layer!r} has filesystems mounted below it ("
                        f"{', '.join(below[:3])}{', ...' if len(below) > 3 else ''}): in a user "
                        "namespace the kernel refuses it as a layer, since the layer would "
                        "uncover what those mounts hide. Without root, use a directory tree "
                        "as the lower layer (OverlayRootfs.host() needs root)")
            if not self._in_memory:  # (a tmpfs in memory was checked when it was entered)
                magic, name = fs_type(self.upper_dir)
                reason = upper_refusal(magic, userxattr=True, kernel=kernel_version())
                if reason:
                    raise UnsupportedError(f"the upper layer {self.upper_dir!r} is on {name}: "
                                           f"{reason}")
        if self._in_memory:
            return self._spec(relative=True, userxattr=ctx.userns, legacy_only=legacy_only,
                              upper_tmpfs=self._upper_tmpfs(ctx))
        if ctx.root_ids is not None and self._dir is not None:
            # Root inside is another user outside: it must reach the layers and own the upper.
            uid, gid = ctx.root_ids
            for path in (self._dir, self._merged_dir(), self._work_dir):
                if path is not None:
                    os.chown(path, uid, gid)
            if self.upper is None and self._upper_dir is not None:
                os.chown(self._upper_dir, uid, gid)
        return self._spec(relative=True, userxattr=ctx.userns, legacy_only=legacy_only)

    def _upper_tmpfs(self, ctx: ChildContext) -> native.UpperTmpfs:
        """The tmpfs of an upper layer in memory, and the mode and owner of its upper/.

        It has no size limit of its own (the kernel's default, half of the RAM, like the
        container's /tmp and /run): its pages are charged to the memory cgroup of the
        process that writes them, so a container's ``CGroup(memory_max=...)`` bounds them.
        """
        # The merged root shows the upper root's mode and owner: make them the top layer's.
        # In a user namespace the child, root there, keeps what it makes its own, as the
        # upper layer nsbox makes on disk is given to root inside.
        top = os.stat(self.lower[-1])
        uid, gid = (-1, -1) if ctx.userns else (top.st_uid, top.st_gid)
        return native.UpperTmpfs(options=[(b"source", _TMPFS_SOURCE.encode()), (b"mode", b"700")],
                                 upper_mode=stat.S_IMODE(top.st_mode), upper_uid=uid,
                                 upper_gid=gid)

    # -- what changed --------------------------------------------------------------------------

    def diff(self) -> list[Change]:
        """What the upper layer changed over the lower layers, sorted by path.

        Each :class:`Change` is ``added``, ``modified`` or ``deleted`` (whiteouts and opaque
        directories read as deletions). A renamed file is a deletion and an addition.

        Raises:
            LifecycleError: a throwaway upper layer that does not exist (yet, or any more).
        """
        from . import _diff  # only diff() needs it: not imported with every container

        return _diff.diff(self.upper_dir, list(reversed(self.lower)))

    def commit(self, dest: str | os.PathLike[str]) -> str:
        """Copy the upper layer into ``dest``, a new plain layer directory; returns its path.

        The new layer goes on top of this one's lower layers (``OverlayRootfs(lower=[*lower,
        dest])``): deletions are kept as overlay whiteouts. Best done once the container has
        stopped writing.

        Raises:
            ConfigError: ``dest`` exists and is not an empty directory, or is inside a layer.
            LifecycleError: a throwaway upper layer that does not exist (yet, or any more).
        """
        from . import _commit  # only commit() needs it: not imported with every container

        path = host_path(dest, "the commit destination")
        upper = self.upper_dir
        for layer in (*self.lower, upper):
            real = os.path.realpath(layer)
            if real != "/" and is_within(os.path.realpath(path), real):
                raise ConfigError(f"the commit destination {path!r} is inside the layer "
                                  f"{layer!r}")
        created = not os.path.exists(path)
        if created:
            os.mkdir(path, 0o755)
        elif not os.path.isdir(path) or os.listdir(path):
            raise ConfigError(f"the commit destination {path!r} exists and is not an empty "
                              "directory")
        try:
            _commit.commit(upper, list(reversed(self.lower)), path)
        except BaseException:
            if created:
                remove_tree(path)
            raise
        return path
