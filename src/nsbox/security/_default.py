"""The default seccomp profile: Docker's, with the differences docs/security.md lists.

Every syscall not allowed here fails with EPERM. Some are allowed only when the container holds
the capability that makes them meaningful (``mount`` with ``SYS_ADMIN``, ...): the filter is
built for each container's capability set, as Docker builds it.
"""

from __future__ import annotations

import errno
import functools
import stat

from ._arch import SUB_ARCHITECTURES, native_arch
from ._profile import ArgCondition, SeccompProfile, SyscallRule

S_IFMT = 0o170000  # the file type bits of a mode

#: Allowed without conditions: what ordinary programs use. Docker's list, without
#: ``io_uring_*`` (removed from Docker's default in 2023 after a run of kernel bugs), and with
#: ``mknod``/``mknodat`` moved to the conditional rules below; plus a few newer syscalls that
#: are as harmless (``cachestat``, ``fchmodat2``, ``futex_wait``/``wake``/``requeue``,
#: ``map_shadow_stack``, ``mseal``, ``uretprobe``).
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc
kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64
utimes vfork vmsplice wait4 waitid waitpid write writev
"""
ALLOWED = tuple(_ALLOWED.split())

#: Allowed when the container holds the capability (Docker's ``includes.caps``).
BY_CAPABILITY = {
    "SYS_ADMIN": ("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick "
                  "lookup_dcookie mount mount_setattr move_mount open_tree perf_event_open "
                  "quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 "
                  "unshare"),
    "SYS_BOOT": "reboot",
    "SYS_CHROOT": "chroot",
    "SYS_MODULE": "delete_module init_module finit_module",
    "SYS_PACCT": "acct",
    "SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "SYS_RAWIO": "iopl ioperm",
    "SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "SYS_TTY_CONFIG": "vhangup",
    "SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "SYSLOG": "syslog",
    "BPF": "bpf",
    "PERFMON": "perf_event_open",
    "DAC_READ_SEARCH": "open_by_handle_at",
}

#: Per-architecture syscalls (Docker's ``includes.arches``, Go names).
BY_ARCH = {
    ("amd64", "x32"): "arch_prctl",
    ("amd64", "x32", "x86"): "modify_ldt",
    ("ppc64le",): "sync_file_range2 swapcontext",
    ("arm", "arm64"): "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint "
                      "cacheflush set_tls",
    ("s390", "s390x"): "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ("riscv64",): "riscv_flush_icache",
}

#: Namespace flags of clone(2): creating namespaces needs SYS_ADMIN (and seccomp is what
#: stops a user namespace, which needs no capability at all).
CLONE_NAMESPACE_FLAGS = 0x7E020000
#: personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 and both, and the query.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
#: socket(2) families refused: AF_VSOCK, a way to the hypervisor.
AF_VSOCK = 40

#: What nsbox itself needs after the filter is in place, and what its init needs: an
#: allowlist always includes these, or the container could not start.
STARTUP_SYSCALLS = (
    "execve", "execveat", "exit", "exit_group", "read", "write", "close", "close_range",
    "fcntl", "dup2", "dup3", "rt_sigprocmask", "rt_sigreturn", "restart_syscall", "brk",
    "mmap", "mprotect", "munmap", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "prlimit64", "getrandom", "readlink", "prctl", "signalfd4", "poll", "ppoll", "wait4",
    "kill", "getpid",
)


def _mknod_rules() -> list[SyscallRule]:
    # Docker allows every mknod and relies on the devices cgroup to make device nodes useless;
    # nsbox may run without one, so only regular files, FIFOs, sockets and the 0:0 character
    # device (an overlayfs whiteout) may be created. Block and character devices need
    # SeccompProfile.default().allow("mknod", "mknodat") (and CAP_MKNOD).
    rules = []
    for name, mode_arg in (("mknod", 1), ("mknodat", 2)):
        for kind in (0, stat.S_IFREG, stat.S_IFIFO, stat.S_IFSOCK):
            rules.append(SyscallRule((name,), args=(
                ArgCondition(mode_arg, "masked_eq", kind, mask=S_IFMT),)))
        rules.append(SyscallRule((name,), args=(
            ArgCondition(mode_arg, "masked_eq", stat.S_IFCHR, mask=S_IFMT),
            ArgCondition(mode_arg + 1, "eq", 0))))
    return rules


@functools.cache
def default_profile() -> SeccompProfile:
    """Docker's default seccomp profile, as nsbox data (built once)."""
    rules = [SyscallRule(tuple(ALLOWED))]
    # ptrace is safe with seccomp since Linux 4.8 (a tracer can no longer skip the filter);
    # it still needs the target to be ptrace-able by the usual rules.
    rules.append(SyscallRule(("process_vm_readv", "process_vm_writev", "ptrace"),
                             min_kernel=(4, 8)))
    rules.append(SyscallRule(("socket",), args=(ArgCondition(0, "ne", AF_VSOCK),)))
    rules += [SyscallRule(("personality",), args=(ArgCondition(0, "eq", value),))
              for value in PERSONALITIES]
    rules += [SyscallRule(tuple(names.split()), arches=frozenset(arches))
              for arches, names in BY_ARCH.items()]
    rules += [SyscallRule(tuple(names.split()), caps=frozenset({cap}))
              for cap, names in BY_CAPABILITY.items()]
    # Without SYS_ADMIN: clone without namespace flags, and clone3 (whose flags are in memory
    # that a filter cannot read) fails with ENOSYS, so that libc falls back to clone.
    rules.append(SyscallRule(("clone",), not_caps=frozenset({"SYS_ADMIN"}),
                             not_arches=frozenset({"s390", "s390x"}),
                             args=(ArgCondition(0, "masked_eq", 0,
                                                mask=CLONE_NAMESPACE_FLAGS),)))
    rules.append(SyscallRule(("clone",), not_caps=frozenset({"SYS_ADMIN"}),
                             arches=frozenset({"s390", "s390x"}),
                             args=(ArgCondition(1, "masked_eq", 0,
                                                mask=CLONE_NAMESPACE_FLAGS),)))
    rules.append(SyscallRule(("clone3",), "errno", errno.ENOSYS,
                             not_caps=frozenset({"SYS_ADMIN"})))
    rules += _mknod_rules()
    return SeccompProfile(default_action="errno", default_errno=errno.EPERM, rules=tuple(rules),
                          architectures=SUB_ARCHITECTURES.get(native_arch(), ()))
