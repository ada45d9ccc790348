/* Runs in: the child, between clone and execve (nsbox_rootfs_setup), and the parent for an
 * OverlayRootfs used alone (nsbox_overlay_mount, nsbox_umount, nsbox_fs_magic).
 *
 * The new root of a container, in the order crun and runc build it:
 *
 *   1. The root is mounted on a host directory: an overlay of the layers, or a recursive bind
 *      of a directory. The child is in its own mount namespace, with every mount private, so
 *      the host never sees this mount and nothing has to be unmounted afterwards: it goes away
 *      with the namespace. (Mounting here rather than in the parent is also what makes rootless
 *      work: only inside its user namespace may an unprivileged user mount an overlay.)
 *   2. Each step of the plan. A mount is first made detached (fsopen/fsconfig/fsmount for a
 *      new filesystem, open_tree(OPEN_TREE_CLONE) for a bind), given its flags while still
 *      detached (mount_setattr with AT_RECURSIVE: a read-only bind is read-only with every
 *      submount, and is never writable inside, not even for an instant), and only then attached
 *      with move_mount onto an O_PATH fd of its destination. That fd comes from openat2 with
 *      RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: "..", absolute symlinks and /proc magic links
 *      all stay inside the new root. A rootfs whose /etc is a symlink to the host's /etc gets
 *      its mount inside the rootfs (or an error), never on the host's /etc: the class of
 *      CVE-2021-30465, where runc checked a path and then mounted by name. Missing mount points
 *      are created one component at a time, each below a parent resolved the same way.
 *   3. pivot_root(".", ".") from inside the new root, then umount2(".", MNT_DETACH): the old
 *      root is stacked on top of the new one by pivot_root and detached at once, so no
 *      directory is needed for it and nothing of the host stays reachable (the trick of LXC,
 *      runc and crun's do_pivot).
 *
 * A throwaway upper layer may live in memory instead (mount_in_memory): a tmpfs of the child's
 * own mount namespace holds upper/, work/ and the root's mount point, so a container leaves
 * nothing on the host's disk.
 *
 * Every function used by the child is async-signal-safe: raw system calls, buffers on the stack
 * or prepared by Python, nothing allocated. Failures are returned as (step, errno, path) for
 * child.c to report; where the kernel explains a failed filesystem creation in the fs_context
 * log, its words are appended to the path.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The new mount API and openat2 (Linux 5.2, 5.6, 5.12) by number, with our own copies of the
 * constants and structures: the build must not depend on the age of the C library's headers,
 * and <linux/mount.h> cannot be included next to <sys/mount.h> with some of them. These numbers
 * are the same on every architecture. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

#define NSBOX_OPEN_TREE_CLONE 1
#define NSBOX_AT_RECURSIVE 0x8000
#define NSBOX_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define NSBOX_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define NSBOX_FSOPEN_CLOEXEC 1
#define NSBOX_FSMOUNT_CLOEXEC 1
#define NSBOX_FSCONFIG_SET_FLAG 0
#define NSBOX_FSCONFIG_SET_STRING 1
#define NSBOX_FSCONFIG_CMD_CREATE 6
#define NSBOX_MOUNT_ATTR_RDONLY 0x01
#define NSBOX_MOUNT_ATTR_NOSUID 0x02
#define NSBOX_MOUNT_ATTR_NODEV 0x04
#define NSBOX_MOUNT_ATTR_NOEXEC 0x08
#define NSBOX_RESOLVE_NO_MAGICLINKS 0x02
#define NSBOX_RESOLVE_IN_ROOT 0x10

struct nsbox_open_how {
    uint64_t flags, mode, resolve;
};

struct nsbox_mount_attr_v0 {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Where a failure's detail is composed when it has more than a path; the parent passes its
 * own. Thread-local: a child that shares the parent's memory until it executes (spawn.c) uses
 * the buffer of the thread that spawned it, which waits meanwhile; others' are untouched. */
static __thread char child_detail[240];

