"""The mounts a user adds to a new root: ``Bind`` and ``Tmpfs`` specs, checked on construction."""

from __future__ import annotations

import os
import re
from typing import Any

import attrs

from ..errors import ConfigError
from ._paths import container_path, host_path

_SIZE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$|^(100|[1-9][0-9]?)%$")


def _source(value: Any) -> str:
    path = host_path(value, "a bind mount's source")
    if not os.path.exists(path):
        raise ConfigError(f"bind mount source {path!r} does not exist")
    return path


def _dest(value: Any) -> str | None:
    return None if value is None else container_path(value)


@attrs.frozen
class Bind:
    """A host file or directory, mounted (with everything mounted below it) in the container.

    Args:
        source: the host path.
        dest: where it appears inside (default: the same path as on the host).
        readonly: read-only, for the whole tree below it too (Linux 5.12 ``mount_setattr``),
            so no submount stays writable.

    Raises:
        ConfigError: on construction: a missing source, a relative destination, or one
            with ``..``.

    .. versionadded:: 0.1
    """

    source: str = attrs.field(converter=_source)
    dest: str | None = attrs.field(default=None, converter=_dest)
    readonly: bool = attrs.field(default=False, kw_only=True,
                                 validator=attrs.validators.instance_of(bool))

    @property
    def target(self) -> str:
        """The destination inside the container."""
        return self.dest if self.dest is not None else container_path(self.source)


def _check_size(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"Tmpfs size must be bytes (an int), a string like '64M' or '50%', "
                          f"not {value!r}")
    bad_int = isinstance(value, int) and value <= 0
    if bad_int or (isinstance(value, str) and not _SIZE.match(value)):
        raise ConfigError(f"Tmpfs size {value!r} is not a positive size like 65536, '64M' or "
                          "'50%'")


def _check_mode(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise ConfigError(f"Tmpfs mode must be permission bits like 0o755, not {value!r}")


@attrs.frozen
class Tmpfs:
    """A fresh tmpfs (in memory) at ``dest``, nosuid and nodev.

    Args:
        dest: where, inside the container.
        size: its limit: bytes, or ``"64M"``, ``"1G"``, ``"50%"`` (of RAM); default: the
            kernel's (half the RAM).
        mode: the permissions of its root directory (``0o1777`` for a /tmp).

    Raises:
        ConfigError: on construction, for a bad destination, size or mode.

    .. versionadded:: 0.1
    """

    dest: str = attrs.field(converter=container_path)
    size: int | str | None = attrs.field(default=None, kw_only=True, validator=_check_size)
    mode: int = attrs.field(default=0o755, kw_only=True, validator=_check_mode)

    @property
    def target(self) -> str:
        """The destination inside the container."""
        return self.dest

    def options(self) -> list[tuple[bytes, bytes | None]]:
        """The fsconfig options of this tmpfs."""
        options: list[tuple[bytes, bytes | None]] = [(b"source", b"nsbox-tmpfs"),
                                                     (b"mode", f"{self.mode:o}".encode())]
        if self.size is not None:
            options.append((b"size", str(self.size).encode()))
        return options
