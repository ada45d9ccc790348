"""Seccomp profiles as data: construction, validation, the OCI format, the default profile.

libseccomp (installed here) is asked only which syscall names exist; nothing touches the
kernel."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

import nsbox
from nsbox import ArgCondition, SeccompProfile, SyscallRule
from nsbox.security import STARTUP_SYSCALLS, _libseccomp
from nsbox.security._arch import native_arch
from nsbox.security._default import ALLOWED, BY_CAPABILITY
from nsbox.security._oci import profile_from_oci

DOCKER_STYLE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                 "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "basics"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    ],
}


def test_default_profile_is_dockers_shape() -> None:
    """The default denies with EPERM, allows the ordinary syscalls, and gates mount and the
    like on SYS_ADMIN."""
    profile = SeccompProfile.default()
    assert (profile.default_action, profile.default_errno) == ("errno", errno.EPERM)
    unconditional = profile.rules[0]
    assert unconditional.names == ALLOWED and not unconditional.args
    for dangerous in ("mount", "unshare", "setns", "keyctl", "bpf", "kexec_load",
                      "init_module", "open_by_handle_at", "perf_event_open", "io_uring_setup"):
        assert dangerous not in ALLOWED
    gated = {n for r in profile.rules if r.caps == {"SYS_ADMIN"} for n in r.names}
    assert {"mount", "umount2", "unshare", "setns", "pivot_root"} - gated == {"pivot_root"}
    assert repr(profile) == f"<SeccompProfile default=errno(EPERM) rules={len(profile.rules)}>"


def test_default_profile_names_are_real_syscalls() -> None:
    """Every name in the default profile is known to libseccomp, but for the few newer than
    Debian 12's libseccomp (2.5.4)."""
    names = {n for r in SeccompProfile.default().rules for n in r.names}
    names |= {n for group in BY_CAPABILITY.values() for n in group.split()}
    assert set(_libseccomp.unknown_syscalls(sorted(names))) <= {"mseal", "uretprobe"}


def test_allowlist_and_denylist() -> None:
    """allowlist denies by default (and allows what nsbox needs to start); denylist allows by
    default and refuses with the errno given."""
    allow = SeccompProfile.allowlist(["getpid", "read"])
    assert allow.default_action == "errno" and "execve" in allow.rules[0].names
    assert set(STARTUP_SYSCALLS) <= set(allow.rules[0].names)
    deny = SeccompProfile.denylist(["mount"], errno=errno.ENOSYS)
    assert deny.default_action == "allow"
    assert deny.rules == (SyscallRule(("mount",), "errno", errno.ENOSYS),)


def test_deny_and_allow_replace_earlier_rules() -> None:
    """deny()/allow() take the names out of every earlier rule and add one rule for them."""
    profile = SeccompProfile.default().deny("ptrace", "uname").allow("keyctl")
    assert not any("uname" in r.names for r in profile.rules[:-2])
    assert profile.rules[-2] == SyscallRule(("ptrace", "uname"), "errno", errno.EPERM)
    assert profile.rules[-1] == SyscallRule(("keyctl",))


def test_misspelt_syscall_names_are_refused_with_a_suggestion() -> None:
    """A name libseccomp does not know is a ConfigError suggesting the close ones."""
    with pytest.raises(nsbox.ConfigError) as info:
        SeccompProfile.denylist(["mkdirr"])
    assert "'mkdirr' (did you mean 'mkdir'" in str(info.value)
    assert "syscalls(2)" in str(info.value)


@pytest.mark.parametrize("name", ["Mount", "mount()", "", "a" * 65, 42])
def test_malformed_syscall_names_are_refused(name: Any) -> None:
    """Something that cannot be a syscall name is a ConfigError saying what names look like."""
    with pytest.raises(nsbox.ConfigError, match="lower-case like 'mount'"):
        SeccompProfile.denylist([name])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"names": ("mount",), "action": "deny"}, "unknown action 'deny'; use one of allow, errno"),
    ({"names": ("mount",), "action": "allow", "errno": 1}, "an errno only goes with"),
    ({"names": ("mount",), "action": "errno", "errno": 5000}, "errno must be an int in 0..4095"),
    ({"names": ("mount",), "caps": ["SYS_ADMINN"]}, "unknown capability 'SYS_ADMINN'"),
    ({"names": ("mount",), "min_kernel": "4.8"}, r"min_kernel must be \(major, minor\)"),
    ({"names": ()}, "must name at least one syscall"),
    ({"names": "mount"}, "must be a list of syscall names"),
])
def test_rule_validation(kwargs: dict[str, Any], message: str) -> None:
    """SyscallRule validates on construction."""
    with pytest.raises(nsbox.ConfigError, match=message):
        SyscallRule(**kwargs)


