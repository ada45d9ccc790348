"""Reading and writing the OCI runtime spec's ``linux.seccomp`` object (and Docker's superset)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._arch import native_arch
from ._capabilities import capability_name
from ._profile import (
    _OCI_ACTIONS,
    _OCI_OPS,
    ARCHITECTURES,
    FLAGS,
    ArgCondition,
    SyscallRule,
    check_syscall_name,
)

if TYPE_CHECKING:
    from ._profile import SeccompProfile

_PROFILE_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "archMap", "flags",
                 "syscalls", "listenerPath", "listenerMetadata")
_SYSCALL_KEYS = ("names", "name", "action", "errnoRet", "args", "comment", "includes",
                 "excludes")
_ARG_KEYS = ("index", "value", "valueTwo", "op")
_FILTER_KEYS = ("caps", "arches", "minKernel")


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"seccomp profile, {where}: {message}")


def _check_keys(obj: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise _fail(where, f"expected a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise _fail(where, f"unknown field {', '.join(map(repr, unknown))}; accepted: "
                           f"{', '.join(allowed)}")
    return obj


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, f"{key!r} must be a list, not {type(value).__name__}")
    return value


def _int(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{what} must be an integer, not {value!r}")
    return value


def _action(value: Any, where: str) -> str:
    if value == "SCMP_ACT_NOTIFY":
        raise _fail(where, "SCMP_ACT_NOTIFY (a user-space listener) is not supported by nsbox")
    if value not in _OCI_ACTIONS:
        raise _fail(where, f"unknown action {value!r}; accepted: {', '.join(_OCI_ACTIONS)}")
    return _OCI_ACTIONS[value]


def _arch(value: Any, where: str) -> str:
    name = value[len("SCMP_ARCH_"):].lower() if isinstance(value, str) and value.startswith(
        "SCMP_ARCH_") else None
    if name not in ARCHITECTURES:
        raise _fail(where, f"unknown architecture {value!r}; accepted: "
                           f"{', '.join('SCMP_ARCH_' + a.upper() for a in ARCHITECTURES)}")
    return name


def _errno(obj: Mapping[str, Any], key: str, action: str, where: str) -> int | None:
    if key not in obj:
        return None
    value = _int(obj[key], where, key)
    if action not in ("errno", "trace"):
        raise _fail(where, f"{key!r} only goes with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
    if not 0 <= value <= 4095:
        raise _fail(where, f"{key!r} must be in 0..4095, not {value}")
    return value


def _condition(obj: Any, where: str) -> ArgCondition:
    arg = _check_keys(obj, _ARG_KEYS, where)
    for key in ("index", "value", "op"):
        if key not in arg:
            raise _fail(where, f"an argument condition needs {key!r}")
    op = arg["op"]
    if op not in _OCI_OPS:
        raise _fail(where, f"unknown op {op!r}; accepted: {', '.join(_OCI_OPS)}")
    index = _int(arg["index"], where, "index")
    value = _int(arg["value"], where, "value")
    two = _int(arg.get("valueTwo", 0), where, "valueTwo")
    try:
        if _OCI_OPS[op] == "masked_eq":
            # OCI: (arg & value) == valueTwo.
            return ArgCondition(index, "masked_eq", two, mask=value)
        return ArgCondition(index, _OCI_OPS[op], value)
    except ConfigError as exc:
        raise _fail(where, str(exc)) from None


def _filter(obj: Any, where: str) -> tuple[frozenset[str], frozenset[str], tuple[int, int] | None]:
    if obj is None:
        return frozenset(), frozenset(), None
    spec = _check_keys(obj, _FILTER_KEYS, where)
    try:
        caps = frozenset(capability_name(c) for c in _list(spec, "caps", where))
    except ConfigError as exc:
        raise _fail(where, str(exc)) from None
    arches = frozenset(_list(spec, "arches", where))
    if not all(isinstance(a, str) for a in arches):
        raise _fail(where, "'arches' must be a list of names like 'amd64'")
    kernel = None
    if spec.get("minKernel") is not None:
        text = spec["minKernel"]
        parts = text.split(".") if isinstance(text, str) else []
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise _fail(where, f"'minKernel' must be a version like '4.8', not {text!r}")
        kernel = (int(parts[0]), int(parts[1]))
    return caps, arches, kernel


def _rule(obj: Any, index: int) -> list[SyscallRule]:
    where = f"syscalls[{index}]"
    spec = _check_keys(obj, _SYSCALL_KEYS, where)
    names = _list(spec, "names", where)
    if "name" in spec:  # Docker's old format: one name per entry
        names = [*names, spec["name"]]
    if not names:
        raise _fail(where, "needs 'names', a non-empty list of syscall names")
    try:
        checked = [check_syscall_name(n) for n in names]
    except ConfigError as exc:
        raise _fail(where, str(exc)) from None
    if "action" not in spec:
        raise _fail(where, "needs an 'action'")
    action = _action(spec["action"], where)
    errno = _errno(spec, "errnoRet", action, where)
    args = tuple(_condition(a, f"{where}.args[{i}]")
                 for i, a in enumerate(_list(spec, "args", where)))
    caps, arches, kernel = _filter(spec.get("includes"), f"{where}.includes")
    not_caps, not_arches, not_kernel = _filter(spec.get("excludes"), f"{where}.excludes")
    if not_kernel is not None:
        raise _fail(where, "'excludes.minKernel' is not supported (use 'includes.minKernel')")
    return [SyscallRule(tuple(checked), action, errno, args, caps, not_caps, arches,
                        not_arches, kernel)]


def profile_from_oci(cls: type[SeccompProfile], data: Any) -> SeccompProfile:
    if isinstance(data, Mapping) and "linux" in data:  # a whole config.json
        linux = data["linux"]
        if not isinstance(linux, Mapping) or "seccomp" not in linux:
            raise _fail("linux", "this OCI config has no 'linux.seccomp' section")
        data = linux["seccomp"]
    spec = _check_keys(data, _PROFILE_KEYS, "top level")
    if spec.get("listenerPath"):
        raise _fail("listenerPath", "a seccomp user-space listener is not supported by nsbox")
    if "defaultAction" not in spec:
        raise _fail("top level", "needs a 'defaultAction' such as 'SCMP_ACT_ERRNO'")
    default = _action(spec["defaultAction"], "defaultAction")
    default_errno = _errno(spec, "defaultErrnoRet", default, "defaultErrnoRet")

    arches = [_arch(a, "architectures") for a in _list(spec, "architectures", "architectures")]
    native = native_arch()
    for i, entry in enumerate(_list(spec, "archMap", "archMap")):
        where = f"archMap[{i}]"
        entry = _check_keys(entry, ("architecture", "subArchitectures"), where)
        # Docker's map lists every platform; only this machine's entry matters here.
        if _arch(entry.get("architecture"), where) == native:
            arches += [_arch(a, where) for a in _list(entry, "subArchitectures", where)]
    flags = _list(spec, "flags", "flags")
    for flag in flags:
        if flag not in FLAGS:
            raise _fail("flags", f"unknown flag {flag!r}; accepted: {', '.join(FLAGS)}")
    rules = [rule for i, obj in enumerate(_list(spec, "syscalls", "syscalls"))
             for rule in _rule(obj, i)]
    return cls(default_action=default, default_errno=default_errno, rules=tuple(rules),
               architectures=tuple(dict.fromkeys(a for a in arches if a != native)),
               flags=tuple(flags))


_ACTION_NAMES = {"allow": "SCMP_ACT_ALLOW", "errno": "SCMP_ACT_ERRNO",
                 "kill_thread": "SCMP_ACT_KILL_THREAD", "kill_process": "SCMP_ACT_KILL_PROCESS",
                 "trap": "SCMP_ACT_TRAP", "log": "SCMP_ACT_LOG", "trace": "SCMP_ACT_TRACE"}
_OP_NAMES = {v: k for k, v in _OCI_OPS.items()}


def _filter_to_oci(caps: frozenset[str], arches: frozenset[str],
                   kernel: tuple[int, int] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if caps:
        out["caps"] = sorted(f"CAP_{c}" for c in caps)
    if arches:
        out["arches"] = sorted(arches)
    if kernel:
        out["minKernel"] = f"{kernel[0]}.{kernel[1]}"
    return out


def profile_to_oci(profile: SeccompProfile) -> dict[str, Any]:
    out: dict[str, Any] = {"defaultAction": _ACTION_NAMES[profile.default_action]}
    if profile.default_errno is not None:
        out["defaultErrnoRet"] = profile.default_errno
    if profile.architectures:
        out["architectures"] = ["SCMP_ARCH_" + a.upper()
                                for a in (native_arch(), *profile.architectures)]
    if profile.flags:
        out["flags"] = list(profile.flags)
    syscalls = []
    for rule in profile.rules:
        entry: dict[str, Any] = {"names": list(rule.names), "action": _ACTION_NAMES[rule.action]}
        if rule.errno is not None:
            entry["errnoRet"] = rule.errno
        if rule.args:
            entry["args"] = [
                {"index": a.index, "value": a.mask, "valueTwo": a.value, "op": _OP_NAMES[a.op]}
                if a.op == "masked_eq" else
                {"index": a.index, "value": a.value, "op": _OP_NAMES[a.op]}
                for a in rule.args]
        includes = _filter_to_oci(rule.caps, rule.arches, rule.min_kernel)
        excludes = _filter_to_oci(rule.not_caps, rule.not_arches, None)
        if includes:
            entry["includes"] = includes
        if excludes:
            entry["excludes"] = excludes
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


