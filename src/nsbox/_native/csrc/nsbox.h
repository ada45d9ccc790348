/* The boundary between Python and C: this file is both the cffi cdef and the C header.
 *
 * Python fills one `struct nsbox_spec` describing a process to start; `nsbox_spawn` starts it
 * and reports either its pid/pidfd or the step that failed. Keep this file to declarations
 * that cffi's cdef parser accepts (no #include, no macros with bodies).
 */

#define NSBOX_ABI_VERSION 1

/* Setup steps, in the order the child performs them; the parent-side steps come last. */
enum nsbox_step {
    NSBOX_STEP_NONE = 0,
    NSBOX_STEP_SIGNALS,
    NSBOX_STEP_SYNC,
    NSBOX_STEP_SETNS,
    NSBOX_STEP_FORK,
    NSBOX_STEP_TIMENS,
    NSBOX_STEP_CGROUPNS,
    NSBOX_STEP_MOUNT_PRIVATE,
    NSBOX_STEP_MOUNT_PROC,
    NSBOX_STEP_ROOTFS,
    NSBOX_STEP_HOSTNAME,
    NSBOX_STEP_DOMAINNAME,
    NSBOX_STEP_LOOPBACK,
    NSBOX_STEP_RLIMIT,
    NSBOX_STEP_SETSID,
    NSBOX_STEP_CHDIR,
    NSBOX_STEP_SETGROUPS,
    NSBOX_STEP_SETGID,
    NSBOX_STEP_SETUID,
    NSBOX_STEP_SECURITY,
    NSBOX_STEP_FDS,
    NSBOX_STEP_EXEC,
    /* parent side */
    NSBOX_STEP_PIPE,
    NSBOX_STEP_CLONE,
    NSBOX_STEP_SETGROUPS_DENY,
    NSBOX_STEP_UID_MAP,
    NSBOX_STEP_GID_MAP,
    NSBOX_STEP_CGROUP,
    NSBOX_STEP_REPORT,
    NSBOX_STEP_PIDFD,
    NSBOX_STEP_COUNT
};

struct nsbox_rlimit {
    int resource;
    unsigned long long soft;
    unsigned long long hard;
};

/* In the child, fd `dst` becomes a copy of the parent's fd `src`; every other fd is closed. */
struct nsbox_fdmap {
    int src;
    int dst;
};

struct nsbox_spec {
    /* Namespaces. `new_ns` are CLONE_NEW* flags to create (CLONE_NEWTIME included: the child
     * creates that one itself so it can set the clock offsets first). Joining happens first,
     * in a first child that then forks the process, which is what makes a joined pid namespace
     * apply to it. */
    unsigned long long new_ns;
    int join_pidfd;                      /* setns(pidfd, join_pidfd_flags), or -1 */
    unsigned long long join_pidfd_flags;
    const int *join_fds;                 /* namespace fds, user namespace first */
    int n_join_fds;
    const char *uid_map;                 /* written by the parent to /proc/PID/uid_map, or NULL */
    const char *gid_map;
    int deny_setgroups;                  /* write "deny" to /proc/PID/setgroups first */
    const char *timens_offsets;          /* for /proc/self/timens_offsets, or NULL */

    /* cgroup: the process is inside before it executes anything. */
    int cgroup_fd;                       /* cgroup v2 directory (CLONE_INTO_CGROUP), or -1 */
    const int *cgroup_procs_fds;         /* cgroup v1: cgroup.procs files to write the pid to */
    int n_cgroup_procs_fds;

    /* Container-wide setup, done once by the process that creates the namespaces. */
    int make_mounts_private;
    int mount_proc;                      /* a /proc of the new pid namespace over the host's */
    const char *hostname;
    const char *domainname;
    int loopback_up;

    /* Per-process settings. */
    const struct nsbox_rlimit *rlimits;
    int n_rlimits;
    int new_session;
    const char *cwd;
    int uid;                             /* -1: unchanged */
    int gid;
    const unsigned int *groups;
    int n_groups;
    int set_groups;                      /* call setgroups(groups) */
    const struct nsbox_fdmap *fds;
    int n_fds;
    int exec_fd;                         /* execveat(exec_fd, "") instead of a path, or -1 */
    const char *path;                    /* program; looked up in search_path without a '/' */
    const char *search_path;
    char *const *argv;
    char *const *envp;
};

struct nsbox_result {
    int pid;
    int pidfd;
    int step;                            /* NSBOX_STEP_NONE on success */
    int err;
    char detail[240];
};

/* Start the process `spec` describes. Returns 0 and fills pid/pidfd, or returns -1 with
 * step/err/detail naming what failed (the child, if any, is already reaped). */
int nsbox_spawn(const struct nsbox_spec *spec, struct nsbox_result *result);

const char *nsbox_step_name(int step);

/* 1 when the kernel has clone3 (Linux 5.3), which nsbox_spawn prefers. */
int nsbox_has_clone3(void);
