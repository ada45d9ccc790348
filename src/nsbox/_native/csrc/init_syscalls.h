/* How nsbox-init talks to the kernel and how it starts: one raw syscall and a `_start` per
 * architecture, because the init is linked without libc (-nostdlib -ffreestanding, see
 * _build.py). Elsewhere the build defines NSBOX_INIT_LIBC and links against glibc, whose
 * syscall(2) stands in for the raw call and whose start-up calls main().
 *
 * raw_syscall() returns what the kernel returns: the result, or -errno.
 */
#ifndef NSBOX_INIT_SYSCALLS_H
#define NSBOX_INIT_SYSCALLS_H

#if defined(NSBOX_INIT_LIBC)

#include <errno.h>
#include <unistd.h>

static long raw_syscall(long n, long a, long b, long c, long d, long e)
{
    long ret = syscall(n, a, b, c, d, e);
    return ret < 0 ? -errno : ret;
}

#elif defined(__x86_64__)

static inline long raw_syscall(long n, long a, long b, long c, long d, long e)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

/* The kernel starts us with %rsp at argc, 16-byte aligned; the call keeps the ABI's alignment. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call init_start\n"
        "    hlt\n");

#elif defined(__aarch64__)

static inline long raw_syscall(long n, long a, long b, long c, long d, long e)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
                     : "memory", "cc");
    return x0;
}

/* The kernel starts us with sp at argc, 16-byte aligned. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    mov x29, #0\n"
        "    mov x30, #0\n"
        "    mov x0, sp\n"
        "    bl init_start\n"
        "    brk #0\n");

#else
#error "no raw syscalls for this architecture: build with -DNSBOX_INIT_LIBC"
#endif

#endif
