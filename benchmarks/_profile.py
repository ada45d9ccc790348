"""Where nsbox's spawn path spends its time: the evidence behind docs/performance.md.

    .venv/bin/python benchmarks/_profile.py timeline [--variant V] [--idle 0.2]
    .venv/bin/python benchmarks/_profile.py python   [--variant V]
    .venv/bin/python benchmarks/_profile.py rss
    .venv/bin/python benchmarks/_profile.py cpu      [--variant V]

Variants (``nsbox.run(["/bin/true"])`` with pid+mount+uts+ipc+net unless said): ``net`` the
host's filesystem shared (rootfs=None), ``nonet`` the same without net, ``default`` nsbox's
default rootfs, ``rootfs`` a busybox PivotRoot, ``cgroup`` net plus a memory cgroup, ``live``
``c.run`` in one running container.

- ``timeline``: kernel tracepoints (perf record of raw_syscalls and sched_process_*, inherited
  by every child) around each ``nsbox.run``; every phase of one container's life is cut at a
  syscall or exec/exit event of one of its processes, and the medians are printed.
- ``python``: wall time of nsbox's Python-side steps (wrapped in place, nothing changed on
  disk), beside the C ``nsbox_spawn`` calls.
- ``rss``: the same ``nsbox.run`` while this interpreter holds more memory (a clone without
  CLONE_VM copies the page tables of all of it), against subprocess (vfork).
- ``cpu``: ``perf record -g`` of the workload's processes (inclusive, by symbol), then
  ``-a`` for the kernel workers meanwhile (namespace teardown runs there, off the caller's
  clock but not off the CPU).

Needs root and perf (Debian: linux-perf). Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

MARK = 987654  # os.getsid(MARK) fails fast and is easy to find among the syscalls
NR = {"read": 0, "pwrite64": 18, "clone": 56, "getsid": 124, "setns": 308, "clone3": 435,
      "wait4": 61, "waitid": 247, "close": 3, "execve": 59, "execveat": 322, "seccomp": 317,
      "mount": 165, "mount_setattr": 442, "sethostname": 170, "ioctl": 16, "prctl": 157,
      "capset": 126, "pivot_root": 155, "umount2": 166, "open_tree": 428, "move_mount": 429,
      "fsopen": 430, "fsconfig": 431, "fsmount": 432, "mknodat": 259, "mkdirat": 258}
NAME = {v: k for k, v in NR.items()}
#: Syscalls timed inside the container's processes (their summed time per container).
TIMED = ("seccomp", "execve", "execveat", "mount", "mount_setattr", "sethostname", "ioctl",
         "prctl", "capset", "setns", "pivot_root", "umount2", "open_tree", "move_mount",
         "fsopen", "fsconfig", "fsmount", "mknodat", "mkdirat")
NS_NET = ("pid", "mount", "uts", "ipc", "net")
NS_NO_NET = ("pid", "mount", "uts", "ipc")


def mark(end: bool = False) -> None:
    """A syscall easy to find in a trace: before each container, and after (``end``)."""
    with contextlib.suppress(OSError):
        os.getsid(MARK + 1 if end else MARK)


def workload(variant: str) -> Callable[[], None]:
    """One ``fn()`` per measured container; the caller marks each with :func:`mark`.

    Variants: ``net``/``nonet`` share the host's filesystem (rootfs=None), ``default`` is
    nsbox's default rootfs, ``rootfs`` a busybox PivotRoot, ``cgroup`` net plus a memory
    cgroup, ``live`` is ``c.run`` in one running container.
    """
    import inspect

    import nsbox

    ns = nsbox.Namespaces.of(*(NS_NO_NET if variant == "nonet" else NS_NET))
    shared = ({"rootfs": None} if "rootfs" in inspect.signature(nsbox.Container).parameters
              else {})
    true = ["/bin/true"]
    if variant == "live":
        live = nsbox.Container(ns, **shared).__enter__()
        return lambda: live.run(true)
    if variant == "cgroup":
        from nsbox.cgroup import CGroup

        return lambda: nsbox.run(true, namespaces=ns, cgroup=CGroup(memory_max="256M"),
                                 **shared)
    if variant == "rootfs":
        import atexit

        from _peers import Workspace

        ws = Workspace()
        atexit.register(ws.close)
        return lambda: nsbox.run(true, namespaces=ns,
                                 rootfs=nsbox.PivotRoot(ws.rootfs, readonly=True))
    if variant == "default":
        return lambda: nsbox.run(true, namespaces=ns)
    return lambda: nsbox.run(true, namespaces=ns, **shared)


def run_workload(variant: str, runs: int, idle: float = 0.0) -> None:
    fn = workload(variant)
    for _ in range(30):
        fn()
    for _ in range(runs):
        if idle:
            time.sleep(idle)
        mark()
        fn()
        mark(end=True)


# -- timeline: perf tracepoints ------------------------------------------------------------------

LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")


def events(perf_data: str) -> Iterator[tuple[int, float, str, str]]:
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,pid,cpu,time,event,"
                          "trace"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            yield int(m.group(2)), float(m.group(4)) * 1e6, m.group(5), m.group(6)


def _nr(detail: str) -> tuple[int, str]:
    m = re.match(r"NR (\d+) (.*)", detail)
    return (int(m.group(1)), m.group(2)) if m else (-1, "")


PHASES_FRESH = [
    ("python: Container(), specs, pipes, before the init's clone", "mark", "c1_clone_enter"),
    ("kernel: clone3 of the init (copy the Python mm, create the namespaces)",
     "c1_clone_enter", "c1_clone_exit"),
    ("cgroup v1: write the init's pid to cgroup.procs (all hierarchies)", "c1_cg_enter",
     "c1_cg_exit"),
    ("init's C child: signals, mounts, hostname, lo, caps, seccomp, fds, execveat",
     "c1_clone_exit", "c1_exec"),
    ("python: after the init's exec, ns inodes, the process spec (before clone3 #2)",
     "c1_exec", "c2_clone_enter"),
    ("kernel: clone3 of the joining child (copy the Python mm again)", "c2_clone_enter",
     "c2_clone_exit"),
    ("joining child: start to setns", "c2_clone_exit", "c2_setns_enter"),
    ("kernel: setns into the init's namespaces (pidfd)", "c2_setns_enter", "c2_setns_exit"),
    ("kernel: clone(CLONE_PARENT) of the real process (copy the mm a third time)",
     "c2_fork_enter", "c2_fork_exit"),
    ("cgroup v1: write the process's pid to cgroup.procs", "c3_cg_enter", "c3_cg_exit"),
    ("real process: C setup and execve(/bin/true)", "c2_fork_exit", "c3_exec"),
    ("/bin/true runs", "c3_exec", "c3_exit"),
    ("python: reap, collect the pipes, close the control fd -> init exits", "c3_exit",
     "c1_exit"),
    ("python: wait for the init, tear down, return", "c1_exit", "end"),
]
PHASES_LIVE = [
    ("python: run(), the process spec, pipes (before clone3)", "mark", "c2_clone_enter"),
    *[p for p in PHASES_FRESH if p[1].startswith(("c2", "c3"))
      and p[2] not in ("c1_exit",)],
    ("python: reap, collect the pipes, return", "c3_exit", "end"),
]


def timeline(perf_data: str, live: bool) -> list[dict[str, float]]:
    """Per container: the timestamps (µs) of the events the phases are cut at."""
    main = None
    iterations: list[dict[str, float]] = []
    cur: dict[str, float] | None = None
    roles: dict[int, str] = {}
    entered: dict[int, float] = {}
    for pid, t, event, detail in events(perf_data):
        if main is None and event == "sched:sched_process_exec":
            main = pid
        if event == "raw_syscalls:sys_enter" and pid == main:
            nr, args = _nr(detail)
            if nr == NR["getsid"] and args.startswith(f"({MARK:x},"):
                cur, roles = {"mark": t}, {}
                continue
            if nr == NR["getsid"] and args.startswith(f"({MARK + 1:x},") and cur is not None:
                cur["end"] = t
                iterations.append(cur)
                cur = None
                continue
        if cur is None:
            continue
        if event in ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit"):
            nr, rest = _nr(detail)
            enter = event.endswith("enter")
            role = "main" if pid == main else roles.get(pid)
            if role in ("c1", "c2", "c3") and NAME.get(nr) in TIMED:
                if enter:
                    entered[pid] = t
                elif pid in entered:
                    key = f"{role}:{NAME[nr]}"
                    cur[key] = cur.get(key, 0.0) + t - entered.pop(pid)
            if role == "main" and nr == NR["clone3"]:
                # The init's clone3 first (fresh containers), then the joining child's.
                order = ["c2"] if live else ["c1", "c2"]
                count = "_enters" if enter else "_exits"
                n = int(cur.get(count, 0))
                cur[count] = n + 1
                if n >= len(order):
                    continue
                key = order[n]
                cur[f"{key}_clone_{'enter' if enter else 'exit'}"] = t
                if not enter:
                    roles[int(rest.split("=")[1])] = key
            elif role == "main" and nr == NR["pwrite64"]:
                # cgroup v1 placement: the parent writes the pid while the child waits.
                who = "c3" if "c2_fork_exit" in cur else "c1"
                if enter:
                    cur.setdefault(f"{who}_cg_enter", t)
                else:
                    cur[f"{who}_cg_exit"] = t
            elif role == "c2" and nr == NR["setns"]:
                cur.setdefault("c2_setns_enter" if enter else "c2_setns_exit", t)
            elif role == "c2" and nr == NR["clone"]:
                if enter:
                    cur.setdefault("c2_fork_enter", t)
                else:
                    child = int(rest.split("=")[1])
                    if child > 0:
                        cur.setdefault("c2_fork_exit", t)
                        roles[child] = "c3"
        elif event == "sched:sched_process_exec":
            role = roles.get(pid)
            if role in ("c1", "c3"):
                cur.setdefault(f"{role}_exec", t)
        elif event == "sched:sched_process_exit":
            m = re.search(r"pid=(\d+)", detail)
            role = roles.get(int(m.group(1))) if m else None
            if role in ("c1", "c3"):
                cur.setdefault(f"{role}_exit", t)
    return iterations


def phase_table(iterations: list[dict[str, float]], live: bool) -> list[tuple[str, float, int]]:
    rows = []
    phases = PHASES_LIVE if live else PHASES_FRESH
    for label, a, b in phases:
        d = [it[b] - it[a] for it in iterations if a in it and b in it]
        if d:
            rows.append((label, statistics.median(d), len(d)))
    total = [it["end"] - it["mark"] for it in iterations]
    rows.append(("total (start to return)", statistics.median(total), len(total)))
    keys = sorted({k for it in iterations for k in it if ":" in k})
    for key in keys:
        d = [it.get(key, 0.0) for it in iterations]
        role, name = key.split(":")
        who = {"c1": "init's child", "c2": "joining child", "c3": "real process"}[role]
        rows.append((f"  syscall time: {name} in the {who}", statistics.median(d), len(d)))
    return rows


def cmd_timeline(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="nsbox-bench-perf-") as tmp:
        data = os.path.join(tmp, "perf.data")
        # Only the syscalls the phases are cut at: every traced event costs the traced a little.
        ids = " || ".join(f"id == {NR[n]}" for n in ("getsid", "clone3", "clone", "pwrite64",
                                                      *TIMED))
        subprocess.run(["perf", "record", "-q", "-o", data,
                        "-e", "raw_syscalls:sys_enter", "--filter", ids,
                        "-e", "raw_syscalls:sys_exit", "--filter", ids,
                        "-e", "sched:sched_process_exec", "-e", "sched:sched_process_exit",
                        "--", sys.executable,
                        os.path.abspath(__file__), "workload", "--variant", args.variant,
                        "--runs", str(args.runs), "--idle", str(args.idle)], check=True)
        its = timeline(data, args.variant == "live")
    print(f"timeline of {len(its)} containers, variant {args.variant}"
          f"{f', {args.idle * 1000:.0f} ms idle before each' if args.idle else ''} (medians, µs;"
          " phases overlap where processes run in parallel)")
    for label, med, n in phase_table(its, args.variant == "live"):
        print(f"  {label:<80} {med:8.0f}  (n={n})")


# -- python: wrap the steps ------------------------------------------------------------------------

def cmd_python(args: argparse.Namespace) -> None:
    from nsbox import _native
    from nsbox import container as C

    times: dict[str, list[float]] = defaultdict(list)

    def wrap(owner: Any, name: str, label: str) -> None:
        if not hasattr(owner, name):
            return
        static = isinstance(inspect.getattr_static(owner, name), staticmethod)
        orig = getattr(owner, name)

        @functools.wraps(orig)
        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter_ns()
            try:
                return orig(*a, **k)
            finally:
                times[label].append((time.perf_counter_ns() - t) / 1e3)
        setattr(owner, name, staticmethod(timed) if static else timed)

    orig_spawn = _native.spawn

    def spawn(spec: Any, *rest: Any, **kw: Any) -> Any:
        t = time.perf_counter_ns()
        try:
            return orig_spawn(spec, *rest, **kw)
        finally:
            key = ("  of which C nsbox_spawn: the init" if spec.exec_fd >= 0
                   else "  of which C nsbox_spawn: process")
            times[key].append((time.perf_counter_ns() - t) / 1e3)
    _native.spawn = spawn
    orig_to_c = _native._to_c

    def to_c(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter_ns()
        try:
            return orig_to_c(*a, **kw)
        finally:
            times["_to_c (cffi struct, each spawn)"].append((time.perf_counter_ns() - t) / 1e3)
    _native._to_c = to_c
    wrap(C.Container, "__init__", "Container() (validation)")
    wrap(C.Container, "__enter__", "Container.__enter__ (start the init)")
    wrap(C.Container, "_namespaces_to_join", "  of which _namespaces_to_join (16 stats)")
    wrap(C.Container, "spawn", "Container.spawn (the process)")
    wrap(C, "collect", "collect (wait for exit, read pipes)")
    wrap(C.Container, "_teardown", "teardown (close control fd, wait for the init)")

    fn = workload(args.variant)
    total = []
    for i in range(args.runs + 30):
        t = time.perf_counter_ns()
        fn()
        if i >= 30:
            total.append((time.perf_counter_ns() - t) / 1e3)
    print(f"python-side steps, variant {args.variant}, {args.runs} runs (medians, µs)")
    print(f"  {'total':<60} {statistics.median(total):8.0f}")
    order = ["Container() (validation)", "Container.__enter__ (start the init)",
             "  of which C nsbox_spawn: the init", "  of which _namespaces_to_join (16 stats)",
             "Container.spawn (the process)", "  of which C nsbox_spawn: process",
             "_to_c (cffi struct, each spawn)", "collect (wait for exit, read pipes)",
             "teardown (close control fd, wait for the init)"]
    for label in order:
        values = times.get(label, [])
        values = values[30:] if len(values) > 30 else values
        if values:
            print(f"  {label:<60} {statistics.median(values):8.0f}")


# -- rss: the cost of copying a large parent ------------------------------------------------------

def cmd_rss(args: argparse.Namespace) -> None:
    import nsbox

    ns = nsbox.Namespaces.of(*NS_NET)
    shared = ({"rootfs": None} if "rootfs" in inspect.signature(nsbox.Container).parameters
              else {})
    true = ["/bin/true"]
    ballast: list[bytearray] = []
    print("median ms vs the interpreter's RSS (a bytearray ballast, every page touched; "
          "shared host fs, +net)")
    print(f"  {'RSS MiB':>8} {'nsbox.run':>10} {'c.run live':>11} {'subprocess':>11}")
    with nsbox.Container(ns, **shared) as live:
        for extra in (0, 256, 1024):
            while sum(len(b) for b in ballast) < extra * 2**20:
                ballast.append(bytearray(os.urandom(1)) * (64 * 2**20))
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            cols = []
            for fn in (lambda: nsbox.run(true, namespaces=ns, **shared), lambda: live.run(true),
                       lambda: subprocess.run(true)):
                samples = []
                for _ in range(args.runs):
                    t = time.perf_counter_ns()
                    fn()
                    samples.append((time.perf_counter_ns() - t) / 1e6)
                cols.append(statistics.median(samples))
            print(f"  {rss / 2**20:8.0f} {cols[0]:10.2f} {cols[1]:11.2f} {cols[2]:11.2f}")


# -- cpu: system-wide profile --------------------------------------------------------------------

def cmd_cpu(args: argparse.Namespace) -> None:
    """The workload's own processes (inherited), then the kernel workers meanwhile (-a)."""
    with tempfile.TemporaryDirectory(prefix="nsbox-bench-perf-") as tmp:
        data = os.path.join(tmp, "perf.data")
        workload = [sys.executable, os.path.abspath(__file__), "workload", "--variant",
                    args.variant, "--runs", str(args.runs)]
        report = ["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none"]
        subprocess.run(["perf", "record", "-q", "-g", "-F", "4999", "-o", data, "--",
                        *workload], check=True)
        mine = subprocess.run([*report, "--sort", "sym", "--percent-limit", "1"],
                              capture_output=True, text=True).stdout
        by_comm = subprocess.run([*report, "--sort", "comm", "--percent-limit", "0.5"],
                                 capture_output=True, text=True).stdout
        subprocess.run(["perf", "record", "-q", "-a", "-g", "-F", "4999", "-o", data, "--",
                        *workload], check=True)
        workers = subprocess.run([*report, "--sort", "comm,sym", "--percent-limit", "0.3",
                                  "--comms", ",".join(sorted(_kernel_comms(data)))],
                                 capture_output=True, text=True).stdout

    def lines(text: str) -> str:
        return "\n".join(x for x in text.splitlines() if x.strip() and not x.startswith("#"))
    print("the workload's processes, by command:\n" + lines(by_comm))
    print("\nthe workload's processes, by symbol:\n" + lines(mine))
    print("\nkernel threads meanwhile (whole machine), by thread and symbol:\n" + lines(workers))


def _kernel_comms(data: str) -> set[str]:
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort",
                          "comm", "-g", "none"], capture_output=True, text=True).stdout
    comms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%") and parts[1].startswith(
                ("kworker", "ksoftirqd", "rcu", "kthreadd", "migration")):
            comms.add(parts[1])
    return comms or {"kworker"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["timeline", "python", "rss", "cpu", "workload"])
    parser.add_argument("--variant", default="net",
                        choices=["net", "nonet", "cgroup", "live", "rootfs", "default"])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--idle", type=float, default=0.0,
                        help="seconds idle before each container (0.2: cold)")
    args = parser.parse_args()
    if args.command == "workload":
        run_workload(args.variant, args.runs, args.idle)
    else:
        {"timeline": cmd_timeline, "python": cmd_python, "rss": cmd_rss,
         "cpu": cmd_cpu}[args.command](args)


if __name__ == "__main__":
    main()
