/* Runs in: the child, between clone and execve.
 *
 * The child is a copy of a Python process that may have many threads (a Jupyter kernel, a
 * pytest-xdist worker). After clone only this thread exists, but every lock another thread held
 * stays held forever and glibc still believes the other threads exist. So everything here is
 * async-signal-safe: system calls, no malloc, no stdio, no locks, and raw syscalls instead of the
 * glibc wrappers that broadcast credential changes to all threads (setresuid, setresgid,
 * setgroups), which would wait forever for threads that are not there.
 *
 * Every function in this file is async-signal-safe. Failures are reported to the parent as one
 * record (step, errno, detail) on the close-on-exec error pipe, followed by _exit(127).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#define NSBOX_MAX_FDS 256

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static void report(int fd, int kind, int step, int err, int pid, const char *detail)
{
    struct nsbox_report r;
    __builtin_memset(&r, 0, sizeof r);
    r.kind = kind;
    r.step = step;
    r.err = err;
    r.pid = pid;
    if (detail) {
        size_t i;
        for (i = 0; detail[i] && i < sizeof r.detail - 1; i++)
            r.detail[i] = detail[i];
    }
    while (write(fd, &r, sizeof r) < 0 && errno == EINTR)
        ;
}

static __attribute__((noreturn)) void fail(int report_fd, int step, int err, const char *detail)
{
    report(report_fd, NSBOX_REPORT_ERROR, step, err, 0, detail);
    _exit(127);
}

/* Python's C signal handlers write to its wakeup fd, which the parent shares: a signal arriving
 * here must not run them. The parent blocked every signal before clone; reset the handlers to
 * their defaults (and SIGPIPE/SIGXFSZ, which Python ignores, as subprocess does) before the
 * mask is lifted just before execve. */
static void reset_signal_handlers(void)
{
    for (int sig = 1; sig < _NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
            continue;  /* glibc refuses its internal signals; they have no user handler */
        int ignored_by_python = sig == SIGPIPE || sig == SIGXFSZ;
        if (sa.sa_handler == SIG_DFL || (sa.sa_handler == SIG_IGN && !ignored_by_python))
            continue;
        __builtin_memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
    }
}

static void unblock_all_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* A joined pid namespace applies to children only, and namespaces created inside joined ones
 * must be created after joining: so join here, then fork the real process with CLONE_PARENT,
 * which makes it the Python process's own child (waitable, with a pidfd), report its pid and
 * leave. Returns in the process that goes on. */
/* cgroup v1 (v2 places the child with CLONE_INTO_CGROUP): "0" moves the writer itself, and
 * the kernel checks the permission against whoever opened the file, the parent. The child
 * does it first thing, before it executes anything of its own, and the parent has one step
 * less between clone and exec (which lets it share its memory with the child, spawn.c). */
static void enter_cgroup_v1(const struct nsbox_spec *s, int report_fd)
{
    for (int i = 0; i < s->n_cgroup_procs_fds; i++)
        if (pwrite(s->cgroup_procs_fds[i], "0", 1, 0) != 1)
            fail(report_fd, NSBOX_STEP_CGROUP, errno, "cgroup.procs");
}

static void enter_joined_namespaces(const struct nsbox_spec *s, int report_fd)
{
    if (s->join_pidfd >= 0 && setns(s->join_pidfd, (int)s->join_pidfd_flags) < 0)
        fail(report_fd, NSBOX_STEP_SETNS, errno, "the container's namespaces");
    for (int i = 0; i < s->n_join_fds; i++)
        if (setns(s->join_fds[i], 0) < 0)
            fail(report_fd, NSBOX_STEP_SETNS, errno, "a namespace to join");
}

/* The parent entered the pid namespace for us (spawn.c): we were born in it, so join the
 * others and create any new namespace here, without a second fork. */
static void join_namespaces_in_place(const struct nsbox_spec *s, int report_fd)
{
    int flags = (int)(s->join_pidfd_flags & ~(unsigned long long)CLONE_NEWPID);
    if (flags && setns(s->join_pidfd, flags) < 0)
        fail(report_fd, NSBOX_STEP_SETNS, errno, "the container's namespaces");
    int new_ns = (int)(s->new_ns & ~NSBOX_LATE_NAMESPACES);
    if (new_ns && unshare(new_ns) < 0)
        fail(report_fd, NSBOX_STEP_FORK, errno, "unshare");
}

