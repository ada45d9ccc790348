/* Runs in: the parent (the Python process, with the GIL released by cffi).
 *
 * nsbox_spawn clones the child, does the parent's half of the setup while the child waits on
 * the sync pipe (uid/gid maps), then waits on the close-on-exec error pipe: EOF means execve
 * succeeded, a record names the step that failed.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* Our own copy of the clone3 arguments, so the build does not depend on the headers' age. */
struct nsbox_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

static const char *const step_names[NSBOX_STEP_COUNT] = {
    [NSBOX_STEP_NONE] = "none",
    [NSBOX_STEP_SIGNALS] = "signals",
    [NSBOX_STEP_SYNC] = "sync",
    [NSBOX_STEP_SETNS] = "setns",
    [NSBOX_STEP_FORK] = "fork",
    [NSBOX_STEP_TIMENS] = "time-namespace",
    [NSBOX_STEP_CGROUPNS] = "cgroup-namespace",
    [NSBOX_STEP_MOUNT_PRIVATE] = "mount-private",
    [NSBOX_STEP_MOUNT_PROC] = "mount-proc",
    [NSBOX_STEP_OVERLAY] = "overlay",
    [NSBOX_STEP_ROOTFS] = "rootfs",
    [NSBOX_STEP_MOUNT] = "mount",
    [NSBOX_STEP_MASK] = "mask",
    [NSBOX_STEP_PIVOT_ROOT] = "pivot-root",
    [NSBOX_STEP_HOSTNAME] = "hostname",
    [NSBOX_STEP_DOMAINNAME] = "domainname",
    [NSBOX_STEP_LOOPBACK] = "loopback",
    [NSBOX_STEP_RLIMIT] = "rlimit",
    [NSBOX_STEP_SETSID] = "setsid",
    [NSBOX_STEP_TTY] = "controlling-tty",
    [NSBOX_STEP_CHDIR] = "chdir",
    [NSBOX_STEP_SETGROUPS] = "setgroups",
    [NSBOX_STEP_SETGID] = "setgid",
    [NSBOX_STEP_SETUID] = "setuid",
    [NSBOX_STEP_SECURITY] = "security",
    [NSBOX_STEP_OOM_SCORE_ADJ] = "oom-score-adj",
    [NSBOX_STEP_SYSTEM_PATHS] = "system-paths",
    [NSBOX_STEP_CAP_BOUNDING] = "capability-bounding-set",
    [NSBOX_STEP_KEEPCAPS] = "keepcaps",
    [NSBOX_STEP_CAPABILITIES] = "capabilities",
    [NSBOX_STEP_CAP_AMBIENT] = "ambient-capabilities",
    [NSBOX_STEP_NO_NEW_PRIVS] = "no-new-privs",
    [NSBOX_STEP_SECCOMP] = "seccomp",
    [NSBOX_STEP_FDS] = "fds",
    [NSBOX_STEP_EXEC] = "exec",
    [NSBOX_STEP_PIPE] = "pipe",
    [NSBOX_STEP_CLONE] = "clone",
    [NSBOX_STEP_SETGROUPS_DENY] = "setgroups-deny",
    [NSBOX_STEP_UID_MAP] = "uid-map",
    [NSBOX_STEP_GID_MAP] = "gid-map",
    [NSBOX_STEP_CGROUP] = "cgroup",
    [NSBOX_STEP_REPORT] = "report",
    [NSBOX_STEP_PIDFD] = "pidfd",
};

const char *nsbox_step_name(int step)
{
    if (step < 0 || step >= NSBOX_STEP_COUNT || !step_names[step])
        return "unknown";
    return step_names[step];
}

int nsbox_has_clone3(void)
{
    /* A null argument block: EFAULT/EINVAL where clone3 exists, ENOSYS where it does not. */
    return syscall(SYS_clone3, NULL, 0) < 0 && errno != ENOSYS;
}

static int set_error(struct nsbox_result *res, int step, int err, const char *detail)
{
    res->step = step;
    res->err = err;
    snprintf(res->detail, sizeof res->detail, "%s", detail ? detail : "");
    return -1;
}

static void close_quietly(int fd)
{
    if (fd >= 0)
        close(fd);
}

