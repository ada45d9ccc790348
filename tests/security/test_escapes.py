"""The escape suite: attacks from inside a container with default settings, as root and
rootless. Each asserts that the attack fails and that the host is unchanged; docs/security.md
has the table of attacks and the defense that stops each."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import nsbox
from nsbox import _native
from tests.conftest import run_rootless

from .conftest import PY, Attack, attack_code

EPERM, EACCES, EROFS, ESRCH = errno.EPERM, errno.EACCES, errno.EROFS, errno.ESRCH
ENOENT = errno.ENOENT
DENIED = (EROFS, EACCES, EPERM)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_driver(mode: str, rootless_python: Sequence[str], driver: str) -> Any:
    """Run a whole Python ``driver`` (which starts its own container) as root or rootless in
    a process of its own; it prints one JSON value as its last line."""
    if mode == "rootless":
        return run_rootless(list(rootless_python), driver)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(driver)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the kernel's own attack surface: blocked by seccomp before the kernel looks ---------------

def test_kexec_is_refused(attack: Attack) -> None:
    """kexec_load and kexec_file_load fail with EPERM; no kernel gets loaded."""
    before = _read("/sys/kernel/kexec_loaded")
    result = attack("""
        print(json.dumps([sc("kexec_load", 0, 0, None, 0),
                          sc("kexec_file_load", -1, -1, 0, b"", 0)]))
    """)
    assert result == [EPERM, EPERM]
    assert _read("/sys/kernel/kexec_loaded") == before


def test_kernel_modules_cannot_be_loaded_or_removed(attack: Attack) -> None:
    """init_module, finit_module and delete_module fail with EPERM; the module list is as it
    was."""
    before = _read("/proc/modules")
    result = attack("""
        fd = os.open("/dev/null", os.O_RDONLY)
        print(json.dumps([sc("init_module", None, 0, b""), sc("finit_module", fd, b"", 0),
                          sc("delete_module", b"nsbox_escape", 0)]))
    """)
    assert result == [EPERM, EPERM, EPERM]
    assert _read("/proc/modules") == before


def test_bpf_is_refused(attack: Attack) -> None:
    """bpf(BPF_MAP_CREATE) and bpf(BPF_PROG_LOAD) fail with EPERM; nothing is pinned."""
    before = sorted(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else None
    result = attack("""
        attr = (ctypes.c_uint32 * 32)(2, 4, 4, 1)  # an array map: type, key, value, entries
        prog = (ctypes.c_uint32 * 32)(1)           # a socket filter, no instructions
        print(json.dumps([sc("bpf", 0, attr, 128), sc("bpf", 5, prog, 128)]))
    """)
    assert result == [EPERM, EPERM]
    after = sorted(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else None
    assert after == before


def test_perf_event_open_is_refused(attack: Attack) -> None:
    """perf_event_open, even of a software counter on itself, fails with EPERM."""
    result = attack("""
        attr = (ctypes.c_uint32 * 32)()
        attr[0], attr[1] = 1, 128             # PERF_TYPE_SOFTWARE, sizeof(attr)
        attr[10] = 1 | 1 << 5 | 1 << 6        # disabled, exclude_kernel, exclude_hv
        print(json.dumps(sc("perf_event_open", attr, 0, -1, -1, 0)))
    """)
    assert result == EPERM


def test_keyrings_are_out_of_reach(attack: Attack) -> None:
    """add_key, keyctl and request_key fail with EPERM (keyrings are not namespaced); the
    unprivileged attacker's key accounting is unchanged (root's is not compared: any root
    process of the machine may be adding keys meanwhile)."""
    def key_users() -> list[str]:
        return [line for line in (_read("/proc/key-users") or "").splitlines()
                if line.strip().startswith("65534:")]

    before = key_users()
    result = attack("""
        print(json.dumps([sc("add_key", b"user", b"nsbox-escape", b"x", 1, -4),
                          sc("keyctl", 1, b"nsbox-escape"),
                          sc("request_key", b"user", b"nsbox-escape", None, 0)]))
    """)
    assert result == [EPERM, EPERM, EPERM]
    assert "nsbox-escape" not in (_read("/proc/keys") or "")
    assert key_users() == before


def test_open_by_handle_at_is_refused(attack: Attack) -> None:
    """The "shocker" attack: open_by_handle_at with a handle of the host's filesystem fails
    with EPERM."""
    result = attack("""
        class Handle(ctypes.Structure):
            _fields_ = [("size", ctypes.c_uint), ("type", ctypes.c_int),
                        ("bytes", ctypes.c_ubyte * 128)]
        handle, mount_id = Handle(128), ctypes.c_int()
        sc("name_to_handle_at", -100, b"/etc", handle, mount_id, 0)
        root = os.open("/", os.O_RDONLY)
        guessed = Handle(8, 1)  # the shocker's guess: FILEID_INO32_GEN of inode 2, the root
        guessed.bytes[0] = 2
        print(json.dumps([sc("open_by_handle_at", root, handle, os.O_RDONLY),
                          sc("open_by_handle_at", root, guessed, os.O_RDONLY)]))
    """)
    assert result == [EPERM, EPERM]


# -- mounts, namespaces, pivot_root ------------------------------------------------------------

def test_mounts_cannot_be_made_or_undone(attack: Attack) -> None:
    """mount, a bind of /, umount, remounting a read-only bind read-write and pivot_root all
    fail with EPERM; /proc/sys stays read-only and the host's mount table is unchanged (the
    fixture checks it)."""
    result = attack("""
        MS_BIND, MS_REC, MS_REMOUNT = 4096, 16384, 32
        r = {"tmpfs": sc("mount", b"none", b"/mnt", b"tmpfs", 0, None),
             "bind": sc("mount", b"/", b"/mnt", None, MS_BIND | MS_REC, None),
             "umount": sc("umount2", b"/proc", 2),
             "remount": sc("mount", None, b"/proc/sys", None, MS_REMOUNT | MS_BIND, None),
             "pivot_root": sc("pivot_root", b".", b".")}
        r["sysctl_write"] = oserr(lambda: open("/proc/sys/kernel/printk_ratelimit", "w")
                                  .write("5"))
        print(json.dumps(r))
    """)
    written = result.pop("sysctl_write")
    assert result == dict.fromkeys(("tmpfs", "bind", "umount", "remount", "pivot_root"), EPERM)
    assert written in (EROFS, EACCES)


def test_no_new_namespaces_so_no_cgroup_release_agent(attack: Attack) -> None:
    """The CVE-2022-0492 path: unshare and clone of new namespaces fail with EPERM (so no
    cgroupfs of one's own to mount), the host's cgroupfs is read-only inside, and every
    release_agent of the host is unchanged."""
    agents = sorted(Path("/sys/fs/cgroup").glob("*/release_agent"))
    before = [_read(str(p)) for p in agents]
    result = attack(f"""
        CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUSER = 0x20000, 0x2000000, 0x10000000
        def clone(flags):
            pid = _libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_long(flags | 17), 0, 0,
                                0, 0)
            if pid == 0:
                os._exit(0)
            if pid > 0:
                os.waitpid(pid, 0)
                return 0
            return ctypes.get_errno()
        def write(path, text):
            with open(path, "w") as f:
                f.write(text)
        r = {{"unshare_user": sc("unshare", CLONE_NEWUSER),
              "unshare_mount_cgroup": sc("unshare", CLONE_NEWNS | CLONE_NEWCGROUP),
              "clone_user": clone(CLONE_NEWUSER)}}
        r["agents"] = [oserr(write, p, "/tmp/nsbox-escape") for p in {list(map(str, agents))!r}]
        procs = [p for p in ("/sys/fs/cgroup/memory/cgroup.procs",
                             "/sys/fs/cgroup/unified/cgroup.procs") if os.path.exists(p)]
        cgroup = open("/proc/self/cgroup").read()
        r["move"] = [oserr(write, p, str(os.getpid())) for p in procs]
        r["cgroup_kept"] = open("/proc/self/cgroup").read() == cgroup
        print(json.dumps(r))
    """)
    assert (result["unshare_user"], result["unshare_mount_cgroup"], result["clone_user"]) == (
        EPERM, EPERM, EPERM)
    # ENOENT: the container's own /sys has no cgroupfs to write to at all.
    assert all(e in (*DENIED, ENOENT) for e in result["agents"] + result["move"]), result
    assert result["cgroup_kept"] is True
    assert [_read(str(p)) for p in agents] == before


def test_setns_is_refused(attack: Attack) -> None:
    """setns into any namespace fails with EPERM."""
    result = attack("""
        print(json.dumps([sc("setns", os.open(f"/proc/1/ns/{n}", os.O_RDONLY), 0)
                          for n in ("mnt", "net", "user")]))
    """)
    assert result == [EPERM, EPERM, EPERM]


# -- processes of the host ---------------------------------------------------------------------

def test_host_processes_are_invisible_and_untouchable(attack: Attack) -> None:
    """ptrace, kill and pidfd_open of a host pid fail with ESRCH, and /proc inside lists only
    the container's few processes; the host process is alive and not traced."""
    host_pid = os.getpid()
    result = attack(f"""
        r = {{"ptrace": sc("ptrace", 16, {host_pid}, 0, 0), "kill": sc("kill", {host_pid}, 9),
              "pidfd": oserr(os.pidfd_open, {host_pid}),
              "visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
        print(json.dumps(r))
    """)
    assert (result["ptrace"], result["kill"], result["pidfd"]) == (ESRCH, ESRCH, ESRCH)
    assert host_pid not in result["visible"] and len(result["visible"]) <= 4
    status = _read(f"/proc/{host_pid}/status") or ""
    assert "TracerPid:\t0" in status


