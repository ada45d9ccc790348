"""Which namespaces a container gets: created new, joined from elsewhere, or shared with the host.

``Namespaces`` is a spec (validated on construction) and a context manager: entered alone it
holds a live set of namespaces (its init as PID 1) in which ``run`` starts commands with the
host's filesystem, like ``unshare(1)``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import Self

from . import _native
from .errors import ConfigError, LifecycleError

if TYPE_CHECKING:
    from .container import Container
    from .process import Args, CompletedProcess, Process

NAMES = ("user", "pid", "net", "uts", "ipc", "mount", "cgroup", "time")

#: Clone flag of each namespace, and the name of its file in /proc/PID/ns/.
CLONE_FLAGS = {
    "user": _native.CLONE_NEWUSER,
    "pid": _native.CLONE_NEWPID,
    "net": _native.CLONE_NEWNET,
    "uts": _native.CLONE_NEWUTS,
    "ipc": _native.CLONE_NEWIPC,
    "mount": _native.CLONE_NEWNS,
    "cgroup": _native.CLONE_NEWCGROUP,
    "time": _native.CLONE_NEWTIME,
}
PROC_NS_FILE = {"user": "user", "pid": "pid", "net": "net", "uts": "uts", "ipc": "ipc",
                "mount": "mnt", "cgroup": "cgroup", "time": "time"}

_MAX_ID = 2**32 - 1


@attrs.frozen
class Join:
    """Join an existing namespace instead of creating one.

    Args:
        target: a namespace file (``/proc/PID/ns/net``, ``/run/netns/NAME``) or a pid, whose
            namespace of that kind is joined.
    """

    target: str | int | os.PathLike[str]

    def __attrs_post_init__(self) -> None:
        target = self.target
        if isinstance(target, bool) or not isinstance(target, (str, int, os.PathLike)):
            raise ConfigError(f"Join target must be a path or a pid, not {target!r}")
        if isinstance(target, int) and target <= 0:
            raise ConfigError(f"Join pid must be positive, not {target}")

    def path(self, name: str) -> str:
        """The namespace file to open for namespace ``name``."""
        if isinstance(self.target, int):
            return f"/proc/{self.target}/ns/{PROC_NS_FILE[name]}"
        return os.fspath(self.target)


@attrs.frozen
class IdMap:
    """One line of a uid or gid map: ``count`` ids from ``inside`` map to ``outside``."""

    inside: int = attrs.field()
    outside: int = attrs.field()
    count: int = attrs.field(default=1)

    @inside.validator
    @outside.validator
    def _check_id(self, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID - 1:
            raise ConfigError(f"IdMap.{attribute.name} must be an id in 0..{_MAX_ID - 1}, "
                              f"not {value!r}")

    @count.validator
    def _check_count(self, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"IdMap.count must be a positive int, not {value!r}")
        if max(self.inside, self.outside) + value > _MAX_ID:
            raise ConfigError(f"IdMap {self.inside}->{self.outside} x{value} runs past the "
                              f"largest id {_MAX_ID - 1}")

    @classmethod
    def range(cls, outside: int, count: int = 65536) -> IdMap:
        """Root inside maps to ``outside``, and ``count`` ids from there (root only)."""
        return cls(0, outside, count)


def _check_ns_value(instance: Any, attribute: Any, value: Any) -> None:
    if value is None and attribute.name == "user":
        return
    if not isinstance(value, (bool, Join)):
        raise ConfigError(f"Namespaces.{attribute.name} must be True (new), False (the host's) "
                          f"or nsbox.Join(path_or_pid), not {value!r}")


def _check_maps(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, IdMap):
        raise ConfigError(f"Namespaces.{attribute.name} takes a list of IdMap, not one IdMap")
    if not isinstance(value, tuple):
        raise ConfigError(f"Namespaces.{attribute.name} must be a list of nsbox.IdMap, "
                          f"not {value!r}")
    maps = list(value)
    if not maps or not all(isinstance(m, IdMap) for m in maps):
        raise ConfigError(f"Namespaces.{attribute.name} must be a non-empty list of "
                          f"nsbox.IdMap, not {value!r}")
    if len(maps) > 340:
        raise ConfigError(f"Namespaces.{attribute.name} has {len(maps)} lines; the kernel takes "
                          "at most 340")
    for side in ("inside", "outside"):
        ranges = sorted((getattr(m, side), getattr(m, side) + m.count) for m in maps)
        for (_, end), (start, _) in itertools.pairwise(ranges):
            if start < end:
                raise ConfigError(f"Namespaces.{attribute.name} has overlapping {side} ranges; "
                                  "each id may be mapped once")


def _to_tuple(value: Any) -> Any:
    # A list would let the spec change after validation; a bare IdMap is left for the validator.
    if value is None or isinstance(value, (IdMap, str, bytes)):
        return value
    try:
        return tuple(value)
    except TypeError:
        return value


def _check_offset(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"Namespaces.{attribute.name} must be seconds (a number), "
                          f"not {value!r}")
    if abs(value) > 2**40:
        raise ConfigError(f"Namespaces.{attribute.name} of {value} s is out of range")


def _render_map(maps: Sequence[IdMap]) -> bytes:
    return "".join(f"{m.inside} {m.outside} {m.count}\n" for m in maps).encode()


def _offset_line(clock: str, seconds: float) -> str:
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    return f"{clock} {whole} {nanos}\n"


@attrs.define(kw_only=True, eq=False)
class Namespaces:
    """The namespaces of a container.

    Each of ``pid, net, uts, ipc, mount, cgroup, time`` is ``True`` (create a new one),
    ``False`` (share the host's) or :class:`Join` (enter an existing one). ``user`` may also be
    ``None``: a new user namespace when not running as root, none as root.

    Args:
        uid_map, gid_map: the id maps of a new user namespace. Default: rootless, the caller's
            uid/gid become 0 inside (one id: the kernel allows an unprivileged user no more);
            as root, ids 0-65535 map to themselves. ``IdMap.range(100000)`` maps root inside to
            an unprivileged range outside.
        monotonic_offset, boottime_offset: seconds added to those clocks inside a new time
            namespace.

    Raises:
        ConfigError: on construction, for anything invalid.

    .. versionadded:: 0.1
    """

    user: bool | Join | None = attrs.field(default=None, validator=_check_ns_value)
    pid: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    net: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    uts: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    ipc: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    mount: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    cgroup: bool | Join = attrs.field(default=True, validator=_check_ns_value)
    time: bool | Join = attrs.field(default=False, validator=_check_ns_value)
    uid_map: Sequence[IdMap] | None = attrs.field(default=None, validator=_check_maps,
                                                  converter=_to_tuple)
    gid_map: Sequence[IdMap] | None = attrs.field(default=None, validator=_check_maps,
                                                  converter=_to_tuple)
    monotonic_offset: float = attrs.field(default=0, validator=_check_offset)
    boottime_offset: float = attrs.field(default=0, validator=_check_offset)
    _live: Container | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.uid_map or self.gid_map) and self.user is not True and not (
            self.user is None and os.geteuid() != 0
        ):
            raise ConfigError("uid_map/gid_map need a new user namespace (user=True)")
        if (self.monotonic_offset or self.boottime_offset) and self.time is not True:
            raise ConfigError("clock offsets need a new time namespace (time=True)")
        if os.geteuid() != 0 and self.wants_user_namespace:
            for name, maps, own in (("uid_map", self.uid_map, os.geteuid()),
                                    ("gid_map", self.gid_map, os.getegid())):
                if maps is not None and (len(maps) != 1 or maps[0].count != 1
                                         or maps[0].outside != own):
                    raise ConfigError(
                        f"without root, {name} can only map your own id ({own}) once, e.g. "
                        f"[IdMap(0, {own})]; wider maps need root (or newuidmap, not used)")

    @classmethod
    def of(cls, *names: str, **options: Any) -> Namespaces:
        """New namespaces of exactly the kinds named; the host's for the others.

        ``Namespaces.of("pid", "mount")``. Without ``"user"`` the user namespace stays
        automatic (new when not root). ``options`` are the other fields (maps, offsets).

        Raises:
            ConfigError: an unknown name.
        """
        unknown = sorted(set(names) - set(NAMES))
        if unknown:
            raise ConfigError(f"unknown namespace {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(NAMES)}")
        kinds: dict[str, Any] = {name: name in names for name in NAMES if name != "user"}
        if "user" in names:
            kinds["user"] = True
        return cls(**kinds, **options)

    # -- the spec, as the spawn code needs it --------------------------------------------------

    @property
    def wants_user_namespace(self) -> bool:
        """Whether a new user namespace is created (``user=None`` resolved for this caller)."""
        return self.user is True or (self.user is None and os.geteuid() != 0)

    def _state(self, name: str) -> bool | Join:
        if name == "user":
            return self.wants_user_namespace if not isinstance(self.user, Join) else self.user
        value: bool | Join = getattr(self, name)
        return value

    def new_flags(self) -> int:
        """The CLONE_NEW* flags of the namespaces to create."""
        return sum(flag for name, flag in CLONE_FLAGS.items() if self._state(name) is True)

    def joins(self) -> list[tuple[str, Join]]:
        """The namespaces to join, user namespace first (it decides what else may be joined)."""
        return [(n, v) for n in NAMES if isinstance(v := self._state(n), Join)]

    def id_maps(self) -> tuple[bytes | None, bytes | None, bool]:
        """(uid_map, gid_map, deny_setgroups) for a new user namespace; Nones without one."""
        if not self.wants_user_namespace:
            return None, None, False
        rootless = os.geteuid() != 0
        if rootless:
            uid_map: Sequence[IdMap] = self.uid_map or (IdMap(0, os.geteuid()),)
            gid_map: Sequence[IdMap] = self.gid_map or (IdMap(0, os.getegid()),)
        else:
            uid_map = self.uid_map or (IdMap(0, 0, 65536),)
            gid_map = self.gid_map or (IdMap(0, 0, 65536),)
        # An unprivileged user may write a gid map only after giving up setgroups(2), which
        # could otherwise drop a group that denies access (user_namespaces(7)).
        return _render_map(uid_map), _render_map(gid_map), rootless

    def timens_offsets(self) -> bytes | None:
        """The text for /proc/self/timens_offsets, or None."""
        if self.time is not True or not (self.monotonic_offset or self.boottime_offset):
            return None
        return (_offset_line("monotonic", self.monotonic_offset)
                + _offset_line("boottime", self.boottime_offset)).encode()

    # -- alone, as a live set of namespaces ----------------------------------------------------

    def __enter__(self) -> Self:
        from .container import Container

        if self._live is not None:
            raise LifecycleError("this Namespaces is already entered; use a new one")
        from .security._policy import UNCONFINED

        # Alone, Namespaces is a namespace tool like unshare(1), not a sandbox: root inside
        # keeps every capability and no filter applies (docs/security.md). Use a Container.
        live = Container(self, **UNCONFINED)
        live.__enter__()
        self._live = live
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.__exit__(exc_type, exc, tb)

    @property
    def live(self) -> Container:
        """The running container that holds these namespaces, while entered.

        Raises:
            LifecycleError: when not entered.
        """
        if self._live is None:
            raise LifecycleError("these Namespaces are not entered: use `with Namespaces() as ns`")
        return self._live

    def run(self, args: Args, **options: Any) -> CompletedProcess:
        """Run a command in these namespaces; see :meth:`Container.run`."""
        return self.live.run(args, **options)

    def spawn(self, args: Args, **options: Any) -> Process:
        """Start a command in these namespaces; see :meth:`Container.spawn`."""
        return self.live.spawn(args, **options)
