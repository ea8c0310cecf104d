#!/usr/bin/env python3
"""Bulk label transfers: peak RSS and throughput of read-labels/write-labels on --sim.

Each case runs as its own process (``python -m cxlctl ...``); peak RSS is the
child's ``ru_maxrss`` from ``wait4``, so nothing else in this process counts.
The interpreter baseline is ``python -c pass`` and a one-command read-labels
(the same imports, no bulk data). read-labels to a file ends with an fsync (it
writes a temporary file and renames it), so its time depends on the disk;
``-o /dev/null`` shows the transfer alone.
The copy floor is a plain-Python loop copying
the same bytes in payload_max (2048-byte) chunks file to file. Not a test: it
reports, it never fails on timing (exit 1 only if a command itself fails).

    python benchmarks/labels.py [--size 256M] [-n RUNS] [--against DIR]

``--against DIR`` also runs every cxlctl case with ``PYTHONPATH=DIR`` (another
checkout, e.g. ``git archive OLD cxlctl | tar -x -C DIR``), interleaved with this
tree's runs, and prints both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, NO_COLOR="1", CXLCTL_BACKEND="sim", CXLCTL_SIM_DEVICES="")
for _k in ("CXLCTL_SIM_STATE", "CXLCTL_SIM_PROFILE", "CXLCTL_SIM_RAW", "CXLCTL_DEBUG"):
    ENV.pop(_k, None)

COPY_FLOOR = """
import sys
src, dst, step = open(sys.argv[1], "rb"), open(sys.argv[2], "wb"), 2048
buf = bytearray(step)
while n := src.readinto(buf):
    dst.write(memoryview(buf)[:n])
"""


def run(cmd: list[str], expect: int = 0, tree: str | None = None) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in KiB, user+system CPU seconds) of one child process."""
    env = dict(ENV, PYTHONPATH=tree) if tree else ENV
    t = time.perf_counter()
    # cwd: not a checkout, so `python -m cxlctl` imports the installed tree or PYTHONPATH's
    p = subprocess.Popen(cmd, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read() if p.stderr else b""
    if p.returncode != expect:
        sys.exit(f"{' '.join(cmd)}: exit {p.returncode} (expected {expect}): {err.decode()}")
    return wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default=str(256 << 20), help="bytes to transfer [256 MiB]")
    ap.add_argument("-n", "--runs", type=int, default=3)
    ap.add_argument("--against", metavar="DIR", help="also run the cxlctl cases from DIR")
    args = ap.parse_args()
    size = int(args.size.rstrip("Mm")) << 20 if args.size[-1] in "Mm" else int(args.size)
    py = sys.executable
    cx = [py, "-m", "cxlctl", "--sim"]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in.bin")
        with open(src, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
            f.write(block[: size & ((1 << 20) - 1)])
        out = os.path.join(tmp, "out.bin")
        cases: dict[str, tuple[list[str], int]] = {
            "python -c pass": ([py, "-c", "pass"], 0),
            "read-labels 64 B": ([*cx, "read-labels", "mem1", "-s", "64", "-o", out], 0),
            "copy floor (2 KiB chunks)": ([py, "-c", COPY_FLOOR, src, out], 0),
            "read-labels": ([*cx, "read-labels", "mem1", "-s", str(size), "-o", out], 0),
            "read-labels -o /dev/null": (
                [*cx, "read-labels", "mem1", "-s", str(size), "-o", "/dev/null"],
                0,
            ),
            "write-labels": ([*cx, "write-labels", "mem1", "-s", str(size), "-i", src], 0),
            "write-labels refused": ([*cx, "write-labels", "mem0", "-i", src], 7),
        }
        if args.against:
            for name in [k for k in cases if "labels" in k]:
                cases[f"{name} [{args.against}]"] = cases[name]
        results: dict[str, list[tuple[float, int, float]]] = {k: [] for k in cases}
        for _ in range(args.runs):  # interleaved, so each round shares the machine's state
            for name, (cmd, expect) in cases.items():
                tree = args.against if name.endswith("]") else None
                if tree is None and "write-labels" in name:
                    cmd = [*cmd, "-y"]  # no terminal to confirm on (the change verbs' rule)
                results[name].append(run(cmd, expect, tree))
    base = min(r for _, r, _ in results["python -c pass"])
    floor = statistics.median(w for w, _, _ in results["copy floor (2 KiB chunks)"])
    print(
        f"{size} bytes, {args.runs} runs; peak RSS is the largest run, times the median "
        "(CPU = user + system: less sensitive to a busy machine than wall time)"
    )
    width = max(len(k) for k in results)
    print(
        f"{'case':{width}} {'time s':>8} {'CPU s':>7} {'MiB/s':>8} {'x floor':>8} "
        f"{'RSS MiB':>8} {'+base':>7}"
    )
    for name, rs in results.items():
        w = statistics.median(x for x, _, _ in rs)
        cpu = statistics.median(c for _, _, c in rs)
        rss = max(r for _, r, _ in rs)
        bulk = name.split(" [")[0] in (
            "read-labels",
            "read-labels -o /dev/null",
            "write-labels",
            "copy floor (2 KiB chunks)",
        )
        rate = f"{size / w / (1 << 20):8.1f}" if bulk else f"{'':8}"
        ratio = f"{w / floor:8.1f}" if bulk else f"{'':8}"
        print(
            f"{name:{width}} {w:8.2f} {cpu:7.2f} {rate} {ratio} {rss / 1024:8.1f} "
            f"{(rss - base) / 1024:+7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
