#!/usr/bin/env python3
"""Every cxlctl benchmark in one run: ratios against floors measured in the same run.

    python benchmarks/run.py                 # everything (a few minutes on 2 cores)
    python benchmarks/run.py --quick         # CI: fewer rounds, small label area (< 60 s)
    python benchmarks/run.py --only cli,lib  # some sections: cli, devices, lib, layers,
                                             # batch, labels

Sections:

* cli: each CLI case against its floor, floors interleaved with the cases in every
  round (``python -c "import click, ctypes, fcntl, json, ioctl_opt"`` for the JSON,
  help and completion paths; ``python -c "import click, rich.console, rich.table"``
  for the table paths). The ratio is the median of per-round ratios.
* devices: ``--sim list -H -I -F --json`` with 1/16/64/256 simulated devices,
  against the 1-device time in the same rounds.
* lib: identify and health round-trips/s through the library facade.
* layers: the per-identify split (simulated kernel + device, struct packing and
  copies, decoding, the Memdev wrapper), each layer timed on its own.
* batch: ``cxlctl --sim batch`` requests/s, process start and output included.
* labels: peak RSS and throughput of ``read-labels`` / ``write-labels`` over the
  whole 256 MiB label area of a simulated device (``--quick``: 8 MiB), each against
  a plain-Python copy loop of the same bytes in payload_max chunks (CPU time with
  the default ``--clock cpu``, like every other case).

Not a test: it never fails on timing (exit 1 only if a command itself fails).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

PY = sys.executable
CXLCTL = [PY, "-m", "cxlctl"]
FLOOR = [PY, "-c", "import click, ctypes, fcntl, json, ioctl_opt"]
RICH_FLOOR = [PY, "-c", "import click, rich.console, rich.table"]
ENV = dict(os.environ, NO_COLOR="1", COLUMNS="100")
for _k in ("CXLCTL_SIM_STATE", "CXLCTL_SIM_DEVICES", "CXLCTL_SIM_PROFILE", "CXLCTL_DEBUG"):
    ENV.pop(_k, None)
COMPLETE_ENV = {"_CXLCTL_COMPLETE": "bash_complete", "COMP_WORDS": "cxlctl ", "COMP_CWORD": "1"}

#: name -> (command, extra environment, floor); the target ratio is in TARGETS
CLI_CASES: dict[str, tuple[list[str], dict[str, str], str]] = {
    "--sim identify --json": ([*CXLCTL, "--sim", "identify", "--json"], {}, "json"),
    "--sim list --json": ([*CXLCTL, "--sim", "list", "--json"], {}, "json"),
    "--sim health --json": ([*CXLCTL, "--sim", "health", "--json"], {}, "json"),
    "--help": ([*CXLCTL, "--help"], {}, "json"),
    "completion request": (CXLCTL, COMPLETE_ENV, "json"),
    "--sim list (table)": ([*CXLCTL, "--sim", "list"], {}, "rich"),
    "--sim health mem0 (table)": ([*CXLCTL, "--sim", "health", "mem0"], {}, "rich"),
}
TARGETS = {
    "--sim identify --json": 1.25,
    "--sim list --json": 1.25,
    "--sim health --json": 1.25,
    "--help": 1.15,
    "completion request": 1.15,
    "--sim list (table)": 1.25,
    "--sim health mem0 (table)": 1.25,
}


#: what a case costs: "cpu" (user + system time of the child, steady on a busy
#: machine) or "wall" (elapsed time); set by --clock
CLOCK = "cpu"


def wall(
    cmd: Sequence[str], env: dict[str, str] | None = None, stdin: bytes | None = None
) -> float:
    """The cost of one run of CMD in seconds (see CLOCK); fails if CMD fails."""
    t = time.perf_counter()
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env={**ENV, **(env or {})},
    )
    if stdin is not None:
        assert p.stdin is not None
        p.stdin.write(stdin)
        p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, list(cmd))
    return usage.ru_utime + usage.ru_stime if CLOCK == "cpu" else elapsed


def ratio_rows(rounds: int, cases: Mapping[str, tuple[Callable[[], float], str]]) -> dict[str, Any]:
    """Run every case and floor once per round, interleaved; per-round ratios."""
    floors = {
        "json": lambda: wall(FLOOR),
        "rich": lambda: wall(RICH_FLOOR),
    }
    for fn, _ in cases.values():  # warm the page cache
        fn()
    for fn in floors.values():
        fn()
    floor_t: dict[str, list[float]] = {k: [] for k in floors}
    case_t: dict[str, list[float]] = {k: [] for k in cases}
    ratios: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        this_round = {}
        for k, fn in floors.items():
            this_round[k] = fn()
            floor_t[k].append(this_round[k])
        for k, (fn, floor) in cases.items():
            t = fn()
            case_t[k].append(t)
            ratios[k].append(t / this_round[floor])
    return {
        "floors_ms": {k: statistics.median(v) * 1e3 for k, v in floor_t.items()},
        "cases": {
            k: {
                "ms": statistics.median(case_t[k]) * 1e3,
                "ratio": statistics.median(ratios[k]),
                "floor": cases[k][1],
            }
            for k in cases
        },
    }


def bench_cli(rounds: int) -> dict[str, Any]:
    cases = {k: (partial(wall, cmd, env), floor) for k, (cmd, env, floor) in CLI_CASES.items()}
    return ratio_rows(rounds, cases)


def bench_devices(rounds: int) -> dict[str, Any]:
    cmd = [*CXLCTL, "--sim", "list", "-H", "-I", "-F", "--json"]
    counts = (1, 16, 64, 256)
    kinds = ["pmem", "ram", "mixed"] * 86
    envs = {n: {"CXLCTL_SIM_DEVICES": ",".join(kinds[:n])} for n in counts}
    for n, e in envs.items():  # check the configuration really has n devices
        out = subprocess.run(cmd, check=True, capture_output=True, env={**ENV, **e}).stdout
        data = json.loads(out)
        assert len(data) == n, (n, len(data))
        hosts = [d["host"] for d in data]
        assert len(set(hosts)) == n, f"duplicate PCI addresses at {n} devices"
    times: dict[int, list[float]] = {n: [] for n in counts}
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        one = wall(cmd, envs[1])
        times[1].append(one)
        ratios[1].append(1.0)
        for n in counts[1:]:
            t = wall(cmd, envs[n])
            times[n].append(t)
            ratios[n].append(t / one)
    return {
        str(n): {"ms": statistics.median(times[n]) * 1e3, "ratio": statistics.median(ratios[n])}
        for n in counts
    }


# --- in-process: the library -----------------------------------------------------------


def _open_mem0() -> Any:
    import cxlctl

    if hasattr(cxlctl, "open"):
        return cxlctl.open("mem0", backend="sim")
    from cxlctl.backends import open_backend  # before the facade existed

    return open_backend("sim").memdev("mem0")


def _rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second: the best of a few timed runs of a batch of calls (process
    CPU time with --clock cpu, which a busy machine disturbs less)."""
    clock = time.process_time if CLOCK == "cpu" else time.perf_counter
    fn()
    n = 200
    while True:  # size a batch to ~seconds/5
        t = clock()
        for _ in range(n):
            fn()
        dt = clock() - t
        if dt > seconds / 5:
            break
        n *= 2
    best = dt
    for _ in range(4):
        t = clock()
        for _ in range(n):
            fn()
        best = min(best, clock() - t)
    return n / best


