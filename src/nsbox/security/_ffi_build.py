"""Build script: libseccomp's declarations, pre-parsed at install time (cffi out-of-line ABI mode).

setup.py turns this into ``nsbox/security/_seccomp_ffi.py``, a pure-Python module: nothing is
compiled and libseccomp's headers are not needed; the library itself is only opened
(``dlopen``) when a seccomp filter is first built. Pre-parsing spares pycparser at run time.
"""

from __future__ import annotations

from cffi import FFI

#: The part of seccomp.h nsbox uses, plus libc's free() for the names libseccomp allocates.
CDEF = """
typedef void *scmp_filter_ctx;
typedef uint64_t scmp_datum_t;
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
struct scmp_arg_cmp { unsigned int arg; int op; scmp_datum_t datum_a; scmp_datum_t datum_b; };
const struct scmp_version *seccomp_version(void);
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
uint32_t seccomp_arch_native(void);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_syscall_resolve_name(const char *name);
char *seccomp_syscall_resolve_num_arch(uint32_t arch_token, int num);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
void free(void *ptr);
"""


def make_ffibuilder() -> FFI:
    """The FFI whose ``set_source(..., None)`` makes the module ABI mode."""
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source("nsbox.security._seccomp_ffi", None)
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
