"""Capabilities, no_new_privs, oom_score_adj and rlimits of contained processes, on the real
kernel: what /proc/self/status says, and what the process can then do."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import pytest

import nsbox
from nsbox.security import CAPABILITIES, DEFAULT_CAPABILITIES
from nsbox.security._capabilities import mask
from tests.conftest import run_rootless

from .conftest import Attack

STATUS = """
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read()
                  .splitlines() if ":\\t" in line)
    print(json.dumps({k: int(status[k], 16) for k in
                      ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}))
"""


def _status(container: nsbox.Container, **options: Any) -> dict[str, str]:
    out = container.run(["cat", "/proc/self/status"], text=True, check=True, **options).stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def _caps(status: dict[str, str], key: str) -> int:
    return int(status[key], 16)


def test_root_keeps_dockers_set_only(attack: Attack) -> None:
    """Root in a default container has exactly Docker's capabilities in its bounding,
    permitted and effective sets, and none inheritable or ambient."""
    caps = attack(STATUS)
    docker = mask(DEFAULT_CAPABILITIES)
    assert (caps["CapBnd"], caps["CapPrm"], caps["CapEff"]) == (docker, docker, docker)
    assert (caps["CapInh"], caps["CapAmb"]) == (0, 0)


def test_non_root_user_has_no_capabilities(host_state: object) -> None:
    """A process run as a non-root user has no capabilities at all (the bounding set is the
    container's)."""
    with nsbox.Container(user=1000) as c:
        status = _status(c)
        as_root = _status(c, user=0)
    assert status["Uid"].split()[0] == "1000"
    assert all(_caps(status, k) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"))
    assert _caps(status, "CapBnd") == mask(DEFAULT_CAPABILITIES)
    assert _caps(as_root, "CapEff") == mask(DEFAULT_CAPABILITIES)


def test_cap_add_and_cap_drop_by_name(attack: Attack) -> None:
    """cap_add grants a capability by name (NET_ADMIN: a veth pair can be made); cap_drop
    takes one away, in any spelling (without NET_RAW a raw socket is refused)."""
    result = attack("""
        import socket, subprocess
        caps = int([l for l in open("/proc/self/status") if l.startswith("CapEff")][0]
                   .split()[1], 16)
        link = subprocess.run(["ip", "link", "add", "nsbox0", "type", "veth", "peer", "name",
                               "nsbox1"]).returncode
        raw = oserr(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        print(json.dumps({"caps": caps, "link": link, "raw": raw}))
    """, cap_add=["net_admin"], cap_drop=["CAP_NET_RAW", "Kill"])
    expected = mask((DEFAULT_CAPABILITIES | {"NET_ADMIN"}) - {"NET_RAW", "KILL"})
    assert result == {"caps": expected, "link": 0, "raw": errno.EPERM}


def test_cap_drop_all_keeps_only_what_is_added(attack: Attack) -> None:
    """cap_drop=["ALL"] with cap_add=["NET_BIND_SERVICE"] leaves that one capability: port 80
    can be bound, a raw socket cannot be opened."""
    result = attack("""
        import socket
        caps = int([l for l in open("/proc/self/status") if l.startswith("CapEff")][0]
                   .split()[1], 16)
        s = socket.socket()
        bind = oserr(s.bind, ("127.0.0.1", 80))
        raw = oserr(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        print(json.dumps({"caps": caps, "bind": bind, "raw": raw}))
    """, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"])
    assert result == {"caps": 1 << CAPABILITIES["NET_BIND_SERVICE"], "bind": 0,
                      "raw": errno.EPERM}


def test_cap_add_all_gives_what_nsbox_holds(host_state: object) -> None:
    """cap_add=["ALL"] gives root in the container every capability nsbox's own process
    holds."""
    with open("/proc/self/status") as f:
        ours = int(next(line for line in f if line.startswith("CapPrm")).split()[1], 16)
    with nsbox.Container(cap_add=["ALL"]) as c:
        status = _status(c)
    assert _caps(status, "CapEff") == ours


def test_asking_for_a_capability_nsbox_lacks_names_it() -> None:
    """cap_add of a capability nsbox's own process lacks fails at the "capabilities" step,
    naming the capability, instead of silently running without it."""
    driver = textwrap.dedent("""
        import ctypes, nsbox
        libc = ctypes.CDLL(None, use_errno=True)
        # Give up CAP_SYS_TIME ourselves: permitted and effective (capset), and bounding.
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        assert libc.capget(header, data) == 0
        data[0] &= ~(1 << 25); data[1] &= ~(1 << 25)
        assert libc.capset(header, data) == 0
        try:
            nsbox.run(["true"], cap_add=["SYS_TIME"])
        except nsbox.SpawnError as exc:
            print(exc.step, exc)
    """)
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("capabilities ") and "CAP_SYS_TIME" in proc.stdout


def test_no_new_privs_ignores_setuid_programs(host_state: object) -> None:
    """A setuid-root program run by a non-root user stays unprivileged with no_new_privs (the
    default), and gains root with no_new_privs=False."""
    with tempfile.TemporaryDirectory(prefix="nsbox-setuid-") as tmp:
        os.chmod(tmp, 0o755)
        program = os.path.join(tmp, "id")
        shutil.copy("/usr/bin/id", program)
        os.chmod(program, 0o4755)
        with nsbox.Container(user=1000, rootfs=None) as locked:  # sees the host's tmp
            euid_locked = locked.run([program, "-u"], text=True, check=True).stdout
            nnp = _status(locked)["NoNewPrivs"].strip()
        with nsbox.Container(user=1000, no_new_privs=False, rootfs=None) as open_:
            euid_open = open_.run([program, "-u"], text=True, check=True).stdout
    assert (euid_locked, nnp) == ("1000\n", "1")
    assert euid_open == "0\n"


def test_oom_score_adj_applies_to_every_process(attack: Attack) -> None:
    """oom_score_adj is set for the container's processes and its init."""
    result = attack("""
        print(json.dumps([open("/proc/self/oom_score_adj").read().strip(),
                          open("/proc/1/oom_score_adj").read().strip()]))
    """, oom_score_adj=500)
    assert result == ["500", "500"]


def test_lowering_oom_score_adj_unprivileged_fails_clearly(rootless_python: list[str]
                                                           ) -> None:
    """Rootless, a negative oom_score_adj (which needs CAP_SYS_RESOURCE on the host) fails at
    the "oom-score-adj" step with a hint."""
    result = run_rootless(rootless_python, """
        import json, nsbox
        try:
            nsbox.run(["true"], oom_score_adj=-500)
            print(json.dumps(None))
        except nsbox.SpawnError as exc:
            print(json.dumps([exc.step, exc.errno, str(exc)]))
    """)
    assert result[:2] == ["oom-score-adj", errno.EACCES]
    assert "CAP_SYS_RESOURCE" in result[2]


def test_rlimits_apply(attack: Attack) -> None:
    """rlimits by name are in force for contained processes."""
    result = attack("""
        import resource
        print(json.dumps([resource.getrlimit(resource.RLIMIT_NOFILE),
                          resource.getrlimit(resource.RLIMIT_CORE),
                          resource.getrlimit(resource.RLIMIT_NPROC)]))
    """, rlimits={"nofile": (64, 128), "core": 0, "nproc": 4096})
    assert result == [[64, 128], [0, 0], [4096, 4096]]


@pytest.mark.parametrize("cap", sorted(DEFAULT_CAPABILITIES))
def test_docker_set_is_known_to_this_kernel(cap: str) -> None:
    """Every capability of the default set exists on this kernel (so none is silently lost)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert CAPABILITIES[cap] <= int(f.read())


def test_namespaces_alone_are_not_a_sandbox(host_state: object) -> None:
    """Namespaces entered alone is a namespace tool like unshare(1): root in it keeps every
    capability nsbox holds and no filter applies; a Container joining it is locked down."""
    with open("/proc/self/status") as f:
        ours = int(next(line for line in f if line.startswith("CapPrm")).split()[1], 16)
    with nsbox.Namespaces() as ns:
        alone = ns.run(["cat", "/proc/self/status"], text=True, check=True).stdout
        with nsbox.Container(ns) as c:
            joined = _status(c)
    status = dict(line.split(":\t", 1) for line in alone.splitlines() if ":\t" in line)
    assert _caps(status, "CapEff") == ours and status["Seccomp"].strip() == "0"
    assert _caps(joined, "CapEff") == mask(DEFAULT_CAPABILITIES)
    assert joined["Seccomp"].strip() == "2"
