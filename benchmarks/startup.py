#!/usr/bin/env python3
"""Start-up benchmark: ``cxlctl --sim identify --json`` against the import floor.

The floor is ``python -c "import click, ctypes, fcntl, json, ioctl_opt"``, measured in
the same run with the same interpreter, interleaved to share the machine's state.
Prints medians and the ratio; the target is <= 1.5x.  Not a test: it never fails
on timing, it reports (exit 1 only if a command itself fails).

    python benchmarks/startup.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

FLOOR = [sys.executable, "-c", "import click, ctypes, fcntl, json, ioctl_opt"]
CASES = {
    "identify --json": [sys.executable, "-m", "cxlctl", "--sim", "identify", "--json"],
    "list --json": [sys.executable, "-m", "cxlctl", "--sim", "list", "--json"],
    "list (table)": [sys.executable, "-m", "cxlctl", "--sim", "list"],
    "--help": [sys.executable, "-m", "cxlctl", "--help"],
}


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


ENV = dict(os.environ, NO_COLOR="1")
ENV.pop("CXLCTL_SIM_STATE", None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=30)
    args = ap.parse_args()
    # pip byte-compiles an installed package; do the same for a source checkout so
    # the run measures start-up, not compilation (PYTHONDONTWRITEBYTECODE may be set)
    import compileall

    import cxlctl

    compileall.compile_dir(os.path.dirname(cxlctl.__file__), quiet=1)
    for cmd in [FLOOR, *CASES.values()]:  # warm the page cache
        wall(cmd)
    floor: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.runs):
        floor.append(wall(FLOOR))
        for k, cmd in CASES.items():
            times[k].append(wall(cmd))
    f = statistics.median(floor)
    print(f"floor (import click, ctypes, fcntl, json, ioctl_opt): {f * 1000:7.1f} ms median")
    for k, ts in times.items():
        m = statistics.median(ts)
        print(f"cxlctl --sim {k:<16} {m * 1000:7.1f} ms median  ratio {m / f:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
