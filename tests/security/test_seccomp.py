"""Seccomp profiles in force on the real kernel: the default one, user profiles (allow and deny
lists, OCI JSON, derived), the options around them, and life without libseccomp."""

from __future__ import annotations

import errno
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

import nsbox
from nsbox.security import BPF_CACHE, SeccompProfile, _libseccomp
from nsbox.security._default import ALLOWED

from .conftest import Attack, Expr


def _seccomp_status(container: nsbox.Container) -> tuple[str, str]:
    out = container.run(["cat", "/proc/self/status"], text=True, check=True).stdout
    status = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    return status["Seccomp"].strip(), status["NoNewPrivs"].strip()


def test_ordinary_programs_run_under_the_default_profile(attack: Attack) -> None:
    """A shell pipeline and a Python with threads and subprocesses work under the default
    profile (glibc falls back from clone3, which fails with ENOSYS, to clone)."""
    result = attack("""
        import subprocess, threading
        out = []
        t = threading.Thread(target=lambda: out.append(subprocess.run(
            ["sh", "-c", "ls / | grep -c . > /dev/null && echo ok"], capture_output=True,
            text=True).stdout))
        t.start(); t.join()
        print(json.dumps({"out": out, "clone3": sc("clone3", None, 0)}))
    """)
    assert result == {"out": ["ok\n"], "clone3": errno.ENOSYS}


def test_conditional_rules_of_the_default_profile(attack: Attack) -> None:
    """Arguments matter: personality only with the safe values, socket except AF_VSOCK, clone
    without namespace flags, mknod except devices."""
    result = attack("""
        import socket, stat
        print(json.dumps({
            "personality_query": sc("personality", 0xFFFFFFFF),
            "personality_exec": sc("personality", 0x0400000),  # READ_IMPLIES_EXEC
            "inet": oserr(lambda: socket.socket(socket.AF_INET).close()),
            "vsock": oserr(socket.socket, 40, socket.SOCK_STREAM),
            "clone_ns": sc("clone", 0x20000 | 17, 0, 0, 0, 0),  # CLONE_NEWNS
            "mknodat_chr": sc("mknodat", -100, b"/tmp/nsbox-chr", stat.S_IFCHR | 0o600, 257),
        }))
    """)
    assert result == {"personality_query": 0, "personality_exec": errno.EPERM, "inet": 0,
                      "vsock": errno.EPERM, "clone_ns": errno.EPERM,
                      "mknodat_chr": errno.EPERM}


def test_cap_sys_admin_opens_what_docker_opens_with_it(attack: Attack) -> None:
    """With cap_add=["SYS_ADMIN"] the default profile allows mount and unshare, as Docker's
    does: the filter is built for the container's capabilities."""
    result = attack("""
        print(json.dumps([sc("mount", b"none", b"/mnt", b"tmpfs", 0, None),
                          sc("unshare", 0x20000)]))
    """, cap_add=["SYS_ADMIN"])
    assert result == [0, 0]


def test_denylist_profile(attack: Attack) -> None:
    """A denylist allows everything but its syscalls, which fail with the errno given."""
    profile = Expr("nsbox.SeccompProfile.denylist(['mkdir', 'mkdirat'], errno=28)")
    result = attack("""
        print(json.dumps([oserr(os.mkdir, "/tmp/nsbox-denied"), sc("unshare", 0x20000)]))
    """, seccomp=profile)
    assert result == [errno.ENOSPC, errno.EPERM]


def test_allowlist_profile(attack: Attack) -> None:
    """An allowlist refuses every syscall it does not name with EPERM."""
    allowed = [n for n in ALLOWED if n not in ("mkdir", "mkdirat")
               and not _libseccomp.unknown_syscalls([n])]  # newer than this libseccomp
    result = attack("""
        print(json.dumps([oserr(os.mkdir, "/tmp/nsbox-denied"), len(os.listdir("/")) > 0]))
    """, seccomp=Expr(f"nsbox.SeccompProfile.allowlist({allowed!r})"))
    assert result == [errno.EPERM, True]