def test_tiocsti_cannot_reach_the_callers_terminal(mode: str, rootless_python: list[str]
                                                   ) -> None:
    """The caller's terminal is given as stdin; a TIOCSTI from inside fails (the process has
    a session of its own, so it is not its controlling terminal) and nothing is injected,
    while the same ioctl by the caller itself does inject: the test would see it."""
    inject = attack_code("""
        import fcntl, termios
        print(json.dumps(oserr(fcntl.ioctl, 0, termios.TIOCSTI, b"X")))
    """)
    result = run_driver(mode, rootless_python, f"""
        import fcntl, json, os, select, termios, tty, nsbox
        master, slave = os.openpty()
        os.setsid()                                  # a session of our own, whose
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)     # controlling terminal is this pty
        tty.setraw(slave)
        def pending():
            out = b""
            while select.select([slave], [], [], 0.2)[0]:
                out += os.read(slave, 100)
            return out.decode()
        with nsbox.Container() as c:
            r = c.run([{PY!r}, "-c", {inject!r}], stdin=slave, text=True)
        inside = {{"rc": r.returncode, "out": r.stdout, "err": r.stderr,
                   "injected": pending()}}
        fcntl.ioctl(slave, termios.TIOCSTI, b"Y")    # the control: the caller itself may
        print(json.dumps({{"inside": inside, "control": pending()}}))
    """)
    inside = result["inside"]
    assert inside["rc"] == 0, inside["err"]
    assert json.loads(inside["out"].splitlines()[-1]) == EPERM
    assert inside["injected"] == ""
    assert result["control"] == "Y"


