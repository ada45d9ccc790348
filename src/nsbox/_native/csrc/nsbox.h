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
    NSBOX_STEP_OVERLAY,
    NSBOX_STEP_ROOTFS,
    NSBOX_STEP_MOUNT,
    NSBOX_STEP_MASK,
    NSBOX_STEP_PIVOT_ROOT,
    NSBOX_STEP_HOSTNAME,
    NSBOX_STEP_DOMAINNAME,
    NSBOX_STEP_LOOPBACK,
    NSBOX_STEP_RLIMIT,
    NSBOX_STEP_SETSID,
    NSBOX_STEP_TTY,
    NSBOX_STEP_CHDIR,
    NSBOX_STEP_SETGROUPS,
    NSBOX_STEP_SETGID,
    NSBOX_STEP_SETUID,
    NSBOX_STEP_SECURITY,
    NSBOX_STEP_OOM_SCORE_ADJ,            /* security.c; done first, see there for the order */
    NSBOX_STEP_SYSTEM_PATHS,
    NSBOX_STEP_CAP_BOUNDING,
    NSBOX_STEP_KEEPCAPS,
    NSBOX_STEP_CAPABILITIES,
    NSBOX_STEP_CAP_AMBIENT,
    NSBOX_STEP_NO_NEW_PRIVS,
    NSBOX_STEP_SECCOMP,
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

/* The new root of a container (PivotRoot): what the child does after making every mount private,
 * in order: mount the root (an overlay, or a bind of a directory) on a host directory in its own
 * mount namespace, apply each step of the plan inside it, then pivot_root into it and detach the
 * old root. Python prepares every string and array; the child allocates nothing. Destinations are
 * absolute paths inside the new root, normalised and without "..": the child resolves them with
 * openat2(RESOLVE_IN_ROOT), so no symlink in the rootfs can lead a mount out of it. */
enum nsbox_mount_op {
    NSBOX_MOUNT_FS = 1,    /* a new `fstype` filesystem at dest, configured with `options` */
    NSBOX_MOUNT_BIND,      /* the host's `source`, recursively, at dest */
    NSBOX_MOUNT_DEVICE,    /* a character device node (major, minor, mode) at dest */
    NSBOX_MOUNT_SYMLINK,   /* a symlink at dest whose target is `source` */
    NSBOX_MOUNT_MASK,      /* if dest exists: `source` (/dev/null) over a file, a read-only tmpfs
                              configured with `options` over a directory */
    NSBOX_MOUNT_READONLY   /* if dest exists: dest made read-only, recursively */
};

enum nsbox_mount_flag {
    NSBOX_MOUNT_RDONLY = 1,
    NSBOX_MOUNT_NOSUID = 2,
    NSBOX_MOUNT_NODEV = 4,
    NSBOX_MOUNT_NOEXEC = 8,
    NSBOX_MOUNT_BIND_ON_EPERM = 16,  /* FS, DEVICE: where the kernel refuses (a user namespace),
                                        bind the host's `source` instead */
    NSBOX_MOUNT_SOURCE_IN_ROOT = 32  /* BIND, MASK: `source` is a path inside the new root */
};

struct nsbox_mount {
    int op;                              /* enum nsbox_mount_op */
    int flags;                           /* enum nsbox_mount_flag */
    const char *dest;
    const char *source;
    const char *fstype;
    const char *const *options;          /* key, value, key, value...; a NULL value is a flag */
    int n_options;                       /* pairs */
    unsigned int mode;
    unsigned int major;
    unsigned int minor;
};

/* An overlay filesystem. Layer names are short (symlinks in `layers_dir`, made by Python), so
 * hundreds of layers fit both fsconfig's 256-byte values and mount(2)'s one-page option string. */
