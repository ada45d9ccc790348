"""nsbox: Linux containers from scratch, as composable Python context managers.

    with nsbox.Container() as c:
        print(c.run(["hostname"], text=True).stdout)
"""

from __future__ import annotations

import importlib
import typing

# Importing nsbox imports none of its modules: each public name is loaded on first use (PEP
# 562), so `python -m nsbox run` and programs that never make a cgroup do not pay for cgroups,
# root filesystems or seccomp at import (docs/performance.md). The imports below are for type
# checkers; _SOURCE says where each name lives.
if typing.TYPE_CHECKING:
    from typing import Any

    from .cgroup import CGroup as CGroup
    from .cgroup import CGroupStats as CGroupStats
    from .container import Container as Container
    from .container import ContainerOptions as ContainerOptions
    from .container import run as run
    from .errors import CalledProcessError as CalledProcessError
    from .errors import CallError as CallError
    from .errors import CGroupError as CGroupError
    from .errors import ConfigError as ConfigError
    from .errors import LifecycleError as LifecycleError
    from .errors import NsboxError as NsboxError
    from .errors import SpawnError as SpawnError
    from .errors import TimeoutExpired as TimeoutExpired
    from .errors import UnsupportedError as UnsupportedError
    from .namespaces import IdMap as IdMap
    from .namespaces import Join as Join
    from .namespaces import Namespaces as Namespaces
    from .process import DEVNULL as DEVNULL
    from .process import PIPE as PIPE
    from .process import STDOUT as STDOUT
    from .process import CompletedProcess as CompletedProcess
    from .process import Process as Process
    from .rootfs import Bind as Bind
    from .rootfs import Change as Change
    from .rootfs import OverlayRootfs as OverlayRootfs
    from .rootfs import PivotRoot as PivotRoot
    from .rootfs import Tmpfs as Tmpfs
    from .security import ArgCondition as ArgCondition
    from .security import SeccompProfile as SeccompProfile
    from .security import SyscallRule as SyscallRule
    from .state import gc as gc

_SOURCE = {
    "ArgCondition": "security", "SeccompProfile": "security", "SyscallRule": "security",
    "Bind": "rootfs", "Change": "rootfs", "OverlayRootfs": "rootfs", "PivotRoot": "rootfs",
    "Tmpfs": "rootfs",
    "CGroup": "cgroup", "CGroupStats": "cgroup",
    "CGroupError": "errors", "CallError": "errors", "CalledProcessError": "errors",
    "ConfigError": "errors", "LifecycleError": "errors", "NsboxError": "errors",
    "SpawnError": "errors", "TimeoutExpired": "errors", "UnsupportedError": "errors",
    "Container": "container", "ContainerOptions": "container", "run": "container",
    "IdMap": "namespaces", "Join": "namespaces", "Namespaces": "namespaces",
    "CompletedProcess": "process", "DEVNULL": "process", "PIPE": "process", "Process": "process",
    "STDOUT": "process",
    "gc": "state",
}

__version__ = "0.1.0"

__all__ = [
    "ArgCondition",
    "Bind",
    "CGroup",
    "CGroupError",
    "CGroupStats",
    "CallError",
    "CalledProcessError",
    "Change",
    "CompletedProcess",
    "ConfigError",
    "Container",
    "ContainerOptions",
    "DEVNULL",
    "IdMap",
    "Join",
    "LifecycleError",
    "Namespaces",
    "NsboxError",
    "OverlayRootfs",
    "PIPE",
    "PivotRoot",
    "Process",
    "STDOUT",
    "SeccompProfile",
    "SpawnError",
    "SyscallRule",
    "TimeoutExpired",
    "Tmpfs",
    "UnsupportedError",
    "gc",
    "run",
    "__version__",
]


if not typing.TYPE_CHECKING:  # hidden from type checkers, which would let any attribute through

    def __getattr__(name: str) -> Any:
        module = _SOURCE.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f".{module}", __name__), name)
            globals()[name] = value  # found once; later lookups do not come here
            return value
        if not name.startswith("__"):
            # A subpackage, as `import nsbox; nsbox.cgroup.detect()` has always found it.
            try:
                return importlib.import_module(f".{name}", __name__)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module 'nsbox' has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
