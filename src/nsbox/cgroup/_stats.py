"""The values a cgroup hands out: statistics, pressure, and how to place a new process.

Also the parsers for the kernel's two common file shapes (``key value`` lines, and PSI's
``some avg10=... total=...`` lines), shared by both backends.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class PressureLine:
    """One line of a PSI file: the share of time tasks were stalled on a resource.

    Attributes:
        avg10: percentage of the last 10 seconds.
        avg60: percentage of the last 60 seconds.
        avg300: percentage of the last 300 seconds.
        total_us: total stall time in microseconds since the cgroup was created.
    """

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@attrs.frozen
class Pressure:
    """Pressure stall information for one resource (``cpu.pressure``, ...).

    Attributes:
        some: time at least one task was stalled.
        full: time all non-idle tasks were stalled at once (``None`` where the kernel does
            not report it, as for CPU pressure before Linux 5.13).
    """

    some: PressureLine
    full: PressureLine | None


@attrs.frozen(kw_only=True)
class CGroupStats:
    """A snapshot of a cgroup's counters. A field is ``None`` where the kernel lacks the file.

    Times are integers in nanoseconds, exact on both backends (v2 counts microseconds, which
    are multiplied up; v1 ``cpuacct.stat`` ticks are converted where nothing finer exists).

    Attributes:
        memory_current: bytes in use now (v2 ``memory.current``, v1 ``memory.usage_in_bytes``).
        memory_peak: the most bytes ever in use (v2 ``memory.peak`` since 5.19, v1
            ``memory.max_usage_in_bytes``).
        swap_current: bytes of swap in use (v2 ``memory.swap.current``; v1 memsw minus memory).
        cpu_usage_ns: CPU time used by every task, ever.
        cpu_user_ns: of which in user mode.
        cpu_system_ns: of which in the kernel.
        cpu_nr_periods: CFS periods that have elapsed with the group runnable.
        cpu_nr_throttled: periods in which the group was throttled by ``cpu_max``.
        cpu_throttled_ns: total time the group was throttled.
        pids_current: tasks (threads) in the group.
        oom_events: times the memory limit was hit and the OOM killer invoked (v2
            ``memory.events`` ``oom``; ``None`` on v1, which has no such counter).
        oom_kills: processes killed by the OOM killer because of this group's limits
            (v2 ``oom_kill``; v1 ``memory.oom_control`` ``oom_kill``, summed over children).
        cpu_pressure: PSI for CPU, where readable.
        memory_pressure: PSI for memory, where readable.
        io_pressure: PSI for I/O, where readable.
    """

    memory_current: int | None = None
    memory_peak: int | None = None
    swap_current: int | None = None
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_nr_periods: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_ns: int | None = None
    pids_current: int | None = None
    oom_events: int | None = None
    oom_kills: int | None = None
    cpu_pressure: Pressure | None = None
    memory_pressure: Pressure | None = None
    io_pressure: Pressure | None = None


@attrs.frozen
class Placement:
    """How the spawn code puts a new process into the cgroup before it executes anything.

    The file descriptors belong to the :class:`~nsbox.cgroup.CGroup`: they are opened when it
    is entered, closed when it is left, and are close-on-exec. Do not close them yourself.

    Attributes:
        clone_into_fd: cgroup v2: the cgroup directory, opened ``O_RDONLY|O_DIRECTORY``, for
            ``clone3`` with ``CLONE_INTO_CGROUP``. ``None`` on v1.
        procs_fds: cgroup v1: each hierarchy's ``cgroup.procs``, opened ``O_WRONLY``; write
            the child's pid (decimal ASCII) into every one. Empty on v2.
    """

    clone_into_fd: int | None
    procs_fds: tuple[int, ...] = ()


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse a ``key value`` per line file (``cpu.stat``, ``memory.events``, ``oom_control``).

    Args:
        text: the file's content.

    Returns:
        Key → integer value; lines that are not ``key int`` are skipped.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return values


def parse_pressure(text: str) -> Pressure | None:
    """Parse a PSI file (``some avg10=0.00 avg60=0.00 avg300=0.00 total=0``).

    Args:
        text: the file's content.

    Returns:
        The pressure, or ``None`` if the text has no ``some`` line.
    """
    lines: dict[str, PressureLine] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(f.split("=", 1) for f in rest.split() if "=" in f)
        try:
            lines[kind] = PressureLine(float(fields["avg10"]), float(fields["avg60"]),
                                       float(fields["avg300"]), int(fields["total"]))
        except (KeyError, ValueError):
            continue
    if "some" not in lines:
        return None
    return Pressure(some=lines["some"], full=lines.get("full"))
