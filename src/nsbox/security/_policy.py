"""What a container's security options mean for each of its processes.

``Container`` validates the options (the ``check_*``/``to_*`` helpers here are its attrs
validators and converters) and asks a :class:`Policy` for the ``ProcessSpec`` fields of every
process it starts: its init and each ``run``/``spawn``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._capabilities import ALL, capability_names, mask, resolve
from ._compile import compile_profile
from ._profile import SeccompProfile

DEFAULT = "default"
#: Container options that lock nothing down (what ``Namespaces`` alone uses).
UNCONFINED: dict[str, Any] = {"cap_add": ("ALL",), "seccomp": None, "no_new_privs": False,
                              "protect_system_paths": False}


def to_seccomp(value: Any) -> SeccompProfile | None:
    """``Container(seccomp=...)``: ``"default"``, a :class:`SeccompProfile`, an OCI
    ``linux.seccomp`` mapping, or None (no filter)."""
    if value is None or isinstance(value, SeccompProfile):
        return value
    if value == DEFAULT:
        return SeccompProfile.default()
    if isinstance(value, Mapping):
        return SeccompProfile.from_oci(value)
    raise ConfigError(f"seccomp must be 'default', an nsbox.SeccompProfile (e.g. "
                      f"SeccompProfile.from_file(path)), an OCI linux.seccomp mapping, or None "
                      f"for no filter; not {value!r}")


def to_capabilities(value: Any) -> tuple[str, ...]:
    """``cap_add``/``cap_drop``: capability names, normalised (ConfigError otherwise)."""
    return capability_names(value, "cap_add/cap_drop")


def check_oom_score_adj(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not -1000 <= value <= 1000:
        raise ConfigError(f"oom_score_adj must be an int in -1000..1000, not {value!r}")


def check_bool(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name} must be True or False, not {value!r}")


@functools.cache
def _kernel_capabilities() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    return (1 << (last + 1)) - 1


class Policy:
    """The security of a container's processes, from its (validated) options.

    The seccomp filter is compiled once, when the first process needs it (through the
    process-wide cache, so a second container with the same profile compiles nothing).
    """

    def __init__(self, *, cap_add: tuple[str, ...], cap_drop: tuple[str, ...],
                 seccomp: SeccompProfile | None, no_new_privs: bool,
                 oom_score_adj: int | None, protect_system_paths: bool) -> None:
        self.capabilities = resolve(cap_add, cap_drop)
        self.required = frozenset(cap_add) - {ALL}
        self.seccomp = seccomp
        self.no_new_privs = no_new_privs
        self.oom_score_adj = oom_score_adj
        self.protect_system_paths = protect_system_paths
        self._program: tuple[bytes, int] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, options: Any) -> Policy:
        """The policy of a ``ContainerOptions``."""
        return cls(cap_add=options.cap_add, cap_drop=options.cap_drop, seccomp=options.seccomp,
                   no_new_privs=options.no_new_privs, oom_score_adj=options.oom_score_adj,
                   protect_system_paths=options.protect_system_paths)

    def seccomp_program(self) -> tuple[bytes, int] | None:
        """(BPF, flags) of the container's filter, or None without one.

        Raises:
            UnsupportedError: libseccomp is not installed.
        """
        if self.seccomp is None:
            return None
        with self._lock:
            if self._program is None:
                self._program = compile_profile(self.seccomp, self.capabilities)
            return self._program

    def process_fields(self, uid: int, *, new_mount_namespace: bool = False) -> dict[str, Any]:
        """``ProcessSpec`` fields for a process running as ``uid`` in the container (-1: the
        init, root in the container). ``new_mount_namespace``: this process sets up the
        container's mount namespace (the init), where the system paths are protected."""
        caps = mask(self.capabilities) & _kernel_capabilities()
        # Root keeps the container's set; anyone else has none (the bounding set still
        # limits what a setuid program could give them, were no_new_privs off).
        root = uid <= 0
        fields: dict[str, Any] = {
            "cap_bounding": caps,
            "cap_permitted": caps if root else 0,
            "cap_effective": caps if root else 0,
            "cap_required": mask(self.required) if root else 0,
            "no_new_privs": self.no_new_privs,
            "oom_score_adj": self.oom_score_adj,
            "protect_system_paths": self.protect_system_paths and new_mount_namespace,
        }
        program = self.seccomp_program()
        if program is not None:
            fields["seccomp_bpf"], fields["seccomp_flags"] = program
        return fields
