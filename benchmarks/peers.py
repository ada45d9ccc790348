"""nsbox against crun, runc, bubblewrap and unshare, side by side in one run, as ratios.

1. Start-to-exit of /bin/true in a fresh container, warm (back to back) and cold (after
   200 ms idle; on cgroup v1 the first cgroup attach after idling is slow): medians and p90
   over many runs, scenarios interleaved in shuffled rounds so machine drift cancels.
2. Containers per second with N workers (threads for the nsbox library, processes for the
   command-line tools) against crun with the same N.
3. Host memory per idle container (N containers each running ``sleep``).

Prints a table and writes benchmarks/results/<date>.{txt,md,json}. Benchmarks report; they
assert nothing about time. Needs root and the peers (``benchmarks/setup`` installs them).
Run: .venv/bin/python benchmarks/peers.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import _memory
from _measure import Scenario, Spawner, Stats, cold, throughput, warm
from _peers import (
    Workspace,
    enter_private_cgroup_view_if_needed,
    snapshot_nsbox,
    tool_versions,
    v1_hierarchies,
)

nsbox: Any = None  # imported in main(), from a snapshot of the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
NS_NET = ("pid", "mount", "uts", "ipc", "net")
NS_NO_NET = ("pid", "mount", "uts", "ipc")
# The CLI makes every namespace but the ones shared: share these to get exactly NS_NET.
CLI_SHARE = ("--share", "cgroup", "--share", "time")
TOOLS = ("crun", "runc", "bwrap", "unshare")

FAIRNESS = """\
What each tool does (the same namespaces everywhere: pid, mount, uts, ipc, +net where said;
the payload is the same busybox-static `true` file for every tool):
- nsbox, "shared host fs" (rootfs=None): the host's filesystem in a private mount namespace
  with its own /proc (no pivot_root), like unshare; {nsbox_default}
  "busybox rootfs": nsbox.PivotRoot(<the busybox rootfs>, readonly=True): pivot_root, /proc,
  a minimal /dev, /sys read-only, like crun's default spec. Every row: hostname, lo up, and
  nsbox's default security (Docker's capability set, no_new_privs, a seccomp filter, runc's
  masked and read-only paths).
  {nsbox_cgroup}
- crun, runc: `crun spec`/`runc spec` defaults (the busybox rootfs read-only, pivot_root,
  /proc, /dev tmpfs, devpts, shm, mqueue, /sys, /sys/fs/cgroup, masked and read-only paths,
  3 capabilities, no_new_privs, no seccomp, a cgroup in every v1 hierarchy under
  nsbox-bench-<pid>/), terminal off; state in the temp dir (--root).
- bwrap --unshare-all (net included) --ro-bind <busybox rootfs> / --proc /proc --dev /dev
  --hostname: pivot_root into a tmpfs, no cgroup, no seccomp.
- unshare --fork --pid --mount --uts --ipc [--net] --mount-proc: the host's filesystem, no
  cgroup, no hostname, lo down, full capabilities.
- The command-line tools are started with os.posix_spawn + waitpid (its own row is that
  floor); the nsbox library rows are in-process calls with output captured (the default).
  The CLI rows include the interpreter's start ('python -c import nsbox' is that floor).
"""


# -- the scenarios -----------------------------------------------------------------------------

def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"peers.py: {name} is missing; run benchmarks/setup (as root) first")
    return path


def nsbox_cgroup_kwargs() -> Callable[[], dict[str, Any]] | None:
    """Options giving a container a memory cgroup, if this nsbox's Container takes one."""
    cgroup_mod = getattr(nsbox, "cgroup", None)
    if cgroup_mod is None or "cgroup" not in inspect.signature(nsbox.Container).parameters:
        return None
    return lambda: {"cgroup": cgroup_mod.CGroup(memory_max="256M")}


