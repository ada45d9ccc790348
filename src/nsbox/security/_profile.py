"""Seccomp profiles as data: rules, Docker's conditions on them, and the OCI JSON format.

A :class:`SeccompProfile` is validated on construction and knows nothing of libseccomp; the
filter is built from it (``_compile``) when a container starts, for that container's
capabilities and this machine's architecture and kernel.
"""

from __future__ import annotations

import errno as errno_module
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ..errors import ConfigError
from ._capabilities import capability_name

#: Actions a rule (or the profile's default) can take, as nsbox spells them.
ACTIONS = ("allow", "errno", "kill_process", "kill_thread", "trap", "log", "trace")
#: Comparisons of a syscall argument; ``masked_eq`` is ``(arg & mask) == value``.
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "masked_eq")
#: Flags of the seccomp(2) call, OCI names.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 0, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
#: Architectures libseccomp knows, OCI names without ``SCMP_ARCH_``, lower-cased.
ARCHITECTURES = ("x86", "x86_64", "x32", "arm", "aarch64", "loongarch64", "m68k", "mips",
                 "mips64", "mips64n32", "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64",
                 "ppc64le", "s390", "s390x", "parisc", "parisc64", "riscv64", "sh", "sheb")

_OCI_ACTIONS = {"SCMP_ACT_ALLOW": "allow", "SCMP_ACT_ERRNO": "errno",
                "SCMP_ACT_KILL": "kill_thread", "SCMP_ACT_KILL_THREAD": "kill_thread",
                "SCMP_ACT_KILL_PROCESS": "kill_process", "SCMP_ACT_TRAP": "trap",
                "SCMP_ACT_LOG": "log", "SCMP_ACT_TRACE": "trace"}
_OCI_OPS = {"SCMP_CMP_EQ": "eq", "SCMP_CMP_NE": "ne", "SCMP_CMP_LT": "lt", "SCMP_CMP_LE": "le",
            "SCMP_CMP_GT": "gt", "SCMP_CMP_GE": "ge", "SCMP_CMP_MASKED_EQ": "masked_eq"}
_SYSCALL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_MAX_ERRNO = 4095
_MAX_ARG = 2**64 - 1


def check_syscall_name(name: object) -> str:
    """``name`` if it is spelled like a syscall name; ConfigError otherwise."""
    if not isinstance(name, str) or not _SYSCALL_NAME.match(name):
        raise ConfigError(f"{name!r} is not a syscall name: names are lower-case like 'mount' "
                          "or 'open_by_handle_at', as in syscalls(2)")
    return name


def _names(values: object, what: str) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{what} must be a list of syscall names like ['mount', 'umount2'], "
                          f"not {values!r}")
    names = tuple(dict.fromkeys(check_syscall_name(v) for v in values))
    if not names:
        raise ConfigError(f"{what} must name at least one syscall")
    return names


def _check_action(action: object, errno: object, where: str) -> None:
    if action not in ACTIONS:
        raise ConfigError(f"{where}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    if errno is None:
        return
    if action not in ("errno", "trace"):
        raise ConfigError(f"{where}: an errno only goes with the 'errno' or 'trace' action")
    if isinstance(errno, bool) or not isinstance(errno, int) or not 0 <= errno <= _MAX_ERRNO:
        raise ConfigError(f"{where}: errno must be an int in 0..{_MAX_ERRNO}, not {errno!r}")


def _uint64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ARG:
        raise ConfigError(f"{what} must be an int in 0..2**64-1, not {value!r}")
    return value


@attrs.frozen
class ArgCondition:
    """A condition on argument ``index`` (0-5) of a syscall: ``arg <op> value``, or for
    ``op="masked_eq"``, ``(arg & mask) == value``."""

    index: int
    op: str
    value: int
    mask: int = 0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.index, bool) or self.index not in range(6):
            raise ConfigError(f"a syscall argument index is 0..5, not {self.index!r}")
        if self.op not in OPS:
            raise ConfigError(f"unknown comparison {self.op!r}; use one of {', '.join(OPS)}")
        _uint64(self.value, "an argument value")
        _uint64(self.mask, "an argument mask")
        if self.mask and self.op != "masked_eq":
            raise ConfigError("a mask only goes with op='masked_eq'")


def _rule_names(values: Any) -> tuple[str, ...]:
    return _names(values, "SyscallRule.names")


def _arg_tuple(values: Iterable[ArgCondition]) -> tuple[ArgCondition, ...]:
    return tuple(values)


def _rule_tuple(values: Iterable[SyscallRule]) -> tuple[SyscallRule, ...]:
    return tuple(values)


def _frozen_caps(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"capabilities must be a list of names, not {values!r}")
    return frozenset(capability_name(v) for v in values)