# -- devices and kernel files ------------------------------------------------------------------

def test_device_nodes_cannot_be_made(attack: Attack) -> None:
    """mknod of the host disk's block device or of /dev/mem fails with EPERM (a FIFO still
    works); no node appears on the host."""
    disk = os.stat("/").st_dev
    with tempfile.TemporaryDirectory(prefix="nsbox-mknod-") as tmp:
        os.chmod(tmp, 0o777)
        # The container's own /tmp where it has one; the host's (shared) /tmp otherwise.
        result = attack(f"""
            import stat
            d = {tmp!r} if os.path.isdir({tmp!r}) else "/tmp"
            print(json.dumps([
                oserr(os.mknod, d + "/disk", stat.S_IFBLK | 0o600,
                      os.makedev({os.major(disk)}, {os.minor(disk)})),
                oserr(os.mknod, d + "/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)),
                oserr(os.mknod, d + "/fifo", stat.S_IFIFO | 0o600),
                oserr(os.unlink, d + "/fifo")]))
        """)
        assert result == [EPERM, EPERM, 0, 0]
        assert os.listdir(tmp) == []


def test_kernel_settings_cannot_be_written(attack: Attack) -> None:
    """Writing a host-wide sysctl under /proc/sys fails (read-only inside, or not ours); its
    value on the host is unchanged."""
    path = "/proc/sys/kernel/printk_ratelimit"
    before = _read(path)
    assert before is not None
    try:
        result = attack(f"""
            def write():
                with open({path!r}, "w") as f:
                    f.write(str(int(open({path!r}).read()) + 1))
            print(json.dumps(oserr(write)))
        """)
    finally:
        if _read(path) != before:  # the attack worked: put the host back before failing
            with open(path, "w") as f:
                f.write(before)
    assert result in (EROFS, EACCES)
    assert _read(path) == before


