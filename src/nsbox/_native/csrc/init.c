/* Runs in: the container, as its first process (PID 1 when it has its own pid namespace).
 *
 * A standalone static program, not a fork of Python: it lives as long as the container, and a
 * forked Python would slowly come to own a private copy of every page the parent changes.
 * It holds the namespaces open, reaps orphans (in a pid namespace they all come to it),
 * forwards SIGTERM/SIGINT/SIGHUP to every other process of the container, and exits when the
 * host side closes its control fd (3) or, with --exit-with-last-child, when no child is left.
 * When PID 1 of a pid namespace exits, the kernel kills everything else in it.
 *
 * Every container starts one, so it is built without libc (init_syscalls.h): static glibc's
 * start-up alone took 0.6-0.9 ms in a VM, where each of its many cpuid instructions (probing
 * cache sizes) traps to the hypervisor. Constants and structs come from the kernel's headers.
 */
#include <asm/signal.h>
#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/poll.h>
#include <linux/prctl.h>
#include <linux/signalfd.h>
#include <linux/wait.h>

#include "init_syscalls.h"

#define CONTROL_FD 3

/* The kernel's sigset_t: 64 signals on every architecture but MIPS (128). The signals we
 * handle are all below 32, so they live in the first word whatever the word size. */
#ifdef __mips__
#define KERNEL_NSIG 128
#else
#define KERNEL_NSIG 64
#endif
typedef struct {
    unsigned long word[KERNEL_NSIG / (8 * sizeof(unsigned long))];
} kernel_sigset;

#define HANDLED_SIGNALS \
    (1UL << (SIGCHLD - 1) | 1UL << (SIGTERM - 1) | 1UL << (SIGINT - 1) | 1UL << (SIGHUP - 1))

#define syscall2(n, a, b) raw_syscall(n, (long)(a), (long)(b), 0, 0, 0)
#define syscall3(n, a, b, c) raw_syscall(n, (long)(a), (long)(b), (long)(c), 0, 0)
#define syscall4(n, a, b, c, d) raw_syscall(n, (long)(a), (long)(b), (long)(c), (long)(d), 0)

/* Reap every child that has exited; returns 1 when no child is left at all. */
static int reap(int *last_status)
{
    for (;;) {
        int status;
        long pid = syscall4(__NR_wait4, -1, &status, WNOHANG, 0);
        if (pid > 0) {
            *last_status = status;
            continue;
        }
        return pid == -ECHILD;
    }
}

/* A wait status holds the terminating signal in its low 7 bits (0 for a normal exit, 0x7f
 * for a stop) and the exit code in the byte above. */
static int exit_code(int status)
{
    int signo = status & 0x7f;
    if (signo == 0)
        return (status >> 8) & 0xff;
    if (signo != 0x7f)
        return 128 + signo;
    return 0;
}

static int same_string(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static int init_main(int argc, char **argv)
{
    int exit_with_last_child = argc > 1 && same_string(argv[1], "--exit-with-last-child");
    syscall2(__NR_prctl, PR_SET_NAME, "nsbox-init");

    kernel_sigset handled = {{HANDLED_SIGNALS}};
    syscall4(__NR_rt_sigprocmask, SIG_BLOCK, &handled, 0, sizeof handled);
    int sfd = (int)syscall4(__NR_signalfd4, -1, &handled, sizeof handled, SFD_CLOEXEC);
    if (sfd < 0)
        return 126;

    int last_status = 0;
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = CONTROL_FD, .events = POLLIN}};
    for (;;) {
        /* ppoll, not poll: aarch64 has only ppoll. No timeout, no signal mask. */
        long ready = raw_syscall(__NR_ppoll, (long)fds, 2, 0, 0, sizeof(kernel_sigset));
        if (ready < 0) {
            if (ready == -EINTR)
                continue;
            return 126;
        }
        if (fds[1].revents) {
            char buf[64];
            long n = syscall3(__NR_read, CONTROL_FD, buf, sizeof buf);
            if (n == 0 || (n < 0 && n != -EINTR && n != -EAGAIN))
                return 0;  /* the host side is gone or asked us to stop */
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (syscall3(__NR_read, sfd, &si, sizeof si) != sizeof si)
                continue;
            if (si.ssi_signo == SIGCHLD) {
                if (reap(&last_status) && exit_with_last_child)
                    return exit_code(last_status);
            } else if (raw_syscall(__NR_getpid, 0, 0, 0, 0, 0) == 1) {
                /* everyone in our pid namespace but us */
                syscall2(__NR_kill, -1, si.ssi_signo);
            } else {
                return 128 + (int)si.ssi_signo;  /* without a pid namespace there is no one to tell */
            }
        }
    }
}

#ifdef NSBOX_INIT_LIBC
int main(int argc, char **argv)
{
    return init_main(argc, argv);
}
#else
/* _start (init_syscalls.h) calls this with the stack the kernel set up: argc, argv[], NULL,
 * envp[]. There is no libc to flush or run handlers for: exit_group is all exit() would do. */
__attribute__((noreturn, used)) void init_start(long *stack)
{
    int status = init_main((int)stack[0], (char **)(stack + 1));
    for (;;)
        raw_syscall(__NR_exit_group, status, 0, 0, 0, 0);
}
#endif