def _frozen_arches(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, (str, bytes)):
        raise ConfigError(f"architectures must be a list of names, not {values!r}")
    return frozenset(values)


def _check_kernel(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise ConfigError(f"min_kernel must be (major, minor), not {value!r}")


@attrs.frozen
class SyscallRule:
    """What happens when the contained process makes one of the syscalls ``names``.

    Args:
        names: syscall names (``"mount"``).
        action: one of :data:`ACTIONS`; ``errno`` is the error for ``"errno"`` (EPERM by
            default) or the value for ``"trace"``.
        args: conditions on the arguments, all of which must hold.
        caps, not_caps: the rule applies only when the container holds all of ``caps`` and
            none of ``not_caps`` (Docker's ``includes``/``excludes``), e.g. ``mount`` is
            allowed when the container has ``SYS_ADMIN``.
        arches, not_arches: likewise for the machine (Go names: ``amd64``, ``arm64``, ...).
        min_kernel: the rule applies only on this kernel version or newer, ``(4, 8)``.
    """

    names: tuple[str, ...] = attrs.field(converter=_rule_names)
    action: str = "allow"
    errno: int | None = None
    args: tuple[ArgCondition, ...] = attrs.field(default=(), converter=_arg_tuple)
    caps: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_caps)
    not_caps: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_caps)
    arches: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_arches)
    not_arches: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen_arches)
    min_kernel: tuple[int, int] | None = attrs.field(default=None, validator=_check_kernel)

    def __attrs_post_init__(self) -> None:
        _check_action(self.action, self.errno, f"the rule for {', '.join(self.names)}")
        if not all(isinstance(a, ArgCondition) for a in self.args):
            raise ConfigError("SyscallRule.args must be a list of nsbox.ArgCondition")

    def applies(self, caps: frozenset[str], arch: str, kernel: tuple[int, int]) -> bool:
        """Whether the rule is part of the filter for this container on this machine."""
        return (self.caps <= caps and not self.not_caps & caps
                and (not self.arches or arch in self.arches) and arch not in self.not_arches
                and (self.min_kernel is None or kernel >= self.min_kernel))


def _check_default(instance: SeccompProfile, attribute: Any, value: Any) -> None:
    _check_action(value, instance.default_errno, "SeccompProfile.default_action")


def _check_rules(instance: Any, attribute: Any, value: Any) -> None:
    if not all(isinstance(r, SyscallRule) for r in value):
        raise ConfigError("SeccompProfile.rules must be a list of nsbox.SyscallRule")


def _check_arch_list(instance: Any, attribute: Any, value: Any) -> None:
    for arch in value:
        if arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {arch!r}; use one of "
                              f"{', '.join(ARCHITECTURES)}")


def _check_flags(instance: Any, attribute: Any, value: Any) -> None:
    for flag in value:
        if flag not in FLAGS:
            raise ConfigError(f"unknown seccomp flag {flag!r}; use one of {', '.join(FLAGS)}")


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)):
        return (value,)  # type: ignore[return-value]  # rejected by the validator
    return tuple(value)


