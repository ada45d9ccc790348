"""The compiled-filter cache and the compiler: real libseccomp, no kernel involved."""

from __future__ import annotations

import struct

from nsbox import SeccompProfile
from nsbox.security import BpfCache
from nsbox.security._compile import resolve

# The first instruction of every filter loads seccomp_data.arch: BPF_LD | BPF_W | BPF_ABS, k=4.
LOAD_ARCH = (0x20, 0, 0, 4)


def test_a_filter_is_compiled_once_per_digest() -> None:
    """The same profile for the same capabilities is compiled once; the second time it comes
    from the cache, byte for byte the same."""
    cache = BpfCache()
    resolved = resolve(SeccompProfile.default(), frozenset({"CHOWN"}))
    digest, program = cache.get(resolved)
    again_digest, again = cache.get(resolve(SeccompProfile.default(), frozenset({"CHOWN"})))
    assert (cache.misses, cache.hits) == (1, 1)
    assert (again_digest, again) == (digest, program)
    assert len(program) % 8 == 0 and struct.unpack("<HBBI", program[:8]) == LOAD_ARCH


def test_capabilities_that_change_no_rule_share_a_filter() -> None:
    """Capabilities the profile has no condition on give the same digest (one compilation);
    SYS_ADMIN, which opens mount and others, gives another filter."""
    cache = BpfCache()
    profile = SeccompProfile.default()
    plain, _ = cache.get(resolve(profile, frozenset({"CHOWN"})))
    net_admin, _ = cache.get(resolve(profile, frozenset({"CHOWN", "NET_ADMIN"})))
    sys_admin, program = cache.get(resolve(profile, frozenset({"CHOWN", "SYS_ADMIN"})))
    assert plain == net_admin != sys_admin
    assert (cache.misses, cache.hits) == (2, 1)
    assert program != cache.get(resolve(profile, frozenset({"CHOWN"})))[1]


def test_the_cache_is_bounded() -> None:
    """The cache keeps its most recently used filters and forgets the oldest."""
    cache = BpfCache(size=2)
    first, second, third = (resolve(SeccompProfile.denylist([name]), frozenset())
                            for name in ("mount", "umount2", "keyctl"))
    d1, _ = cache.get(first)
    d2, _ = cache.get(second)
    cache.get(first)  # now the most recent
    d3, _ = cache.get(third)
    assert d1 in cache and d3 in cache and d2 not in cache and len(cache) == 2
    cache.clear()
    assert (len(cache), cache.hits, cache.misses) == (0, 0, 0)


def test_compile_uses_the_process_wide_cache() -> None:
    """SeccompProfile.compile() goes through the cache every container uses."""
    from nsbox.security import BPF_CACHE

    profile = SeccompProfile.denylist(["acct", "swapon"])
    profile.compile()
    misses, hits = BPF_CACHE.misses, BPF_CACHE.hits
    assert profile.compile() == profile.compile(["CHOWN"])  # no capability condition
    assert (BPF_CACHE.misses, BPF_CACHE.hits) == (misses, hits + 2)


def test_another_architecture_adds_a_section() -> None:
    """Filtering the 32-bit x86 ABI besides x86_64 makes the program longer (its own section),
    so 32-bit programs are filtered rather than killed."""
    import attrs

    native = attrs.evolve(SeccompProfile.default(), architectures=())
    with_x86 = attrs.evolve(native, architectures=("x86",))
    assert len(with_x86.compile()) > len(native.compile())


def test_declarations_also_parse_at_run_time() -> None:
    """libseccomp's declarations (pre-parsed at install time) also parse at run time, the
    fallback of a source tree that was never built, and bind to the installed library."""
    from nsbox.security._ffi_build import make_ffibuilder
    from nsbox.security._libseccomp import LIBRARY

    ffi = make_ffibuilder()
    lib = ffi.dlopen(LIBRARY)
    assert lib.seccomp_version().major == 2
    assert lib.seccomp_syscall_resolve_name(b"mount") >= 0
