"""Soak: many containers, one after another and many at once, leave the host as it was."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

import nsbox
from nsbox import state
from nsbox.cgroup import CGroup, detect
from tests.conftest import HostState
from tests.reliability.conftest import Record, size


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _nsbox_cgroups() -> set[str]:
    info = detect()
    roots = [info.v2_mount] if info.version == "v2" else list(info.v1_mounts.values())
    return {str(p) for r in roots if r and (Path(r) / "nsbox").is_dir()
            for p in (Path(r) / "nsbox").iterdir() if p.name.startswith(f"nsbox-{os.getpid()}-")}


def _snapshot() -> tuple[HostState, set[str], set[str], set[str], int]:
    mine = state.state_dir() / "owners" / f"{os.getpid()}-{state._start_time(os.getpid())}"
    records = {str(p) for p in mine.iterdir()} if mine.is_dir() else set()
    temps = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
    return HostState(), _nsbox_cgroups(), records, temps, threading.active_count()


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups here need root")
def test_soak_sequential_and_concurrent(report: list[Record], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """N containers in a row and 50 at a time for R rounds leave no mount, cgroup, fd, thread,
    child, record or temporary directory, and the parent's RSS grows by less than 5 MiB."""
    sequential, rounds = size(300, 10_000), size(4, 200)
    # A temporary directory of this test's own, so other processes' files do not count.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for _ in range(20):  # warm caches and allocator pools before the baseline
        nsbox.run(["true"])
    host, cgroups, records, temps, threads = _snapshot()
    rss = _rss_kib()

    for i in range(sequential):
        cgroup = CGroup(pids_max=64) if i % 10 == 0 else None
        assert nsbox.run(["true"], cgroup=cgroup).returncode == 0

    errors: list[BaseException] = []

    def one() -> None:
        try:
            with nsbox.Container() as c:
                assert c.run(["true"]).returncode == 0
        except BaseException as exc:
            errors.append(exc)

    for _ in range(rounds):
        workers = [threading.Thread(target=one) for _ in range(50)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors, errors[:3]

    host.assert_unchanged()
    after = _snapshot()
    assert after[1:] == (cgroups, records, temps, threads)
    grown = _rss_kib() - rss
    report.append(Record(f"soak: {sequential} sequential containers (1 in 10 with a cgroup), "
                         f"then {rounds} rounds of 50 concurrent", sequential + 50 * rounds,
                         f"nothing left behind; RSS grew {grown} KiB"))
    assert grown < 5 * 1024