class Scenarios:
    """Builds every scenario; owns what they need alive (the live containers)."""

    def __init__(self, ws: Workspace, spawn: Spawner, stack: ExitStack) -> None:
        self.ws = ws
        self.spawn = spawn
        self.stack = stack
        self.path = {t: _which(t) for t in TOOLS}
        self.python = sys.executable
        self.list: list[Scenario] = []
        self.dropped: dict[str, str] = {}
        self.cgroup = nsbox_cgroup_kwargs()
        self.memory_method = ""
        self.default_rootfs: Any = None

    def oci_run(self, runtime: str, variant: str, net: bool, args: Sequence[str] = ("/bin/true",),
                manager: str | None = None) -> Callable[[], int]:
        prefix = self.ws.runtime_argv(runtime, cgroup_manager=manager)

        def run() -> int:
            with self.ws.slot(runtime, variant, args, net) as s:
                return self.spawn([*prefix, "run", "--bundle", s.bundle, s.id])
        return run

    def bwrap_argv(self, *cmd: str) -> list[str]:
        return [self.path["bwrap"], "--unshare-all", "--die-with-parent",
                "--ro-bind", self.ws.rootfs, "/", "--proc", "/proc", "--dev", "/dev",
                "--hostname", "nsbox-bench", *cmd]

    def nsbox_cli_argv(self, *cmd: str) -> list[str]:
        return [self.python, "-m", "nsbox", "run", *CLI_SHARE, "--", *cmd]

    def add(self, key: str, label: str, run: Callable[[], int], ref: str | None,
            throughput: bool = False, cli: bool = True) -> None:
        why = (lambda: self.spawn.last_error) if cli else (lambda: "")
        self.list.append(Scenario(key, label, run, ref, throughput, why=why))

    def build(self) -> list[Scenario]:
        ns_net = nsbox.Namespaces.of(*NS_NET)
        ns = nsbox.Namespaces.of(*NS_NO_NET)
        spawn = self.spawn
        # The same busybox-static `true` for every tool: inside the rootfs for the OCI
        # runtimes and bwrap, reached through the host's filesystem for the others.
        true = ["/bin/true"]
        host_true = [os.path.join(self.ws.rootfs, "bin", "true")]

        def rootfs() -> Any:
            return nsbox.PivotRoot(self.ws.rootfs, readonly=True)

        # Host-fs rows ask for the host's filesystem shared in the private mount namespace
        # (rootfs=None) where nsbox has a rootfs option; its default may be something else.
        params = inspect.signature(nsbox.Container).parameters
        default_rootfs = params["rootfs"].default if "rootfs" in params else None
        shared: dict[str, Any] = {"rootfs": None} if "rootfs" in params else {}
        if default_rootfs is not None:
            self.add("nsbox-default", f"nsbox.run() default (rootfs={default_rootfs!r}), +net",
                     lambda: nsbox.run(host_true, namespaces=ns_net).returncode,
                     "crun-net-nocg", True, cli=False)
        self.add("nsbox-net", "nsbox.run(), shared host fs, pid+mnt+uts+ipc+net",
                 lambda: nsbox.run(host_true, namespaces=ns_net, **shared).returncode,
                 "crun-net-nocg", True, cli=False)
        self.add("nsbox", "nsbox.run(), shared host fs, pid+mnt+uts+ipc",
                 lambda: nsbox.run(host_true, namespaces=ns, **shared).returncode, "crun",
                 True, cli=False)
        if hasattr(nsbox, "PivotRoot"):
            self.add("nsbox-net-rootfs", "nsbox.run(), busybox rootfs (pivot_root), +net",
                     lambda: nsbox.run(true, namespaces=ns_net, rootfs=rootfs()).returncode,
                     "crun-net-nocg", True, cli=False)
            if self.cgroup is not None:
                cg = self.cgroup
                self.add("nsbox-net-rootfs-cg", "nsbox.run(), busybox rootfs, +net, cgroup",
                         lambda: nsbox.run(true, namespaces=ns_net, rootfs=rootfs(),
                                           **cg()).returncode, "crun-net", True, cli=False)
        self.default_rootfs = default_rootfs
        cli = self.nsbox_cli_argv(*host_true)
        self.add("nsbox-cli", "python -m nsbox run, its default fs, +net (CLI)",
                 lambda: spawn(cli), "crun-net-nocg", True)
        py = [self.python, "-c", "import nsbox"]
        self.add("py-import", "python -c 'import nsbox' (the CLI's floor)",
                 lambda: spawn(py), "crun-net")

        live = self.stack.enter_context(nsbox.Container(ns_net, **shared))
        self.add("nsbox-live", "c.run() in a live nsbox container, shared host fs, +net",
                 lambda: live.run(host_true).returncode, "crun-exec", cli=False)

        self.add("crun-net", "crun run, default spec (+net, cgroup v1)",
                 self.oci_run("crun", "net", True), "crun-net", True)
        self.add("crun", "crun run, default spec, no net",
                 self.oci_run("crun", "nonet", False), "crun", True)
        self.add("crun-net-nocg", "crun run, +net, --cgroup-manager=disabled",
                 self.oci_run("crun", "nocg", True, manager="disabled"), "crun-net-nocg", True)
        exec_id = self.start_crun_for_exec()
        crun_exec = [*self.ws.runtime_argv("crun"), "exec", exec_id, *true]
        self.add("crun-exec", "crun exec into a running container (+net)",
                 lambda: spawn(crun_exec), "crun-exec")
        self.add("runc-net", "runc run, default spec (+net, cgroup v1)",
                 self.oci_run("runc", "net", True), "crun-net", True)
        bw = self.bwrap_argv(*true)
        self.add("bwrap", "bwrap --unshare-all, busybox rootfs (+net)", lambda: spawn(bw),
                 "crun-net-nocg", True)
        un = [self.path["unshare"], "--fork", "--pid", "--mount", "--uts", "--ipc"]
        un_net = [*un, "--net", "--mount-proc", *host_true]
        un = [*un, "--mount-proc", *host_true]
        self.add("unshare-net", "unshare -fpmui --net --mount-proc, host fs",
                 lambda: spawn(un_net), "crun-net-nocg", True)
        self.add("unshare", "unshare -fpmui --mount-proc, host fs", lambda: spawn(un), "crun")
        self.add("subprocess", "subprocess.run([true]) (floor, no container)",
                 lambda: subprocess.run(host_true).returncode, "crun-net", True, cli=False)
        self.add("posix_spawn", "os.posix_spawn + waitpid (floor; the CLI harness)",
                 lambda: spawn(host_true), "crun-net")
        self.preflight()
        return self.list

    def start_crun_for_exec(self) -> str:
        slot = self.ws.make_slot("crun", "exec", ["/bin/sleep", "1000000"], net=True)
        argv = self.ws.runtime_argv("crun")
        status = self.spawn([*argv, "run", "--detach", "--bundle", slot.bundle, slot.id])
        if status == 0:
            self.stack.callback(subprocess.run, [*argv, "delete", "--force", slot.id],
                                capture_output=True)
        return slot.id

    def preflight(self) -> None:
        """Run each scenario once; drop (and say why) any that fails."""
        for s in list(self.list):
            try:
                status = s.run()
                error = "" if status == 0 else f"exit status {status}: {s.why()}"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error:
                self.dropped[s.key] = f"{s.label}: {error}"
                self.list.remove(s)


