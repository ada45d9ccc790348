"""Round trip of a trivial Python call: Container.call against multiprocessing (spawn, fork).

All in one run; medians over many calls, reported as ratios to multiprocessing's fork context.
Each scenario starts a fresh process per call, as Container.call does (no pool reuse).
Run: .venv/bin/python benchmarks/call.py [--runs N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable

import nsbox


def identity(x: int) -> int:
    return x


def _in_process(ctx: multiprocessing.context.BaseContext) -> Callable[[], object]:
    def once() -> object:
        with ctx.Pool(1) as pool:  # type: ignore[attr-defined]
            return pool.apply(identity, (1,))
    return once


def measure(fn: Callable[[], object], runs: int) -> list[float]:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with nsbox.Container() as c:
        scenarios: dict[str, Callable[[], object]] = {
            "multiprocessing fork (Pool(1).apply)": _in_process(
                multiprocessing.get_context("fork")),
            "multiprocessing spawn (Pool(1).apply)": _in_process(
                multiprocessing.get_context("spawn")),
            "Container.call (fresh interpreter inside)": lambda: c.call(identity, 1),
        }
        results = {name: measure(fn, args.runs) for name, fn in scenarios.items()}
    base = statistics.median(results["multiprocessing fork (Pool(1).apply)"])
    print(f"{'scenario':<45} {'median ms':>10} {'x fork':>8}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<45} {median:>10.2f} {median / base:>8.2f}")


if __name__ == "__main__":
    main()
