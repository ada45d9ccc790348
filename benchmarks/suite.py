"""Every benchmark in one run, and one report: markdown plus a PNG chart.

1. rootfs.py: container start with 1, 10 and 100 overlay layers (scenario 4);
2. call.py: Container.call round trips against multiprocessing (scenario 6);
3. peers.py: nsbox against crun, runc, bubblewrap and unshare: start to exit, warm and cold,
   exec, the floors (scenarios 1, 5, 7), containers per second (2) and memory per idle
   container (3); the longest part, run last.

nsbox is copied once before the first of them and every part imports that copy, so edits
made meanwhile do not leak into the run. Writes benchmarks/results/<date>-suite.{md,png}
beside each part's own files. Needs root, the peers (benchmarks/setup) and matplotlib (the
``bench`` extra); ``nox -s bench`` provides all three. Benchmarks report; they assert
nothing about time.
Run: .venv/bin/python benchmarks/suite.py [--quick] [-- PEERS-OPTIONS...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
from typing import Any

from _peers import snapshot_nsbox
from peers import RESULTS, md_table

HERE = os.path.dirname(os.path.abspath(__file__))


def run_part(script: str, *args: str) -> None:
    print(f"\n== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, os.path.join(HERE, script), *args], check=True)


def load(path: str) -> dict[str, Any]:
    with open(path) as f:
        return dict(json.load(f))


def ratio_table(part: dict[str, Any], header: list[str]) -> str:
    """Median, p90 and the ratio to the part's baseline, one row per scenario."""
    samples: dict[str, list[float]] = part["samples"]
    base = statistics.median(samples[part["baseline"]])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else median
        rows.append([name, f"{median:.2f}", f"{p90:.2f}", f"{median / base:.2f}"])
    return md_table(header, rows)


def chart(peers: dict[str, Any], rootfs: dict[str, Any], call: dict[str, Any],
          path: str) -> None:
    """Four panels: start to exit per tool (warm and cold medians), containers per second,
    root filesystems, Container.call."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    labels: dict[str, str] = peers["labels"]
    warm = {k: statistics.median(v) for k, v in peers["latency_warm"].items() if v}
    cold = {k: statistics.median(v) for k, v in peers["latency_cold"].items() if v}
    # The CLI rows (100+ ms, an interpreter's start) would flatten the rest: left out here,
    # they are in the tables.
    keys = [k for k in warm if warm[k] < 50]
    fig, axes = plt.subplots(4, 1, figsize=(11, 19), height_ratios=[5, 4, 2, 1.5])
    ax = axes[0]
    y = range(len(keys))
    ax.barh([i - 0.2 for i in y], [warm[k] for k in keys], height=0.4, label="warm")
    ax.barh([i + 0.2 for i in y], [cold.get(k, 0) for k in keys], height=0.4, label="cold")
    ax.set_yticks(list(y), [labels.get(k, k) for k in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms, median (lower is better)")
    ax.set_title("Start, run /bin/true, tear down")
    ax.legend()

    ax = axes[1]
    rates: dict[str, list[float]] = peers["throughput"]
    by_n: dict[int, dict[str, float]] = {}
    for cell, values in rates.items():
        key, _, n = cell.rpartition("@")
        if values:
            by_n.setdefault(int(n), {})[key] = statistics.median(values)
    rate_keys = sorted({k for cells in by_n.values() for k in cells},
                       key=lambda k: -max(cells.get(k, 0) for cells in by_n.values()))
    width = 0.8 / max(1, len(by_n))
    for j, (n, cells) in enumerate(sorted(by_n.items())):
        ax.barh([i - 0.4 + width * (j + 0.5) for i in range(len(rate_keys))],
                [cells.get(k, 0) for k in rate_keys], height=width, label=f"N={n}")
    ax.set_yticks(range(len(rate_keys)), [labels.get(k, k) for k in rate_keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("containers per second, median (higher is better)")
    ax.set_title("Throughput with N workers")
    ax.legend()

    for ax, part, title in ((axes[2], rootfs, "Root filesystems: start, run /bin/true, "
                             "tear down"), (axes[3], call, "Container.call round trip")):
        names = list(part["samples"])
        ax.barh(range(len(names)), [statistics.median(part["samples"][n]) for n in names],
                height=0.6)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("ms, median (lower is better)")
        ax.set_title(title)
    fig.subplots_adjust(left=0.3, right=0.97, top=0.97, bottom=0.03, hspace=0.3)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few of everything")
    parser.add_argument("peers_args", nargs="*", help="passed on to peers.py (after --)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("suite.py: run as root (crun, runc, the overlays and the cgroups need it)")
    try:
        import matplotlib  # noqa: F401 - checked now, not after half an hour
    except ImportError:
        sys.exit("suite.py: the chart needs matplotlib: pip install -e '.[bench]' "
                 "(or run nox -s bench)")
    snapshot = snapshot_nsbox(os.path.join(os.path.dirname(HERE), "src"))
    base = os.path.join(RESULTS, datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S"))
    os.makedirs(RESULTS, exist_ok=True)
    quick = ["--quick"] if args.quick else []
    try:
        run_part("rootfs.py", "--json", f"{base}-rootfs.json",
                 *(["--runs", "5", "--warmup", "1"] if args.quick else []))
        run_part("call.py", "--json", f"{base}-call.json", *(["--runs", "3"] if args.quick else []))
        run_part("peers.py", "--out", base, *quick, *args.peers_args)
    finally:
        shutil.rmtree(snapshot.dir, ignore_errors=True)

    peers, rootfs, call = load(f"{base}.json"), load(f"{base}-rootfs.json"), \
        load(f"{base}-call.json")
    with open(f"{base}.md") as f:
        peers_md = f.read()
    one_layer = statistics.median(rootfs["samples"][rootfs["one_layer"]])
    hundred = statistics.median(rootfs["samples"]["OverlayRootfs, 100 lower layers"])
    report = "\n".join([
        f"# nsbox benchmark suite, {datetime.date.today()}", "",
        f"nsbox: {snapshot.describe}", "",
        f"![medians]({os.path.basename(base)}-suite.png)", "",
        peers_md,
        "## Root filesystems: start, run /bin/true, tear down (ms)", "",
        ratio_table(rootfs, ["scenario", "median", "p90", "x no rootfs"]), "",
        f"100 layers / 1 layer: {hundred / one_layer:.2f}", "",
        "## Container.call round trip of a trivial function (ms)", "",
        ratio_table(call, ["scenario", "median", "p90", "x multiprocessing fork"]), ""])
    with open(f"{base}-suite.md", "w") as f:
        f.write(report)
    chart(peers, rootfs, call, f"{base}-suite.png")
    print(f"\nwritten: {base}-suite.md, {base}-suite.png")


if __name__ == "__main__":
    main()
