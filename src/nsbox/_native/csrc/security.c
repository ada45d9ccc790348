/* Runs in: the child, between clone and execve (see child.c for the rules: async-signal-safe,
 * raw syscalls, no malloc, no stdio).
 *
 * The security steps. child.c calls them at four points of its linear list:
 *
 *   1. nsbox_security_oom_score_adj   first of all, while /proc/self is still ours to write
 *   2. nsbox_security_system_paths    after the root filesystem is in place
 *   3. nsbox_security_prepare         just before the credentials change
 *   4. nsbox_security_finish          just after it, as the last steps before the fds and exec
 *
 * The order, as runc and crun have it:
 *   - Dropping from the bounding set needs CAP_SETPCAP, which setresuid to a non-zero uid takes
 *     away (the kernel clears the permitted and effective sets unless PR_SET_KEEPCAPS is set):
 *     so the bounding set is cut BEFORE the uid changes, keepcaps is set when a non-root user
 *     keeps capabilities, and the exact sets are installed with capset AFTER it.
 *   - A seccomp filter may only be installed by a process with no_new_privs or CAP_SYS_ADMIN.
 *     With no_new_privs (the default) it is installed last, right before execve, so the filter
 *     has to allow only what the contained program does. Without no_new_privs it is installed
 *     in step 3, while CAP_SYS_ADMIN is still held, and then also filters the remaining setup
 *     (setresuid, capset, close_range, execve: the default profile allows them all).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define NSBOX_PROC_SUPER_MAGIC 0x9fa0
#define NSBOX_SYSFS_MAGIC 0x62656572

/* Our own copy of struct mount_attr (Linux 5.12), so the build does not depend on the headers. */
struct nsbox_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* The names of the capabilities, for error details (capabilities(7)). */
static const char *const cap_names[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

/* runc's defaults (references.md): kernel files a container must not read, or not write. */
static const char *const masked_paths[] = {
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const readonly_proc_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int failed(struct nsbox_failure *f, int step, int err, const char *detail)
{
    f->step = step;
    f->err = err;
    f->detail = detail;
    return -1;
}

/* --- 1. oom_score_adj ------------------------------------------------------------------------
 * Written first, before this process becomes non-dumpable (which gives /proc/self to root of
 * the initial user namespace) and before it can be in a user namespace that cannot write it.
 * The value is inherited by every child, so a joining child's fork gets it too. Lowering it
 * needs CAP_SYS_RESOURCE; raising it never does. */
int nsbox_security_oom_score_adj(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    if (!s->set_oom_score_adj)
        return 0;
    char text[16];
    int value = s->oom_score_adj, len = 0;
    unsigned int magnitude = value < 0 ? (unsigned int)-value : (unsigned int)value;
    char digits[12];
    int n = 0;
    do
        digits[n++] = (char)('0' + magnitude % 10);
    while ((magnitude /= 10) && n < (int)sizeof digits);
    if (value < 0)
        text[len++] = '-';
    while (n > 0)
        text[len++] = digits[--n];
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return failed(f, NSBOX_STEP_OOM_SCORE_ADJ, errno, "/proc/self/oom_score_adj");
    ssize_t written = write(fd, text, (size_t)len);
    int err = errno;
    close(fd);
    if (written != len)
        return failed(f, NSBOX_STEP_OOM_SCORE_ADJ, err, "/proc/self/oom_score_adj");
    return 0;
}

/* --- 2. system paths --------------------------------------------------------------------------
 * In the container's own mount namespace (its mounts are private by now, so nothing of this
 * reaches the host): /sys read-only with everything below it (the cgroup hierarchies included),
 * /proc/sys, /proc/sysrq-trigger and their kind read-only, /proc/kcore and their kind masked.
 * Without this, root in a container without a user namespace could write host-wide sysctls,
 * trigger SysRq, or move itself out of its cgroup through the host's cgroupfs. */
static int fs_type_is(const char *path, long magic)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

static long set_readonly_recursively(int dirfd, const char *path)
{
    struct nsbox_mount_attr attr = {MOUNT_ATTR_RDONLY, 0, 0, 0};
    int flags = AT_RECURSIVE | (path[0] ? 0 : AT_EMPTY_PATH);
    return syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr);
}

static int make_readonly(const char *path, struct nsbox_failure *f)
{
    /* A bind mount of the path onto itself (with what is mounted below it, binfmt_misc under
     * /proc/sys for one), made read-only as a whole (Linux 5.12); before that, its top mount
     * only. The flags a user namespace locked (nosuid, nodev, noexec) must be kept. */
    unsigned long keep = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT)
            return 0;  /* not on this kernel */
        return failed(f, NSBOX_STEP_SYSTEM_PATHS, errno, path);
    }
    if (set_readonly_recursively(AT_FDCWD, path) == 0)
        return 0;
    if (errno != ENOSYS)
        return failed(f, NSBOX_STEP_SYSTEM_PATHS, errno, path);
    if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
        return failed(f, NSBOX_STEP_SYSTEM_PATHS, errno, path);
    return 0;
}

