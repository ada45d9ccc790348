"""Parsers for the human units cgroup limits are written in: sizes, CPU lists, weights.

Pure functions, no I/O: every limit passes through here on construction, so a bad value
becomes a :class:`~nsbox.errors.ConfigError` before any cgroup file is touched.
"""

from __future__ import annotations

import re

from typing_extensions import TypeAlias  # noqa: UP035 - Python 3.9

from ..errors import ConfigError

#: What a size limit accepts: bytes as an int, a string with a unit, or None/"max" (unlimited).
SizeInput: TypeAlias = "int | str | None"

#: The largest value the kernel's page counters accept (they are signed 64-bit).
MAX_SIZE = 2**63 - 1

# Powers of 1024, as systemd's MemoryMax= and docker's --memory read them. One letter each;
# a trailing "B" or "iB" is allowed so that "256MB" and "256MiB" mean what users expect.
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50, "E": 2**60}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTPE]?)(I?B)?\s*$", re.IGNORECASE)

SIZE_HELP = (
    "a size is bytes as an int, or a string like '512K', '256M', '1.5G' (units K, M, G, T, P, E, "
    "powers of 1024, optionally followed by 'B' or 'iB'), or None / 'max' for unlimited"
)

_CPU_LIST_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")

CPU_LIST_HELP = "a CPU or memory-node list is like '0', '0-3' or '0-1,3' (ranges ascending)"


def _type_name(value: object) -> str:
    return type(value).__name__


def parse_size(value: object, *, what: str = "size", unlimited: bool = True) -> int | None:
    """Turn a human size into bytes.

    Args:
        value: an int (bytes), a string such as ``"512K"``, ``"256M"``, ``"1.5G"`` or
            ``"1024"``, or ``None`` / ``"max"`` meaning unlimited. Units are powers of 1024;
            fractions are rounded down to whole bytes.
        what: the name of the setting, used in the error message.
        unlimited: whether ``None`` / ``"max"`` are accepted.

    Returns:
        The size in bytes, or ``None`` for unlimited.

    Raises:
        ConfigError: the value is not a size (wrong type, a bool, negative, an unknown unit,
            or larger than the kernel's 2**63-1 bytes). The message says what is accepted.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("max", "infinity")):
        if unlimited:
            return None
        raise ConfigError(f"{what}: unlimited is not allowed here; {SIZE_HELP}")
    # bool is an int subclass; True bytes is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{what}: {value!r} ({_type_name(value)}) is not a size; {SIZE_HELP}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.match(value)
        if match is None:
            raise ConfigError(f"{what}: {value!r} is not a size; {SIZE_HELP}")
        number, unit = match.group(1), match.group(2).upper()
        if match.group(3) and not unit and match.group(3).upper() == "IB":
            raise ConfigError(f"{what}: {value!r} is not a size; {SIZE_HELP}")
        if "." in number:
            if not unit:
                raise ConfigError(f"{what}: {value!r} has a fraction of a byte; {SIZE_HELP}")
            # Exact arithmetic: split the decimal instead of going through a float, so
            # "1.5G" is exactly 1.5 * 2**30 and huge values do not lose precision.
            whole, _, frac = number.partition(".")
            scale = 10 ** len(frac)
            size = (int(whole or "0") * scale + int(frac or "0")) * _UNITS[unit] // scale
        else:
            size = int(number) * _UNITS[unit]
    if size < 0:
        raise ConfigError(f"{what}: {value!r} is negative; {SIZE_HELP}")
    if size > MAX_SIZE:
        raise ConfigError(f"{what}: {value!r} is larger than the kernel's maximum of 2**63-1 bytes")
    return size


def format_size(size: int | None) -> str:
    """Format bytes the way :func:`parse_size` reads them, exactly (``"256M"``, ``"1536K"``).

    Args:
        size: bytes, or ``None`` for unlimited.

    Returns:
        The shortest exact form with a unit, or ``"max"`` for ``None``.
    """
    if size is None:
        return "max"
    for unit in ("E", "P", "T", "G", "M", "K"):
        factor = _UNITS[unit]
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_cpu_list(value: str, *, what: str = "cpuset_cpus") -> frozenset[int]:
    """Parse the kernel's list format (``"0-1,3"``) into a set of numbers.

    Args:
        value: the list; whitespace around it is ignored.
        what: the name of the setting, used in the error message.

    Returns:
        The numbers the list names.

    Raises:
        ConfigError: the syntax is wrong, or a range is descending.
    """
    text = value.strip()
    if not _CPU_LIST_RE.match(text):
        raise ConfigError(f"{what}: {value!r} is not a list; {CPU_LIST_HELP}")
    numbers: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ConfigError(f"{what}: range {part!r} in {value!r} is descending; {CPU_LIST_HELP}")
        numbers.update(range(lo, hi + 1))
    return frozenset(numbers)


def format_cpu_list(numbers: frozenset[int] | set[int]) -> str:
    """Format numbers in the kernel's list format, with ranges (``{0, 1, 3}`` → ``"0-1,3"``).

    Args:
        numbers: the CPU or node numbers.

    Returns:
        The canonical list string; empty for an empty set.
    """
    parts: list[str] = []
    ordered = sorted(numbers)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def weight_to_shares(weight: int) -> int:
    """Convert a cgroup v2 ``cpu.weight`` (1..10000) to a cgroup v1 ``cpu.shares``.

    The inverse of the conversion runc and systemd apply to shares
    (``weight = 1 + (shares - 2) * 9999 / 262142``), so both directions agree on the scale:
    weight 1 is shares 2, weight 10000 is shares 262144.

    Args:
        weight: the v2 weight.

    Returns:
        The v1 shares.
    """
    return 2 + ((weight - 1) * 262142) // 9999


def weight_to_blkio_weight(weight: int) -> int:
    """Convert a cgroup v2 ``io.weight`` (1..10000) to a cgroup v1 ``blkio.weight`` (10..1000).

    The same linear mapping runc uses between the two ranges.

    Args:
        weight: the v2 weight.

    Returns:
        The v1 weight.
    """
    return 10 + ((weight - 1) * 990) // 9999