def test_sysrq_trigger_cannot_be_written(attack: Attack) -> None:
    """Writing /proc/sysrq-trigger fails (read-only inside, or not ours)."""
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger (built without CONFIG_MAGIC_SYSRQ)")
    # "h" only prints SysRq's help to the kernel log, were the write to get through.
    result = attack("""
        def write():
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("h")
        print(json.dumps(oserr(write)))
    """)
    assert result in (EROFS, EACCES)


def test_kernel_files_are_masked(attack: Attack) -> None:
    """/proc/kcore, /proc/keys, /proc/timer_list, /proc/acpi, /sys/firmware and the like read
    as empty inside; on the host they are still there."""
    paths = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
             "/proc/acpi", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
    present = [p for p in paths if os.path.exists(p)]
    host_dirs = {p: sorted(os.listdir(p)) for p in present if os.path.isdir(p)}
    host_files = [p for p in present if not os.path.isdir(p) and _read(p)]
    assert any(host_dirs.values()) or host_files, "nothing to mask on this kernel"
    result = attack(f"""
        def content(p):
            if os.path.isdir(p):
                return os.listdir(p)
            with open(p, "rb") as f:
                return f.read(4096).decode(errors="replace")
        print(json.dumps({{p: content(p) for p in {present!r}}}))
    """)
    assert all(not value for value in result.values()), result
    assert {p: sorted(os.listdir(p)) for p in host_dirs} == host_dirs
    assert all(_read(p) for p in host_files)


# -- the runtime's own files and fds (CVE-2019-5736, CVE-2024-21626) ---------------------------

def test_init_binary_cannot_be_overwritten(attack: Attack) -> None:
    """Opening /proc/1/exe (the container's init) or /proc/self/exe for writing fails, also
    through an O_PATH reopen; nsbox-init on the host is unchanged."""
    before = _sha256(_native.INIT_BINARY)
    result = attack("""
        path_fd = os.open("/proc/1/exe", os.O_PATH)
        print(json.dumps([oserr(os.open, "/proc/1/exe", os.O_WRONLY),
                          oserr(os.open, f"/proc/self/fd/{path_fd}", os.O_WRONLY),
                          oserr(os.open, "/proc/self/exe", os.O_WRONLY)]))
    """)
    assert all(e in (errno.ETXTBSY, EPERM, EACCES) for e in result), result
    assert _sha256(_native.INIT_BINARY) == before


def test_no_host_fd_leaks_inside(mode: str, rootless_python: list[str]) -> None:
    """With an inheritable fd of a host directory open in the caller, a contained process
    holds only fds 0, 1 and 2, and its working directory is the container's."""
    listing = attack_code("""
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass  # the fd of the listing itself, closed by now
        print(json.dumps({"fds": sorted(fds), "cwd": os.getcwd()}))
    """)
    result = run_driver(mode, rootless_python, f"""
        import json, os, nsbox
        leak = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
        os.set_inheritable(leak, True)
        os.chdir("/etc")
        with nsbox.Container() as c:
            r = c.run([{PY!r}, "-c", {listing!r}], text=True)
        print(json.dumps({{"rc": r.returncode, "out": r.stdout, "err": r.stderr}}))
    """)
    assert result["rc"] == 0, result["err"]
    inside = json.loads(result["out"].splitlines()[-1])
    assert inside == {"fds": ["0", "1", "2"], "cwd": "/"}


def test_container_defaults_are_in_force(attack: Attack) -> None:
    """The suite's premise: the attacks ran as root of the container, with Docker's
    capabilities, no_new_privs and a seccomp filter."""
    result = attack("""
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read()
                      .splitlines() if ":\\t" in line)
        print(json.dumps({k: status[k].strip() for k in
                          ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp")}))
    """)
    assert result["Uid"].split()[0] == "0"
    assert result["CapEff"] == result["CapBnd"] == f"{0xa80425fb:016x}"
    assert (result["NoNewPrivs"], result["Seccomp"]) == ("1", "2")
    assert isinstance(nsbox.Container().options.seccomp, nsbox.SeccompProfile)
