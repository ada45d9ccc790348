"""The limits of a cgroup as validated, immutable data.

Every converter here runs on construction (of a :class:`~nsbox.cgroup.CGroup` or on
``CGroup.set``) and raises :class:`~nsbox.errors.ConfigError` for bad input, so that nothing
reaches the kernel unchecked. Converters are idempotent: feeding a converted value back in
returns it unchanged, which lets the same fields live on ``CGroup`` and on :class:`Limits`.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import types
from collections.abc import Mapping

import attrs
from typing_extensions import TypeAlias, TypedDict  # noqa: UP035 - Python 3.9

from ..errors import ConfigError
from ._units import SizeInput, format_cpu_list, parse_cpu_list, parse_size

#: The CFS period the kernel uses by default, and the one a float ``cpu_max`` is a share of.
DEFAULT_CPU_PERIOD_US = 100_000

#: What ``cpu_max`` accepts: CPUs as a number, ``(quota_us, period_us)``, or unlimited.
CpuMaxInput: TypeAlias = "float | int | tuple[int, int] | CpuMax | str | None"
#: What ``io_max`` accepts: device (``"MAJ:MIN"`` or a block device path) → limits.
IOMaxInput: TypeAlias = "Mapping[str, IOMax | Mapping[str, object]] | None"

_DEVICE_RE = re.compile(r"^\d+:\d+$")

CPU_MAX_HELP = (
    "cpu_max is a number of CPUs (0.5 = half a CPU per 100 ms period, at least 0.01), a tuple "
    "(quota_us, period_us) with period 1000..1000000 and quota >= 1000, or None / 'max'"
)
WEIGHT_HELP = "an int from 1 to 10000 (the cgroup v2 scale; 100 is the default)"


@attrs.frozen
class CpuMax:
    """A CPU bandwidth limit: ``quota_us`` of CPU time per ``period_us`` of wall time.

    Attributes:
        quota_us: microseconds of CPU time the group may use in each period (may exceed the
            period to allow more than one CPU).
        period_us: the period in microseconds.
    """

    quota_us: int
    period_us: int = DEFAULT_CPU_PERIOD_US

    @property
    def cpus(self) -> float:
        """How many CPUs this limit amounts to (``quota / period``)."""
        return self.quota_us / self.period_us


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def to_cpu_max(value: CpuMaxInput) -> CpuMax | None:
    """Convert and check a ``cpu_max`` value.

    Args:
        value: CPUs as an int or float, ``(quota_us, period_us)``, a :class:`CpuMax`, or
            ``None`` / ``"max"`` for unlimited.

    Returns:
        The limit, or ``None`` for unlimited.

    Raises:
        ConfigError: anything else, or values out of the kernel's range.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    if isinstance(value, CpuMax):
        quota, period = value.quota_us, value.period_us
    elif isinstance(value, tuple):
        if len(value) != 2 or not all(_is_int(v) for v in value):
            raise ConfigError(f"cpu_max: {value!r} is not (quota_us, period_us); {CPU_MAX_HELP}")
        quota, period = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not value > 0 or value != value or value == float("inf"):
            raise ConfigError(f"cpu_max: {value!r} is not a positive number; {CPU_MAX_HELP}")
        quota, period = round(value * DEFAULT_CPU_PERIOD_US), DEFAULT_CPU_PERIOD_US
    else:
        raise ConfigError(f"cpu_max: {value!r} ({type(value).__name__}) is not accepted; "
                          f"{CPU_MAX_HELP}")
    # The kernel's bounds (kernel/sched/core.c): period 1 ms..1 s, quota at least 1 ms.
    if not 1000 <= period <= 1_000_000:
        raise ConfigError(f"cpu_max: period {period} us is out of range; {CPU_MAX_HELP}")
    if not 1000 <= quota <= 2**44:
        raise ConfigError(f"cpu_max: quota {quota} us is out of range; {CPU_MAX_HELP}")
    return CpuMax(quota_us=quota, period_us=period)


def _weight(value: object, what: str) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise ConfigError(f"{what}: {value!r} ({type(value).__name__}) is not {WEIGHT_HELP}")
    assert isinstance(value, int)
    if not 1 <= value <= 10000:
        raise ConfigError(f"{what}: {value} is out of range; it must be {WEIGHT_HELP}")
    return value


def to_cpu_weight(value: int | None) -> int | None:
    """Check ``cpu_weight``: 1..10000 or ``None``.

    Raises:
        ConfigError: anything else.
    """
    return _weight(value, "cpu_weight")