# -- memory -------------------------------------------------------------------------------------

def memory_phase(sc: Scenarios, count: int, rounds: int, rng: random.Random
                 ) -> list[_memory.MemoryResult]:
    ws, spawn = sc.ws, sc.spawn
    sleep_host = [os.path.join(ws.rootfs, "bin", "sleep"), _memory.SLEEP_SECONDS]
    sleep_in_root = ["/bin/sleep", _memory.SLEEP_SECONDS]
    memory_mounts = [m for m in v1_hierarchies()
                     if os.path.exists(os.path.join(m, "memory.usage_in_bytes"))]
    memory_mount = memory_mounts[0] if memory_mounts else None

    def meter(name: str) -> _memory.Meter:
        return _memory.Meter(ws.make_cgroup(f"mem-{name}") if memory_mount else None,
                             memory_mount)

    Start = Callable[[int], _memory.Snapshot]
    Prepare = Callable[[], Start]

    def launched(m: _memory.Meter, argv: list[str]) -> Prepare:
        return lambda: lambda n: _memory.tree_snapshot(
            [spawn.start(m.launch(argv)) for _ in range(n)])

    def nsbox_lib(m: _memory.Meter, with_cgroup: bool) -> Prepare:
        # A fresh interpreter per round, started before the baseline is taken.
        return lambda: _memory.NsboxLibWorker(m, sleep_host, NS_NET,
                                              m.rel if with_cgroup else None).start

    def oci(runtime: str, m: _memory.Meter) -> Prepare:
        argv = ws.runtime_argv(runtime)
        slots = [ws.make_slot(runtime, "mem", sleep_in_root, net=True, cgroup_under=m.rel)
                 for _ in range(count)]

        def stop() -> None:
            for s in slots:
                spawn([*argv, "delete", "--force", s.id])

        def start(n: int) -> _memory.Snapshot:
            snap = _memory.Snapshot(n, stop=stop)
            for s in slots[:n]:
                if spawn(m.launch([*argv, "run", "--detach", "--bundle", s.bundle, s.id])):
                    said = spawn.last_error
                    stop()
                    raise RuntimeError(f"{runtime} run --detach failed: {said}")
                out = subprocess.run([*argv, "state", s.id], capture_output=True, text=True)
                snap.payload_pids.append(int(json.loads(out.stdout)["pid"]))
            return snap  # nothing of the runtime stays: the payload is the container's PID 1
        return lambda: start

    tools: dict[str, tuple[_memory.Meter, Prepare]] = {}
    m = meter("bare")
    tools["bare sleep, no container (the payload alone)"] = (m, launched(m, sleep_host))
    m = meter("nsbox")
    tools["nsbox library: Container + spawn (+net, default rootfs)"] = (m, nsbox_lib(m, False))
    if sc.cgroup is not None:
        m = meter("nsbox-cg")
        tools["nsbox library, + CGroup(memory_max)"] = (m, nsbox_lib(m, True))
    m = meter("nsbox-cli")
    tools["nsbox CLI: python -m nsbox run (+net)"] = (m, launched(m, sc.nsbox_cli_argv(
        *sleep_host)))
    m = meter("crun")
    tools["crun run --detach (default spec)"] = (m, oci("crun", m))
    m = meter("runc")
    tools["runc run --detach (default spec)"] = (m, oci("runc", m))
    m = meter("bwrap")
    tools["bwrap --unshare-all"] = (m, launched(m, sc.bwrap_argv(*sleep_in_root)))

    results = {name: _memory.MemoryResult(name) for name in tools}
    order = list(tools)
    for r in range(rounds):
        rng.shuffle(order)
        for i, name in enumerate(order):
            print(f"\rmemory: round {r + 1}/{rounds}, {i + 1}/{len(order)}{'':<30}", end="",
                  file=sys.stderr, flush=True)
            m, prepare = tools[name]
            try:
                _memory.measure(prepare, m, count, results[name])
            except Exception as exc:
                results[name].error = f"{type(exc).__name__}: {exc}"
    print(file=sys.stderr)
    bare = results["bare sleep, no container (the payload alone)"]
    for res in results.values():
        res.beyond_payload = res.charged - bare.charged
    sc.memory_method = next(iter(tools.values()))[0].kind
    return list(results.values())