struct nsbox_overlay {
    const char *const *lowers;           /* top layer first, as overlayfs orders them */
    const char *const *lower_names;      /* the same layers as the user named them, for errors */
    int n_lowers;
    const char *upper;
    const char *work;
    const char *upper_name;
    const char *const *options;          /* more key/value pairs: source, userxattr, ... */
    int n_options;
    const char *layers_dir;              /* the names are relative to it (chdir), or NULL */
    const char *legacy_data;             /* mount(2) options where "lowerdir+" is unknown (< 6.8) */
    int legacy_only;
    /* A throwaway upper layer in memory, when n_tmpfs_options > 0 (its source at least): the
     * child first mounts a tmpfs so configured, stacked on its own "/", and changes into it;
     * `upper`, `work` and the rootfs's `root` are then names it makes there (upper/ with
     * upper_mode and, unless -1, upper_uid/upper_gid). No host directory is involved, and the
     * tmpfs goes away with the container's mount namespace. */
    const char *const *tmpfs_options;
    int n_tmpfs_options;
    unsigned int upper_mode;
    long long upper_uid;
    long long upper_gid;
};

struct nsbox_rootfs {
    const char *root;                    /* the directory the new root is mounted on: on the host,
                                            or a name in the overlay's tmpfs */
    const char *bind_source;             /* a directory bound there, or NULL and: */
    const struct nsbox_overlay *overlay; /* an overlay mounted there */
    const struct nsbox_mount *mounts;
    int n_mounts;
    int readonly;                        /* the root mount itself read-only, after the plan */
    int become_root;                     /* first setresgid/setresuid(0): in a new user
                                            namespace whose root is not the caller's uid */
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
    const int *cgroup_procs_fds;         /* cgroup v1: cgroup.procs files the child writes "0" to */
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
    int controlling_tty;                 /* make the source of fds[0], a tty, the controlling one */
    const char *cwd;
    long long uid;                       /* -1: unchanged; else 0..2^32-2 */
    long long gid;
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

    /* Security (security.c). Capability sets are bit masks by capability number. */
    int set_oom_score_adj;               /* write oom_score_adj to /proc/self/oom_score_adj */
    int oom_score_adj;
    int protect_system_paths;            /* mask /proc/kcore &c., /proc/sys and /sys read-only */
    int set_caps;                        /* apply the capability sets below */
    unsigned long long cap_bounding;
    unsigned long long cap_permitted;
    unsigned long long cap_effective;
    unsigned long long cap_inheritable;
    unsigned long long cap_ambient;
    unsigned long long cap_required;     /* fail unless these can be permitted (asked by name) */
    int no_new_privs;
    const unsigned char *seccomp_bpf;    /* struct sock_filter[], compiled by the parent, or NULL */
    unsigned int seccomp_bpf_len;        /* in bytes */
    unsigned int seccomp_flags;          /* SECCOMP_FILTER_FLAG_* */

    /* The new root and its mount plan (PivotRoot, mounts.c), or NULL to keep the current root. */
    const struct nsbox_rootfs *rootfs;

    /* Detached trees (nsbox_clone_readonly) to attach in the current root after joining, in a
     * mount namespace of the process's own (new_ns has CLONE_NEWNS): Container.call lends the
     * host's Python to a root that lacks it. */
    const int *attach_fds;
    const char *const *attach_dests;
    int n_attach;
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

/* The fork mode of Container.call (child.c): called in a fork of the caller's single-threaded
 * process. They return on success; on failure they write a report to report_fd and _exit. */
void nsbox_fork_join(const struct nsbox_spec *spec, int report_fd);
void nsbox_fork_enter(const struct nsbox_spec *spec, int report_fd, int reply_fd, int parent);

/* For an OverlayRootfs used alone, in the caller's own mount namespace (`layers_dir` must be
 * NULL: the names are absolute). Returns 0, or -1 with step/err/detail filled. */
int nsbox_overlay_mount(const struct nsbox_overlay *overlay, const char *target,
                        struct nsbox_result *result);
/* A detached, recursive, read-only copy of the host's `path`: an fd, or -errno. */
int nsbox_clone_readonly(const char *path);
/* umount2(target, MNT_DETACH): 0 or an errno. */
int nsbox_umount(const char *target);
/* The filesystem type (statfs f_type) of path, or -errno. */
long long nsbox_fs_magic(const char *path);

/* 1 when the kernel has clone3 (Linux 5.3), which nsbox_spawn prefers. */
int nsbox_has_clone3(void);