def to_io_weight(value: int | None) -> int | None:
    """Check ``io_weight``: 1..10000 or ``None``.

    Raises:
        ConfigError: anything else.
    """
    return _weight(value, "io_weight")


def to_pids_max(value: int | str | None) -> int | None:
    """Check ``pids_max``: a non-negative int, or ``None`` / ``"max"`` for unlimited.

    Raises:
        ConfigError: anything else.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    if not _is_int(value):
        raise ConfigError(f"pids_max: {value!r} is not an int >= 0, None or 'max'")
    assert isinstance(value, int)
    if value < 0:
        raise ConfigError(f"pids_max: {value} is negative; use an int >= 0, None or 'max'")
    return value


def to_memory_max(value: SizeInput) -> int | None:
    """Check ``memory_max`` (see :func:`~nsbox.cgroup.parse_size`).

    Raises:
        ConfigError: not a size.
    """
    return parse_size(value, what="memory_max")


def to_memory_high(value: SizeInput) -> int | None:
    """Check ``memory_high`` (see :func:`~nsbox.cgroup.parse_size`).

    Raises:
        ConfigError: not a size.
    """
    return parse_size(value, what="memory_high")


def to_swap_max(value: SizeInput) -> int | None:
    """Check ``swap_max`` (see :func:`~nsbox.cgroup.parse_size`).

    Raises:
        ConfigError: not a size.
    """
    return parse_size(value, what="swap_max")


@functools.cache
def _online(kind: str) -> frozenset[int] | None:
    # What the machine has now; None when unknown (then the kernel will judge on write).
    path = {"cpu": "/sys/devices/system/cpu/online", "node": "/sys/devices/system/node/online"}
    try:
        with open(path[kind]) as f:
            return parse_cpu_list(f.read())
    except (OSError, ConfigError):
        # No NUMA directory on a kernel without CONFIG_NUMA: node 0 is all there is.
        return frozenset({0}) if kind == "node" else None


def _cpu_list(value: object, what: str, kind: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what}: {value!r} ({type(value).__name__}) is not a string like "
                          "'0-1,3'")
    numbers = parse_cpu_list(value, what=what)
    online = _online(kind)
    if online is not None and not numbers <= online:
        missing = format_cpu_list(numbers - online)
        label = "CPU" if kind == "cpu" else "memory node"
        raise ConfigError(f"{what}: {label} {missing} does not exist on this machine (online: "
                          f"{format_cpu_list(online)})")
    return format_cpu_list(numbers)


def to_cpuset_cpus(value: str | None) -> str | None:
    """Check ``cpuset_cpus``: list syntax, and that every CPU is online here.

    Returns:
        The list in canonical form (``"0-1,3"``), or ``None``.

    Raises:
        ConfigError: bad syntax or a CPU this machine does not have.
    """
    return _cpu_list(value, "cpuset_cpus", "cpu")


def to_cpuset_mems(value: str | None) -> str | None:
    """Check ``cpuset_mems``: list syntax, and that every memory node is online here.

    Returns:
        The list in canonical form, or ``None``.

    Raises:
        ConfigError: bad syntax or a node this machine does not have.
    """
    return _cpu_list(value, "cpuset_mems", "node")


def _iops(value: object) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "max"):
        return None
    if not _is_int(value) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"io_max: iops {value!r} is not an int >= 1, None or 'max'")
    return value


def _bps(value: object) -> int | None:
    size = parse_size(value, what="io_max bytes per second")
    if size == 0:
        raise ConfigError("io_max: a bytes-per-second limit must be > 0 (None means unlimited)")
    return size


@attrs.frozen(kw_only=True)
class IOMax:
    """Bandwidth and operation limits for one block device (``io.max`` / ``blkio.throttle``).

    Attributes:
        rbps: read bytes per second (sizes like ``"10M"`` accepted), ``None`` = unlimited.
        wbps: write bytes per second.
        riops: read operations per second.
        wiops: write operations per second.
    """

    rbps: int | None = attrs.field(default=None, converter=_bps)
    wbps: int | None = attrs.field(default=None, converter=_bps)
    riops: int | None = attrs.field(default=None, converter=_iops)
    wiops: int | None = attrs.field(default=None, converter=_iops)


def _device_number(key: object) -> str:
    if not isinstance(key, str) or "\0" in key:
        raise ConfigError(f"io_max: device {key!r} is not 'MAJ:MIN' or a block device path")
    if _DEVICE_RE.match(key):
        return key
    try:
        st = os.stat(key)
    except OSError as err:
        raise ConfigError(f"io_max: device {key!r} is not 'MAJ:MIN' and cannot be read: "
                          f"{err.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise ConfigError(f"io_max: {key!r} is not a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def to_io_max(value: IOMaxInput) -> Mapping[str, IOMax]:
    """Convert ``io_max``: device → :class:`IOMax` (or a dict of its fields).

    Args:
        value: a mapping whose keys are ``"MAJ:MIN"`` or block device paths (resolved now to
            their numbers), or ``None`` for no limits.

    Returns:
        A read-only mapping ``"MAJ:MIN"`` → :class:`IOMax`.

    Raises:
        ConfigError: a key is not a device, or a value is not limits.
    """
    if value is None:
        return types.MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError(f"io_max: {value!r} is not a mapping of device to limits")
    result: dict[str, IOMax] = {}
    for key, limits in value.items():
        device = _device_number(key)
        if isinstance(limits, IOMax):
            result[device] = limits
        elif isinstance(limits, Mapping):
            unknown = set(limits) - {"rbps", "wbps", "riops", "wiops"}
            if unknown:
                raise ConfigError(f"io_max: unknown keys {sorted(unknown)} for {key!r}; use "
                                  "rbps, wbps, riops, wiops")
            result[device] = IOMax(**limits)
        else:
            raise ConfigError(f"io_max: limits for {key!r} must be an IOMax or a dict")
    return types.MappingProxyType(result)


def _is_set(value: object) -> bool:
    # 0 is a real limit (swap_max=0, pids_max=0); only None and an empty io_max are "unset".
    return value is not None and not (isinstance(value, Mapping) and not value)


#: Which controller each limit needs, by its cgroup v2 name (v1 calls "io" "blkio").
CONTROLLER_OF: Mapping[str, str] = types.MappingProxyType({
    "memory_max": "memory", "memory_high": "memory", "swap_max": "memory",
    "cpu_max": "cpu", "cpu_weight": "cpu",
    "cpuset_cpus": "cpuset", "cpuset_mems": "cpuset",
    "pids_max": "pids",
    "io_weight": "io", "io_max": "io",
})


@attrs.frozen(kw_only=True)
class Limits:
    """Every limit a cgroup can carry, validated. ``None`` (or empty ``io_max``) is unlimited.

    The fields mirror the limit arguments of :class:`~nsbox.cgroup.CGroup`; see there.
    """

    memory_max: int | None = attrs.field(default=None, converter=to_memory_max)
    memory_high: int | None = attrs.field(default=None, converter=to_memory_high)
    swap_max: int | None = attrs.field(default=None, converter=to_swap_max)
    cpu_max: CpuMax | None = attrs.field(default=None, converter=to_cpu_max)
    cpu_weight: int | None = attrs.field(default=None, converter=to_cpu_weight)
    cpuset_cpus: str | None = attrs.field(default=None, converter=to_cpuset_cpus)
    cpuset_mems: str | None = attrs.field(default=None, converter=to_cpuset_mems)
    pids_max: int | None = attrs.field(default=None, converter=to_pids_max)
    io_weight: int | None = attrs.field(default=None, converter=to_io_weight)
    io_max: Mapping[str, IOMax] = attrs.field(factory=dict, converter=to_io_max)

    def given(self) -> tuple[str, ...]:
        """The names of the limits that are set (not unlimited), in field order."""
        return tuple(a.name for a in attrs.fields(Limits) if _is_set(getattr(self, a.name)))

    def controllers(self, names: tuple[str, ...] | None = None) -> frozenset[str]:
        """The (v2) controllers the named limits need; all set limits when ``names`` is None."""
        return frozenset(CONTROLLER_OF[n] for n in (self.given() if names is None else names))


#: The names of all limits, in field order.
LIMIT_NAMES: tuple[str, ...] = tuple(a.name for a in attrs.fields(Limits))


class LimitChanges(TypedDict, total=False):
    """The keyword arguments of ``CGroup.set``: any subset of the limits."""

    memory_max: SizeInput
    memory_high: SizeInput
    swap_max: SizeInput
    cpu_max: CpuMaxInput
    cpu_weight: int | None
    cpuset_cpus: str | None
    cpuset_mems: str | None
    pids_max: int | str | None
    io_weight: int | None
    io_max: IOMaxInput
