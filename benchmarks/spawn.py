"""Start cost of a process: in a live container, in a fresh container, and plain subprocess.

Medians over many runs, all measured in the same run and reported as ratios to subprocess.
Run: .venv/bin/python benchmarks/spawn.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable

import nsbox

TRUE = "/bin/true"


def measure(fn: Callable[[], object], runs: int, warmup: int = 20) -> list[float]:
    """Wall time of each call in milliseconds, after a warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    fresh_ns = nsbox.Namespaces.of("pid", "mount", "uts", "ipc")
    scenarios: dict[str, Callable[[], object]] = {}
    scenarios["subprocess.run(/bin/true)"] = lambda: subprocess.run([TRUE], check=True)
    with nsbox.Container() as live:
        scenarios["c.run(/bin/true), live container"] = lambda: live.run([TRUE], check=True)
        scenarios["nsbox.run, fresh pid+mnt+uts+ipc, host fs"] = lambda: nsbox.run(
            [TRUE], namespaces=fresh_ns, rootfs=None, check=True)
        scenarios["nsbox.run, fresh pid+mnt+uts+ipc, default root"] = lambda: nsbox.run(
            [TRUE], namespaces=fresh_ns, check=True)
        scenarios["nsbox.run, fresh default (+net, cgroup ns)"] = lambda: nsbox.run(
            [TRUE], check=True)
        results = {name: measure(fn, args.runs) for name, fn in scenarios.items()}

    floor = statistics.median(results["subprocess.run(/bin/true)"])
    print(f"{'scenario':<48} {'median ms':>10} {'p90 ms':>8} {'x subprocess':>13}")
    for name, times in results.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<48} {median:>10.3f} {p90:>8.3f} {median / floor:>13.2f}")


if __name__ == "__main__":
    main()
