/* Runs in: the container, as its first process (PID 1 when it has its own pid namespace).
 *
 * A standalone static program, not a fork of Python: it lives as long as the container, and a
 * forked Python would slowly come to own a private copy of every page the parent changes.
 * It holds the namespaces open, reaps orphans (in a pid namespace they all come to it),
 * forwards SIGTERM/SIGINT/SIGHUP to every other process of the container, and exits when the
 * host side closes its control fd (3) or, with --exit-with-last-child, when no child is left.
 * When PID 1 of a pid namespace exits, the kernel kills everything else in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONTROL_FD 3

/* Reap every child that has exited; returns 1 when no child is left at all. */
static int reap(int *last_status)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            *last_status = status;
            continue;
        }
        return pid < 0 && errno == ECHILD;
    }
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 0;
}

int main(int argc, char **argv)
{
    int exit_with_last_child = argc > 1 && strcmp(argv[1], "--exit-with-last-child") == 0;
    prctl(PR_SET_NAME, "nsbox-init", 0, 0, 0);

    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    int sfd = signalfd(-1, &handled, SFD_CLOEXEC);
    if (sfd < 0)
        return 126;

    int last_status = 0;
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = CONTROL_FD, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 126;
        }
        if (fds[1].revents) {
            char buf[64];
            ssize_t n = read(CONTROL_FD, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                return 0;  /* the host side is gone or asked us to stop */
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGCHLD) {
                if (reap(&last_status) && exit_with_last_child)
                    return exit_code(last_status);
            } else if (getpid() == 1) {
                kill(-1, (int)si.ssi_signo);  /* everyone in our pid namespace but us */
            } else {
                return 128 + (int)si.ssi_signo;  /* without a pid namespace there is no one to tell */
            }
        }
    }
}