@pytest.mark.parametrize(("args", "message"), [
    ((6, "eq", 0), "argument index is 0..5"),
    ((0, "=", 0), "unknown comparison '='; use one of eq, ne"),
    ((0, "eq", -1), r"0..2\*\*64-1"),
    ((0, "eq", 1, 7), "a mask only goes with op='masked_eq'"),
])
def test_arg_condition_validation(args: tuple[Any, ...], message: str) -> None:
    """ArgCondition validates on construction."""
    with pytest.raises(nsbox.ConfigError, match=message):
        ArgCondition(*args)


def test_profile_validation() -> None:
    """SeccompProfile validates its default, architectures and flags."""
    with pytest.raises(nsbox.ConfigError, match="default_action: unknown action"):
        SeccompProfile(default_action="deny")
    with pytest.raises(nsbox.ConfigError, match="unknown architecture 'amd64'; use one of x86"):
        SeccompProfile(architectures=("amd64",))
    with pytest.raises(nsbox.ConfigError, match="unknown seccomp flag"):
        SeccompProfile(flags=("LOG",))


def test_oci_round_trip_of_the_default() -> None:
    """to_oci() writes the default profile as OCI JSON that from_oci() reads back equal."""
    profile = SeccompProfile.default()
    text = json.dumps(profile.to_oci())
    assert SeccompProfile.from_json(text) == profile


def test_oci_docker_format() -> None:
    """Docker's profile format is read: archMap for this machine, includes/excludes, masked
    comparisons (OCI's value is the mask, valueTwo the value)."""
    profile = SeccompProfile.from_oci(DOCKER_STYLE)
    assert (profile.default_action, profile.default_errno) == ("errno", 1)
    clone = profile.rules[1]
    assert clone.args == (ArgCondition(0, "masked_eq", 0, mask=2114060288),)
    assert clone.not_caps == {"SYS_ADMIN"}
    assert profile.rules[2].min_kernel == (4, 8)
    assert profile.rules[3].caps == {"SYS_ADMIN"}
    expected = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}.get(native_arch(), ())
    assert profile.architectures == expected


def test_oci_whole_config_and_file(tmp_path: Path) -> None:
    """A whole OCI config.json (linux.seccomp inside) is read, from a file too."""
    config = {"ociVersion": "1.0.2", "linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    profile = SeccompProfile.from_file(path)
    assert profile.default_action == "allow"
    assert profile.rules == (SyscallRule(("keyctl",), "errno", 38),)


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", "must be JSON"),
    ({"syscalls": []}, "needs a 'defaultAction'"),
    ({"defaultAction": "SCMP_ACT_DENY"}, "unknown action 'SCMP_ACT_DENY'; accepted: "
                                         "SCMP_ACT_ALLOW"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "default": 1}, "unknown field 'default'; accepted: "
                                                        "defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "'syscalls' must be a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
     r"syscalls\[0\]: needs 'names'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["Mount"],
                                                        "action": "SCMP_ACT_ERRNO"}]},
     "'Mount' is not a syscall name"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"]}]},
     r"syscalls\[0\]: needs an 'action'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"],
      "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}, "'errnoRet' only goes with"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"],
      "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_IN"}]}]},
     r"args\[0\]: unknown op 'SCMP_CMP_IN'; accepted: SCMP_CMP_EQ"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"],
      "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "argument index is 0..5"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"],
      "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_NOPE"]}}]},
     "unknown capability 'CAP_NOPE'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"],
      "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]},
     "'minKernel' must be a version like '4.8'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]},
     "unknown architecture 'x86_64'; accepted: SCMP_ARCH_X86"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["TSYNC"]}, "unknown flag 'TSYNC'"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY .* is not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}, "listener"),
    ({"linux": {}}, "no 'linux.seccomp' section"),
    ([], "expected a JSON object, not list"),
])
def test_malformed_oci_profiles(data: Any, message: str) -> None:
    """A malformed OCI profile is a ConfigError naming the field and what it accepts."""
    with pytest.raises(nsbox.ConfigError, match=message):
        if isinstance(data, str):
            SeccompProfile.from_json(data)
        else:
            profile_from_oci(SeccompProfile, data)


def test_unknown_names_in_oci_profiles_are_kept_for_newer_libseccomp() -> None:
    """Names this libseccomp does not know stay in an OCI profile (and are skipped when the
    filter is built), as runc does: a profile written for a newer kernel still loads."""
    profile = SeccompProfile.from_oci({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "syscall_of_the_future"], "action": "SCMP_ACT_ALLOW"}]})
    assert profile.rules[0].names == ("read", "syscall_of_the_future")
    assert len(profile.compile()) % 8 == 0
