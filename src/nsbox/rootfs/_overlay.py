"""``OverlayRootfs``: read-only lower layers, one copy-on-write upper layer, the merged view."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import attrs
from typing_extensions import Self

from .. import state
from .._native import mounts as native
from ..errors import ConfigError, LifecycleError, UnsupportedError
from . import _commit, _diff
from ._context import ChildContext
from ._files import make_temp_dir, release_temp_dir, remove_tree
from ._kernel import (
    USERNS_OVERLAY_KERNEL,
    fs_type,
    in_initial_user_namespace,
    kernel_version,
    mount_points,
    require_kernel,
    upper_refusal,
)
from ._paths import host_path, is_within

#: overlayfs stacks at most this many lower layers (OVL_MAX_STACK).
MAX_LOWER_LAYERS = 500
_FSCONFIG_VALUE_MAX = 255  # fsconfig copies at most 256 bytes of a string value
_PAGE = 4096               # mount(2) copies at most a page of options
_LOWERDIR_ADD_KERNEL = (6, 8)
MERGED = "nsbox-merged"    # the mount point of the merged view, in the state directory


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
            :meth:`diff`, :meth:`commit` or the next container. None: a throwaway upper layer
            in the temporary directory (``TMPDIR``), removed on exit.

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
        """The host's ``/`` as the read-only lower layer, with a throwaway upper layer.

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
            UnsupportedError: entered without root: only a container can mount it then.
        """
        if self._state != "entered" or self._dir is None:
            raise LifecycleError("the OverlayRootfs is not entered: use `with OverlayRootfs(...) "
                                 "as fs`, then fs.path")
        if not self._mounted:
            raise UnsupportedError("the merged view is mounted only inside containers here: "
                                   "mounting it in your own mount namespace needs root")
        return os.path.join(self._dir, MERGED)

    @property
    def upper_dir(self) -> str:
        """The upper layer in use: ``upper``, or the throwaway one while entered.

        Raises:
            LifecycleError: a throwaway upper layer outside of the time it exists.
        """
        if self.upper is not None:
            return self.upper
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
    def _for_containers(self) -> Iterator[Self]:
        """The layers' directories, without a mount in this namespace (a container mounts)."""
        self._start(mount=False)
        try:
            yield self
        finally:
            self._close()

    def _start(self, mount: bool) -> None:
        if self._state != "new":
            raise LifecycleError(f"an OverlayRootfs can be entered once; this one is "
                                 f"{self._state}")
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
            self._mounted = False

    def _prepare(self) -> None:
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

    def _short_name(self, target: str, name: str, relative: bool) -> str:
        """A short path for ``target``: a symlink ``name`` in the state directory."""
        assert self._dir is not None
        link = os.path.join(self._dir, name)
        if not os.path.islink(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
        return name if relative else link

    def _spec(self, *, relative: bool, userxattr: bool,
              legacy_only: bool = False) -> native.OverlaySpec:
        """The overlay for the C side: for the child, names may be relative to a directory it
        changes into; for a mount from this process they are absolute.

        From Linux 6.8 each layer is its own fsconfig "lowerdir+" value (at most 255 bytes),
        so the paths go as they are. Before 6.8 (or with ``legacy_only``, for tests) they must
        all fit in one page of mount(2) options, tried in this order: the absolute paths; in
        the child, the paths relative to the layers' common directory; then a short symlink
        per layer in the state directory (made only then: on most disks a symlink costs a
        journal write, a quarter of a millisecond here).
        """
        assert self._dir is not None and self._upper_dir is not None
        assert self._work_dir is not None
        options: list[tuple[bytes, bytes | None]] = [(b"source", b"nsbox-overlay")]
        if userxattr:
            # In a user namespace overlayfs keeps its marks in user.* xattrs, and refuses
            # redirect_dir and metacopy, which it then turns off itself.
            options.append((b"userxattr", None))
        else:
            # Off, whatever the kernel's defaults: an upper layer without redirects or
            # metadata-only copies is a plain layer that commit() can copy as it is.
            options += [(b"redirect_dir", b"off"), (b"metacopy", b"off")]
        flags = ",".join(k.decode() + (f"={v.decode()}" if v is not None else "")
                         for k, v in options[1:])
        if legacy_only or kernel_version() < _LOWERDIR_ADD_KERNEL:
            layers_dir, lowers, upper, work = self._legacy_names(relative, flags)
            data = ",".join([f"lowerdir={':'.join(_escape(n) for n in lowers)}",
                             f"upperdir={_escape(upper)}", f"workdir={_escape(work)}", flags])
        else:
            layers_dir, lowers, upper, work = self._lowerdir_add_names(relative)
            data = ""
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
            upper_name=os.fsencode(self._upper_dir), options=options,
            layers_dir=os.fsencode(layers_dir) if layers_dir is not None else None,
            legacy_data=data.encode(), legacy_only=legacy_only)

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
            data = (f"lowerdir={':'.join(_escape(n) for n in lowers)},upperdir={_escape(up)},"
                    f"workdir={_escape(wk)},{flags}")
            return len(data.encode()) < _PAGE

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
            magic, name = fs_type(self.upper_dir)
            reason = upper_refusal(magic, userxattr=True, kernel=kernel_version())
            if reason:
                raise UnsupportedError(f"the upper layer {self.upper_dir!r} is on {name}: "
                                       f"{reason}")
        if ctx.root_ids is not None and self._dir is not None:
            # Root inside is another user outside: it must reach the layers and own the upper.
            uid, gid = ctx.root_ids
            for path in (self._dir, self._merged_dir(), self._work_dir):
                if path is not None:
                    os.chown(path, uid, gid)
            if self.upper is None and self._upper_dir is not None:
                os.chown(self._upper_dir, uid, gid)
        return self._spec(relative=True, userxattr=ctx.userns, legacy_only=legacy_only)

    # -- what changed --------------------------------------------------------------------------

    def diff(self) -> list[_diff.Change]:
        """What the upper layer changed over the lower layers, sorted by path.

        Each :class:`Change` is ``added``, ``modified`` or ``deleted`` (whiteouts and opaque
        directories read as deletions). A renamed file is a deletion and an addition.

        Raises:
            LifecycleError: a throwaway upper layer that does not exist (yet, or any more).
        """
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