static int mask(const char *path, struct nsbox_failure *f)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : failed(f, NSBOX_STEP_SYSTEM_PATHS, errno, path);
    int rc;
    if (S_ISDIR(st.st_mode))
        rc = mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   "size=0,mode=0555");
    else
        rc = mount("/dev/null", path, NULL, MS_BIND, NULL);
    if (rc < 0)
        return failed(f, NSBOX_STEP_SYSTEM_PATHS, errno, path);
    return 0;
}

static int make_sys_readonly(struct nsbox_failure *f)
{
    int fd = open("/sys", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* One call for /sys and every mount below it (Linux 5.12). */
    long rc = set_readonly_recursively(fd, "");
    int err = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (err != ENOSYS)
        return failed(f, NSBOX_STEP_SYSTEM_PATHS, err, "/sys");
    /* Older kernels: the two mounts that matter most, one by one. */
    if (make_readonly("/sys", f) < 0)
        return -1;
    if (fs_type_is("/sys/fs/cgroup", 0x01021994 /* TMPFS_MAGIC */) ||
        fs_type_is("/sys/fs/cgroup", 0x63677270 /* CGROUP2_SUPER_MAGIC */))
        return make_readonly("/sys/fs/cgroup", f);
    return 0;
}

int nsbox_security_system_paths(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    if (!s->protect_system_paths)
        return 0;
    int have_proc = fs_type_is("/proc", NSBOX_PROC_SUPER_MAGIC);
    int have_sys = fs_type_is("/sys", NSBOX_SYSFS_MAGIC);
    for (size_t i = 0; i < sizeof masked_paths / sizeof *masked_paths; i++) {
        const char *p = masked_paths[i];
        int in_proc = p[1] == 'p';
        if ((in_proc && have_proc) || (!in_proc && have_sys))
            if (mask(p, f) < 0)
                return -1;
    }
    if (have_proc)
        for (size_t i = 0; i < sizeof readonly_proc_paths / sizeof *readonly_proc_paths; i++)
            if (make_readonly(readonly_proc_paths[i], f) < 0)
                return -1;
    if (have_sys && make_sys_readonly(f) < 0)
        return -1;
    return 0;
}

/* --- seccomp ------------------------------------------------------------------------------- */
static int load_seccomp(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    /* The BPF program was compiled by libseccomp in the parent; the kernel checks it again. */
    struct sock_fprog prog;
    prog.len = (unsigned short)(s->seccomp_bpf_len / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)(uintptr_t)s->seccomp_bpf;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->seccomp_flags, &prog) < 0)
        return failed(f, NSBOX_STEP_SECCOMP, errno, NULL);
    return 0;
}