@attrs.frozen(repr=False, cache_hash=True)  # the key of the compiled-filter cache
class SeccompProfile:
    """A seccomp filter: a default action and rules for particular syscalls.

    Build one with :meth:`default` (Docker's profile), :meth:`allowlist`, :meth:`denylist`,
    :meth:`from_oci`/:meth:`from_json`/:meth:`from_file`, and derive others with
    :meth:`allow` and :meth:`deny`. Pass it as ``Container(seccomp=...)``.

    Args:
        default_action: for every syscall no rule matches (one of :data:`ACTIONS`).
        default_errno: the error of an ``"errno"`` default (EPERM unless given).
        rules: the :class:`SyscallRule` list.
        architectures: architectures to filter besides the native one, so that their syscalls
            are not simply killed (``("x86", "x32")`` on x86_64: 32-bit programs).
        flags: OCI names of seccomp(2) flags (``SECCOMP_FILTER_FLAG_LOG``, ...).

    Raises:
        ConfigError: on construction, for anything invalid.
    """

    default_action: str = attrs.field(default="errno", validator=_check_default)
    default_errno: int | None = None
    rules: tuple[SyscallRule, ...] = attrs.field(default=(), converter=_rule_tuple,
                                                 validator=_check_rules)
    architectures: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple,
                                                 validator=_check_arch_list)
    flags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple,
                                         validator=_check_flags)

    def __repr__(self) -> str:
        default = self.default_action
        if default == "errno":
            code = self.default_errno if self.default_errno is not None else errno_module.EPERM
            default += f"({errno_module.errorcode.get(code, code)})"
        return f"<SeccompProfile default={default} rules={len(self.rules)}>"

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def default(cls) -> SeccompProfile:
        """Docker's default profile (see docs/security.md for where nsbox differs)."""
        from ._default import default_profile

        return default_profile()

    @classmethod
    def allowlist(cls, names: Iterable[str], *, errno: int = errno_module.EPERM
                  ) -> SeccompProfile:
        """Only ``names`` are allowed (plus the few syscalls nsbox needs to start the program
        and its init, :data:`nsbox.security.STARTUP_SYSCALLS`); every other fails with
        ``errno``."""
        from ._default import STARTUP_SYSCALLS

        allowed = _names(names, "allowlist")
        _known(allowed)
        everything = tuple(dict.fromkeys((*STARTUP_SYSCALLS, *allowed)))
        return cls(default_action="errno", default_errno=errno,
                   rules=(SyscallRule(everything),))

    @classmethod
    def denylist(cls, names: Iterable[str], *, errno: int = errno_module.EPERM
                 ) -> SeccompProfile:
        """Everything is allowed except ``names``, which fail with ``errno``."""
        denied = _names(names, "denylist")
        _known(denied)
        return cls(default_action="allow", rules=(SyscallRule(denied, "errno", errno),))

    def allow(self, *names: str) -> SeccompProfile:
        """This profile, with ``names`` allowed whatever their rules said before."""
        return self._replacing(names, "allow", None)

    def deny(self, *names: str, errno: int = errno_module.EPERM) -> SeccompProfile:
        """This profile, with ``names`` failing with ``errno`` whatever their rules said."""
        return self._replacing(names, "errno", errno)

    def _replacing(self, names: Iterable[str], action: str, errno: int | None
                   ) -> SeccompProfile:
        chosen = _names(names, "the syscalls to " + ("allow" if action == "allow" else "deny"))
        _known(chosen)
        rules = []
        for rule in self.rules:
            kept = tuple(n for n in rule.names if n not in chosen)
            if kept:
                rules.append(attrs.evolve(rule, names=kept))
        rules.append(SyscallRule(chosen, action, errno))
        return attrs.evolve(self, rules=tuple(rules))

    # -- the OCI format ------------------------------------------------------------------------

    @classmethod
    def from_oci(cls, data: Mapping[str, Any]) -> SeccompProfile:
        """A profile from the OCI runtime spec's ``linux.seccomp`` object (or a whole
        ``config.json`` holding one). Docker's extensions are understood too: ``archMap``
        (the entry of this machine's architecture), ``includes``/``excludes`` (``caps``,
        ``arches``, ``minKernel``) and ``comment``.

        Syscall names libseccomp does not know are skipped when the filter is built, as runc
        does: a profile written for a newer kernel still loads.

        Raises:
            ConfigError: a malformed profile; the message names the field and what it accepts.
        """
        from ._oci import profile_from_oci

        return profile_from_oci(cls, data)

    @classmethod
    def from_json(cls, text: str | bytes) -> SeccompProfile:
        """:meth:`from_oci` of a JSON text."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"a seccomp profile must be JSON (an OCI linux.seccomp object): "
                              f"{exc}") from None
        return cls.from_oci(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SeccompProfile:
        """:meth:`from_oci` of a JSON file."""
        with open(path, "rb") as f:
            return cls.from_json(f.read())

    def compile(self, capabilities: Iterable[str] | None = None) -> bytes:
        """The BPF program (``struct sock_filter`` bytes) of this profile for a container
        holding ``capabilities`` (Docker's default set if None), from the process-wide cache
        when it was built before.

        Raises:
            UnsupportedError: libseccomp is not installed (``apt install libseccomp2``).
        """
        from ._capabilities import DEFAULT_CAPABILITIES
        from ._compile import compile_profile

        caps = (DEFAULT_CAPABILITIES if capabilities is None
                else frozenset(capability_name(c) for c in capabilities))
        program, _ = compile_profile(self, caps)
        return program

    def to_oci(self) -> dict[str, Any]:
        """This profile as an OCI ``linux.seccomp`` object (with Docker's ``includes`` and
        ``excludes`` where rules have conditions); :meth:`from_oci` reads it back."""
        from ._oci import profile_to_oci

        return profile_to_oci(self)


def _known(names: Iterable[str]) -> None:
    """ConfigError for names libseccomp does not know, when it is there to ask."""
    from . import _libseccomp

    unknown = _libseccomp.unknown_syscalls(names)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = _libseccomp.close_matches(name)
        hints.append(f"{name!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)"
                                    if close else ""))
    version = ".".join(map(str, _libseccomp.load().version))
    raise ConfigError(f"unknown syscall {', '.join(hints)}: names are syscall names as in "
                      f"syscalls(2), e.g. 'mount', 'keyctl', 'open_by_handle_at', that this "
                      f"libseccomp ({version}) knows")