static pid_t wait_quietly(pid_t pid)
{
    pid_t r;
    do
        r = waitpid(pid, NULL, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Returns the bytes read: sizeof(struct nsbox_report), or 0 at EOF (short reads count as EOF:
 * records are written whole). */
static ssize_t read_report(int fd, struct nsbox_report *r)
{
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fd, (char *)r + got, sizeof *r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got == sizeof *r ? (ssize_t)got : 0;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int write_proc_file(pid_t pid, const char *name, const char *content)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* uid_map and gid_map must be written in a single write(). */
    ssize_t n = write(fd, content, strlen(content));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(content) ? 0 : -1;
}

/* The parent's half of the setup, while the child waits: returns 0 or fills `res`. */
static int set_up_child(const struct nsbox_spec *s, pid_t pid, struct nsbox_result *res)
{
    if (s->deny_setgroups && write_proc_file(pid, "setgroups", "deny") < 0)
        return set_error(res, NSBOX_STEP_SETGROUPS_DENY, errno, "setgroups");
    if (s->uid_map && write_proc_file(pid, "uid_map", s->uid_map) < 0)
        return set_error(res, NSBOX_STEP_UID_MAP, errno, s->uid_map);
    if (s->gid_map && write_proc_file(pid, "gid_map", s->gid_map) < 0)
        return set_error(res, NSBOX_STEP_GID_MAP, errno, s->gid_map);
    return 0;
}

/* Joining a container takes one clone instead of two (a copy of the whole Python process
 * less) when this thread can enter the container's pid namespace for its children: the child
 * is born there and joins the other namespaces itself. Only this thread's pid_for_children
 * changes, and it is switched back right after the clone. That needs CAP_SYS_ADMIN over our
 * own pid namespace too, so without root it fails and the double fork stays. Returns an fd of
 * the thread's own pid_for_children to go back to, or -1 when it did not switch. */
static int enter_pid_namespace_for_children(const struct nsbox_spec *s)
{
    uint64_t kept_new = (uint64_t)CLONE_NEWPID | CLONE_NEWUSER;
    if (s->join_pidfd < 0 || !(s->join_pidfd_flags & CLONE_NEWPID) || s->n_join_fds > 0
        || (s->new_ns & kept_new))
        return -1;
    int own = open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC);
    if (own < 0)
        return -1;
    if (setns(s->join_pidfd, CLONE_NEWPID) < 0) {
        close(own);
        return -1;
    }
    return own;
}

static void leave_pid_namespace_for_children(int own)
{
    if (own < 0)
        return;
    /* It was ours a moment ago and we hold CAP_SYS_ADMIN: this cannot fail. Were it to, every
     * later fork of this thread (subprocess too) would land in the container: stop here. */
    if (setns(own, CLONE_NEWPID) < 0)
        abort();
    close(own);
}

/* A child that shares our memory until it executes, as posix_spawn's does: the kernel copies
 * no page table of the Python process, and the child's execve frees none. The parent thread
 * sleeps until then (CLONE_VFORK), so the child may use its stack, errno and TLS, and child.c
 * writes no other memory. Possible when the parent has nothing to do between clone and exec
 * (no sync), without a double fork, without CLONE_INTO_CGROUP, which clone(2) cannot ask for
 * (glibc has no clone3 that runs a function on another stack), and outside time and user
 * namespaces (shares_memory_safely). */
#define VM_CHILD_STACK (256 * 1024)

struct vm_child {
    const struct nsbox_spec *spec;
    struct nsbox_child_fds fds;
};

static int run_vm_child(void *arg)
{
    struct vm_child *c = arg;
    nsbox_child_main(c->spec, c->fds);
}

/* A child born where processes of a container can see it (a joined pid namespace, or no new
 * one) must be non-dumpable from its first instant: before its own prctl, a root process in
 * there could open its /proc/PID/mem, which is a copy of this Python process or, for a child
 * sharing our memory, this process itself, and keep that fd. The flag belongs to the memory,
 * so this process is made non-dumpable while such children start: counted, because threads
 * spawn at once and the last one out restores the flag. */
static pthread_mutex_t dumpable_lock = PTHREAD_MUTEX_INITIALIZER;
static int hiding_spawns;
static int dumpable_before;

static void hide_memory(void)
{
    pthread_mutex_lock(&dumpable_lock);
    if (hiding_spawns++ == 0) {
        dumpable_before = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    pthread_mutex_unlock(&dumpable_lock);
}

static void unhide_memory(void)
{
    pthread_mutex_lock(&dumpable_lock);
    if (--hiding_spawns == 0 && dumpable_before > 0)
        prctl(PR_SET_DUMPABLE, dumpable_before, 0, 0, 0);
    pthread_mutex_unlock(&dumpable_lock);
}

static int shares_memory_safely(const struct nsbox_spec *s, int parent_steps)
{
    /* The kernel refuses to move a process that shares its memory into another time or user
     * namespace (both change what the memory maps, or whose it is). */
    uint64_t refused = NSBOX_CLONE_NEWTIME | CLONE_NEWUSER;
    return !parent_steps && s->cgroup_fd < 0 && !((s->new_ns | s->join_pidfd_flags) & refused);
}

static long clone_vm_child(const struct nsbox_spec *s, uint64_t flags, struct nsbox_child_fds fds,
                           int *pidfd)
{
    char *stack = mmap(NULL, VM_CHILD_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
    struct vm_child child = {s, fds};
    long pid = clone(run_vm_child, stack + VM_CHILD_STACK,
                     CLONE_VM | CLONE_VFORK | (int)flags | SIGCHLD, &child, pidfd);
    int saved = errno;
    munmap(stack, VM_CHILD_STACK);
    errno = saved;
    return pid;
}

static long clone_child(const struct nsbox_spec *s, uint64_t flags, int *pidfd)
{
    struct nsbox_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    if (s->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)s->cgroup_fd;
    }
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0 || errno != ENOSYS || s->cgroup_fd >= 0)
        return pid;
    /* Before Linux 5.3: clone(2) stores the pidfd where parent_tid goes. */
    return syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, pidfd, NULL, NULL);
}

