#!/usr/bin/env python3
"""Smoke test of the CXL test VM (tools/vm/cxlvm.py); run as root on the host.

    python3 tools/vm/selftest.py

Exits 0 if all checks pass, 77 if the image cannot be fetched, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cxlvm

QUERY = r"""
import fcntl, os, struct
fd = os.open("/dev/cxl/mem0", os.O_RDWR)
buf = bytearray(8)  # struct cxl_mem_query_commands { u32 n_commands; u32 rsvd; }
fcntl.ioctl(fd, 0x8008CE01, buf, True)  # CXL_MEM_QUERY_COMMANDS
print(struct.unpack("<II", buf)[0])
"""


def main() -> int:
    failures: list[str] = []

    def check(name: str, cond: bool, detail: str = "") -> None:
        print(f"{'PASS' if cond else 'FAIL'} {name} {detail}", flush=True)
        if not cond:
            failures.append(name)

    t0 = time.monotonic()
    try:
        cxlvm.build_image()
    except cxlvm.FetchError as e:
        print(f"CXLVM-SKIP: {e}")
        return cxlvm.EXIT_FETCH_FAILED
    print(f"build/check image: {time.monotonic() - t0:.1f}s", flush=True)

    r = cxlvm.run_in_vm(
        "ls -l /dev/cxl; cxl list -M; python3 -c 'import click, rich, ioctl_opt'",
        ["pmem"],
        timeout=300,
    )
    i = r.stdout.find("{")
    mem = json.JSONDecoder().raw_decode(r.stdout, i)[0] if i >= 0 else {}
    print(r.stdout, end="")
    check(
        "pmem: one memdev, 256MiB pmem, serial 0x1234",
        r.returncode == 0
        and mem.get("memdev") == "mem0"
        and mem.get("pmem_size") == 256 << 20
        and mem.get("serial") == 0x1234,
        f"rc={r.returncode} boot={r.boot_seconds} wall={r.wall_seconds:.1f}s {r.infra_error or ''}",
    )

    r = cxlvm.run_in_vm("cxl list -M", ["pmem", "ram"], timeout=300)
    try:
        devs = json.loads(r.stdout)
    except ValueError:
        devs = []
    got = sorted((d.get("serial"), "pmem_size" in d, "ram_size" in d) for d in devs)
    check(
        "pmem,ram: two memdevs",
        r.returncode == 0 and got == [(0x1234, True, False), (0x1235, False, True)],
        f"rc={r.returncode} {got} wall={r.wall_seconds:.1f}s",
    )

    r = cxlvm.run_in_vm("echo out; echo err >&2; exit 3", [], timeout=300)
    check(
        "exit status and streams",
        (r.returncode, r.stdout, r.stderr, r.infra_error) == (3, "out\n", "err\n", None),
        f"rc={r.returncode} wall={r.wall_seconds:.1f}s",
    )

    r = cxlvm.run_in_vm(
        "head -c 1048576 /dev/urandom > /tmp/r; md5sum < /tmp/r >&2; cat /tmp/r", [], timeout=300
    )
    data = r.stdout.encode("utf-8", "surrogateescape")
    check(
        "1 MiB binary stdout intact",
        len(data) == 1 << 20 and hashlib.md5(data).hexdigest() == r.stderr.split()[0],
        f"len={len(data)}",
    )

    r = cxlvm.run_in_vm(f"python3 -c '{QUERY}'", ["pmem"], timeout=300)
    check(
        "CXL_MEM_QUERY_COMMANDS n_commands",
        r.returncode == 0 and r.stdout.strip().isdigit(),
        f"n_commands={r.stdout.strip()} {r.stderr.strip()}",
    )

    r = cxlvm.run_in_vm("sleep 600", [], timeout=20)
    check("timeout -> EXIT_TIMEOUT", r.returncode == cxlvm.EXIT_TIMEOUT, f"rc={r.returncode}")

    print(f"total {time.monotonic() - t0:.1f}s, {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
