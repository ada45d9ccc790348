"""cgroups for nsbox: one :class:`CGroup` API over cgroup v1 and v2.

::

    with nsbox.cgroup.CGroup(memory_max="256M", cpu_max=0.5, pids_max=64) as cg:
        cg.add(pid)
        print(cg.stats().memory_peak, cg.oom_kills())

The backend (v1, or v2 on a unified hierarchy) is chosen at runtime by :func:`detect`;
``docs/cgroups.md`` describes naming, parents, nesting and the differences between versions.
This package uses only the standard library, attrs and typing-extensions (no compiled code).
"""

from __future__ import annotations

from ._cgroup import CGroup as CGroup
from ._detect import CGroupInfo as CGroupInfo
from ._detect import detect as detect
from ._spec import CpuMax as CpuMax
from ._spec import IOMax as IOMax
from ._spec import Limits as Limits
from ._stats import CGroupStats as CGroupStats
from ._stats import Placement as Placement
from ._stats import Pressure as Pressure
from ._stats import PressureLine as PressureLine
from ._units import format_size as format_size
from ._units import parse_size as parse_size

__all__ = [
    "CGroup",
    "CGroupInfo",
    "CGroupStats",
    "CpuMax",
    "IOMax",
    "Limits",
    "Placement",
    "Pressure",
    "PressureLine",
    "detect",
    "format_size",
    "parse_size",
]
