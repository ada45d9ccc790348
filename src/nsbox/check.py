"""``nsbox check``: what this kernel and these privileges let nsbox do, each with a hint.

Every namespace line is a real probe (a process started in a namespace of that kind), not a
guess from version numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs

from . import _native
from .errors import NsboxError
from .namespaces import CLONE_FLAGS


@attrs.frozen
class Finding:
    """One line of the report: a feature, whether it is there, what was seen, how to get it."""

    name: str
    ok: bool
    detail: str
    hint: str = ""
    essential: bool = False

    def __str__(self) -> str:
        line = f"{'ok     ' if self.ok else 'missing'}  {self.name:<22} {self.detail}"
        if not self.ok and self.hint:
            line += f"\n{'':>32}hint: {self.hint}"
        return line


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _probe(flags: int) -> str | None:
    """Start /bin/true in new namespaces of ``flags``; None on success, else the error."""
    rootless = os.geteuid() != 0
    if rootless:
        flags |= CLONE_FLAGS["user"]
    spec = _native.ProcessSpec(
        argv=[b"true"], path=b"/bin/true", new_ns=flags,
        uid_map=f"0 {os.geteuid()} 1\n".encode() if rootless else None,
        gid_map=f"0 {os.getegid()} 1\n".encode() if rootless else None,
        deny_setgroups=rootless,
    )
    try:
        spawned = _native.spawn(spec)
    except NsboxError as exc:
        return str(exc)
    os.waitid(os.P_PIDFD, spawned.pidfd, os.WEXITED)
    os.close(spawned.pidfd)
    return None


def _userns_blockers() -> list[str]:
    reasons = []
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        reasons.append("sysctl user.max_user_namespaces=0")
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        reasons.append("sysctl kernel.unprivileged_userns_clone=0 (Debian)")
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        reasons.append("AppArmor restricts unprivileged user namespaces "
                       "(kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 23.10+)")
    return reasons


def _namespace_findings() -> list[Finding]:
    findings = []
    for name, flag in CLONE_FLAGS.items():
        error = _probe(flag)
        hint = ""
        if error and name == "user":
            hint = "; ".join(_userns_blockers()) or "see user_namespaces(7)"
        elif error and name == "time":
            hint = "time namespaces need Linux 5.6 with CONFIG_TIME_NS"
        elif error and os.geteuid() != 0:
            hint = "without root every namespace needs a user namespace first"
        findings.append(Finding(f"{name} namespace", error is None, error or "can be created",
                                hint, essential=name != "time"))
    return findings


def _cgroup_finding() -> Finding:
    from .cgroup import detect

    info = detect()
    if info.version is None:
        return Finding("cgroups", False, "none mounted",
                       "mount cgroup2 at /sys/fs/cgroup (or the v1 hierarchies)")
    controllers = ", ".join(sorted(info.controllers)) or "none"
    detail = f"{info.version} ({info.mode}); controllers: {controllers}"
    if os.geteuid() != 0 and info.version == "v1":
        return Finding("cgroups", False, detail, "without root, cgroups need cgroup v2 with a "
                       "delegated subtree (systemd-run --user --scope -p Delegate=yes)")
    return Finding("cgroups", True, detail)


def _filesystem_finding(name: str, fs: str, hint: str) -> Finding:
    filesystems = _read("/proc/filesystems") or ""
    present = any(line.split()[-1] == fs for line in filesystems.splitlines() if line.strip())
    return Finding(name, present, "available" if present else f"{fs} not in /proc/filesystems",
                   hint)


def _pidfd_finding() -> Finding:
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError as exc:
        return Finding("pidfd", False, str(exc), "pidfds need Linux 5.3", essential=True)
    os.close(fd)
    return Finding("pidfd", True, "pidfd_open works", essential=True)


def _seccomp_finding() -> Finding:
    from .security import _libseccomp

    status = _read("/proc/self/status") or ""
    if "Seccomp_filters:" not in status and "Seccomp:" not in status:
        return Finding("seccomp", False, "the kernel has no seccomp filters",
                       "a kernel with CONFIG_SECCOMP_FILTER; or containers with seccomp=None")
    try:
        version = ".".join(map(str, _libseccomp.load().version))
    except NsboxError:
        return Finding("seccomp", False, "libseccomp is not installed: containers with the "
                       "default profile refuse to start",
                       "apt install libseccomp2 (or containers with seccomp=None)")
    return Finding("seccomp", True, f"filters built with libseccomp {version}")


def run_checks() -> list[Finding]:
    """Probe everything nsbox uses and return one finding per feature."""
    findings = [
        Finding("kernel", True, os.uname().release),
        Finding("privileges", True, "root" if os.geteuid() == 0 else
                f"rootless (uid {os.geteuid()})"),
        Finding("clone3", _native.has_clone3(), "available" if _native.has_clone3() else
                "missing: falling back to clone", "clone3 needs Linux 5.3"),
        _pidfd_finding(),
    ]
    findings += _namespace_findings()
    checks: list[Callable[[], Finding]] = [
        _cgroup_finding,
        lambda: _filesystem_finding("overlayfs", "overlay", "modprobe overlay"),
        _seccomp_finding,
    ]
    findings += [check() for check in checks]
    return findings


def main() -> int:
    """Print the report; exit status 1 if an essential feature is missing."""
    findings = run_checks()
    for finding in findings:
        print(finding)
    return 1 if any(f.essential and not f.ok for f in findings) else 0