struct ctx {
    struct nsbox_failure *f;
    char *detail;           /* a buffer of detail_len bytes for composed details */
    size_t detail_len;
};

/* --- small helpers, async-signal-safe ------------------------------------------------------- */

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int contains(const char *haystack, const char *needle)
{
    size_t n = length(needle);
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < n && haystack[i] == needle[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static void close_keeping_errno(int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

/* Append the last error message of an fs_context's log ("e overlay: ...") to `out`. */
static void append_fs_log(int fs_fd, char *out, size_t size, size_t used)
{
    char message[200], last[200];
    last[0] = '\0';
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(fs_fd, message, sizeof message - 1);
        if (n <= 0)
            break;
        message[n] = '\0';
        if (n > 2 && message[0] == 'e' && message[1] == ' ')
            for (ssize_t j = 0; j <= n - 2; j++)
                last[j] = message[j + 2];
    }
    if (!last[0] || used + 3 >= size)
        return;
    const char *sep = ": ";
    for (; *sep && used < size - 1; sep++)
        out[used++] = *sep;
    for (const char *p = last; *p && *p != '\n' && used < size - 1; p++)
        out[used++] = *p;
    out[used] = '\0';
}

/* Record a failure; with an fs_context fd, the kernel's explanation follows the path. Returns
 * -1, so `return failed(...)` reads as the error path it is. */
static int failed(struct ctx *c, int step, int err, const char *path, int fs_fd)
{
    c->f->step = step;
    c->f->err = err;
    c->f->detail = path;
    if (fs_fd >= 0 && path && c->detail) {
        size_t used = 0;
        for (; path[used] && used < c->detail_len - 1; used++)
            c->detail[used] = path[used];
        c->detail[used] = '\0';
        append_fs_log(fs_fd, c->detail, c->detail_len, used);
        c->f->detail = c->detail;
    }
    close_keeping_errno(fs_fd);
    errno = err;
    return -1;
}

static unsigned long long mount_attrs(int flags)
{
    unsigned long long attrs = 0;
    if (flags & NSBOX_MOUNT_RDONLY)
        attrs |= NSBOX_MOUNT_ATTR_RDONLY;
    if (flags & NSBOX_MOUNT_NOSUID)
        attrs |= NSBOX_MOUNT_ATTR_NOSUID;
    if (flags & NSBOX_MOUNT_NODEV)
        attrs |= NSBOX_MOUNT_ATTR_NODEV;
    if (flags & NSBOX_MOUNT_NOEXEC)
        attrs |= NSBOX_MOUNT_ATTR_NOEXEC;
    return attrs;
}

/* --- the new mount API ------------------------------------------------------------------------ */

/* An O_PATH fd of `path` inside the new root: ".." stops at the root, absolute symlinks start
 * from it, and /proc's magic links are refused. */
static int open_in_root(int root_fd, const char *path)
{
    struct nsbox_open_how how = {O_PATH | O_CLOEXEC, 0,
                                 NSBOX_RESOLVE_IN_ROOT | NSBOX_RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
}

static int attach(int mount_fd, int dest_fd)
{
    return (int)syscall(SYS_move_mount, mount_fd, "", dest_fd, "",
                        NSBOX_MOVE_MOUNT_F_EMPTY_PATH | NSBOX_MOVE_MOUNT_T_EMPTY_PATH);
}

static int set_attrs(int mount_fd, unsigned long long attrs)
{
    if (!attrs)
        return 0;
    struct nsbox_mount_attr_v0 attr = {attrs, 0, 0, 0};
    return (int)syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH | NSBOX_AT_RECURSIVE,
                        &attr, sizeof attr);
}

/* A detached copy of the tree at dirfd/path (recursive unless `single`). */
static int clone_tree(int dirfd, const char *path, int single)
{
    unsigned int flags = NSBOX_OPEN_TREE_CLONE | O_CLOEXEC;
    if (!single)
        flags |= NSBOX_AT_RECURSIVE;
    if (!*path)
        flags |= AT_EMPTY_PATH;
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}

/* A detached mount of a new filesystem. On failure returns -1 with *fs_fd still open (for its
 * log) when the failure came after fsopen, else -1. */
static int new_filesystem(const char *fstype, const char *const *options, int n_options,
                          unsigned long long attrs, int *fs_fd)
{
    *fs_fd = (int)syscall(SYS_fsopen, fstype, NSBOX_FSOPEN_CLOEXEC);
    if (*fs_fd < 0)
        return -1;
    for (int i = 0; i < n_options; i++) {
        const char *key = options[2 * i], *value = options[2 * i + 1];
        int cmd = value ? NSBOX_FSCONFIG_SET_STRING : NSBOX_FSCONFIG_SET_FLAG;
        if (syscall(SYS_fsconfig, *fs_fd, cmd, key, value, 0) < 0)
            return -1;
    }
    if (syscall(SYS_fsconfig, *fs_fd, NSBOX_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -1;
    int mount_fd = (int)syscall(SYS_fsmount, *fs_fd, NSBOX_FSMOUNT_CLOEXEC, attrs);
    if (mount_fd < 0)
        return -1;
    close(*fs_fd);
    *fs_fd = -1;
    return mount_fd;
}

/* --- destinations inside the new root --------------------------------------------------------- */

/* The directory `path` (absolute, inside the new root, in a writable buffer), created component
 * by component where missing. Each component is resolved from the root again, so a symlink
 * met on the way is followed inside the root only. Returns an O_PATH fd. */
static int directory_creating(int root_fd, char *path)
{
    int fd = open_in_root(root_fd, path);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    int parent = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    if (parent < 0)
        return -1;
    char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        char *end = p;
        while (*end && *end != '/')
            end++;
        char saved = *end;
        *end = '\0';
        int next = open_in_root(root_fd, path);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(parent, p, 0755) < 0 && errno != EEXIST) {
                *end = saved;
                close_keeping_errno(parent);
                return -1;
            }
            next = open_in_root(root_fd, path);
        }
        *end = saved;
        close_keeping_errno(parent);
        if (next < 0)
            return -1;
        parent = next;
        for (p = end; *p == '/'; p++)
            ;
    }
    return parent;
}

/* Split `dest` into its parent directory (created where missing; an O_PATH fd is returned) and
 * its last component (*name, pointing into `buf`). */
static int parent_creating(int root_fd, const char *dest, char *buf, size_t size,
                           const char **name)
{
    size_t n = length(dest);
    if (n == 0 || n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    __builtin_memcpy(buf, dest, n + 1);
    size_t slash = n;
    while (slash > 0 && buf[slash - 1] != '/')
        slash--;
    *name = buf + slash;
    if (slash <= 1) {  /* directly below the root */
        return fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
    }
    buf[slash - 1] = '\0';
    int fd = directory_creating(root_fd, buf);
    return fd;
}

/* An O_PATH fd of `dest`, created where missing: an empty directory, or an empty file. */
static int mount_point(int root_fd, const char *dest, int is_dir)
{
    char buf[4096];
    if (is_dir) {
        size_t n = length(dest);
        if (n >= sizeof buf) {
            errno = ENAMETOOLONG;
            return -1;
        }
        __builtin_memcpy(buf, dest, n + 1);
        return directory_creating(root_fd, buf);
    }
    int fd = open_in_root(root_fd, dest);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    const char *name;
    int parent = parent_creating(root_fd, dest, buf, sizeof buf, &name);
    if (parent < 0)
        return -1;
    if (mknodat(parent, name, S_IFREG | 0644, 0) < 0 && errno != EEXIST) {
        close_keeping_errno(parent);
        return -1;
    }
    close(parent);
    return open_in_root(root_fd, dest);
}

static int is_directory(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Attach a detached mount at dest (created where missing, as a directory or a file like the
 * mount's own root). Closes mount_fd. */
static int attach_at(struct ctx *c, int root_fd, int mount_fd, const struct nsbox_mount *m,
                     int step)
{
    int dest = mount_point(root_fd, m->dest, is_directory(mount_fd));
    if (dest < 0) {
        close_keeping_errno(mount_fd);
        return failed(c, step, errno, m->dest, -1);
    }
    int rc = attach(mount_fd, dest);
    close_keeping_errno(dest);
    close_keeping_errno(mount_fd);
    return rc < 0 ? failed(c, step, errno, m->dest, -1) : 0;
}

/* --- the steps of the plan ---------------------------------------------------------------------- */

/* A detached copy of the plan's `source`: a host path, or one inside the new root. */
static int clone_source(int root_fd, const struct nsbox_mount *m, int single)
{
    if (!(m->flags & NSBOX_MOUNT_SOURCE_IN_ROOT))
        return clone_tree(AT_FDCWD, m->source, single);
    int source = open_in_root(root_fd, m->source);
    if (source < 0)
        return -1;
    int mount_fd = clone_tree(source, "", single);
    close_keeping_errno(source);
    return mount_fd;
}

static int bind_source(struct ctx *c, int root_fd, const struct nsbox_mount *m, int single)
{
    int mount_fd = clone_source(root_fd, m, single);
    if (mount_fd < 0)
        return failed(c, NSBOX_STEP_MOUNT, errno, m->dest, -1);
    if (set_attrs(mount_fd, mount_attrs(m->flags)) < 0) {
        close_keeping_errno(mount_fd);
        return failed(c, NSBOX_STEP_MOUNT, errno, m->dest, -1);
    }
    return attach_at(c, root_fd, mount_fd, m, NSBOX_STEP_MOUNT);
}

static int do_filesystem(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    int fs_fd;
    int mount_fd = new_filesystem(m->fstype, m->options, m->n_options, mount_attrs(m->flags),
                                  &fs_fd);
    if (mount_fd < 0) {
        /* In a user namespace that does not own the network namespace, sysfs is refused: the
         * host's, bound read-only, is what runc gives rootless containers then. */
        if (errno == EPERM && (m->flags & NSBOX_MOUNT_BIND_ON_EPERM) && m->source) {
            close_keeping_errno(fs_fd);
            return bind_source(c, root_fd, m, 0);
        }
        return failed(c, NSBOX_STEP_MOUNT, errno, m->dest, fs_fd);
    }
    return attach_at(c, root_fd, mount_fd, m, NSBOX_STEP_MOUNT);
}

static int do_device(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    char buf[4096];
    const char *name;
    int parent = parent_creating(root_fd, m->dest, buf, sizeof buf, &name);
    if (parent < 0)
        return failed(c, NSBOX_STEP_MOUNT, errno, m->dest, -1);
    int rc = mknodat(parent, name, S_IFCHR | m->mode, makedev(m->major, m->minor));
    int err = errno;
    close(parent);
    if (rc == 0 || err == EEXIST)
        return 0;
    /* Without CAP_MKNOD in the initial user namespace (rootless): the host's node, bound. */
    if (err == EPERM && (m->flags & NSBOX_MOUNT_BIND_ON_EPERM) && m->source)
        return bind_source(c, root_fd, m, 1);
    return failed(c, NSBOX_STEP_MOUNT, err, m->dest, -1);
}

static int do_symlink(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    char buf[4096];
    const char *name;
    int parent = parent_creating(root_fd, m->dest, buf, sizeof buf, &name);
    if (parent < 0)
        return failed(c, NSBOX_STEP_MOUNT, errno, m->dest, -1);
    int rc = symlinkat(m->source, parent, name);
    int err = errno;
    close(parent);
    return rc < 0 && err != EEXIST ? failed(c, NSBOX_STEP_MOUNT, err, m->dest, -1) : 0;
}

/* runc's masked paths: a file is hidden under /dev/null, a directory under an empty read-only
 * tmpfs. A path this kernel does not have is fine. */
static int do_mask(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    int dest = open_in_root(root_fd, m->dest);
    if (dest < 0)
        return errno == ENOENT ? 0 : failed(c, NSBOX_STEP_MASK, errno, m->dest, -1);
    int mount_fd, fs_fd = -1;
    if (is_directory(dest))
        mount_fd = new_filesystem("tmpfs", m->options, m->n_options,
                                  NSBOX_MOUNT_ATTR_RDONLY | mount_attrs(m->flags), &fs_fd);
    else
        mount_fd = clone_source(root_fd, m, 1);
    if (mount_fd < 0) {
        close_keeping_errno(dest);
        return failed(c, NSBOX_STEP_MASK, errno, m->dest, fs_fd);
    }
    int rc = attach(mount_fd, dest);
    close_keeping_errno(mount_fd);
    close_keeping_errno(dest);
    return rc < 0 ? failed(c, NSBOX_STEP_MASK, errno, m->dest, -1) : 0;
}

/* runc's read-only paths: the path bound onto itself, read-only with everything below it. */
static int do_readonly(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    int dest = open_in_root(root_fd, m->dest);
    if (dest < 0)
        return errno == ENOENT ? 0 : failed(c, NSBOX_STEP_MASK, errno, m->dest, -1);
    int mount_fd = clone_tree(dest, "", 0);
    int rc = -1;
    if (mount_fd >= 0 && set_attrs(mount_fd, NSBOX_MOUNT_ATTR_RDONLY | mount_attrs(m->flags)) == 0)
        rc = attach(mount_fd, dest);
    close_keeping_errno(mount_fd);
    close_keeping_errno(dest);
    return rc < 0 ? failed(c, NSBOX_STEP_MASK, errno, m->dest, -1) : 0;
}

static int do_step(struct ctx *c, int root_fd, const struct nsbox_mount *m)
{
    switch (m->op) {
    case NSBOX_MOUNT_FS:
        return do_filesystem(c, root_fd, m);
    case NSBOX_MOUNT_BIND:
        return bind_source(c, root_fd, m, 0);
    case NSBOX_MOUNT_DEVICE:
        return do_device(c, root_fd, m);
    case NSBOX_MOUNT_SYMLINK:
        return do_symlink(c, root_fd, m);
    case NSBOX_MOUNT_MASK:
        return do_mask(c, root_fd, m);
    case NSBOX_MOUNT_READONLY:
        return do_readonly(c, root_fd, m);
    default:
        return failed(c, NSBOX_STEP_MOUNT, EINVAL, m->dest, -1);
    }
}

/* --- the overlay ---------------------------------------------------------------------------- */

/* Whether the last fsconfig failed because the kernel does not know the parameter at all. */
static int unknown_parameter(int fs_fd)
{
    char message[200];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(fs_fd, message, sizeof message - 1);
        if (n <= 0)
            return 0;
        message[n] = '\0';
        if (contains(message, "nknown parameter"))
            return 1;
    }
    return 0;
}

/* The overlay on `target`. With the new mount API each lower layer is its own "lowerdir+" value
 * (Linux 6.8), so the count is bounded only by overlayfs (500 layers); before 6.8 the kernel
 * rejects "lowerdir+" as unknown and the classic mount(2) string is used, which must fit in a
 * page (the short names make 500 layers fit). */
static int mount_overlay(struct ctx *c, const struct nsbox_overlay *ov, const char *target)
{
    if (ov->layers_dir && chdir(ov->layers_dir) < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, ov->layers_dir, -1);
    if (!ov->legacy_only) {
        int fs_fd = (int)syscall(SYS_fsopen, "overlay", NSBOX_FSOPEN_CLOEXEC);
        if (fs_fd < 0)
            return failed(c, NSBOX_STEP_OVERLAY, errno, "overlay", -1);
        for (int i = 0; i < ov->n_options; i++) {
            const char *key = ov->options[2 * i], *value = ov->options[2 * i + 1];
            int cmd = value ? NSBOX_FSCONFIG_SET_STRING : NSBOX_FSCONFIG_SET_FLAG;
            if (syscall(SYS_fsconfig, fs_fd, cmd, key, value, 0) < 0)
                return failed(c, NSBOX_STEP_OVERLAY, errno, key, fs_fd);
        }
        int legacy = 0;
        for (int i = 0; i < ov->n_lowers && !legacy; i++) {
            if (syscall(SYS_fsconfig, fs_fd, NSBOX_FSCONFIG_SET_STRING, "lowerdir+", ov->lowers[i],
                        0) == 0)
                continue;
            if (i == 0 && errno == EINVAL && unknown_parameter(fs_fd)) {
                if (!ov->legacy_data || !ov->legacy_data[0])  /* Python expected Linux 6.8 */
                    return failed(c, NSBOX_STEP_OVERLAY, EINVAL, "lowerdir+ (Linux 6.8)", fs_fd);
                legacy = 1;
            } else
                return failed(c, NSBOX_STEP_OVERLAY, errno, ov->lower_names[i], fs_fd);
        }
        if (!legacy) {
            if (ov->upper && syscall(SYS_fsconfig, fs_fd, NSBOX_FSCONFIG_SET_STRING, "upperdir",
                                     ov->upper, 0) < 0)
                return failed(c, NSBOX_STEP_OVERLAY, errno, ov->upper_name, fs_fd);
            if (ov->work && syscall(SYS_fsconfig, fs_fd, NSBOX_FSCONFIG_SET_STRING, "workdir",
                                    ov->work, 0) < 0)
                return failed(c, NSBOX_STEP_OVERLAY, errno, ov->upper_name, fs_fd);
            if (syscall(SYS_fsconfig, fs_fd, NSBOX_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return failed(c, NSBOX_STEP_OVERLAY, errno, target, fs_fd);
            int mount_fd = (int)syscall(SYS_fsmount, fs_fd, NSBOX_FSMOUNT_CLOEXEC, 0);
            if (mount_fd < 0)
                return failed(c, NSBOX_STEP_OVERLAY, errno, target, fs_fd);
            close(fs_fd);
            int rc = (int)syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, target,
                                  NSBOX_MOVE_MOUNT_F_EMPTY_PATH);
            close_keeping_errno(mount_fd);
            return rc < 0 ? failed(c, NSBOX_STEP_OVERLAY, errno, target, -1) : 0;
        }
        close(fs_fd);
    }
    if (mount("nsbox-overlay", target, "overlay", 0, ov->legacy_data) < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, target, -1);
    return 0;
}

/* The overlay of a throwaway upper layer in memory (nsbox_overlay.n_tmpfs_options > 0), stacked
 * on this mount namespace's "/"; returns an fd of it, the new root, or -1.
 *
 * A tmpfs is stacked on "/" first and made the working directory, and upper/, work/ and a mount
 * point are made in it. Stacked on "/", it is in no path's way: a lookup starts at the process's
 * root, the mount underneath (why switch_root needs a chroot after "mount --move . /"), so the
 * layers, bind sources and host device nodes of the plan resolve as before, while the relative
 * names of the overlay reach the tmpfs. The overlay is mounted on that mount point by the usual
 * code (mount(2) before Linux 6.8 needs a path), then a copy of it is stacked on "/" in the
 * tmpfs's place, and the tmpfs is detached: the overlay alone holds it now. Left below the new
 * root, it would be the mount the detach after pivot_root removes, and the old root would stay
 * on top, where processes joining the namespace would find it. No host directory is used, and
 * nothing is left when the namespace goes. */
static int mount_in_memory(struct ctx *c, const struct nsbox_overlay *ov, const char *root)
{
    int fs_fd;
    int mount_fd = new_filesystem("tmpfs", ov->tmpfs_options, ov->n_tmpfs_options, 0, &fs_fd);
    if (mount_fd < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, "the upper layer's tmpfs", fs_fd);
    int rc = (int)syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, "/",
                          NSBOX_MOVE_MOUNT_F_EMPTY_PATH);
    if (rc == 0)
        rc = fchdir(mount_fd);
    close_keeping_errno(mount_fd);
    if (rc < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, "the upper layer's tmpfs", -1);
    /* The merged root shows upper/'s mode and owner: Python passes the top layer's. The mode
     * is set after the owner, since a chown may clear the set-group-ID bit. */
    if (mkdirat(AT_FDCWD, ov->upper, 0700) < 0
        || ((ov->upper_uid >= 0 || ov->upper_gid >= 0)
            && fchownat(AT_FDCWD, ov->upper, (uid_t)ov->upper_uid, (gid_t)ov->upper_gid, 0) < 0)
        || fchmodat(AT_FDCWD, ov->upper, ov->upper_mode, 0) < 0
        || mkdirat(AT_FDCWD, ov->work, 0700) < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, ov->upper_name, -1);
    if (mkdirat(AT_FDCWD, root, 0755) < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, root, -1);
    if (mount_overlay(c, ov, root) < 0)
        return -1;
    int root_fd = clone_tree(AT_FDCWD, root, 1);
    if (root_fd < 0)
        return failed(c, NSBOX_STEP_OVERLAY, errno, root, -1);
    /* "/" names the topmost mount there, the tmpfs, for umount2. */
    if (umount2("/", MNT_DETACH) < 0
        || syscall(SYS_move_mount, root_fd, "", AT_FDCWD, "/", NSBOX_MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        close_keeping_errno(root_fd);
        return failed(c, NSBOX_STEP_OVERLAY, errno, root, -1);
    }
    return root_fd;
}

/* --- the whole: root, plan, pivot -------------------------------------------------------------- */

static int set_up_root(struct ctx *c, const struct nsbox_rootfs *r)
{
    /* 0. Root of the user namespace, as runc's nsexec does. Its creator is still the host's
     * uid, which the namespace does not map when its root is another (IdMap.range): what the
     * overlay would create as that unmapped user fails. Raw syscalls, as in child.c. */
    if (r->become_root && (syscall(SYS_setresgid, 0, 0, 0) < 0
                           || syscall(SYS_setresuid, 0, 0, 0) < 0))
        return failed(c, NSBOX_STEP_ROOTFS, errno, "setresuid(0) in the user namespace", -1);

    /* 1. The root, on a host directory of this (private) mount namespace, or, with an upper
     * layer in memory, stacked on its "/". */
    int in_memory = r->overlay && r->overlay->n_tmpfs_options > 0;
    int root_fd = -1;
    if (in_memory) {
        root_fd = mount_in_memory(c, r->overlay, r->root);
        if (root_fd < 0)
            return -1;
    } else if (r->overlay) {
        if (mount_overlay(c, r->overlay, r->root) < 0)
            return -1;
    } else if (r->bind_source) {
        int mount_fd = clone_tree(AT_FDCWD, r->bind_source, 0);
        if (mount_fd < 0)
            return failed(c, NSBOX_STEP_ROOTFS, errno, r->bind_source, -1);
        int rc = (int)syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, r->root,
                              NSBOX_MOVE_MOUNT_F_EMPTY_PATH);
        close_keeping_errno(mount_fd);
        if (rc < 0)
            return failed(c, NSBOX_STEP_ROOTFS, errno, r->root, -1);
    }
    if (!in_memory) {
        root_fd = open(r->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
            return failed(c, NSBOX_STEP_ROOTFS, errno, r->root, -1);
    }

    /* 2. The plan, in order, inside the new root. */
    for (int i = 0; i < r->n_mounts; i++)
        if (do_step(c, root_fd, &r->mounts[i]) < 0) {
            close_keeping_errno(root_fd);
            return -1;
        }
    if (r->readonly) {
        struct nsbox_mount_attr_v0 attr = {NSBOX_MOUNT_ATTR_RDONLY, 0, 0, 0};
        if (syscall(SYS_mount_setattr, root_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
            close_keeping_errno(root_fd);
            return failed(c, NSBOX_STEP_ROOTFS, errno, "/", -1);
        }
    }

    /* 3. pivot_root(".", ".") with the new root as the working directory puts the old root on
     * top of it; "." then names the old root, which is detached with everything below it. */
    int rc = fchdir(root_fd);
    close_keeping_errno(root_fd);
    if (rc < 0)
        return failed(c, NSBOX_STEP_PIVOT_ROOT, errno, r->root, -1);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return failed(c, NSBOX_STEP_PIVOT_ROOT, errno, r->root, -1);
    if (umount2(".", MNT_DETACH) < 0)
        return failed(c, NSBOX_STEP_PIVOT_ROOT, errno, "the old root", -1);
    if (chdir("/") < 0)
        return failed(c, NSBOX_STEP_PIVOT_ROOT, errno, "/", -1);
    return 0;
}

int nsbox_rootfs_setup(const struct nsbox_rootfs *r, struct nsbox_failure *f)
{
    struct ctx c = {f, child_detail, sizeof child_detail};
    /* Device nodes and mount points get exactly the modes of the plan. */
    mode_t saved_umask = umask(0);
    int rc = set_up_root(&c, r);
    umask(saved_umask);
    return rc;
}

/* --- the parent's side, for an OverlayRootfs used alone ----------------------------------------- */

int nsbox_overlay_mount(const struct nsbox_overlay *ov, const char *target,
                        struct nsbox_result *res)
{
    char detail[sizeof res->detail];
    struct nsbox_failure f = {0, 0, NULL};
    struct ctx c = {&f, detail, sizeof detail};
    __builtin_memset(res, 0, sizeof *res);
    res->pid = res->pidfd = -1;
    /* A chdir would move every thread of the caller; an upper layer in memory is the child's. */
    if (ov->layers_dir || ov->n_tmpfs_options > 0) {
        res->step = NSBOX_STEP_OVERLAY;
        res->err = EINVAL;
        return -1;
    }
    if (mount_overlay(&c, ov, target) == 0)
        return 0;
    res->step = f.step;
    res->err = f.err;
    if (f.detail) {
        size_t i;
        for (i = 0; f.detail[i] && i < sizeof res->detail - 1; i++)
            res->detail[i] = f.detail[i];
        res->detail[i] = '\0';
    }
    return -1;
}

int nsbox_umount(const char *target)
{
    return umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? errno : 0;
}

long long nsbox_fs_magic(const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0)
        return -(long long)errno;
    return (long long)(unsigned long)st.f_type;
}

/* --- the host's Python lent to a call process ---------------------------------------------------- */

/* Parent side: a detached, recursive, read-only copy of the host's `path`; an fd or -errno. */
int nsbox_clone_readonly(const char *path)
{
    int fd = clone_tree(AT_FDCWD, path, 0);
    if (fd < 0)
        return -errno;
    if (set_attrs(fd, NSBOX_MOUNT_ATTR_RDONLY | NSBOX_MOUNT_ATTR_NODEV | NSBOX_MOUNT_ATTR_NOSUID)
        < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* In a joining child with its own copy of the container's mount namespace: attach those copies
 * at their destinations in the current root, creating mount points where missing. */
int nsbox_attach_trees(const int *fds, const char *const *dests, int n, struct nsbox_failure *f)
{
    struct ctx c = {f, child_detail, sizeof child_detail};
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return failed(&c, NSBOX_STEP_MOUNT, errno, "/", -1);
    for (int i = 0; i < n; i++) {
        struct nsbox_mount m;
        __builtin_memset(&m, 0, sizeof m);
        m.dest = dests[i];
        int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);  /* attach_at closes the one it is given */
        if (fd < 0 || attach_at(&c, root, fd, &m, NSBOX_STEP_MOUNT) < 0) {
            if (fd < 0)
                failed(&c, NSBOX_STEP_MOUNT, errno, m.dest, -1);
            close_keeping_errno(root);
            return -1;
        }
    }
    close(root);
    return 0;
}
