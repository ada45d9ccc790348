"""nsbox: Linux containers from scratch, as composable Python context managers.

    with nsbox.Container() as c:
        print(c.run(["hostname"], text=True).stdout)
"""

from __future__ import annotations

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