def test_oci_json_profile(attack: Attack) -> None:
    """An OCI linux.seccomp profile applies: its errnoRet, and SCMP_ACT_KILL_PROCESS."""
    oci = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO",
                         "errnoRet": errno.ENOTSUP},
                        {"names": ["getcpu"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    result = attack("""
        import subprocess
        killed = subprocess.run([sys.executable, "-c", "import ctypes; "
                                 "ctypes.CDLL(None).syscall(%d, 0, 0, 0)" % NR["getcpu"]])
        print(json.dumps([oserr(os.uname), killed.returncode]))
    """, seccomp=Expr(f"nsbox.SeccompProfile.from_json({json.dumps(oci)!r})"))
    assert result == [errno.ENOTSUP, -signal.SIGSYS]


def test_deny_derives_from_the_default(attack: Attack) -> None:
    """SeccompProfile.default().deny(...) refuses a syscall the default allows."""
    result = attack("""
        print(json.dumps([oserr(os.uname), len(os.listdir("/")) > 0]))
    """, seccomp=Expr("nsbox.SeccompProfile.default().deny('uname')"))
    assert result == [errno.EPERM, True]


def test_filter_without_no_new_privs(attack: Attack) -> None:
    """With no_new_privs=False the filter is installed while CAP_SYS_ADMIN is still held, and
    is in force all the same."""
    result = attack("""
        status = open("/proc/self/status").read()
        print(json.dumps(["NoNewPrivs:\\t0" in status, "Seccomp:\\t2" in status,
                          sc("keyctl", 1, b"nsbox-escape")]))
    """, no_new_privs=False)
    assert result == [True, True, errno.EPERM]


def test_seccomp_none_installs_no_filter(host_state: object) -> None:
    """seccomp=None runs without a filter."""
    with nsbox.Container(seccomp=None) as c:
        assert _seccomp_status(c) == ("0", "1")


def test_oci_mapping_and_flags_are_accepted(host_state: object) -> None:
    """Container(seccomp=<OCI mapping>) takes the profile as it is, with its flags."""
    oci = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}
    with nsbox.Container(seccomp=oci) as c:
        assert _seccomp_status(c) == ("2", "1")
        assert c.run(["true"]).returncode == 0


def test_containers_share_the_compiled_filter(host_state: object) -> None:
    """A second container with the same options compiles nothing: its filter comes from the
    cache."""
    options: dict[str, Any] = {"cap_add": ["NET_ADMIN"],
                               "seccomp": SeccompProfile.default().deny("acct")}
    with nsbox.Container(**options) as c:
        c.run(["true"], check=True)
    misses, hits = BPF_CACHE.misses, BPF_CACHE.hits
    with nsbox.Container(**options) as c:
        c.run(["true"], check=True)
    assert (BPF_CACHE.misses, BPF_CACHE.hits) == (misses, hits + 1)


@pytest.fixture
def without_libseccomp(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """libseccomp is installed here, so its absence is simulated: its file name is pointed at
    a library that does not exist (the only mock of the suite)."""
    monkeypatch.setattr(_libseccomp, "LIBRARY", "libseccomp-not-installed.so.2")
    _libseccomp._load.cache_clear()
    yield
    monkeypatch.undo()
    _libseccomp._load.cache_clear()


@pytest.mark.usefixtures("without_libseccomp")
def test_without_libseccomp_the_default_says_how_to_get_it(host_state: object) -> None:
    """Without libseccomp a default container refuses to start, saying how to install it and
    how to opt out; with seccomp=None it runs (capabilities and no_new_privs still apply)."""
    with pytest.raises(nsbox.UnsupportedError) as info, nsbox.Container():
        pass
    assert "apt install libseccomp2" in str(info.value) and "seccomp=None" in str(info.value)
    with nsbox.Container(seccomp=None) as c:
        assert _seccomp_status(c) == ("0", "1")


@pytest.mark.usefixtures("without_libseccomp")
def test_nsbox_check_reports_a_missing_libseccomp() -> None:
    """`nsbox check` says when libseccomp is missing, and how to get it."""
    from nsbox.check import run_checks

    finding = next(f for f in run_checks() if f.name == "seccomp")
    assert not finding.ok and "apt install libseccomp2" in finding.hint
