/* Shared by the parent (spawn.c) and the child (child.c); never part of the cdef. */
#ifndef NSBOX_INTERNAL_H
#define NSBOX_INTERNAL_H

#define _GNU_SOURCE
#include <stdint.h>
#include "nsbox.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080ULL
#endif
#define NSBOX_CLONE_NEWTIME CLONE_NEWTIME
/* Namespaces the child creates itself with unshare, after the parent's setup (see child.c). */
#define NSBOX_LATE_NAMESPACES (NSBOX_CLONE_NEWTIME | CLONE_NEWCGROUP)

/* What travels on the error pipe: one fixed-size record, written in one write() (atomic, since
 * it is smaller than PIPE_BUF). Zero bytes before EOF means execve succeeded. */
enum nsbox_report_kind { NSBOX_REPORT_PID = 1, NSBOX_REPORT_ERROR = 2 };

struct nsbox_report {
    int32_t kind;
    int32_t step;
    int32_t err;
    int32_t pid;
    char detail[240];
};

struct nsbox_child_fds {
    int report_fd;   /* write end of the error pipe, close-on-exec */
    int sync_fd;     /* read end of the sync pipe, or -1 when the parent has nothing to do */
    int in_pid_ns;   /* born in the pid namespace to join: join the others, no second fork */
};

/* A failed step, as the security steps (security.c) return it to child.c, which reports it. */
struct nsbox_failure {
    int step;
    int err;
    const char *detail;
};

/* security.c, called by the child in this order; each returns 0, or -1 filling `f`. */
int nsbox_security_oom_score_adj(const struct nsbox_spec *s, struct nsbox_failure *f);
int nsbox_security_system_paths(const struct nsbox_spec *s, struct nsbox_failure *f);
int nsbox_security_prepare(const struct nsbox_spec *s, struct nsbox_failure *f);
int nsbox_security_finish(const struct nsbox_spec *s, struct nsbox_failure *f);

/* mounts.c, in the child: the new root, its mount plan, pivot_root. 0, or -1 filling `f`. */
int nsbox_rootfs_setup(const struct nsbox_rootfs *rootfs, struct nsbox_failure *f);
/* mounts.c, in a joining child: attach the parent's detached trees. 0, or -1 filling `f`. */
int nsbox_attach_trees(const int *fds, const char *const *dests, int n, struct nsbox_failure *f);

/* Runs in the child; never returns. */
__attribute__((noreturn)) void nsbox_child_main(const struct nsbox_spec *spec,
                                                 struct nsbox_child_fds fds);

#endif
