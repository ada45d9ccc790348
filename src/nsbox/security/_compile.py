"""From a profile to BPF: resolve it for a container, then compile it once per digest.

The filter of a profile depends on the container's capabilities (Docker's ``includes.caps``),
this machine's architecture and kernel, and libseccomp's version. All of that is resolved
first into a plain rule list; its SHA-256 keys an in-process cache, so starting the same kind
of container again costs a hash, not a compilation. The cache is deliberately not on disk: a
BPF program read back from a file would be one more thing an attacker could swap.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import threading

import attrs

from . import _libseccomp
from ._arch import go_arch, kernel_version, native_arch
from ._profile import FLAGS, SeccompProfile


@attrs.frozen
class Resolved:
    """A profile resolved for one container on this machine."""

    default_action: int
    architectures: tuple[str, ...]
    rules: tuple[_libseccomp.PlainRule, ...]
    flags: int

    def digest(self, libseccomp_version: tuple[int, int, int]) -> str:
        """A SHA-256 of everything the compiled program depends on."""
        text = json.dumps({
            "arch": native_arch(), "libseccomp": libseccomp_version,
            "default": self.default_action, "architectures": self.architectures,
            "rules": [[r.names, r.action, r.args] for r in self.rules],
        }, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def resolve(profile: SeccompProfile, capabilities: frozenset[str]) -> Resolved:
    """The rules of ``profile`` that apply to a container holding ``capabilities`` here."""
    arch, kernel = go_arch(), kernel_version()
    rules = []
    for rule in profile.rules:
        if not rule.applies(capabilities, arch, kernel):
            continue
        rules.append(_libseccomp.PlainRule(
            rule.names, _libseccomp.action_value(rule.action, rule.errno),
            tuple((a.index, a.op, a.value, a.mask) for a in rule.args)))
    flags = 0
    for flag in profile.flags:
        flags |= FLAGS[flag]
    return Resolved(_libseccomp.action_value(profile.default_action, profile.default_errno),
                    tuple(profile.architectures), tuple(rules), flags)


class BpfCache:
    """Compiled filters by digest, in this process: a bounded LRU, safe across threads.

    Attributes:
        hits, misses: how often a filter was found, or had to be compiled.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._programs: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._programs)

    def __contains__(self, digest: object) -> bool:
        return digest in self._programs

    def clear(self) -> None:
        """Forget every filter and reset the counters."""
        with self._lock:
            self._programs.clear()
            self.hits = self.misses = 0

    def get(self, resolved: Resolved, digest: str | None = None) -> tuple[str, bytes]:
        """(digest, BPF program) of ``resolved``, compiled only if it is not cached.
        ``digest``: ``resolved.digest(...)`` if the caller has it already."""
        version = _libseccomp.load().version  # also with a digest: it checks libseccomp is here
        digest = digest or resolved.digest(version)
        with self._lock:
            program = self._programs.get(digest)
            if program is not None:
                self._programs.move_to_end(digest)
                self.hits += 1
                return digest, program
        # Compiled outside the lock: two threads may both compile a new filter once.
        program = _libseccomp.compile_bpf(resolved.default_action, resolved.architectures,
                                          resolved.rules)
        with self._lock:
            self.misses += 1
            self._programs[digest] = program
            self._programs.move_to_end(digest)
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
        return digest, program


#: The process-wide cache every container uses.
BPF_CACHE = BpfCache()


def compile_profile(profile: SeccompProfile, capabilities: frozenset[str]) -> tuple[bytes, int]:
    """(BPF program, seccomp(2) flags) of ``profile`` for a container with ``capabilities``.

    Raises:
        UnsupportedError: libseccomp is not installed.
        ConfigError: libseccomp refused part of the profile.
    """
    resolved, digest = _resolved(profile, capabilities, _libseccomp.load().version)
    _, program = BPF_CACHE.get(resolved, digest)
    return program, resolved.flags


@functools.lru_cache(maxsize=64)
def _resolved(profile: SeccompProfile, capabilities: frozenset[str],
              libseccomp_version: tuple[int, int, int]) -> tuple[Resolved, str]:
    # Resolving and hashing a profile (150 us for the default one) was the largest Python
    # step of a container start; it gives the same answer for the same profile in a process.
    resolved = resolve(profile, capabilities)
    return resolved, resolved.digest(libseccomp_version)