# -- the report ---------------------------------------------------------------------------------

def _ratio(value: float, ref: float) -> str:
    return "-" if math.isnan(value) or math.isnan(ref) or not ref else f"{value / ref:.2f}"


def latency_rows(scenarios: Sequence[Scenario], hot: dict[str, Stats],
                 cool: dict[str, Stats]) -> list[list[str]]:
    rows = []
    for s in scenarios:
        row = [s.label]
        for results in (hot, cool):
            st = results.get(s.key, Stats())
            ref = results.get(s.ref or "crun-net", Stats())
            row += [f"{st.median:.2f}", f"{st.p90:.2f}", _ratio(st.median, ref.median)]
        row.append(s.ref or "")
        rows.append(row)
    return rows


def throughput_rows(scenarios: Sequence[Scenario], rates: dict[tuple[str, int], Stats],
                    workers: Sequence[int]) -> list[list[str]]:
    rows = []
    for s in scenarios:
        if not s.throughput:
            continue
        row = [s.label]
        for n in workers:
            st = rates.get((s.key, n), Stats())
            ref = rates.get((s.ref or "crun-net", n), Stats())
            row += [f"{st.median:.0f}", _ratio(st.median, ref.median)]
        row.append(s.ref or "")
        rows.append(row)
    return rows