static void join_namespaces(const struct nsbox_spec *s, int report_fd)
{
    enter_joined_namespaces(s, report_fd);

    unsigned long flags = CLONE_PARENT | (unsigned long)(s->new_ns & ~NSBOX_LATE_NAMESPACES);
    long pid = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid < 0)
        fail(report_fd, NSBOX_STEP_FORK, errno, NULL);
    if (pid > 0) {
        report(report_fd, NSBOX_REPORT_PID, NSBOX_STEP_NONE, 0, (int)pid, NULL);
        _exit(0);
    }
}

static void wait_for_parent(int sync_fd)
{
    char go;
    ssize_t n;
    do
        n = read(sync_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);  /* the parent gave up on us (and is killing us); nothing to report */
    close(sync_fd);
}

/* Time namespace offsets can only be set before any process is inside, so create it with
 * unshare (it applies to children), set the offsets, then enter it ourselves. */
static void enter_new_time_namespace(const struct nsbox_spec *s, int report_fd)
{
    if (unshare((int)NSBOX_CLONE_NEWTIME) < 0)
        fail(report_fd, NSBOX_STEP_TIMENS, errno, "unshare(CLONE_NEWTIME)");
    if (s->timens_offsets) {
        int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, s->timens_offsets, str_len(s->timens_offsets)) < 0)
            fail(report_fd, NSBOX_STEP_TIMENS, errno, "/proc/self/timens_offsets");
        close(fd);
    }
    int ns = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, (int)NSBOX_CLONE_NEWTIME) < 0)
        fail(report_fd, NSBOX_STEP_TIMENS, errno, "/proc/self/ns/time_for_children");
    close(ns);
}

static int bring_loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    __builtin_memset(&ifr, 0, sizeof ifr);
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

static void set_credentials(const struct nsbox_spec *s, int report_fd)
{
    if (s->set_groups && syscall(SYS_setgroups, (size_t)s->n_groups, s->groups) < 0)
        fail(report_fd, NSBOX_STEP_SETGROUPS, errno, NULL);
    gid_t gid = (gid_t)s->gid;
    uid_t uid = (uid_t)s->uid;
    if (s->gid >= 0 && syscall(SYS_setresgid, gid, gid, gid) < 0)
        fail(report_fd, NSBOX_STEP_SETGID, errno, NULL);
    if (s->uid >= 0 && syscall(SYS_setresuid, uid, uid, uid) < 0)
        fail(report_fd, NSBOX_STEP_SETUID, errno, NULL);
}

static void close_fds_between(int lo, int hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0) == 0)
        return;
    struct rlimit rl;
    int last = hi;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur - 1 < last)
        last = (int)rl.rlim_cur - 1;
    for (int fd = lo; fd <= last; fd++)
        close(fd);
}

/* Make fd `dst` a copy of `src` for every entry, keeping only those, the error pipe and the
 * program fd: the contained process must hold no fd of the host (CVE-2024-21626). Sources may
 * collide with destinations, so every source is first copied above all of them. */
static void arrange_fds(const struct nsbox_spec *s, int *report_fd, int *exec_fd)
{
    int n = s->n_fds;
    if (n > NSBOX_MAX_FDS)
        fail(*report_fd, NSBOX_STEP_FDS, E2BIG, NULL);
    int top = *report_fd > *exec_fd ? *report_fd : *exec_fd;
    for (int i = 0; i < n; i++) {
        if (s->fds[i].src > top)
            top = s->fds[i].src;
        if (s->fds[i].dst > top)
            top = s->fds[i].dst;
    }
    int moved_report = fcntl(*report_fd, F_DUPFD_CLOEXEC, top + 1);
    if (moved_report < 0)
        fail(*report_fd, NSBOX_STEP_FDS, errno, NULL);
    *report_fd = moved_report;
    if (*exec_fd >= 0 && (*exec_fd = fcntl(*exec_fd, F_DUPFD_CLOEXEC, top + 1)) < 0)
        fail(*report_fd, NSBOX_STEP_FDS, errno, "the program fd");

    int tmp[NSBOX_MAX_FDS];
    for (int i = 0; i < n; i++)
        if ((tmp[i] = fcntl(s->fds[i].src, F_DUPFD_CLOEXEC, top + 1)) < 0)
            fail(*report_fd, NSBOX_STEP_FDS, errno, NULL);
    for (int i = 0; i < n; i++)
        if (dup2(tmp[i], s->fds[i].dst) < 0)
            fail(*report_fd, NSBOX_STEP_FDS, errno, NULL);

    /* Close the gaps between the fds we keep, in ascending order. */
    int keep[NSBOX_MAX_FDS + 2];
    int k = 0;
    for (int i = 0; i < n; i++)
        keep[k++] = s->fds[i].dst;
    keep[k++] = *report_fd;
    if (*exec_fd >= 0)
        keep[k++] = *exec_fd;
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    int next = 0;
    for (int i = 0; i < k; i++) {
        close_fds_between(next, keep[i] - 1);
        next = keep[i] + 1;
    }
    close_fds_between(next, ~0U >> 1);
}

