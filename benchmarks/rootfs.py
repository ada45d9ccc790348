"""Container start cost with a root filesystem: 1, 10 and 100 overlay lower layers.

Each scenario is a whole container life: enter (the C child mounts the overlay and applies the
mount plan, pivot_root), run /bin/true inside, leave (kill, reap, remove the upper layer). The
scenarios run interleaved, round after round, so drift on a noisy machine hits them alike;
medians and p90 are reported with the ratio to a container without a root filesystem.
Run (as root): .venv/bin/python benchmarks/rootfs.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import nsbox
from nsbox.rootfs import OverlayRootfs, PivotRoot, make_busybox_tree


def make_layers(top: str, count: int) -> list[str]:
    """A busybox tree and count - 1 small layers above it, each adding and replacing a file."""
    layers = [make_busybox_tree(os.path.join(top, "base"))]
    for i in range(1, count):
        layer = os.path.join(top, f"layer{i}")
        os.makedirs(os.path.join(layer, "layers"))
        for name, text in ((f"layers/{i}", ""), ("shared", f"{i}\n")):
            with open(os.path.join(layer, name), "w") as f:
                f.write(text)
        layers.append(layer)
    return layers


Rootfs = PivotRoot | OverlayRootfs | None


def lifecycle(rootfs: Rootfs) -> None:
    """One container life: start, run /bin/true, tear down."""
    with nsbox.Container(rootfs=rootfs) as c:
        c.run(["/bin/true"], check=True)


def legacy(layers: list[str]) -> PivotRoot:
    """An overlay mounted by the mount(2) path of kernels before 6.8."""
    root = PivotRoot(OverlayRootfs(layers))
    root._legacy_overlay = True
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", help="also write the samples (ms) here")
    args = parser.parse_args()

    top = tempfile.mkdtemp(prefix="nsbox-bench-rootfs-")
    try:
        layers = make_layers(top, 100)
        with open(os.path.join(layers[-1], "shared")) as f:
            assert f.read() == "99\n"
        baseline = "no rootfs (host fs, private mounts)"
        # A factory per scenario: an OverlayRootfs is single-use, a PivotRoot of a directory
        # can start container after container.
        bind = PivotRoot(layers[0])
        scenarios: dict[str, Callable[[], Rootfs]] = {
            baseline: lambda: None,
            "PivotRoot(busybox dir), bind": lambda: bind,
            "OverlayRootfs, 1 lower layer": lambda: OverlayRootfs(layers[:1]),
            "OverlayRootfs, 10 lower layers": lambda: OverlayRootfs(layers[:10]),
            "OverlayRootfs, 100 lower layers": lambda: OverlayRootfs(layers),
            "100 layers, mount(2) fallback": lambda: legacy(layers),
            "OverlayRootfs.host()": OverlayRootfs.host,
        }
        times: dict[str, list[float]] = {name: [] for name in scenarios}
        for round_ in range(args.warmup + args.runs):
            for name, make in scenarios.items():
                rootfs = make()
                start = time.perf_counter()
                lifecycle(rootfs)
                if round_ >= args.warmup:
                    times[name].append((time.perf_counter() - start) * 1000)
    finally:
        shutil.rmtree(top)

    floor = statistics.median(times[baseline])
    one = statistics.median(times["OverlayRootfs, 1 lower layer"])
    print(f"{'scenario (start + run /bin/true + teardown)':<46} {'median ms':>10} "
          f"{'p90 ms':>8} {'x no rootfs':>12} {'x 1 layer':>10}")
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:<46} {median:>10.2f} {p90:>8.2f} {median / floor:>12.2f} "
              f"{median / one:>10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": times, "baseline": baseline,
                       "one_layer": "OverlayRootfs, 1 lower layer"}, f)


if __name__ == "__main__":
    main()
