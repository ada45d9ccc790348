"""Linux capabilities by name: the table, Docker's default set, and ``cap_add``/``cap_drop``."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError

#: Every capability the kernel defines (capabilities(7)), by name without ``CAP_``.
CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate((
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
        "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
        "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
        "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
        "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ))
}

#: What root in a container keeps by default: Docker's set.
DEFAULT_CAPABILITIES: frozenset[str] = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})

ALL = "ALL"


def capability_name(name: object) -> str:
    """``name`` as nsbox spells it (``"NET_ADMIN"``), from any case, with or without ``CAP_``.

    Raises:
        ConfigError: not a capability name.
    """
    if not isinstance(name, str):
        raise ConfigError(f"a capability is a name like 'NET_ADMIN', not {name!r}")
    key = name.strip().upper()
    key = key.removeprefix("CAP_")
    if key not in CAPABILITIES:
        raise ConfigError(
            f"unknown capability {name!r}: use a name from capabilities(7), with or without "
            f"'CAP_' (e.g. 'NET_ADMIN' or 'CAP_NET_ADMIN'), or 'ALL'; known: "
            f"{', '.join(sorted(CAPABILITIES))}")
    return key


def capability_names(values: object, what: str) -> tuple[str, ...]:
    """A list of capability names (``"ALL"`` allowed), normalised; ConfigError otherwise."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{what} must be a list of capability names like ['NET_ADMIN'], "
                          f"not {values!r}")
    names = []
    for value in values:
        if isinstance(value, str) and value.strip().upper() == ALL:
            names.append(ALL)
        else:
            names.append(capability_name(value))
    return tuple(dict.fromkeys(names))


def resolve(cap_add: Iterable[str], cap_drop: Iterable[str]) -> frozenset[str]:
    """The capability set of root in a container: Docker's default, plus ``cap_add``, minus
    ``cap_drop``. ``"ALL"`` in ``cap_add`` starts from every capability; in ``cap_drop``, from
    none (so ``cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"]`` keeps exactly that one).

    Raises:
        ConfigError: a name in both lists, or ``"ALL"`` in both.
    """
    add, drop = set(cap_add), set(cap_drop)
    if ALL in add and ALL in drop:
        raise ConfigError("'ALL' cannot be both added and dropped")
    both = sorted((add & drop) - {ALL})
    if both:
        raise ConfigError(f"capabilities both added and dropped: {', '.join(both)}")
    if ALL in add:
        base = set(CAPABILITIES)
    elif ALL in drop:
        base = set()
    else:
        base = set(DEFAULT_CAPABILITIES)
    return frozenset((base | (add - {ALL})) - (drop - {ALL}))


def mask(names: Iterable[str]) -> int:
    """The bit mask of capability ``names`` (bit n is capability number n)."""
    bits = 0
    for name in names:
        bits |= 1 << CAPABILITIES[name]
    return bits