static int has_slash(const char *s)
{
    for (; *s; s++)
        if (*s == '/')
            return 1;
    return 0;
}

/* execvpe without its allocations: try each PATH entry, report ENOENT unless some candidate
 * existed but was not executable (EACCES), as execvp does. Returns only on failure. */
static int exec_program(const struct nsbox_spec *s, int exec_fd)
{
    if (exec_fd >= 0) {
        syscall(SYS_execveat, exec_fd, "", s->argv, s->envp, AT_EMPTY_PATH);
        return errno;
    }
    if (has_slash(s->path) || !s->search_path) {
        execve(s->path, s->argv, s->envp);
        return errno;
    }
    char candidate[4096];
    size_t name_len = str_len(s->path);
    int saw_eacces = 0;
    for (const char *dir = s->search_path;;) {
        const char *end = dir;
        while (*end && *end != ':')
            end++;
        size_t dir_len = (size_t)(end - dir);
        if (dir_len == 0) {  /* an empty entry means the current directory */
            dir = ".";
            dir_len = 1;
        }
        if (dir_len + 1 + name_len + 1 <= sizeof candidate) {
            __builtin_memcpy(candidate, dir, dir_len);
            candidate[dir_len] = '/';
            __builtin_memcpy(candidate + dir_len + 1, s->path, name_len + 1);
            execve(candidate, s->argv, s->envp);
            if (errno == EACCES)
                saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV
                     && errno != ETIMEDOUT)
                return errno;
        }
        if (!*end)
            break;
        dir = end + 1;
    }
    return saw_eacces ? EACCES : ENOENT;
}

/* The last steps, in the process's final namespaces and root: limits, session, working
 * directory, then the credentials and the security locks around them. */
