"""The peers' side of the benchmarks: a busybox rootfs, OCI bundles, command lines, cleanup.

Everything lives in one temporary directory ``/var/tmp/nsbox-bench-XXXX`` (rootfs, bundles, the
runtimes' state directories given with ``--root``) and every cgroup the OCI runtimes create goes
under one parent of our own, ``nsbox-bench-<pid>``, in each hierarchy. :meth:`Workspace.close`
deletes every container, removes those cgroups (only ours) and the directory.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = f"{CGROUP_ROOT}/unified"
BUSYBOX = "/bin/busybox"
ENV_PRIVATE_VIEW = "NSBOX_BENCH_PRIVATE_CGROUP_VIEW"
CGROUP2_SUPER_MAGIC = 0x63677270


def _fs_type(path: str) -> str | None:
    """The filesystem type mounted at ``path`` (from /proc/self/mountinfo), or None."""
    with open("/proc/self/mountinfo") as f:
        found = None
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == path:
                found = right.split()[0]  # the last mount at a path is the visible one
        return found


def is_hybrid_cgroup_host() -> bool:
    """v1 controller hierarchies under /sys/fs/cgroup and a cgroup2 one at .../unified."""
    return _fs_type(CGROUP_ROOT) != "cgroup2" and _fs_type(UNIFIED) == "cgroup2"


def enter_private_cgroup_view_if_needed(argv: Sequence[str]) -> str:
    """On a hybrid host, re-execute ``argv`` in a private mount namespace with an empty tmpfs
    over /sys/fs/cgroup/unified (crun 1.8 refuses hybrid hosts otherwise; see
    ../shared/docs/references.md). Every tool, nsbox included, then runs in that same view.
    Nothing changes on the host: the tmpfs lives and dies with that mount namespace.

    Returns a one-line description of the view the benchmarks run in.
    """
    if os.environ.get(ENV_PRIVATE_VIEW) == "1":
        return ("private mount namespace, empty tmpfs over /sys/fs/cgroup/unified "
                "(hybrid host; for crun; every tool runs in it)")
    if not is_hybrid_cgroup_host():
        return "the host's own mount namespace and cgroup hierarchies (no workaround needed)"
    script = ("mount -t tmpfs -o size=16m,mode=755 nsbox-bench " + UNIFIED + " && "
              'exec "$@"')
    env = dict(os.environ, **{ENV_PRIVATE_VIEW: "1"})
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                           "/bin/sh", "-c", script, "sh", *argv], env)
    raise AssertionError("unreachable")


@dataclass
class Snapshot:
    """A frozen copy of nsbox's source (with its built extension and init), imported by the
    benchmark and every interpreter it starts, so edits made meanwhile change nothing."""

    dir: str
    describe: str


def snapshot_nsbox(src: str) -> Snapshot:
    """Copy ``src/nsbox`` once (the re-executed benchmark reuses the copy) and put it first
    on ``sys.path`` and ``PYTHONPATH``."""
    copy = os.environ.get("NSBOX_BENCH_SRC")
    if not copy:
        copy = tempfile.mkdtemp(prefix="nsbox-bench-src-")
        shutil.copytree(os.path.join(src, "nsbox"), os.path.join(copy, "nsbox"),
                        ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
        os.environ["NSBOX_BENCH_SRC"] = copy
    sys.path.insert(0, copy)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (copy, os.environ.get("PYTHONPATH", "")) if p)

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", src, *args], capture_output=True, text=True)
        return out.stdout.strip()
    changed = len(git("status", "--porcelain", "--", ".").splitlines())
    describe = (f"{git('rev-parse', '--short', 'HEAD')}"
                f"{f' + {changed} uncommitted files in src/' if changed else ''}, "
                f"frozen at {time.strftime('%H:%M:%S')} into {copy}")
    return Snapshot(copy, describe)


def v1_hierarchies() -> list[str]:
    """The mount points of the cgroup v1 hierarchies (co-mounted ones once)."""
    out: list[str] = []
    try:
        names = sorted(os.listdir(CGROUP_ROOT))
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.realpath(os.path.join(CGROUP_ROOT, name))
        if path not in out and _fs_type(path) == "cgroup":
            out.append(path)
    return out


def tool_versions() -> dict[str, str]:
    """One line per tool: what exactly was measured."""
    def first_line(cmd: Sequence[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({exc})"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"

    return {
        "kernel": os.uname().release,
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "crun": first_line(["crun", "--version"]),
        "runc": first_line(["runc", "--version"]),
        "bwrap": first_line(["bwrap", "--version"]),
        "unshare": first_line(["unshare", "--version"]),
        "busybox": first_line([BUSYBOX]).split(" multi-call")[0],
    }


@dataclass
class Slot:
    """One reusable container name with its own bundle (an OCI bundle names its cgroup)."""

    runtime: str
    id: str
    bundle: str


@dataclass
class Workspace:
    """The temporary directory with the rootfs, the bundles and the runtimes' state."""

    # Under /var/tmp, not /tmp: nsbox's default rootfs (an overlay of the host's /) gives a
    # container its own /tmp, where the payload (this busybox) would not be found.
    root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="nsbox-bench-",
                                                               dir="/var/tmp"))
    cgroup_parent: str = field(default_factory=lambda: f"nsbox-bench-{os.getpid()}")
    _pools: dict[str, queue.SimpleQueue[Slot]] = field(default_factory=dict)
    _made: list[Slot] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rootfs = os.path.join(self.root, "rootfs")
        for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
            os.makedirs(os.path.join(self.rootfs, d))
        shutil.copy2(BUSYBOX, os.path.join(self.rootfs, "bin", "busybox"))
        for applet in ("true", "sh", "sleep"):
            os.symlink("busybox", os.path.join(self.rootfs, "bin", applet))
        self._specs: dict[str, dict[str, object]] = {}

    def state_dir(self, runtime: str) -> str:
        path = os.path.join(self.root, f"state-{runtime}")
        os.makedirs(path, exist_ok=True)
        return path

    def _base_spec(self, runtime: str) -> dict[str, object]:
        # The runtime's own default spec (`crun spec` / `runc spec`), as its users start from.
        if runtime not in self._specs:
            tmp = os.path.join(self.root, f"spec-{runtime}")
            os.makedirs(tmp)
            subprocess.run([runtime, "spec"], cwd=tmp, check=True, capture_output=True)
            with open(os.path.join(tmp, "config.json")) as f:
                self._specs[runtime] = json.load(f)
        return json.loads(json.dumps(self._specs[runtime]))

    def make_slot(self, runtime: str, variant: str, args: Sequence[str], net: bool,
                  cgroup_under: str | None = None) -> Slot:
        """A new container name and bundle: the default spec with no terminal, ``args``, the
        busybox rootfs (read-only, shared), and a cgroup under our own parent (or under
        ``cgroup_under``, a path relative to the hierarchies' roots)."""
        with self._lock:
            n = next(self._counter)
        cid = f"nsbench-{os.getpid()}-{variant}-{n}"
        bundle = os.path.join(self.root, "bundles", cid)
        os.makedirs(bundle)
        spec = self._base_spec(runtime)
        process = spec["process"]
        linux = spec["linux"]
        assert isinstance(process, dict) and isinstance(linux, dict)
        process["terminal"] = False
        process["args"] = list(args)
        spec["root"] = {"path": self.rootfs, "readonly": True}
        spec["hostname"] = "nsbox-bench"
        if not net:
            linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        linux["cgroupsPath"] = f"/{cgroup_under or self.cgroup_parent}/{cid}"
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f, indent=1)
        slot = Slot(runtime, cid, bundle)
        self._made.append(slot)
        return slot

    @contextlib.contextmanager
    def slot(self, runtime: str, variant: str, args: Sequence[str], net: bool) -> Iterator[Slot]:
        """Borrow a free slot of this kind (made on first need): ``crun run`` deletes its
        container and cgroup when it exits, so the name and bundle can be used again."""
        key = f"{runtime}/{variant}/{net}/{' '.join(args)}"
        with self._lock:
            pool = self._pools.setdefault(key, queue.SimpleQueue())
        try:
            s = pool.get_nowait()
        except queue.Empty:
            s = self.make_slot(runtime, variant, args, net)
        try:
            yield s
        finally:
            pool.put(s)

    def runtime_argv(self, runtime: str, cgroup_manager: str | None = None) -> list[str]:
        """``<runtime> --root <our state dir>``, the runtime found on PATH by absolute path."""
        argv = [shutil.which(runtime) or runtime, "--root", self.state_dir(runtime)]
        if cgroup_manager:
            argv.append(f"--cgroup-manager={cgroup_manager}")
        return argv

    # -- cleanup -------------------------------------------------------------------------------

    def delete_containers(self) -> list[str]:
        """Force-delete every container left in our state directories; returns their ids."""
        left = []
        for runtime in ("crun", "runc"):
            state = os.path.join(self.root, f"state-{runtime}")
            if not os.path.isdir(state):
                continue
            out = subprocess.run([runtime, "--root", state, "list", "-q"],
                                 capture_output=True, text=True)
            for cid in out.stdout.split():
                left.append(f"{runtime}:{cid}")
                subprocess.run([runtime, "--root", state, "delete", "--force", cid],
                               capture_output=True)
        return left

    def make_cgroup(self, name: str) -> str:
        """``<parent>/<name>`` in every v1 hierarchy (cpusets filled from their parents, as a
        new v1 cpuset is empty); returns the path relative to the hierarchies' roots."""
        rel = f"{self.cgroup_parent}/{name}"
        for mount_point in v1_hierarchies():
            d = mount_point
            for part in rel.split("/"):
                d = os.path.join(d, part)
                if os.path.isdir(d):
                    continue
                os.mkdir(d)
                if os.path.exists(os.path.join(d, "cpuset.cpus")):
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        with open(os.path.join(os.path.dirname(d), f)) as src:
                            value = src.read().strip()
                        with open(os.path.join(d, f), "w") as dst:
                            dst.write(value)
        return rel

    def remove_cgroups(self) -> list[str]:
        """rmdir our cgroup parent (and anything under it) in every hierarchy; returns what
        could not be removed. Touches nothing outside ``nsbox-bench-<pid>``."""
        failed: list[str] = []
        seen = set()
        try:
            hierarchies = sorted(os.listdir(CGROUP_ROOT))
        except FileNotFoundError:
            return failed
        for h in hierarchies:
            mount_point = os.path.realpath(os.path.join(CGROUP_ROOT, h))
            top = os.path.join(mount_point, self.cgroup_parent)
            if top in seen or not os.path.isdir(top):
                continue
            if _fs_type(mount_point) not in ("cgroup", "cgroup2"):
                continue  # our private tmpfs over unified: it goes away with our namespace
            seen.add(top)
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError as exc:
                    failed.append(f"{dirpath}: {exc.strerror}")
        return failed

    def close(self) -> list[str]:
        """Delete containers, cgroups and the directory; returns problems seen (for the log)."""
        problems = [f"left running, deleted: {c}" for c in self.delete_containers()]
        problems += [f"cgroup not removed: {c}" for c in self.remove_cgroups()]
        shutil.rmtree(self.root, ignore_errors=True)
        return problems