def memory_rows(results: Sequence[_memory.MemoryResult]) -> list[list[str]]:
    rows = []
    for m in results:
        if m.error and not m.rounds:
            rows.append([m.tool, "failed", *[""] * 6])
            continue
        rows.append([m.tool, f"{m.runtime_procs:.0f}", f"{m.runtime_pss:.0f}",
                     f"{m.python_pss:.0f}", f"{m.payload_pss:.0f}", f"{m.charged:.0f}",
                     f"{m.kernel:.0f}", f"{m.beyond_payload:.0f}"])
    return rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header, *rows]):
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


LAT_HEADER = ["/bin/true, start to exit (ms)", "warm median", "p90", "x crun",
              "cold median", "p90", "x crun", "x of"]
MEM_HEADER = ["per idle container (KiB)", "runtime procs", "runtime PSS", "of it Python",
              "payload PSS", "charged", "of it kernel", "beyond payload"]


def thr_header(workers: Sequence[int]) -> list[str]:
    head = ["containers per second"]
    for n in workers:
        head += [f"N={n}", "x crun"]
    return [*head, "x of"]


def report(args: argparse.Namespace, view: str, versions: dict[str, str], fairness: str,
           scenarios: Sequence[Scenario], dropped: dict[str, str], hot: dict[str, Stats],
           cool: dict[str, Stats], rates: dict[tuple[str, int], Stats],
           memory: Sequence[_memory.MemoryResult], memory_method: str,
           problems: Sequence[str], started: float) -> tuple[str, str]:
    now = datetime.datetime.now().astimezone()
    head = [f"nsbox peers benchmark, {now:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.2f}, took {(time.monotonic() - started) / 60:.1f} min",
            f"cgroup view: {view}"]
    head += [f"{k}: {v}" for k, v in versions.items()]
    charged = ("charged to a v1 memory cgroup of our own that each tool's processes start in "
               "(user and kernel memory: namespaces, tasks, page tables, the tool's cgroups "
               "made below it)" if memory_method == "cgroup" else
               "the system-wide change of used memory in /proc/meminfo (no v1 memory "
               "hierarchy here: noisy, it sees everything else the machine does)")
    method = [
        f"Latency: warm = {args.runs} timed runs per scenario, in rounds of {args.burst} back "
        f"to back after one untimed; cold = {args.cold_runs} runs each after "
        f"{args.idle * 1000:.0f} ms idle; the order shuffled in every round (seed {args.seed})."
        " 'x crun' divides by the median of the crun row named in 'x of' (the same "
        "namespaces) in the same mode.",
        f"Throughput: median of {args.rate_rounds} rounds of {args.rate_seconds} s per cell; "
        "N threads calling the library, or N threads each running one CLI process at a time.",
        "" if not memory else
        f"Memory: {args.containers} idle containers per tool, each running busybox sleep, "
        f"median of {args.memory_rounds} rounds; per container, KiB. 'charged' is {charged}; "
        "'beyond payload' = charged - charged for a bare sleep process. 'runtime PSS' sums "
        "the runtime's own processes that stay (and the growth of the Python process holding "
        "nsbox containers, 'of it Python').",
    ]
    method = "\n".join(textwrap.fill(p, 100) for p in method if p)
    failures = [f"{s.label}: {s.failures} failed runs, first: {s.first_error}"
                for s in scenarios if s.failures]
    failures += [f"memory, {m.tool}: {m.error}" for m in memory if m.error]
    lat = latency_rows(scenarios, hot, cool) if hot else []
    thr = throughput_rows(scenarios, rates, args.workers) if rates else []
    mem = memory_rows(memory)
    notes = ([f"dropped (failed in preflight): {d}" for d in dropped.values()] + failures
             + [f"cleanup: {p}" for p in problems])

    text = "\n".join([*head, "", fairness, method, "",
                      text_table(LAT_HEADER, lat) if lat else "", "",
                      text_table(thr_header(args.workers), thr) if thr else "", "",
                      text_table(MEM_HEADER, mem) if mem else "", "",
                      *notes])
    md = "\n".join([
        f"## nsbox vs crun, runc, bubblewrap, unshare ({now:%Y-%m-%d})", "",
        *[f"- {h}" for h in head], "", fairness, method, "",
        *(["### Start to exit of /bin/true", "", md_table(LAT_HEADER, lat), ""] if lat else []),
        *(["### Containers per second", "", md_table(thr_header(args.workers), thr), ""]
          if thr else []),
        *(["### Host memory per idle container", "", md_table(MEM_HEADER, mem), ""]
          if mem else []),
        *[f"- {n}" for n in notes]])
    return text, md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="warm timed runs per scenario")
    parser.add_argument("--burst", type=int, default=5, help="warm runs in a row per round")
    parser.add_argument("--cold-runs", type=int, default=200)
    parser.add_argument("--idle", type=float, default=0.2, help="seconds idle before cold runs")
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2, 4])
    parser.add_argument("--rate-seconds", type=float, default=1.5)
    parser.add_argument("--rate-rounds", type=int, default=3)
    parser.add_argument("--containers", type=int, default=200, help="idle containers (memory)")
    parser.add_argument("--memory-rounds", type=int, default=3)
    parser.add_argument("--only", default="latency,throughput,memory",
                        help="comma-separated phases to run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="write BASE.txt, .md, .json (default: "
                        "benchmarks/results/<date>)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few of everything")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.cold_runs, args.burst = 10, 5, 2
        args.rate_seconds, args.rate_rounds, args.containers, args.memory_rounds = 0.3, 1, 5, 1
    if os.geteuid() != 0:
        sys.exit("peers.py: run as root (crun, runc and the cgroups need it)")
    view = enter_private_cgroup_view_if_needed(
        [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM too

    global nsbox
    snapshot = snapshot_nsbox(os.path.join(os.path.dirname(HERE), "src"))
    import nsbox

    started = time.monotonic()
    phases = set(args.only.split(","))
    rng = random.Random(args.seed)
    versions = {"nsbox": snapshot.describe, **tool_versions()}
    ws = Workspace()
    hot: dict[str, Stats] = {}
    cool: dict[str, Stats] = {}
    rates: dict[tuple[str, int], Stats] = {}
    memory: list[_memory.MemoryResult] = []
    try:
        with ExitStack() as stack:
            sc = Scenarios(ws, Spawner(), stack)
            scenarios = sc.build()
            if "latency" in phases:
                hot = warm(scenarios, args.runs, args.burst, rng)
                cool = cold(scenarios, args.cold_runs, args.idle, rng)
            if "throughput" in phases:
                rates = throughput([s for s in scenarios if s.throughput], args.workers,
                                   args.rate_seconds, args.rate_rounds, rng)
            if "memory" in phases:
                memory = memory_phase(sc, args.containers, args.memory_rounds, rng)
    finally:
        problems = ws.close()
        shutil.rmtree(snapshot.dir, ignore_errors=True)
    cg = ("A cgroup (CGroup(memory_max='256M'): every v1 hierarchy nsbox joins) only in the\n"
          "  row that says so; 'x crun' compares the rows without a cgroup with crun\n"
          "  --cgroup-manager=disabled." if sc.cgroup else
          "No cgroup: this nsbox's Container does not take one yet; 'x crun' compares the\n"
          "  rows without a cgroup with crun --cgroup-manager=disabled.")
    default = ("the default row is nsbox's default rootfs now: OverlayRootfs.host(), a\n"
               "  copy-on-write overlay of the host's / with its own /proc /sys /dev /run /tmp."
               if sc.default_rootfs is not None else
               "that is nsbox's default here.")
    text, md = report(args, view, versions,
                      FAIRNESS.format(nsbox_cgroup=cg, nsbox_default=default), scenarios,
                      sc.dropped, hot, cool, rates, memory, sc.memory_method, problems,
                      started)
    print(text)
    base = args.out or os.path.join(
        RESULTS, datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S"))
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    with open(base + ".txt", "w") as f:
        f.write(text + "\n")
    with open(base + ".md", "w") as f:
        f.write(md + "\n")
    with open(base + ".json", "w") as f:
        json.dump({"latency_warm": {k: v.samples for k, v in hot.items()},
                   "latency_cold": {k: v.samples for k, v in cool.items()},
                   "throughput": {f"{k}@{n}": v.samples for (k, n), v in rates.items()},
                   "memory": [m.__dict__ for m in memory], "versions": versions,
                   "labels": {s.key: s.label for s in scenarios},
                   "refs": {s.key: s.ref for s in scenarios}}, f)
    print(f"\nwritten: {base}.txt, .md, .json")


if __name__ == "__main__":
    main()