def bench_lib(seconds: float) -> dict[str, Any]:
    dev = _open_mem0()
    out = {
        "identify_per_s": _rate(dev.identify, seconds),
        "health_per_s": _rate(dev.health, seconds),
    }
    # the floor the issue compares with: pack a struct and copy 0x43 bytes with ctypes
    import ctypes
    import struct

    out_buf = ctypes.create_string_buffer(0x43)
    src = bytes(0x43)
    pack = struct.Struct("<IIIIIIQIIQ").pack

    def floor() -> None:
        arg = bytearray(pack(1, 0, 0, 0, 0, 0, 0, 0x43, 0, ctypes.addressof(out_buf)))
        ctypes.memmove(out_buf, src, 0x43)
        _ = out_buf.raw
        _ = arg

    out["ctypes_floor_per_s"] = _rate(floor, seconds)
    return out


def bench_layers(seconds: float) -> dict[str, float]:
    """Microseconds per identify in each layer, each timed on its own."""
    from cxlctl import transport as tp
    from cxlctl import uapi
    from cxlctl.mailbox.memdev import decode_identify

    md = _open_mem0()
    memdev = getattr(md, "memdev", md)  # the facade wraps a Memdev (or is one)
    memdev.identify()
    t = memdev.transport
    sim = getattr(t, "driver", None)
    device = getattr(sim, "device", None)
    us: dict[str, float] = {}
    total = 1e6 / _rate(md.identify, seconds)
    payload = bytes(device.execute(0x4000, b"")[1]) if device is not None else b""
    if device is not None:
        calls = getattr(device, "calls", None)

        def dev_exec() -> None:
            device.execute(0x4000, b"")
            if isinstance(calls, list):
                calls.clear()

        us["device model (execute)"] = 1e6 / _rate(dev_exec, seconds)
    cmd = __import__("cxlctl.mailbox", fromlist=["x"]).BY_NAME["identify"]
    req = memdev.request(cmd)
    if hasattr(memdev, "prepared"):  # the prepared SEND the library uses
        send_us = 1e6 / _rate(memdev.prepared(cmd), seconds)
    else:
        send_us = 1e6 / _rate(lambda: tp.send(t, req), seconds)
    if sim is not None:
        out_buf = __import__("ctypes").create_string_buffer(req.out_size)
        s = req.struct(0, __import__("ctypes").addressof(out_buf))
        raw = bytes(s)

        def ioctl() -> None:
            t.ioctl(uapi.CXL_MEM_SEND_COMMAND, bytearray(raw))

        ioctl_us = 1e6 / _rate(ioctl, seconds)
        us["simulated driver (checks, copies)"] = ioctl_us - us.get("device model (execute)", 0)
        us["transport (pack, buffers, unpack)"] = send_us - ioctl_us
    dec_us = 1e6 / _rate(lambda: decode_identify(payload), seconds)
    us["decode"] = dec_us
    us["Memdev + facade wrappers"] = total - send_us - dec_us
    us["total identify"] = total
    return us


