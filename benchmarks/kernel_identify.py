#!/usr/bin/env python3
"""IDENTIFY round trips on the real kernel: cxlctl's library against a C loop.

Issue 12's real-kernel target: a Python loop of ``Memdev.identify()`` through the
library (kernel backend: pack, ``CXL_MEM_SEND_COMMAND``, decode) should reach at
least 80 % of the rate of a C loop issuing the same ioctl in the same guest
(``benchmarks/identify_loop.c``).  Runs the two alternately (C, Python, C,
Python, ...) so that a noisy host hurts both alike, and prints the rates and the
ratio.  Reports, never asserts on time: the exit status is 0 unless a loop fails.

    python3 benchmarks/kernel_identify.py --c-loop /mnt/ctl/identify_loop [--seconds 2]

``tools/vm/kernel-tier`` builds the C loop on the host and runs this after the
kernel tests.  Needs root and ``/dev/cxl/memN``.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import glob
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.80


def _memdev() -> str:
    devs = sorted(glob.glob("/dev/cxl/mem*"))
    if not devs:
        raise SystemExit("kernel_identify: no /dev/cxl/mem* here (run in the VM)")
    return os.path.basename(devs[0])


def _py_rate(fn: Callable[[], object], seconds: float) -> float:
    n = 0
    t0 = time.perf_counter()
    t = t0
    while t - t0 < seconds:
        for _ in range(64):
            fn()
        n += 64
        t = time.perf_counter()
    return n / (t - t0)


def _c_rate(binary: str, dev: str, seconds: float) -> float:
    p = subprocess.run(
        [binary, f"/dev/cxl/{dev}", str(seconds)], capture_output=True, text=True, timeout=600
    )
    if p.returncode != 0:
        raise SystemExit(f"kernel_identify: {binary} failed ({p.returncode}): {p.stderr.strip()}")
    words = p.stdout.split()
    return float(words[words.index("per_second") - 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--c-loop", help="the compiled identify_loop (default: Python only)")
    ap.add_argument("--memdev", help="memN [default: the first /dev/cxl/mem*]")
    ap.add_argument("--seconds", type=float, default=2.0, help="per round [default: 2]")
    ap.add_argument("--rounds", type=int, default=3, help="alternations [default: 3]")
    a = ap.parse_args(argv)

    from cxlctl import transport as tp
    from cxlctl import uapi
    from cxlctl.backends import open_backend
    from cxlctl.uapi import CommandId

    dev = a.memdev or _memdev()
    md = open_backend("kernel").memdev(dev)
    ident = md.identify()  # opens the device; fails loudly if the kernel says no
    raw = tp.SendRequest(CommandId.IDENTIFY, b"", 67)
    t = md.transport

    def transport_only() -> object:
        return tp.send(t, raw)

    # the Python floor: one prepared struct, fcntl.ioctl, nothing of cxlctl's per call
    out = ctypes.create_string_buffer(4096)
    s = uapi.cxl_send_command()
    s.id = CommandId.IDENTIFY
    s.out.size = 67
    s.out.payload = ctypes.addressof(out)
    arg = bytearray(bytes(s))
    fd = os.open(f"/dev/cxl/{dev}", os.O_RDWR | os.O_CLOEXEC)

    def ioctl_floor() -> object:
        return fcntl.ioctl(fd, uapi.CXL_MEM_SEND_COMMAND, arg, True)

    # the least a library can do and still be safe and decode: the ioctl, retval and
    # out.size checked against the buffer, the payload as one ctypes structure
    # (from_buffer_copy, fields decoded when read): what bounds any Python library
    from cxlctl import mailbox as mb
    from cxlctl.mailbox.layouts import IdentifyOut

    # retval ... out.size, read in one call
    gap = uapi.SEND_OUT_SIZE_OFFSET - uapi.SEND_RETVAL_OFFSET - 4
    exchanged = struct.Struct(f"<I{gap}xI")
    size_out = struct.Struct("<I")
    req = uapi.CXL_MEM_SEND_COMMAND

    def minimal() -> object:
        size_out.pack_into(arg, uapi.SEND_OUT_SIZE_OFFSET, 67)  # as the C loop resets it
        fcntl.ioctl(fd, req, arg, True)
        retval, got = exchanged.unpack_from(arg, uapi.SEND_RETVAL_OFFSET)
        if retval or got > 67 or got < ctypes.sizeof(IdentifyOut):
            raise SystemExit(f"kernel_identify: retval {retval}, out.size {got}")
        return IdentifyOut.from_buffer_copy(out)

    def run_only() -> object:  # the library without the decode
        return md.run(mb.IDENTIFY)

    def nothing() -> object:  # one Python call: what the interpreter costs here
        return None

    c_rates: list[float] = []
    py_rates: list[float] = []
    tp_rates: list[float] = []
    floor_rates: list[float] = []
    minimal_rates: list[float] = []
    run_rates: list[float] = []
    call_rates: list[float] = []
    for _ in range(a.rounds):
        if a.c_loop:
            c_rates.append(_c_rate(a.c_loop, dev, a.seconds))
        py_rates.append(_py_rate(md.identify, a.seconds))
        tp_rates.append(_py_rate(transport_only, a.seconds / 2))
        floor_rates.append(_py_rate(ioctl_floor, a.seconds / 2))
        minimal_rates.append(_py_rate(minimal, a.seconds / 2))
        run_rates.append(_py_rate(run_only, a.seconds / 2))
        call_rates.append(_py_rate(nothing, a.seconds / 4))
    md.close()
    os.close(fd)

    stack = os.environ.get("CXLCTL_VM_STACK", "?")
    print(
        f"kernel identify benchmark ({dev}, {ident.firmware_version}, stack {stack}, "
        f"kernel {os.uname().release}, {a.rounds} rounds of {a.seconds:g} s):"
    )
    py = statistics.median(py_rates)
    print(f"  library Memdev.identify(): {py:9.0f}/s  (rounds: {_fmt(py_rates)})")
    print(f"  transport.send() only:     {statistics.median(tp_rates):9.0f}/s")
    run = statistics.median(run_rates)
    print(f"  Memdev.run() (no decode):  {run:9.0f}/s")
    floor = statistics.median(floor_rates)
    print(f"  Python floor (fcntl.ioctl of a prepared struct): {floor:9.0f}/s")
    least = statistics.median(minimal_rates)
    print(f"  least safe decode (ioctl, checks, from_buffer_copy): {least:9.0f}/s")
    call = statistics.median(call_rates)
    print(f"  an empty Python call:      {call:9.0f}/s ({1e6 / call:.2f} us each)")
    if c_rates:
        c = statistics.median(c_rates)
        ratio = py / c
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"  C ioctl loop:              {c:9.0f}/s  (rounds: {_fmt(c_rates)})")
        print(
            f"  ratio Python/C: {ratio:.2f} ({100 * ratio:.0f} %; target >= "
            f"{100 * TARGET:.0f} %: {verdict}); the Python floor reaches "
            f"{100 * floor / c:.0f} % of C, the library {100 * py / floor:.0f} % of the floor"
        )
        print(
            f"  per call: C {1e6 / c:.1f} us; Python floor +{1e6 / floor - 1e6 / c:.1f} us; "
            f"least safe decode +{1e6 / least - 1e6 / c:.1f} us ({100 * least / c:.0f} % of C); "
            f"run() +{1e6 / run - 1e6 / c:.1f} us; identify() +{1e6 / py - 1e6 / c:.1f} us"
        )
    else:
        print("  C ioctl loop: not run (no --c-loop)")
    return 0


def _fmt(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


if __name__ == "__main__":
    sys.exit(main())
