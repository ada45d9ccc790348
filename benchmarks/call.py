"""Round trip of a trivial Python call: Container.call (both modes) against multiprocessing.

All in one run; medians over many calls, reported as ratios to multiprocessing's fork context.
Each scenario starts a fresh process per call, as Container.call does (no pool reuse).
Run: .venv/bin/python benchmarks/call.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
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


def measure(scenarios: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Interleaved (A B C A B C ...) so drift of a shared machine hits every scenario alike."""
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    for fn in scenarios.values():
        fn()  # warm up
    for _ in range(runs):
        for name, fn in scenarios.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", help="also write the samples (ms) here")
    args = parser.parse_args()
    with nsbox.Container() as c:
        scenarios: dict[str, Callable[[], object]] = {
            "multiprocessing fork (Pool(1).apply)": _in_process(
                multiprocessing.get_context("fork")),
            "multiprocessing spawn (Pool(1).apply)": _in_process(
                multiprocessing.get_context("spawn")),
            "Container.call (fresh interpreter inside)": lambda: c.call(identity, 1),
            # A Pool's helper threads are gone once it is closed: the caller is single-threaded.
            "Container.call_with(fork=True)": lambda: c.call_with(identity, (1,), fork=True),
        }
        results = measure(scenarios, args.runs)
    baseline = "multiprocessing fork (Pool(1).apply)"
    base = statistics.median(results[baseline])
    print(f"{'scenario':<45} {'median ms':>10} {'x fork':>8}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<45} {median:>10.2f} {median / base:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": results, "baseline": baseline}, f)


if __name__ == "__main__":
    main()