# --- batch ---------------------------------------------------------------------------


def _run_capture(cmd: Sequence[str], stdin: bytes) -> tuple[float, float, bytes, bytes]:
    """(cpu seconds, wall seconds, stdout, stderr) of one run fed STDIN."""
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout:
        fin.write(stdin)
        fin.seek(0)
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=ENV)
        assert p.stderr is not None
        err = p.stderr.read()
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        out = fout.read()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {err.decode()[-500:]}")
    return usage.ru_utime + usage.ru_stime, elapsed, out, err


def bench_batch(n: int) -> dict[str, Any]:
    probe = subprocess.run([*CXLCTL, "batch", "--help"], capture_output=True, env=ENV)
    if probe.returncode != 0:
        return {"error": "no batch command"}
    out: dict[str, Any] = {"requests": n}
    names = ("mem0", "mem1", "mem2")
    for command in ("identify", "health"):
        lines = "".join(
            json.dumps({"id": i, "memdev": names[i % 3], "command": command}) + "\n"
            for i in range(n)
        ).encode()
        best_cpu = best_wall = 1e9
        for _ in range(3):
            cpu, elapsed, stdout, _ = _run_capture([*CXLCTL, "--sim", "batch"], lines)
            best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, elapsed)
            results = stdout.splitlines()
            if len(results) != n or b'"error"' in results[-1]:
                raise RuntimeError(f"batch {command}: {len(results)} results for {n}")
        out[f"{command}_per_s"] = n / (best_cpu if CLOCK == "cpu" else best_wall)
        out[f"{command}_per_s_wall"] = n / best_wall
        out[f"{command}_bytes_out"] = len(stdout)
    return out


# --- labels ---------------------------------------------------------------------------