static int spawn(const struct nsbox_spec *s, struct nsbox_result *res, int *hidden);

int nsbox_spawn(const struct nsbox_spec *s, struct nsbox_result *res)
{
    int hidden = 0;
    int rc = spawn(s, res, &hidden);
    /* Only now: the child has executed or is reaped. The kernel lets a vfork parent go on
     * (CLONE_VFORK) an instant before the child stops using the parent's memory, in exec and
     * in exit alike; a /proc/PID/mem opened in that instant would be a handle on this whole
     * process. EOF on the close-on-exec report pipe comes after the switch (and after exit's),
     * and error paths reap the child first. */
    if (hidden)
        unhide_memory();
    return rc;
}

static int spawn(const struct nsbox_spec *s, struct nsbox_result *res, int *hidden)
{
    memset(res, 0, sizeof *res);
    res->pid = -1;
    res->pidfd = -1;
    int double_fork = s->join_pidfd >= 0 || s->n_join_fds > 0;
    int needs_sync = s->uid_map || s->gid_map || s->deny_setgroups;

    int report[2], sync[2] = {-1, -1};
    if (pipe2(report, O_CLOEXEC) < 0)
        return set_error(res, NSBOX_STEP_PIPE, errno, NULL);
    if (needs_sync && pipe2(sync, O_CLOEXEC) < 0) {
        int err = errno;
        close(report[0]);
        close(report[1]);
        return set_error(res, NSBOX_STEP_PIPE, err, NULL);
    }

    /* The child starts with every signal blocked, so no handler of Python's runs in it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    int own_pid_ns = double_fork ? enter_pid_namespace_for_children(s) : -1;
    if (own_pid_ns >= 0)
        double_fork = 0;
    /* With a double fork the pidfd would name the short-lived first child: open it later.
     * Namespaces to create inside joined ones are created by the child, after joining. */
    uint64_t flags = 0;
    if (!double_fork)
        flags = CLONE_PIDFD;
    if (!double_fork && own_pid_ns < 0)
        flags |= s->new_ns & ~(uint64_t)NSBOX_LATE_NAMESPACES;
    struct nsbox_child_fds child_fds = {report[1], sync[0], own_pid_ns >= 0};
    /* A child sharing our memory makes it non-dumpable itself (child.c): restore it after. */
    int shares_memory = shares_memory_safely(s, needs_sync || double_fork);
    *hidden = shares_memory || (!double_fork && !(flags & CLONE_NEWPID));
    if (*hidden)
        hide_memory();
    long pid;
    if (shares_memory) {
        pid = clone_vm_child(s, flags, child_fds, &pidfd);
    } else {
        pid = clone_child(s, flags, &pidfd);
        if (pid == 0)
            nsbox_child_main(s, child_fds);
    }
    int clone_errno = errno;
    leave_pid_namespace_for_children(own_pid_ns);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    close(report[1]);
    close_quietly(sync[0]);
    if (pid < 0) {
        close(report[0]);
        close_quietly(sync[1]);
        return set_error(res, NSBOX_STEP_CLONE, clone_errno, NULL);
    }

    pid_t target = (pid_t)pid;
    struct nsbox_report r;
    int rc = 0;
    if (double_fork) {
        ssize_t n = read_report(report[0], &r);
        wait_quietly(target);  /* the first child exits right after reporting */
        if (n == 0)
            rc = set_error(res, NSBOX_STEP_FORK, ECHILD, "the joining child died");
        else if (r.kind == NSBOX_REPORT_ERROR)
            rc = set_error(res, r.step, r.err, r.detail);
        else
            target = r.pid;
        if (rc < 0) {
            close(report[0]);
            close_quietly(sync[1]);
            return rc;
        }
    }

    if (needs_sync) {
        rc = set_up_child(s, target, res);
        if (rc == 0 && write(sync[1], "1", 1) != 1)
            rc = set_error(res, NSBOX_STEP_SYNC, errno, NULL);
        close(sync[1]);
        if (rc < 0) {
            kill(target, SIGKILL);
            wait_quietly(target);
            /* A child that failed a step before the sync (then its /proc files are gone, which
             * is why ours failed) reported it: its error is the one that explains. */
            if (read_report(report[0], &r) > 0 && r.kind == NSBOX_REPORT_ERROR)
                rc = set_error(res, r.step, r.err, r.detail);
            close_quietly(pidfd);
            close(report[0]);
            return rc;
        }
    }

    ssize_t n = read_report(report[0], &r);
    close(report[0]);
    if (n > 0) {
        wait_quietly(target);
        close_quietly(pidfd);
        return set_error(res, r.step, r.err, r.detail);
    }
    if (pidfd < 0)
        pidfd = (int)syscall(SYS_pidfd_open, target, 0);  /* -1 before Linux 5.3: Python copes */
    res->pid = target;
    res->pidfd = pidfd;
    return 0;
}