/* --- 3. before the credentials --------------------------------------------------------------- */
int nsbox_security_prepare(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    /* Without no_new_privs only CAP_SYS_ADMIN allows a filter: install it while we have it. */
    if (s->seccomp_bpf && !s->no_new_privs && load_seccomp(s, f) < 0)
        return -1;
    if (!s->set_caps)
        return 0;
    /* The bounding set, while CAP_SETPCAP is still ours: PR_CAPBSET_READ fails with EINVAL past
     * the last capability this kernel knows. */
    for (int cap = 0; cap < 64; cap++) {
        int has = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (has < 0)
            break;
        if (has && !(s->cap_bounding & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return failed(f, NSBOX_STEP_CAP_BOUNDING, errno,
                          cap < (int)(sizeof cap_names / sizeof *cap_names) ? cap_names[cap] : NULL);
    }
    /* A non-root user that is to keep capabilities: without keepcaps setresuid clears them. */
    if (s->uid > 0 && s->cap_permitted && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return failed(f, NSBOX_STEP_KEEPCAPS, errno, NULL);
    return 0;
}

/* --- 4. after the credentials ---------------------------------------------------------------- */
static int set_capabilities(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0)
        return failed(f, NSBOX_STEP_CAPABILITIES, errno, "capget");
    unsigned long long held = (unsigned long long)data[0].permitted
                              | ((unsigned long long)data[1].permitted << 32);
    /* What the caller asked for by name must be there; the rest of the defaults may be missing
     * where nsbox's own process lacks them (a capability cannot be raised above what it holds). */
    unsigned long long missing = s->cap_permitted & ~held & s->cap_required;
    if (missing) {
        int cap = 0;
        while (!(missing & (1ULL << cap)))
            cap++;
        return failed(f, NSBOX_STEP_CAPABILITIES, EPERM,
                      cap < (int)(sizeof cap_names / sizeof *cap_names) ? cap_names[cap] : NULL);
    }
    unsigned long long permitted = s->cap_permitted & held;
    unsigned long long effective = s->cap_effective & permitted;
    unsigned long long inheritable = s->cap_inheritable & permitted;
    data[0].permitted = (uint32_t)permitted;
    data[1].permitted = (uint32_t)(permitted >> 32);
    data[0].effective = (uint32_t)effective;
    data[1].effective = (uint32_t)(effective >> 32);
    data[0].inheritable = (uint32_t)inheritable;
    data[1].inheritable = (uint32_t)(inheritable >> 32);
    if (syscall(SYS_capset, &header, data) < 0)
        return failed(f, NSBOX_STEP_CAPABILITIES, errno, "capset");
    /* Ambient capabilities survive execve of a program without file capabilities: start from
     * none, then raise exactly those asked for (each must be permitted and inheritable). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return failed(f, NSBOX_STEP_CAP_AMBIENT, errno, NULL);
    for (int cap = 0; cap < 64; cap++)
        if ((s->cap_ambient & inheritable & (1ULL << cap))
            && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return failed(f, NSBOX_STEP_CAP_AMBIENT, errno,
                          cap < (int)(sizeof cap_names / sizeof *cap_names) ? cap_names[cap] : NULL);
    return 0;
}

int nsbox_security_finish(const struct nsbox_spec *s, struct nsbox_failure *f)
{
    if (s->set_caps) {
        if (set_capabilities(s, f) < 0)
            return -1;
        /* execve clears keepcaps too; clear it now so nothing in between depends on it. */
        if (s->uid > 0 && s->cap_permitted && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
            return failed(f, NSBOX_STEP_KEEPCAPS, errno, NULL);
    }
    /* No execve from here on can grant privileges: setuid bits and file capabilities are
     * ignored. Inherited by every child and never cleared. */
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return failed(f, NSBOX_STEP_NO_NEW_PRIVS, errno, NULL);
    /* Last: from here on every syscall, execve included, goes through the filter. */
    if (s->seccomp_bpf && s->no_new_privs && load_seccomp(s, f) < 0)
        return -1;
    return 0;
}
