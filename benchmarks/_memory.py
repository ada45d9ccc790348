"""Host memory per idle container: many containers each running ``sleep``, measured two ways.

- Charged memory: every process of one tool (the runtime, its containers, their payloads, the
  Python process holding nsbox containers) starts inside a v1 memory cgroup of our own, so the
  kernel charges it everything they allocate: user pages and kernel objects (namespaces, task
  structs, page tables, cgroups made below it). The delta of ``memory.usage_in_bytes`` over N
  containers, per container, less the same for N bare ``sleep`` processes, is the cost beyond
  the payload. Without a v1 memory hierarchy the system-wide /proc/meminfo delta stands in
  (much noisier: it sees everything else the machine does).
- Who holds it: PSS and RSS from /proc/PID/smaps_rollup of the runtime's processes that stay
  alive beside each payload, and of the payloads.

``python _memory.py worker`` is the nsbox library side, in a fresh interpreter of its own; it
talks to :class:`NsboxLibWorker` over its stdin and stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SETTLE = 0.5
SLEEP_SECONDS = "100000"
PAYLOAD_COMM = "sleep"


def smaps(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB; (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return pss, rss


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, value = line.split(":", 1)
            out[name] = int(value.split()[0])
    return out


class Meter:
    """Charged memory (KiB) of the processes started through :meth:`launch`, and of any
    cgroup created below ``rel``; ``rel`` exists in every v1 hierarchy (see
    ``Workspace.make_cgroup``). Falls back to /proc/meminfo when there is no v1 memory
    hierarchy (a cgroup v2 machine)."""

    def __init__(self, rel: str | None, memory_mount: str | None) -> None:
        self.rel = rel
        self.dir = os.path.join(memory_mount, rel) if memory_mount and rel else None

    @property
    def kind(self) -> str:
        return "cgroup" if self.dir else "meminfo"

    def _read(self, name: str) -> int:
        assert self.dir is not None
        with open(os.path.join(self.dir, name)) as f:
            return int(f.read()) // 1024

    def charged(self) -> tuple[int, int]:
        """(all charged memory, of which kernel memory), KiB."""
        if self.dir:
            kmem = 0
            with contextlib.suppress(OSError):
                kmem = self._read("memory.kmem.usage_in_bytes")
            return self._read("memory.usage_in_bytes"), kmem
        m = meminfo()
        used = (m["MemTotal"] - m["MemFree"] - m.get("Buffers", 0) - m.get("Cached", 0)
                - m.get("SReclaimable", 0))
        kernel = sum(m.get(k, 0) for k in ("SUnreclaim", "KernelStack", "PageTables",
                                           "Percpu"))
        return used, kernel

    def launch(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so that it starts inside this cgroup."""
        if not self.dir:
            return list(argv)
        procs = os.path.join(self.dir, "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *argv]


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


@dataclass
class Snapshot:
    """What a tool's N idle containers are: the processes to look at, and how to stop them."""

    count: int
    runtime_pids: list[int] = field(default_factory=list)
    payload_pids: list[int] = field(default_factory=list)
    python_pss_delta: int = 0  # KiB: growth of the Python process holding nsbox containers
    stop: Callable[[], None] = lambda: None


@dataclass
class MemoryResult:
    """Per container, KiB, medians over rounds."""

    tool: str
    count: int = 0
    runtime_procs: float = 0
    runtime_pss: float = 0
    python_pss: float = 0
    payload_pss: float = 0
    charged: float = 0
    kernel: float = 0
    beyond_payload: float = 0
    rounds: list[dict[str, float]] = field(default_factory=list)
    error: str = ""

    def add_round(self, snap: Snapshot, before: tuple[int, int], after: tuple[int, int]
                  ) -> None:
        n = snap.count
        runtime = [smaps(p) for p in snap.runtime_pids]
        payload = [smaps(p) for p in snap.payload_pids]
        self.rounds.append({
            "runtime_procs": len(snap.runtime_pids) / n,
            "runtime_pss": (sum(p for p, _ in runtime) + snap.python_pss_delta) / n,
            "python_pss": snap.python_pss_delta / n,
            "payload_pss": sum(p for p, _ in payload) / n,
            "charged": (after[0] - before[0]) / n,
            "kernel": (after[1] - before[1]) / n,
        })
        self.count = n
        for key in self.rounds[0]:
            setattr(self, key, statistics.median(r[key] for r in self.rounds))


def measure(prepare: Callable[[], Callable[[int], Snapshot]], meter: Meter, count: int,
             result: MemoryResult) -> None:
    """One round: prepare (outside the measure: start the nsbox worker's interpreter), start
    ``count`` idle containers, let them settle, measure, stop them."""
    start = prepare()
    before = meter.charged()
    snap = start(count)
    try:
        time.sleep(SETTLE)
        result.add_round(snap, before, meter.charged())
    finally:
        snap.stop()


# -- the nsbox library, in a worker interpreter ------------------------------------------------

class NsboxLibWorker:
    """A fresh interpreter (started in ``meter``) that holds nsbox containers on request."""

    def __init__(self, meter: Meter, payload: Sequence[str], namespaces: Sequence[str],
                 cgroup_parent: str | None) -> None:
        argv = [sys.executable, os.path.abspath(__file__), "worker",
                json.dumps({"payload": list(payload), "namespaces": list(namespaces),
                            "cgroup_parent": cgroup_parent})]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(meter.launch(argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     bufsize=1)
        self._expect("ready")

    def _expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            self._stderr.seek(0)
            said = self._stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"nsbox memory worker said {line!r}, expected {word!r}; "
                               f"stderr: {' | '.join(said)}")
        return line[len(word):].strip()

    def _say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")

    def start(self, count: int) -> Snapshot:
        pss0, _ = smaps(self.proc.pid)
        self._say(f"start {count}")
        pids = json.loads(self._expect("started"))
        pss1, _ = smaps(self.proc.pid)
        return Snapshot(count, runtime_pids=pids["inits"], payload_pids=pids["payloads"],
                        python_pss_delta=pss1 - pss0, stop=self.close)

    def close(self) -> None:
        self._say("stop")
        self._expect("stopped")
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(30)
        self._stderr.close()


def _worker(config: dict[str, object]) -> None:
    import gc
    from contextlib import ExitStack

    import nsbox

    payload = config["payload"]
    names = config["namespaces"]
    cgroup_parent = config["cgroup_parent"]
    assert isinstance(payload, list) and isinstance(names, list)
    namespaces = nsbox.Namespaces.of(*names)

    def container() -> nsbox.Container:
        if cgroup_parent:
            from nsbox.cgroup import CGroup

            return nsbox.Container(namespaces, CGroup(memory_max="256M", parent=cgroup_parent))
        return nsbox.Container(namespaces)

    # One container first, so what is loaded once (modules, the sealed init) is in the
    # baseline, as in any process that has started a container before.
    with container() as c:
        c.run(["true"])
    gc.collect()
    print("ready", flush=True)
    stack = ExitStack()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "start":
            inits, payloads = [], []
            for _ in range(int(cmd[1])):
                c = stack.enter_context(container())
                p = c.spawn(payload, stdin=nsbox.DEVNULL, stdout=nsbox.DEVNULL,
                            stderr=nsbox.DEVNULL)
                inits.append(c.init_pid)
                payloads.append(p.pid)
            gc.collect()
            print("started", json.dumps({"inits": inits, "payloads": payloads}), flush=True)
        elif cmd[0] == "stop":
            stack.close()
            print("stopped", flush=True)


# -- command-line tools -------------------------------------------------------------------------

def split_tree(root_pid: int, kids: dict[int, list[int]]) -> tuple[list[int], list[int]]:
    """The runtime's processes and the payload's, in the process tree under ``root_pid``."""
    runtime, payload = [], []
    for p in descendants(root_pid, kids):
        (payload if comm(p) == PAYLOAD_COMM else runtime).append(p)
    return runtime, payload


def tree_snapshot(roots: Sequence[int], timeout: float = 60.0) -> Snapshot:
    """Wait until every started tool shows its payload, then split each tree."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children_map()
        trees = [split_tree(r, kids) for r in roots]
        if all(payload for _, payload in trees) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    snap = Snapshot(len(roots), stop=lambda: kill_and_reap(roots, signal.SIGTERM))
    for runtime, payload in trees:
        snap.runtime_pids += runtime
        snap.payload_pids += payload
    return snap


def kill_and_reap(pids: Sequence[int], sig: int = signal.SIGKILL) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)
    for p in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p, 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(json.loads(sys.argv[2]))
