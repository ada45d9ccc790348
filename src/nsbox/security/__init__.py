"""Locked by default: capabilities, no_new_privs, seccomp, oom_score_adj (docs/security.md).

Everything here is data and its validation, plus the seccomp compiler (libseccomp, loaded at
run time); the C child applies it (``csrc/security.c``).
"""

from __future__ import annotations

from ._capabilities import CAPABILITIES as CAPABILITIES
from ._capabilities import DEFAULT_CAPABILITIES as DEFAULT_CAPABILITIES
from ._capabilities import resolve as resolve_capabilities
from ._compile import BPF_CACHE as BPF_CACHE
from ._compile import BpfCache as BpfCache
from ._default import STARTUP_SYSCALLS as STARTUP_SYSCALLS
from ._libseccomp import available as libseccomp_available
from ._profile import ACTIONS as ACTIONS
from ._profile import OPS as OPS
from ._profile import ArgCondition as ArgCondition
from ._profile import SeccompProfile as SeccompProfile
from ._profile import SyscallRule as SyscallRule

__all__ = [
    "ACTIONS",
    "BPF_CACHE",
    "CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "OPS",
    "STARTUP_SYSCALLS",
    "ArgCondition",
    "BpfCache",
    "SeccompProfile",
    "SyscallRule",
    "libseccomp_available",
    "resolve_capabilities",
]