static void become_the_process(const struct nsbox_spec *s, int report_fd)
{
    struct nsbox_failure failure;
    for (int i = 0; i < s->n_rlimits; i++) {
        struct rlimit rl = {(rlim_t)s->rlimits[i].soft, (rlim_t)s->rlimits[i].hard};
        if (setrlimit(s->rlimits[i].resource, &rl) < 0)
            fail(report_fd, NSBOX_STEP_RLIMIT, errno, NULL);
    }
    /* A new session: the contained process has no controlling terminal of the caller's to
     * inject input into (TIOCSTI). */
    if (s->new_session && setsid() < 0)
        fail(report_fd, NSBOX_STEP_SETSID, errno, NULL);
    if (s->controlling_tty && ioctl(s->fds[0].src, TIOCSCTTY, 0) < 0)
        fail(report_fd, NSBOX_STEP_TTY, errno, NULL);
    if (s->cwd && chdir(s->cwd) < 0)
        fail(report_fd, NSBOX_STEP_CHDIR, errno, s->cwd);

    /* Security step 3: seccomp if without no_new_privs, the bounding set, keepcaps: all need
     * the capabilities that a change to a non-root uid takes away. */
    if (nsbox_security_prepare(s, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);

    set_credentials(s, report_fd);

    /* Security step 4: the capability sets, no_new_privs, then the seccomp filter, last. */
    if (nsbox_security_finish(s, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);
}

void nsbox_child_main(const struct nsbox_spec *s, struct nsbox_child_fds fds)
{
    int report_fd = fds.report_fd;
    int exec_fd = s->exec_fd;

    reset_signal_handlers();

    /* Security step 1 (security.c): oom_score_adj, inherited by everything forked from here. */
    struct nsbox_failure failure;
    if (nsbox_security_oom_score_adj(s, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);

    /* Until execve this process is a copy of the host's Python. Non-dumpable, no process of
     * the container (even root in it) can ptrace it or open its /proc/PID/exe, the
     * CVE-2016-9962 and CVE-2019-5736 classes; execve makes the new program dumpable again.
     * But a non-dumpable process's /proc/PID files belong to root of the initial user
     * namespace, so where the parent writes our uid/gid maps or we write timens_offsets
     * (rootless, that is refused) it waits until those are written, below: until then this
     * process is alone in the namespaces it is creating. */
    enter_cgroup_v1(s, report_fd);

    int undumpable_now = !(s->uid_map || s->gid_map || s->deny_setgroups || s->timens_offsets);
    if (undumpable_now)
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    if (fds.in_pid_ns)
        join_namespaces_in_place(s, report_fd);
    else if (s->join_pidfd >= 0 || s->n_join_fds > 0)
        join_namespaces(s, report_fd);

    /* The parent writes our uid/gid maps and cgroup membership, then lets us go on. */
    if (fds.sync_fd >= 0)
        wait_for_parent(fds.sync_fd);

    if (s->new_ns & NSBOX_CLONE_NEWTIME)
        enter_new_time_namespace(s, report_fd);
    if (!undumpable_now)
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* Only now is the process in its cgroup (cgroup v1 places it during the sync), and a new
     * cgroup namespace is rooted where its creator is: so that root is the container's cgroup. */
    if ((s->new_ns & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
        fail(report_fd, NSBOX_STEP_CGROUPNS, errno, NULL);

    /* Nothing we mount may propagate back to the host's mount namespace. */
    if (s->make_mounts_private && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(report_fd, NSBOX_STEP_MOUNT_PRIVATE, errno, "/");

    if (s->n_attach > 0 && nsbox_attach_trees(s->attach_fds, s->attach_dests, s->n_attach,
                                              &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);

    /* Without a new root, the host's /proc would still show the host's processes. */
    if (s->mount_proc
        && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(report_fd, NSBOX_STEP_MOUNT_PROC, errno, "/proc");

    /* The new root (mounts.c): the rootfs mounted, the mount plan applied inside it, then
     * pivot_root into it and the old root detached, so nothing of the host stays reachable. */
    if (s->rootfs && nsbox_rootfs_setup(s->rootfs, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);

    /* Security step 2: in the final root, kernel files masked or read-only, /sys read-only. */
    if (nsbox_security_system_paths(s, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);

    if (s->hostname && sethostname(s->hostname, str_len(s->hostname)) < 0)
        fail(report_fd, NSBOX_STEP_HOSTNAME, errno, s->hostname);
    if (s->domainname && setdomainname(s->domainname, str_len(s->domainname)) < 0)
        fail(report_fd, NSBOX_STEP_DOMAINNAME, errno, s->domainname);
    if (s->loopback_up && bring_loopback_up() < 0)
        fail(report_fd, NSBOX_STEP_LOOPBACK, errno, "lo");

    become_the_process(s, report_fd);

    arrange_fds(s, &report_fd, &exec_fd);
    unblock_all_signals();
    int err = exec_program(s, exec_fd);
    fail(report_fd, NSBOX_STEP_EXEC, err, s->path);
}

/* The fork mode of Container.call: the caller's own Python process, forked while it has a
 * single thread, enters the container instead of a program executed there. Unlike the rest of
 * this file these run in a process that goes on running Python; they fail the same way (a
 * record on `report_fd`, then _exit), so the parent reads them as it reads nsbox_spawn's. */

/* In the first fork: join the cgroup and the namespaces. The pid namespace applies to the
 * children only, so the caller forks again and the second fork calls nsbox_fork_enter. */
void nsbox_fork_join(const struct nsbox_spec *s, int report_fd)
{
    /* A copy of the host's Python: no process of the container may ptrace it or open its
     * /proc files, now or after the credentials change (see nsbox_fork_enter). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct nsbox_failure failure;
    if (nsbox_security_oom_score_adj(s, &failure) < 0)
        fail(report_fd, failure.step, failure.err, failure.detail);
    /* The second fork inherits the cgroup. */
    if (s->cgroup_fd >= 0) {
        int fd = openat(s->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            fail(report_fd, NSBOX_STEP_CGROUP, errno, "cgroup.procs");
        close(fd);
    }
    enter_cgroup_v1(s, report_fd);
    enter_joined_namespaces(s, report_fd);
}

/* In the second fork, inside the pid namespace: become the container's process (limits,
 * session, cwd, credentials, capabilities, seccomp), die with the first fork, and keep no fd
 * of the host but stdio, `report_fd` and `reply_fd`. `parent` is getppid() as the second fork
 * saw it when it started: if that changed, the first fork is gone and nobody waits for us. */
void nsbox_fork_enter(const struct nsbox_spec *s, int report_fd, int reply_fd, int parent)
{
    become_the_process(s, report_fd);
    /* A change of credentials resets both the dumpable flag and the parent-death signal. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(report_fd, NSBOX_STEP_SIGNALS, errno, "PR_SET_PDEATHSIG");
    if (getppid() != parent)
        _exit(127);
    int lo = report_fd < reply_fd ? report_fd : reply_fd;
    int hi = report_fd < reply_fd ? reply_fd : report_fd;
    close_fds_between(3, lo - 1);
    close_fds_between(lo + 1, hi - 1);
    close_fds_between(hi + 1, ~0U >> 1);
}