PEAK = """
import atexit, sys
path = sys.argv[1]
def hwm():
    with open("/proc/self/status") as f:
        kib = [l.split()[1] for l in f if l.startswith("VmHWM:")][0]
    with open(path, "w") as out:
        out.write(kib)
atexit.register(hwm)
sys.argv = ["cxlctl", *sys.argv[2:]]
if sys.argv[1:] == ["--floor"]:
    import click, ctypes, fcntl, json, ioctl_opt
else:
    from cxlctl.cli import run
    run()
"""


def _peak(args: Sequence[str]) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of ``cxlctl ARGS`` (``--floor``: the import
    floor): the child's CPU time (see CLOCK) or its wall time, and its own VmHWM (a
    fork's copy of this process's pages, which ru_maxrss counts, is not included)."""
    with tempfile.NamedTemporaryFile("r") as f:
        t = time.perf_counter()
        p = subprocess.Popen([PY, "-c", PEAK, f.name, *args], stdout=subprocess.DEVNULL, env=ENV)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), list(args))
        cpu = usage.ru_utime + usage.ru_stime
        return (cpu if CLOCK == "cpu" else dt), int(f.read())


def bench_labels(mib: int) -> dict[str, Any]:
    size = mib << 20
    with tempfile.TemporaryDirectory(prefix="cxlctl-bench-") as d:
        src = os.path.join(d, "in.bin")
        dst = os.path.join(d, "out.bin")
        with open(src, "wb") as f:
            block = bytes(range(256)) * 4096  # 1 MiB of non-zero bytes
            for _ in range(mib):
                f.write(block)
        _, base_rss = _peak(["--floor"])
        _, cli_rss = _peak(["--sim", "read-labels", "mem1", "-s", "4096", "-o", dst])
        # mem1 is the ram device: no nvdimm bridge owns its labels
        rt, rrss = _peak(["--sim", "read-labels", "mem1", "-s", str(size), "-o", dst])
        help_text = subprocess.run(
            [*CXLCTL, "write-labels", "--help"], capture_output=True, env=ENV
        ).stdout
        yes = ["-y"] if b"--yes" in help_text else []  # the change verbs' confirmation
        wt, wrss = _peak(["--sim", "write-labels", "mem1", *yes, "-i", src, "-s", str(size)])
        # a plain-Python copy loop over the same bytes in payload_max chunks
        clock = time.process_time if CLOCK == "cpu" else time.perf_counter
        t = clock()
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            while chunk := fi.read(2040):
                fo.write(chunk)
        copy_t = clock() - t
    return {
        "mib": mib,
        "floor_rss_mib": base_rss / 1024,
        "cli_small_read_rss_mib": cli_rss / 1024,
        "read_rss_mib": rrss / 1024,
        "write_rss_mib": wrss / 1024,
        "read_mib_per_s": mib / rt,
        "write_mib_per_s": mib / wt,
        "read_vs_copy_loop": rt / copy_t,
        "write_vs_copy_loop": wt / copy_t,
    }


# --- report ---------------------------------------------------------------------------


def report(res: dict[str, Any]) -> None:
    def line(a: str, b: str, c: str = "", d: str = "") -> None:
        print(f"  {a:<36} {b:>12} {c:>10} {d:>10}")

    if "cli" in res:
        r = res["cli"]
        print(f"CLI start-up, {CLOCK} time (median of per-round ratios, floors interleaved)")
        print(f"  floor json  {r['floors_ms']['json']:7.1f} ms: " + " ".join(FLOOR[1:]))
        print(f"  floor rich  {r['floors_ms']['rich']:7.1f} ms: " + " ".join(RICH_FLOOR[1:]))
        line("case", "ms", "ratio", "target")
        for k, v in r["cases"].items():
            line(f"{k} [{v['floor']}]", f"{v['ms']:.1f}", f"{v['ratio']:.2f}x", f"<={TARGETS[k]}x")
    if "devices" in res:
        print("list -H -I -F --json by device count (against 1 device, same rounds)")
        line("devices", "ms", "ratio", "target")
        for n, v in res["devices"].items():
            line(n, f"{v['ms']:.1f}", f"{v['ratio']:.2f}x", "<=1.3x" if n == "256" else "")
    if "lib" in res:
        r = res["lib"]
        print("library round-trips on the simulator (cxlctl.open('mem0', backend='sim'))")
        line("identify/s", f"{r['identify_per_s']:,.0f}", "", ">=40,000")
        line("health/s", f"{r['health_per_s']:,.0f}")
        line("ctypes pack+copy floor/s", f"{r['ctypes_floor_per_s']:,.0f}")
    if "layers" in res:
        print("per-identify split, us (each layer timed on its own)")
        for k, v in res["layers"].items():
            line(k, f"{v:.2f}")
    if "batch" in res:
        r = res["batch"]
        n = r.get("requests", 0)
        print(f"cxlctl --sim batch ({n} requests, process start and output included)")
        if "error" in r:
            line("batch", r["error"])
        else:
            line(
                f"identify req/s ({CLOCK}; wall)",
                f"{r['identify_per_s']:,.0f}",
                f"{r['identify_per_s_wall']:,.0f}",
                ">=20,000",
            )
            line(
                f"health req/s ({CLOCK}; wall)",
                f"{r['health_per_s']:,.0f}",
                f"{r['health_per_s_wall']:,.0f}",
                ">=10,000",
            )
    if "labels" in res:
        r = res["labels"]
        print(f"labels: {r['mib']} MiB of mem1's label area, peak RSS of the process")
        line("interpreter floor RSS MiB", f"{r['floor_rss_mib']:.1f}")
        line("cxlctl 4 KiB read-labels RSS MiB", f"{r['cli_small_read_rss_mib']:.1f}")
        line(
            "read-labels RSS MiB (+ over floor)",
            f"{r['read_rss_mib']:.1f}",
            f"+{r['read_rss_mib'] - r['floor_rss_mib']:.1f}",
            "<=+64",
        )
        line(
            "write-labels RSS MiB (+ over floor)",
            f"{r['write_rss_mib']:.1f}",
            f"+{r['write_rss_mib'] - r['floor_rss_mib']:.1f}",
            "<=+64",
        )
        line(
            "read MiB/s (x copy-loop time)",
            f"{r['read_mib_per_s']:.1f}",
            f"{r['read_vs_copy_loop']:.1f}x",
        )
        line(
            "write MiB/s (x copy-loop time)",
            f"{r['write_mib_per_s']:.1f}",
            f"{r['write_vs_copy_loop']:.1f}x",
        )


SECTIONS = ("cli", "devices", "lib", "layers", "batch", "labels")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI budget: well under 60 s")
    ap.add_argument("-n", "--rounds", type=int, help="rounds of the CLI cases [15; quick 4]")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cost of a CLI run: the child's CPU time (steady on a shared machine) or wall time",
    )
    ap.add_argument("--json", dest="json_out", metavar="FILE", help="also write results as JSON")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    global CLOCK
    CLOCK = args.clock
    rounds = args.rounds or (3 if args.quick else 15)
    # pip byte-compiles an installed package; do the same for a source checkout so
    # the run measures start-up, not compilation (PYTHONDONTWRITEBYTECODE may be set)
    import compileall

    import cxlctl

    compileall.compile_dir(os.path.dirname(cxlctl.__file__), quiet=1)
    seconds = 0.3 if args.quick else 1.0
    res: dict[str, Any] = {}
    try:
        if "cli" in only:
            res["cli"] = bench_cli(rounds)
        if "devices" in only:
            res["devices"] = bench_devices(max(2, rounds // 3))
        if "lib" in only:
            res["lib"] = bench_lib(seconds)
        if "layers" in only:
            res["layers"] = bench_layers(seconds)
        if "batch" in only:
            res["batch"] = bench_batch(2000 if args.quick else 30000)
        if "labels" in only:
            res["labels"] = bench_labels(8 if args.quick else 256)
    except (subprocess.CalledProcessError, RuntimeError) as e:
        report(res)
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    report(res)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
