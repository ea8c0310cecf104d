"""The kernel tier: tests against a real Linux CXL memdev (run inside the QEMU test VM).

Every test here is marked ``kernel`` and skips, with the reason, unless
``/dev/cxl/mem*`` exists and we are root -- so a plain ``pytest`` on a normal host
passes.  ``tools/vm/kernel-tier`` boots the VM and runs
``python3 -m pytest -m kernel tests/kernel`` in it.

Memdev numbering follows the kernel's asynchronous probe order, so fixtures find
devices by serial and by what sysfs says they hold, never by name.

The tier runs on two kernel stacks (``tools/vm/kernel-tier --stack 6.12|7.3``), which
sets ``CXLCTL_VM_STACK`` in the guest; :data:`STACK` holds what differs between them,
and every test asserts its own stack's truth from it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSFS = Path("/sys/bus/cxl/devices")
REPO = Path(__file__).resolve().parents[2]

#: Lines for the terminal summary (match rate, timings); appended to by the tests.
SUMMARY: list[str] = []


@dataclass(frozen=True)
class Stack:
    """One kernel stack of the tier and what its kernel, QEMU and cxl-cli do.

    Only the device side differs at the ioctl interface (the uapi header is
    byte-identical between 6.12 and 7.3): see tools/vm/README.md, "Kernel stacks".
    """

    name: str  # CXLCTL_VM_STACK
    kernel: str  # `uname -r` starts with this
    qemu: str  # QEMU's machine version: SMBIOS product_version "pc-q35-<qemu>"
    cxl_cli: str  # `cxl version`
    sim_profile: str  # the simulator profile that models this stack's cxl-type3
    alert_config: bool  # Get/Set Alert Configuration in QEMU's CEL, so Linux enables them
    cel_entries: int  # QEMU's Command Effects Log


STACKS: dict[str, Stack] = {
    "6.12": Stack("6.12", "6.12.", "10.0", "81", "qemu", False, 26),
    "7.3": Stack("7.3", "7.3.", "11.1", "85", "qemu11", True, 31),
}


def _stack() -> Stack:
    name = os.environ.get("CXLCTL_VM_STACK")
    if not name:  # run by hand in a guest: go by the kernel
        name = "7.3" if os.uname().release.startswith("7.3.") else "6.12"
    if name not in STACKS:
        raise RuntimeError(f"CXLCTL_VM_STACK={name!r}: unknown stack (want one of {list(STACKS)})")
    return STACKS[name]


#: The stack this guest runs (tests/kernel/test_kernel_stack.py checks it is).
STACK = _stack()


def _skip_reason() -> str | None:
    if not glob.glob("/dev/cxl/mem*"):
        return "no /dev/cxl/mem* here: the kernel tier runs in the VM (tools/vm/kernel-tier)"
    if os.geteuid() != 0:
        return "the kernel tier needs root (/dev/cxl/memN is root-only)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = _skip_reason()
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.kernel)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.write_sep("=", "kernel tier summary")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@dataclass(frozen=True)
class Memdev:
    """One memdev as sysfs shows it."""

    name: str
    serial: int
    pmem_size: int
    ram_size: int
    payload_max: int
    lsa_size: int
    host: str

    @property
    def dev(self) -> str:
        return f"/dev/cxl/{self.name}"

    @property
    def bound(self) -> bool:
        return (SYSFS / self.name / "driver").exists()


def _read(p: Path) -> str:
    return p.read_text().strip()


def scan() -> list[Memdev]:
    out = []
    for d in sorted(SYSFS.glob("mem*")):
        out.append(
            Memdev(
                name=d.name,
                serial=int(_read(d / "serial"), 0),
                pmem_size=int(_read(d / "pmem" / "size"), 0),
                ram_size=int(_read(d / "ram" / "size"), 0),
                payload_max=int(_read(d / "payload_max"), 0),
                lsa_size=int(_read(d / "label_storage_size"), 0),
                host=d.resolve().parent.name,
            )
        )
    return sorted(out, key=lambda m: m.serial)


@pytest.fixture(scope="session")
def memdevs() -> list[Memdev]:
    devs = scan()
    assert devs, "no memdevs in /sys/bus/cxl/devices"
    return devs


@pytest.fixture(scope="session")
def pmem(memdevs: list[Memdev]) -> Memdev:
    for m in memdevs:
        if m.pmem_size and m.lsa_size:
            return m
    pytest.skip("no persistent memdev with a label area (boot with --devices pmem)")


@pytest.fixture(scope="session")
def ram(memdevs: list[Memdev]) -> Memdev:
    for m in memdevs:
        if m.ram_size and not m.pmem_size:
            return m
    pytest.skip("no volatile-only memdev (boot with --devices pmem,ram)")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def cxlctl(*args: str, user: int | None = None, timeout: float = 120) -> Run:
    """``python3 -m cxlctl ARGS`` against the kernel, optionally as another uid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env.update(NO_COLOR="1", COLUMNS="120", PYTHONPATH=str(REPO), CXLCTL_BACKEND="kernel")
    cmd = [sys.executable, "-m", "cxlctl", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd="/")
    return Run(p.returncode, p.stdout, p.stderr)


def cxlctl_bytes(*args: str) -> bytes:
    """stdout of a successful ``python3 -m cxlctl ARGS`` as bytes (binary output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXLCTL_")}
    env.update(PYTHONPATH=str(REPO), CXLCTL_BACKEND="kernel")
    p = subprocess.run(
        [sys.executable, "-m", "cxlctl", *args], capture_output=True, env=env, timeout=120
    )
    assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p.stdout


def cxl(*args: str) -> Run:
    p = subprocess.run(["cxl", *args], capture_output=True, text=True, timeout=120)
    return Run(p.returncode, p.stdout, p.stderr)


_HELP: list[str] = []


def cli_commands() -> list[str]:
    """The subcommands ``cxlctl --help`` lists right now."""
    if not _HELP:
        text = cxlctl("--help").stdout.split("Commands:", 1)[-1]
        _HELP.extend(line.split()[0] for line in text.splitlines() if line.startswith("  "))
    return _HELP


@pytest.fixture
def unbound(pmem: Memdev) -> Iterator[Memdev]:
    """The pmem memdev unbound from cxl_mem (like ``cxl disable-memdev``), rebound after."""
    drv = Path("/sys/bus/cxl/drivers/cxl_mem")
    (drv / "unbind").write_text(pmem.name)
    try:
        assert not pmem.bound
        yield pmem
    finally:
        (drv / "bind").write_text(pmem.name)
        assert pmem.bound
