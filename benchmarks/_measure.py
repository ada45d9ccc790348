"""Timing for the benchmarks: interleaved rounds (warm and cold), throughput, statistics.

Nothing here asserts anything about time: benchmarks report, tests check.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Scenario:
    """One way of starting /bin/true in a fresh container (or a floor without one).

    ``run`` does it once and returns the exit status. ``ref`` is the key of the crun row with
    the same namespaces, which the ratios divide by.
    """

    key: str
    label: str
    run: Callable[[], int]
    ref: str | None = None
    throughput: bool = False
    failures: int = 0
    first_error: str = ""
    why: Callable[[], str] = lambda: ""  # what the tool said when it failed

    def failed(self, what: str) -> None:
        self.failures += 1
        if not self.first_error:
            said = self.why()
            self.first_error = what + (f" ({said})" if said else "")


@dataclass
class Stats:
    samples: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def p90(self) -> float:
        if len(self.samples) < 2:
            return self.median
        return statistics.quantiles(self.samples, n=10)[-1]


def _call(scenario: Scenario) -> float:
    start = time.perf_counter_ns()
    try:
        status = scenario.run()
    except Exception as exc:
        scenario.failed(f"{type(exc).__name__}: {exc}")
        return math.nan
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if status != 0:
        scenario.failed(f"exit status {status}")
        return math.nan
    return elapsed


def _progress(text: str) -> None:
    print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)


def warm(scenarios: Sequence[Scenario], runs: int, burst: int, rng: random.Random
         ) -> dict[str, Stats]:
    """Back to back: rounds in shuffled order; in each round every scenario runs once untimed,
    then ``burst`` timed times in a row, so each timed run follows one of its own kind."""
    results = {s.key: Stats() for s in scenarios}
    rounds = math.ceil(runs / burst)
    order = list(scenarios)
    for r in range(rounds):
        _progress(f"warm: round {r + 1}/{rounds}")
        rng.shuffle(order)
        for s in order:
            _call(s)
            for _ in range(burst):
                t = _call(s)
                if not math.isnan(t):
                    results[s.key].samples.append(t)
    _progress("")
    return results


def cold(scenarios: Sequence[Scenario], runs: int, idle: float, rng: random.Random
         ) -> dict[str, Stats]:
    """After ``idle`` seconds of doing nothing: one timed run per scenario per round, shuffled."""
    results = {s.key: Stats() for s in scenarios}
    order = list(scenarios)
    for r in range(runs):
        if r % 10 == 0:
            _progress(f"cold: round {r + 1}/{runs}")
        rng.shuffle(order)
        for s in order:
            time.sleep(idle)
            t = _call(s)
            if not math.isnan(t):
                results[s.key].samples.append(t)
    _progress("")
    return results


def _rate(scenario: Scenario, workers: int, duration: float) -> float:
    """Containers per second from ``workers`` threads starting them back to back."""
    counts = [0] * workers
    deadline = time.perf_counter() + duration
    barrier = threading.Barrier(workers + 1)

    def work(i: int) -> None:
        barrier.wait()
        while time.perf_counter() < deadline:
            try:
                status = scenario.run()
            except Exception as exc:
                scenario.failed(f"{type(exc).__name__}: {exc}")
                continue
            if status == 0:
                counts[i] += 1
            else:
                scenario.failed(f"exit status {status}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def throughput(scenarios: Sequence[Scenario], workers: Sequence[int], duration: float,
               rounds: int, rng: random.Random) -> dict[tuple[str, int], Stats]:
    """Rates per (scenario, workers), ``rounds`` times each, cells shuffled in every round."""
    cells = [(s, n) for s in scenarios for n in workers]
    results = {(s.key, n): Stats() for s, n in cells}
    for r in range(rounds):
        rng.shuffle(cells)
        for i, (s, n) in enumerate(cells):
            _progress(f"throughput: round {r + 1}/{rounds}, cell {i + 1}/{len(cells)}")
            results[(s.key, n)].samples.append(_rate(s, n, duration))
    _progress("")
    return results


class Spawner:
    """Runs a command line with stdin and stdout on /dev/null and waits: the harness for the
    command-line tools. ``os.posix_spawn`` (vfork + exec in glibc) and ``waitpid``: the least
    the harness can add, measured on its own as the ``os.posix_spawn`` floor.

    stderr goes to a scratch file per thread (emptied before each run), so that a failure
    can say what the tool printed: :attr:`last_error`.
    """

    def __init__(self) -> None:
        self._devnull = os.open(os.devnull, os.O_RDWR)
        self._local = threading.local()

    def _stderr(self) -> int:
        fd = getattr(self._local, "fd", None)
        if fd is None:
            fd = self._local.fd = os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
        return int(fd)

    def _actions(self, err: int) -> list[tuple[int, int, int]]:
        return [(os.POSIX_SPAWN_DUP2, self._devnull, 0), (os.POSIX_SPAWN_DUP2, self._devnull, 1),
                (os.POSIX_SPAWN_DUP2, err, 2)]

    def __call__(self, argv: Sequence[str]) -> int:
        err = self._stderr()
        os.ftruncate(err, 0)
        os.lseek(err, 0, os.SEEK_SET)
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=self._actions(err))
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            text = os.pread(err, 4096, 0).decode(errors="replace").strip().splitlines()
            self._local.last_error = " | ".join(text[-3:])
        return code

    @property
    def last_error(self) -> str:
        """The end of what the last failed command of this thread printed on stderr."""
        return str(getattr(self._local, "last_error", ""))

    def start(self, argv: Sequence[str]) -> int:
        """Start without waiting (stderr to /dev/null); returns the pid (the caller reaps)."""
        return os.posix_spawn(argv[0], argv, os.environ,
                              file_actions=self._actions(self._devnull))
