"""Paths: destinations inside a container, checked and normalised before anything is mounted."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

#: Where a mount inside /proc may go: the files lxcfs-style tools replace, as runc allows them.
#: Any other mount over /proc could hide its masks (CVE-2019-16884), so it is refused.
PROC_FILES_ALLOWED = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
})


def container_path(value: Any, what: str = "a mount destination") -> str:
    """``value`` as a normalised absolute path inside the container (``/a/b``).

    Raises:
        ConfigError: not a string or path, relative, with a ``..`` component, with NUL, or
            the root itself.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be an absolute path inside the container, "
                          f"not {value!r}")
    if not value.startswith("/"):
        raise ConfigError(f"{what} {value!r} is relative: give an absolute path inside the "
                          "container, like '/data'")
    if "\0" in value:
        raise ConfigError(f"{what} {value!r} contains a NUL byte")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"{what} {value!r} contains '..': a destination must not climb out "
                          "of where it says it goes")
    if not parts:
        raise ConfigError(f"{what} cannot be the container's root '/'")
    path = "/" + "/".join(parts)
    if len(path.encode()) >= 4096:
        raise ConfigError(f"{what} {path[:40]!r}... is longer than PATH_MAX")
    return path


def check_not_over_proc(path: str, what: str = "a mount destination") -> None:
    """Refuse a mount on or under /proc, but for the files runc allows.

    Raises:
        ConfigError: ``path`` is /proc, or under it and not in :data:`PROC_FILES_ALLOWED`.
    """
    if (path == "/proc" or path.startswith("/proc/")) and path not in PROC_FILES_ALLOWED:
        raise ConfigError(f"{what} {path!r} is in /proc: a mount there could hide its masked "
                          "paths (CVE-2019-16884); only "
                          f"{', '.join(sorted(PROC_FILES_ALLOWED))} may be replaced")


def host_path(value: Any, what: str) -> str:
    """``value`` as an absolute host path (relative to the current directory if relative).

    Raises:
        ConfigError: not a string or path, empty, or with NUL.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a path on the host, not {value!r}")
    if "\0" in value:
        raise ConfigError(f"{what} {value!r} contains a NUL byte")
    return os.path.abspath(value)


def is_within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or below it (both absolute and normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")
